package main

// Golden tests: the --help of every command in the tree, the shapes of the
// -o json and -o yaml outputs, and tables on an 80-column terminal.
// Regenerate after an intended change with
//
//	go test ./cmd/rotator -run Golden -update
//
// and review the diff under testdata/.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/view"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ (go test ./cmd/rotator -run Golden -update)")

// golden compares got with testdata/name, or writes it there with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/rotator -run Golden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (if intended, run go test ./cmd/rotator -run Golden -update and review the diff)\n--- got:\n%s\n--- want:\n%s",
			path, got, want)
	}
}

// checkWidth fails for every line of s wider than width columns (colour
// codes do not count).
func checkWidth(t *testing.T, what, s string, width int) {
	t.Helper()
	for i, l := range strings.Split(s, "\n") {
		if n := utf8.RuneCountInString(ansi.ReplaceAllString(l, "")); n > width {
			t.Errorf("%s: line %d is %d columns wide (at most %d):\n%s", what, i+1, n, width, l)
		}
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// commandPaths returns the path of every command a user can see, the root,
// help and completion included, walking the real tree: commands added
// later get a golden file with -update.
func commandPaths() [][]string {
	root := (&app{}).rootCommand()
	root.InitDefaultHelpCmd()
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.Hidden {
			return
		}
		out = append(out, path)
		for _, sub := range c.Commands() {
			walk(sub, append(slices.Clone(path), sub.Name()))
		}
	}
	walk(root, []string{"rotator"})
	return out
}

func TestGoldenHelp(t *testing.T) {
	// The help is wrapped to the terminal: make it none.
	t.Setenv("COLUMNS", "")
	t.Setenv(envForceTTY, "")
	want := map[string]bool{}
	for _, path := range commandPaths() {
		name := strings.Join(path, "_") + ".txt"
		want[name] = true
		t.Run(strings.Join(path, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append(slices.Clone(path[1:]), "--help"), &stdout, &stderr); code != exitOK || stderr.Len() > 0 {
				t.Fatalf("%s --help: exit %d, stderr %q", strings.Join(path, " "), code, stderr.String())
			}
			checkWidth(t, strings.Join(path, " ")+" --help", stdout.String(), maxHelpWidth)
			golden(t, filepath.Join("help", name), stdout.String())
		})
	}
	// No golden file of a command that no longer exists.
	files, _ := filepath.Glob(filepath.Join("testdata", "help", "*.txt"))
	for _, f := range files {
		if !want[filepath.Base(f)] {
			if *update {
				_ = os.Remove(f)
				continue
			}
			t.Errorf("%s is the help of no command (run with -update to remove it)", f)
		}
	}
}

// normaliser replaces what changes from run to run (ids, times, hashes,
// fingerprints, durations) with stable placeholders; each distinct id gets
// its own, in order of appearance.
type normaliser struct{ ids map[string]string }

var (
	ulidRe    = regexp.MustCompile(`\b[0-7][0-9A-HJKMNP-TV-Z]{25}\b`)
	timeRe    = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	hash64Re  = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	hex16Re   = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
	numberRe  = regexp.MustCompile(`("?(?:age_seconds|duration_seconds|id|seq)"?: )\d[0-9.e+-]*`)
	durMsRe   = regexp.MustCompile(`("?duration_ms"?: "?)[0-9.]+`)
	eventIDRe = regexp.MustCompile(`("?event_id"?: )\d+`)
)

func (n *normaliser) normalise(s string) string {
	if n.ids == nil {
		n.ids = map[string]string{}
	}
	s = ulidRe.ReplaceAllStringFunc(s, func(id string) string {
		if _, ok := n.ids[id]; !ok {
			n.ids[id] = fmt.Sprintf("<ID%d>", len(n.ids)+1)
		}
		return n.ids[id]
	})
	s = timeRe.ReplaceAllString(s, "<TIME>")
	s = hash64Re.ReplaceAllString(s, "<HASH>")
	s = hex16Re.ReplaceAllString(s, "<FINGERPRINT>")
	s = numberRe.ReplaceAllString(s, "${1}<N>")
	s = durMsRe.ReplaceAllString(s, "${1}<N>")
	return eventIDRe.ReplaceAllString(s, "${1}<N>")
}

