package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// runFields are the field names of a run (DESIGN.md §12).
var runFields = []string{"id", "credential", "trigger", "actor", "reason", "state", "attempt", "started_at",
	"finished_at", "old_version", "new_version", "runbook", "error"}

// stepFields are the field names of a step in `runs show` (DESIGN.md §12).
var stepFields = []string{"name", "state", "started_at", "finished_at", "error"}

// secrets collects every value rotator published to the files of the
// quickstart targets, across rotations: none may ever appear in output.
type secrets map[string]bool

// collect reads run/mcp.env (dotenv) and run/claude-desktop.json (a JSON
// object) in c's working directory, if they exist.
func (s secrets) collect(t *testing.T, c *cli) {
	t.Helper()
	if data, err := os.ReadFile(c.path("run", "mcp.env")); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			_, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("run/mcp.env: a line is not KEY=value:\n%s", data)
			}
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			s[strings.Trim(v, "'")] = true
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(c.path("run", "claude-desktop.json")); err == nil {
		var m map[string]string
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("run/claude-desktop.json: %v\n%s", err, data)
		}
		for _, v := range m {
			s[v] = true
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// check fails if any collected value appears in any of outputs.
func (s secrets) check(t *testing.T, outputs []string) {
	t.Helper()
	for v := range s {
		if len(v) < 16 {
			t.Fatalf("published value %q is too short to be a generated secret; the parse is wrong", v)
		}
		for _, out := range outputs {
			if strings.Contains(out, v) {
				t.Errorf("a published secret value appears in output (fingerprint only is allowed):\n%s", out)
				break
			}
		}
	}
}

// waitRun is one entry of `rotate --wait -o json`.
type waitRun struct {
	Credential, Run, State, Error, Note string
	Skipped                             bool
}

// decodeWait decodes `rotate --wait -o json` (one object with "runs").
func decodeWait(t *testing.T, out string) map[string]waitRun {
	t.Helper()
	decodeObject(t, out, "runs")
	var v struct{ Runs []waitRun }
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	m := map[string]waitRun{}
	for _, r := range v.Runs {
		if r.Run == "" {
			t.Errorf("%s: no run id:\n%s", r.Credential, out)
		}
		m[r.Credential] = r
	}
	return m
}

// checkRun checks the §12 fields of a run object and its runbook reference.
func checkRun(t *testing.T, r obj, wantDigest string) {
	t.Helper()
	requireKeys(t, "run", r, runFields...)
	if r["attempt"] == nil || num(t, r, "attempt") < 1 {
		t.Errorf("run %v: attempt %v, want at least 1", r["id"], r["attempt"])
	}
	started, finished := utcTime(t, r, "started_at"), utcTime(t, r, "finished_at")
	if finished.Before(started) {
		t.Errorf("run %v finished (%s) before it started (%s)", r["id"], finished, started)
	}
	rb := object(t, r, "runbook")
	requireKeys(t, "runbook", rb, "path", "anchor", "digest")
	if rb["path"] != "runbooks/generated.md" || rb["anchor"] != "rotation" || rb["digest"] != wantDigest {
		t.Errorf("run %v: runbook %v, want path runbooks/generated.md, anchor rotation, digest %s", r["id"], rb, wantDigest)
	}
}

func TestRotate(t *testing.T) {
	data, err := os.ReadFile(runbookPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])

	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store)
			// The quickstart beside its runbooks in the working directory,
			// so that runs record the runbook's digest.
			c.copyRunbooks(t)
			writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
			c.must(t, 0, "apply", "-f", "rotator.yaml")
			published := secrets{}
			var firstRun, firstVersion string

			t.Run("dry run creates no run", func(t *testing.T) {
				before := c.listJSON(t)
				r := c.must(t, 0, "rotate", "notes-api-key", "--dry-run")
				if !strings.Contains(r.stdout, "Plan: rotation of 1 credential(s) (dry run, nothing changed)") ||
					!hasRow(r.stdout, "notes-api-key", "mcp-server-notes", "api-keys", "generated", "true", "none") {
					t.Errorf("no plan:\n%s", r)
				}
				r = c.must(t, 0, "rotate", "--selector", "team=platform", "--emergency", "--reason", "leaked key", "--dry-run", "-o", "json")
				o := decodeObject(t, r.stdout, "plan", "emergency", "revoke_first", "reason")
				plan := byField(t, array(t, o, "plan"), "credential")
				if len(plan) != 2 || plan["notes-api-key"] == nil || plan["github-proxy-upstream-key"] == nil {
					t.Errorf("emergency plan for team=platform: %v", plan)
				}
				if o["emergency"] != true || o["reason"] != "leaked key" {
					t.Errorf("plan: emergency %v, reason %v", o["emergency"], o["reason"])
				}

				r = c.must(t, 0, "runs", "list", "-o", "json")
				if runs := array(t, decodeObject(t, r.stdout, "runs"), "runs"); len(runs) != 0 {
					t.Errorf("a dry run created runs: %v", runs)
				}
				if after := c.listJSON(t); after != before {
					t.Errorf("a dry run changed credentials:\nbefore: %s\nafter: %s", before, after)
				}
				if fileExists(c.path("run", "mcp.env")) {
					t.Error("a dry run published a value")
				}
			})

			t.Run("rotate --wait", func(t *testing.T) {
				r := c.must(t, 0, "rotate", "notes-api-key", "--wait", "-o", "json")
				runs := decodeWait(t, r.stdout)
				got := runs["notes-api-key"]
				if len(runs) != 1 || got.State != "succeeded" || got.Error != "" {
					t.Fatalf("rotate --wait: %+v\n%s", runs, r)
				}
				firstRun = got.Run
				if !strings.Contains(r.stderr, "rotating: 1/1 done, 0 failed") {
					t.Errorf("no progress on stderr:\n%s", r)
				}
				env := readFile(t, c.path("run", "mcp.env"))
				if !strings.Contains(env, "NOTES_API_KEY=rtr_") {
					t.Errorf("run/mcp.env does not hold the new value:\n%s", env)
				}
				published.collect(t, c)
				if store == "sqlite" {
					fi, err := os.Stat(c.path("rotator.db.key"))
					if err != nil {
						t.Fatalf("no master key was generated beside rotator.db: %v", err)
					}
					if fi.Mode().Perm() != 0o600 {
						t.Errorf("rotator.db.key has mode %v, want 0600", fi.Mode().Perm())
					}
				}
			})

			t.Run("runs list", func(t *testing.T) {
				r := c.must(t, 0, "runs", "list", "-o", "json")
				runs := array(t, decodeObject(t, r.stdout, "runs"), "runs")
				if len(runs) != 1 {
					t.Fatalf("got %d runs, want 1:\n%s", len(runs), r.stdout)
				}
				run := runs[0]
				checkRun(t, run, digest)
				if run["id"] != firstRun || run["credential"] != "notes-api-key" || run["trigger"] != "manual" ||
					run["state"] != "succeeded" || run["reason"] != "" || run["error"] != nil || run["old_version"] != nil {
					t.Errorf("run: %v", run)
				}
				if a := str(t, run, "actor"); a == "" {
					t.Error("run has no actor (the OS user by default)")
				}
				firstVersion = str(t, run, "new_version")

				r = c.must(t, 0, "runs", "list")
				if !hasRow(r.stdout, "ID", "CREDENTIAL", "TRIGGER", "STATE") || !hasRow(r.stdout, firstRun, "notes-api-key", "manual", "succeeded") {
					t.Errorf("runs list table:\n%s", r.stdout)
				}
				r = c.must(t, 0, "runs", "list", "--credential", "github-proxy-upstream-key", "-o", "json")
				if runs := array(t, decodeObject(t, r.stdout, "runs"), "runs"); len(runs) != 0 {
					t.Errorf("--credential github-proxy-upstream-key lists %v", runs)
				}
			})

			t.Run("runs show", func(t *testing.T) {
				r := c.must(t, 0, "runs", "show", firstRun, "-o", "json")
				run := object(t, decodeObject(t, r.stdout, "run"), "run")
				checkRun(t, run, digest)
				if run["id"] != firstRun || run["new_version"] != firstVersion {
					t.Errorf("runs show: %v", run)
				}
				steps := array(t, run, "steps")
				var names []string
				for _, s := range steps {
					requireKeys(t, "step", s, stepFields...)
					names = append(names, str(t, s, "name"))
					want := "ok"
					if strings.HasPrefix(str(t, s, "name"), "stage:") {
						want = "skipped" // a file has no pending slot: nothing is staged
						if ev, _ := s["evidence"].(map[string]any); ev == nil || !strings.Contains(fmt.Sprint(ev["reason"]), "no pending slot") {
							t.Errorf("skipped step %v has no reason: %v", s["name"], s["evidence"])
						}
					}
					if s["state"] != want || s["error"] != nil {
						t.Errorf("step %v: state %v (want %s), error %v", s["name"], s["state"], want, s["error"])
					}
					if utcTime(t, s, "finished_at").Before(utcTime(t, s, "started_at")) {
						t.Errorf("step %v finished before it started", s["name"])
					}
				}
				for _, want := range []string{"mint", "activate", "verify", "cutover"} {
					if !slices.Contains(names, want) {
						t.Errorf("steps %q lack %q", names, want)
					}
				}

				r = c.must(t, 0, "runs", "show", firstRun, "-o", "md")
				for _, want := range []string{
					"# Rotation run " + firstRun + "\n",
					"| Field | Value |\n|---|---|\n",
					"| Credential | `notes-api-key` |\n",
					"| State | **succeeded** (attempt 1) |\n",
					"| Runbook followed | runbooks/generated.md#rotation (" + digest + ") |\n",
					"## Steps\n\n| # | Step | Outcome | Started | Duration | Evidence / error |\n|---|---|---|---|---|---|\n",
				} {
					if !strings.Contains(r.stdout, want) {
						t.Errorf("runs show -o md lacks %q:\n%s", want, r.stdout)
					}
				}
				for i, name := range names {
					outcome := "ok"
					if strings.HasPrefix(name, "stage:") {
						outcome = "skipped"
					}
					if row := fmt.Sprintf("| %d | %s | %s | ", i+1, name, outcome); !strings.Contains(r.stdout, row) {
						t.Errorf("runs show -o md lacks the row %q:\n%s", row, r.stdout)
					}
				}

				r = c.must(t, 0, "runs", "show", firstRun)
				if !strings.Contains(r.stdout, "Run:          "+firstRun) || !strings.Contains(r.stdout, "Steps:") || !hasRow(r.stdout, "1", "mint", "ok") {
					t.Errorf("runs show:\n%s", r.stdout)
				}
			})

			t.Run("credentials show", func(t *testing.T) {
				r := c.must(t, 0, "credentials", "show", "notes-api-key", "-o", "json")
				cred := object(t, decodeObject(t, r.stdout, "credential"), "credential")
				requireKeys(t, "credential", cred, credentialFields...)
				requireKeys(t, "credential", cred, "capabilities", "versions", "targets")
				caps := object(t, cred, "capabilities")
				requireKeys(t, "capabilities", caps, "overlap", "revocable", "scope_aware")
				if caps["overlap"] != true {
					t.Errorf("generated provider: capabilities %v, want overlap", caps)
				}
				cur := object(t, cred, "current_version")
				requireKeys(t, "current_version", cur, versionFields...)
				if cur["id"] != firstVersion || str(t, cur, "fingerprint") == "" {
					t.Errorf("current_version %v, want id %s with a fingerprint", cur, firstVersion)
				}
				utcTime(t, cur, "created_at")
				utcTime(t, cred, "last_rotated_at")
				if cred["age_seconds"] == nil || num(t, cred, "age_seconds") < 0 {
					t.Errorf("age_seconds %v after a rotation", cred["age_seconds"])
				}
				// notes-api-key is due again a minute after a rotation: on a slow
				// machine it may already be.
				if s := cred["status"]; s != "healthy" && s != "due" {
					t.Errorf("status %v after a rotation, want healthy (or due)", s)
				}
				if g := stringList(t, cred["granted_scope"]); !slices.Equal(g, []string{"notes:read", "notes:write"}) {
					t.Errorf("granted_scope %q", g)
				}
				vers := array(t, cred, "versions")
				if len(vers) != 1 || vers[0]["id"] != firstVersion || vers[0]["stage"] != "current" {
					t.Errorf("versions %v", vers)
				}

				r = c.must(t, 0, "credentials", "show", "notes-api-key")
				for _, want := range []string{"ID:             notes-api-key", "Capabilities:   overlap=true", "Versions:", str(t, cur, "fingerprint")} {
					if !strings.Contains(r.stdout, want) {
						t.Errorf("credentials show lacks %q:\n%s", want, r.stdout)
					}
				}

				list := byField(t, array(t, decodeObject(t, c.listJSON(t), "credentials"), "credentials"), "id")
				lcur := object(t, list["notes-api-key"], "current_version")
				requireKeys(t, "current_version", lcur, versionFields...)
				if lcur["id"] != firstVersion {
					t.Errorf("credentials list: current_version %v", lcur)
				}
			})

			t.Run("emergency", func(t *testing.T) {
				r := c.must(t, 0, "rotate", "--selector", "team=platform", "--emergency", "--reason", "leaked key", "--actor", "alice", "--wait", "-o", "json")
				runs := decodeWait(t, r.stdout)
				if len(runs) != 2 {
					t.Fatalf("emergency rotation of team=platform started %d runs, want 2:\n%s", len(runs), r)
				}
				ids := map[string]string{}
				for _, cred := range []string{"notes-api-key", "github-proxy-upstream-key"} {
					if got := runs[cred]; got.State != "succeeded" {
						t.Errorf("%s: %+v", cred, got)
					}
					ids[runs[cred].Run] = cred
				}
				published.collect(t, c)

				r = c.must(t, 0, "runs", "list", "-o", "json")
				seen := 0
				for _, run := range array(t, decodeObject(t, r.stdout, "runs"), "runs") {
					cred, ok := ids[str(t, run, "id")]
					if !ok {
						continue
					}
					seen++
					checkRun(t, run, digest)
					if run["credential"] != cred || run["trigger"] != "emergency" || run["actor"] != "alice" ||
						run["reason"] != "leaked key" || run["state"] != "succeeded" {
						t.Errorf("emergency run: %v", run)
					}
					if cred == "notes-api-key" && run["old_version"] != firstVersion {
						t.Errorf("emergency run of notes-api-key: old_version %v, want %s", run["old_version"], firstVersion)
					}
				}
				if seen != 2 {
					t.Errorf("runs list shows %d of the 2 emergency runs", seen)
				}
				for id := range ids {
					r = c.must(t, 0, "runs", "show", id, "-o", "md")
					for _, want := range []string{"| Trigger | emergency |", "| Actor | alice |", "| Reason | leaked key |"} {
						if !strings.Contains(r.stdout, want) {
							t.Errorf("runs show %s -o md lacks %q:\n%s", id, want, r.stdout)
						}
					}
				}
				// In an emergency the previous value is retired at once.
				r = c.must(t, 0, "credentials", "show", "notes-api-key", "-o", "json")
				stages := map[string]string{}
				for _, v := range array(t, object(t, decodeObject(t, r.stdout, "credential"), "credential"), "versions") {
					stages[str(t, v, "id")] = str(t, v, "stage")
				}
				if stages[firstVersion] != "retired" {
					t.Errorf("the version before the emergency is %q, want retired (versions %v)", stages[firstVersion], stages)
				}
			})

			t.Run("rotate --all", func(t *testing.T) {
				r := c.must(t, 0, "rotate", "--all", "--wait", "-o", "json")
				runs := decodeWait(t, r.stdout)
				if len(runs) != len(quickstartCredentials) {
					t.Fatalf("--all started %d runs:\n%s", len(runs), r)
				}
				// With a grace period, --wait returns at cutover.
				for cred, want := range map[string]string{
					"notes-api-key":                  "cut_over",
					"github-proxy-upstream-key":      "cut_over",
					"claude-desktop-gateway-token":   "succeeded",
					"reports-webhook-signing-secret": "succeeded",
				} {
					if got := runs[cred]; got.State != want {
						t.Errorf("%s: %+v, want state %s", cred, got, want)
					}
				}
				published.collect(t, c)
				if !fileExists(c.path("run", "claude-desktop.json")) {
					t.Error("run/claude-desktop.json was not written")
				}
			})

			t.Run("no secret in any output", func(t *testing.T) {
				// notes-api-key ×3, github-proxy ×2, claude-desktop, reports.
				if len(published) < 7 {
					t.Fatalf("collected %d published values, want at least 7: the canary would not test much", len(published))
				}
				cmds := [][]string{
					{"credentials", "list"}, {"credentials", "list", "-o", "json"},
					{"runs", "list"}, {"runs", "list", "-o", "json"},
				}
				for id := range quickstartCredentials {
					cmds = append(cmds, []string{"credentials", "show", id}, []string{"credentials", "show", id, "-o", "json"})
				}
				r := c.must(t, 0, "runs", "list", "-o", "json")
				for _, run := range array(t, decodeObject(t, r.stdout, "runs"), "runs") {
					id := str(t, run, "id")
					cmds = append(cmds, []string{"runs", "show", id}, []string{"runs", "show", id, "-o", "json"}, []string{"runs", "show", id, "-o", "md"})
				}
				for _, args := range cmds {
					c.must(t, 0, args...)
				}
				c.mu.Lock()
				printed := slices.Clone(c.printed)
				c.mu.Unlock()
				published.check(t, printed)
			})
		})
	}
}

// TestRotateWaitEmergencyRetiresPrevious checks that --wait reports an
// emergency run only once the previous value is revoked: a run passes
// through cut_over on its way, and must not be reported (as "retired after
// grace by 'rotator serve'") while this process is still revoking.
func TestRotateWaitEmergencyRetiresPrevious(t *testing.T) {
	config, err := filepath.Abs(filepath.Join("testdata", "faulty.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store, "ROTATOR_ENABLE_FAULTY_PROVIDER=1")
			c.must(t, 0, "apply", "-f", config)
			r := c.must(t, 0, "rotate", "flaky-api-key", "--wait", "-o", "json")
			first := decodeWait(t, r.stdout)["flaky-api-key"]
			if first.State != "succeeded" {
				t.Fatalf("first rotation: %+v", first)
			}
			r = c.must(t, 0, "runs", "show", first.Run, "-o", "json")
			previous := str(t, object(t, decodeObject(t, r.stdout, "run"), "run"), "new_version")

			// Revoking takes a while, so the run stays at cut_over across
			// several polls of --wait.
			writeFile(t, c.path("faulty-control.json"), `{"delay":{"revoke":"1s"}}`)
			r = c.must(t, 0, "rotate", "flaky-api-key", "--emergency", "--reason", "leaked", "--wait", "-o", "json")
			if got := decodeWait(t, r.stdout)["flaky-api-key"]; got.State != "succeeded" || got.Note != "" {
				t.Errorf("emergency rotation reported before the previous value was revoked: %+v", got)
			}
			r = c.must(t, 0, "credentials", "show", "flaky-api-key", "-o", "json")
			for _, v := range array(t, object(t, decodeObject(t, r.stdout, "credential"), "credential"), "versions") {
				if v["id"] == previous && v["stage"] != "retired" {
					t.Errorf("after rotate --emergency --wait, the previous version is %v, want retired", v["stage"])
				}
			}
		})
	}
}