// TestGoldenOutputShapes pins the -o json and -o yaml outputs of the
// commands scripts read (DESIGN.md §12), and checks that the YAML is the
// JSON object: the same keys, the same values.
func TestGoldenOutputShapes(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
	c.must(t, 0, "apply", "-f", "rotator.yaml", "--actor", "golden")
	r := c.must(t, 0, "rotate", "notes-api-key", "--wait", "--actor", "golden", "-o", "json")
	runID := str(t, array(t, decodeObject(t, r.stdout, "runs"), "runs")[0], "run")
	c.must(t, 0, "audit", "verify", "--seal")

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"credentials-list", []string{"credentials", "list", "--selector", "team=platform"}},
		{"credentials-show", []string{"credentials", "show", "notes-api-key"}},
		{"runs-list", []string{"runs", "list"}},
		{"runs-show", []string{"runs", "show", runID}},
		{"audit-list", []string{"audit", "list", "--run", runID, "--limit", "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n normaliser
			js := c.must(t, 0, append(tc.args, "-o", "json")...).stdout
			ys := c.must(t, 0, append(tc.args, "-o", "yaml")...).stdout
			golden(t, filepath.Join("output", tc.name+".json"), n.normalise(js))
			golden(t, filepath.Join("output", tc.name+".yaml"), n.normalise(ys))

			var fromJSON, fromYAML any
			if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
				t.Fatalf("-o json: %v\n%s", err, js)
			}
			if err := yaml.Unmarshal([]byte(ys), &fromYAML); err != nil {
				t.Fatalf("-o yaml: %v\n%s", err, ys)
			}
			// The two outputs were made a moment apart: compare them with
			// times, ages and ids normalised.
			if y, j := canonical(jsonRoundTrip(t, fromYAML)), canonical(fromJSON); y != j {
				t.Errorf("-o yaml is not the -o json object:\n--- yaml, as JSON:\n%s\n--- json:\n%s", y, j)
			}
		})
	}
}

// canonical renders a decoded JSON value with sorted keys, normalised.
func canonical(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	var n normaliser
	return n.normalise(string(b))
}