// TestRotateWithoutService: rotate without --wait queues runs for a
// running serve; with none running on the database it says so and executes
// them itself, so that a rotation asked for is never left waiting.
func TestRotateWithoutService(t *testing.T) {
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store)
			writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
			c.copyRunbooks(t)
			c.must(t, 0, "apply", "-f", "rotator.yaml")
			r := c.must(t, 0, "rotate", "notes-api-key", "-o", "json")
			if !strings.Contains(r.stderr, "executing here: no 'rotator serve' is running on this database") {
				t.Errorf("no notice that the runs are executed here:\n%s", r)
			}
			if got := decodeWait(t, r.stdout)["notes-api-key"]; got.State != "succeeded" {
				t.Errorf("rotation without a service: %+v\n%s", got, r)
			}
			if env := readFile(t, c.path("run", "mcp.env")); !strings.Contains(env, "NOTES_API_KEY=rtr_") {
				t.Errorf("run/mcp.env does not hold a rotated value:\n%s", env)
			}
		})
	}
}

func TestRotateWaitFailingRun(t *testing.T) {
	config, err := filepath.Abs(filepath.Join("testdata", "faulty.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store, "ROTATOR_ENABLE_FAULTY_PROVIDER=1")
			c.must(t, 0, "apply", "-f", config)
			control := c.path("faulty-control.json")
			writeFile(t, control, `{"fail":["verify"]}`)

			// --timeout ends the waiting before the retry is due (30s).
			r := c.must(t, 1, "rotate", "flaky-api-key", "--wait", "--timeout", "5s", "-o", "json")
			runs := decodeWait(t, r.stdout)
			failed := runs["flaky-api-key"]
			if failed.State != "rolled_back" || !strings.Contains(failed.Error, "injected failure") {
				t.Errorf("failing run: %+v", failed)
			}
			if !strings.Contains(r.stderr, "one or more runs failed: 1 of 1") {
				t.Errorf("stderr does not report the failure:\n%s", r)
			}

			r = c.must(t, 0, "runs", "show", failed.Run, "-o", "json")
			run := object(t, decodeObject(t, r.stdout, "run"), "run")
			if run["state"] != "rolled_back" || run["error"] == nil {
				t.Errorf("failed run: state %v, error %v", run["state"], run["error"])
			}
			verifyFailed := false
			for _, s := range array(t, run, "steps") {
				if s["name"] == "verify" && s["state"] == "failed" && strings.Contains(fmt.Sprint(s["error"]), "injected failure") {
					verifyFailed = true
				}
			}
			if !verifyFailed {
				t.Errorf("no failed verify step:\n%s", r.stdout)
			}
			r = c.must(t, 0, "credentials", "show", "flaky-api-key", "-o", "json")
			if cur := object(t, decodeObject(t, r.stdout, "credential"), "credential")["current_version"]; cur != nil {
				t.Errorf("a rolled-back run left a current version: %v", cur)
			}

			// One failure among several: the others still rotate, the exit
			// code still reports the failure, and the table shows both.
			r = c.must(t, 1, "rotate", "--selector", "team=qa", "--wait", "--timeout", "5s")
			if !hasRow(r.stdout, "flaky-api-key", "rolled_back") || !hasRow(r.stdout, "steady-api-key", "succeeded") {
				t.Errorf("rotate --wait table:\n%s", r)
			}
			if !strings.Contains(r.stderr, "one or more runs failed: 1 of 2") {
				t.Errorf("stderr does not report 1 of 2 failed:\n%s", r)
			}

			// Without the injected failure the same rotation succeeds: the
			// exit code 1 above came from the failing run.
			writeFile(t, control, `{}`)
			r = c.must(t, 0, "rotate", "flaky-api-key", "--wait", "-o", "json")
			if got := decodeWait(t, r.stdout)["flaky-api-key"]; got.State != "succeeded" {
				t.Errorf("rotation without injected failure: %+v", got)
			}
		})
	}
}

// TestRotateProviderNotBuilt: a provider that cannot be built (here the
// faulty test provider without its enabling variable) fails the run with
// an error that names the provider once, then says why.
func TestRotateProviderNotBuilt(t *testing.T) {
	config, err := filepath.Abs(filepath.Join("testdata", "faulty.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.must(t, 0, "apply", "-f", config)
	// Building a provider is retried (a reload can fix it): --timeout
	// leaves the retry, due after 30s, to a service.
	r := c.must(t, 1, "rotate", "flaky-api-key", "--wait", "--timeout", "10s", "-o", "json")
	got := decodeWait(t, r.stdout)["flaky-api-key"]
	want := "load failed: provider broken: the faulty provider is for tests; set ROTATOR_ENABLE_FAULTY_PROVIDER=1 to use it: permanent failure"
	if got.State != "rolled_back" || !strings.Contains(got.Error, want) {
		t.Errorf("run %+v; want rolled_back with %q", got, want)
	}
	if n := strings.Count(got.Error, "provider broken"); n != 1 {
		t.Errorf("the error names the provider %d times: %q", n, got.Error)
	}
}