// TestGoldenTable80 renders the list tables from fixed data on an
// 80-column terminal: every line fits, long cells end in an ellipsis.
func TestGoldenTable80(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { u := now.Add(d); return &u }
	age := int64(3 * 3600)
	creds := []view.Credential{
		{ID: "claude-desktop-gateway-token", Consumer: "claude-desktop", Provider: "shared-secrets",
			Scope: []string{"mcp:tools", "mcp:resources"}, Owner: "ai-enablement", Labels: map[string]string{"team": "ai-enablement", "env": "dev"},
			Status: "healthy", AgeSeconds: &age, MaxAgeSeconds: 30 * 86400, LastRotatedAt: at(-3 * time.Hour), NextRotationAt: at(22*24*time.Hour + 12*time.Hour)},
		{ID: "reports-webhook-signing-secret", Consumer: "mcp-server-reports", Provider: "shared-secrets",
			Scope: []string{"webhooks:sign"}, Owner: "data-team", Labels: map[string]string{"team": "data"},
			Status: "needs_attention", MaxAgeSeconds: 14 * 86400, NextRotationAt: at(-time.Minute)},
		{ID: "notes-api-key", Consumer: "mcp-server-notes", Provider: "api-keys", Scope: []string{"notes:read", "notes:write"},
			Status: "due", AgeSeconds: &age, MaxAgeSeconds: 300, NextRotationAt: at(0)},
	}
	errText := "mint: POST https://idp.example.com/oauth2/token: 401 Unauthorized: invalid_client"
	dur := 1.25
	runs := []view.Run{
		{ID: "01JQ3V6ZJ4X8M2N5P7R9T1W3Y5", Credential: "claude-desktop-gateway-token", Trigger: "schedule", State: "succeeded",
			Actor: "scheduler", Attempt: 1, CreatedAt: now.Add(-2 * time.Minute), DurationSec: &dur},
		{ID: "01JQ3V6ZJ4X8M2N5P7R9T1W3Y6", Credential: "reports-webhook-signing-secret", Trigger: "emergency", State: "rolled_back",
			Actor: "alice", Reason: "key posted in a public channel", Attempt: 3, CreatedAt: now.Add(-26 * time.Hour), Error: &errText},
	}
	render := func(term terminal, print func(a *app) error) string {
		var out bytes.Buffer
		a := &app{stdout: &out, term: term}
		if err := print(a); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	tty80 := terminal{outTTY: true, width: 80}
	for _, tc := range []struct {
		name  string
		print func(a *app, lo listOutput) error
	}{
		{"credentials-list", func(a *app, lo listOutput) error { return a.printCredentialList(lo, creds, now) }},
		{"runs-list", func(a *app, lo listOutput) error { return a.printRunList(lo, runs, now) }},
		{"audit-list", func(a *app, lo listOutput) error { return a.printAuditFixture(t, lo, now) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo := listOutput{format: formatTable}
			got := render(tty80, func(a *app) error { return tc.print(a, lo) })
			checkWidth(t, tc.name, got, 80)
			if !strings.Contains(got, "…") {
				t.Errorf("%s: nothing was cut to fit 80 columns; the test data should need it:\n%s", tc.name, got)
			}
			golden(t, filepath.Join("table", tc.name+"-80.txt"), got)

			wide := listOutput{format: formatWide}
			got = render(tty80, func(a *app) error { return tc.print(a, wide) })
			if strings.Contains(got, "…") {
				t.Errorf("%s -o wide cut a cell:\n%s", tc.name, got)
			}
			golden(t, filepath.Join("table", tc.name+"-wide.txt"), got)
		})
	}
}

// printAuditFixture writes fixed audit events to a real SQLite store and
// lists them as audit list does.
func (a *app) printAuditFixture(t *testing.T, lo listOutput, now time.Time) error {
	t.Helper()
	st, err := sqlite.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(t.Context()); err != nil {
		return err
	}
	err = st.InTx(t.Context(), func(tx store.Tx) error {
		return tx.InsertAuditEvents(t.Context(),
			store.AuditEvent{OccurredAt: now.Add(-time.Hour), Actor: "alice", Action: "config.applied", Data: json.RawMessage(`{"created":4,"updated":0}`)},
			store.AuditEvent{OccurredAt: now.Add(-time.Minute), Actor: "scheduler", Action: "run.cutover", CredentialID: "claude-desktop-gateway-token",
				RunID: "01JQ3V6ZJ4X8M2N5P7R9T1W3Y5", Data: json.RawMessage(`{"evidence":{"fingerprint":"82e33d2747f81ffc"},"outcome":"ok","step":"cutover"}`)},
		)
	})
	if err != nil {
		return err
	}
	return a.streamEventsTable(t.Context(), lo, st, store.AuditFilter{})
}

// TestTablesFitTheTerminal runs the list commands as a user would on an
// 80-column terminal, with and without colour, and through a pipe.
func TestTablesFitTheTerminal(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	c.must(t, 0, "rotate", "notes-api-key", "--wait")
	lists := [][]string{{"credentials", "list"}, {"runs", "list"}, {"audit", "list"}}

	tty := &cli{dir: c.dir, env: append(slices.Clone(c.env), "COLUMNS=80", envForceTTY+"=1")}
	noColour := &cli{dir: c.dir, env: append(slices.Clone(tty.env), "NO_COLOR=1")}
	for _, args := range lists {
		r := tty.must(t, 0, args...)
		checkWidth(t, strings.Join(args, " "), r.stdout, 80)
		if !ansi.MatchString(r.stdout) && args[0] != "audit" {
			t.Errorf("%v on a terminal: no colour:\n%s", args, r.stdout)
		}
		r = noColour.must(t, 0, args...)
		checkWidth(t, strings.Join(args, " "), r.stdout, 80)
		if ansi.MatchString(r.stdout) {
			t.Errorf("%v with NO_COLOR: colour codes:\n%q", args, r.stdout)
		}
		// Through a pipe (COLUMNS unset): nothing cut, no colour.
		r = c.must(t, 0, args...)
		if strings.Contains(r.stdout, "…") || ansi.MatchString(r.stdout) {
			t.Errorf("%v through a pipe: cut or coloured:\n%s", args, r.stdout)
		}
		r = c.must(t, 0, append(args, "--no-headers")...)
		if strings.HasPrefix(r.stdout, "ID") || strings.HasPrefix(r.stdout, "SEQ") || r.stdout == "" {
			t.Errorf("%v --no-headers:\n%s", args, r.stdout)
		}
	}
	r := c.must(t, 0, "credentials", "list", "-q", "--selector", "team=platform")
	if r.stdout != "github-proxy-upstream-key\nnotes-api-key\n" {
		t.Errorf("credentials list -q: %q", r.stdout)
	}
	r = c.must(t, 0, "runs", "list", "-q")
	if !ulidRe.MatchString(r.stdout) || strings.Count(r.stdout, "\n") != 1 || strings.Contains(r.stdout, " ") {
		t.Errorf("runs list -q: %q", r.stdout)
	}
	r = c.must(t, 0, "audit", "list", "-q", "--limit", "2")
	if lines := strings.Fields(r.stdout); len(lines) != 2 {
		t.Errorf("audit list -q --limit 2: %q", r.stdout)
	}
}

// TestAuditListLimitShowsTheNewest: --limit N lists the last N events of the
// chain order, in that order, sealed or not.
func TestAuditListLimitShowsTheNewest(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	c.must(t, 0, "audit", "verify", "--seal")
	c.must(t, 0, "rotate", "notes-api-key", "--wait") // events left unsealed
	ids := func(args ...string) []string {
		t.Helper()
		r := c.must(t, 0, append([]string{"audit", "list", "-q"}, args...)...)
		return strings.Fields(r.stdout)
	}
	all := ids()
	if len(all) < 6 {
		t.Fatalf("only %d audit events", len(all))
	}
	for _, n := range []int{1, 3, len(all) - 1, len(all), len(all) + 5} {
		got := ids("--limit", fmt.Sprint(n))
		want := all[max(0, len(all)-n):]
		if !slices.Equal(got, want) {
			t.Errorf("--limit %d: %v, want the newest %v", n, got, want)
		}
	}
	c.must(t, 0, "audit", "verify", "--seal")
	if got := ids("--limit", "4"); !slices.Equal(got, all[len(all)-4:]) {
		t.Errorf("--limit 4 once sealed: %v, want %v", got, all[len(all)-4:])
	}
}
