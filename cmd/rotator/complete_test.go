package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store/storeopen"
)

// graceConfig is one revocable credential (the faulty provider keeps one
// file per value it accepts in ./resource) with a 5 s grace period.
const graceConfig = `providers:
  res:
    type: faulty
    state_dir: ./resource
    control_file: ./control.json
credentials:
  - id: api-token
    consumer: mcp-server-api
    provider: res
    scope: [api:read]
    labels: {team: qa}
    max_age: 1h
    grace: 5s
    runbook: runbooks/generated.md#rotation
  - id: other-token
    consumer: mcp-server-other
    provider: res
    scope: [api:read]
    labels: {team: qa}
    max_age: 1h
    grace: 5s
    runbook: runbooks/generated.md#rotation
`

// accepted counts the values the resource accepts.
func accepted(t *testing.T, c *cli) int {
	t.Helper()
	entries, err := os.ReadDir(c.path("resource"))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

type fullWait struct {
	Credential, Run, State, Error, Note string
	Skipped                             bool
	Attempts                            []string
	RetireAfter                         *time.Time `json:"retire_after"`
	ExecutedBy                          string     `json:"executed_by"`
}

func decodeFull(t *testing.T, out string) map[string]fullWait {
	t.Helper()
	var v struct{ Runs []fullWait }
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	m := map[string]fullWait{}
	for _, r := range v.Runs {
		m[r.Credential] = r
	}
	return m
}

// TestCLICompletesRunsWithoutService is the emergency CLI with the service
// down: it finishes what it starts (retirement after grace, retries) and
// leaves a sealed audit log.
func TestCLICompletesRunsWithoutService(t *testing.T) {
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store, "ROTATOR_ENABLE_FAULTY_PROVIDER=1")
			writeFile(t, c.path("rotator.yaml"), graceConfig)
			c.copyRunbooks(t)
			c.must(t, 0, "apply", "-f", "rotator.yaml")

			// A first value (no previous one to retire).
			r := c.must(t, 0, "rotate", "api-token", "--wait", "-o", "json")
			if got := decodeFull(t, r.stdout)["api-token"]; got.State != "succeeded" || got.ExecutedBy != "here" {
				t.Fatalf("first rotation: %+v\n%s", got, r)
			}
			if !strings.Contains(r.stderr, "executing here") {
				t.Errorf("no statement of who executes:\n%s", r)
			}
			if n := accepted(t, c); n != 1 {
				t.Fatalf("resource accepts %d values after the first rotation, want 1", n)
			}

			// --wait=retired waits through the 5 s grace and revokes the
			// previous value at the resource.
			began := time.Now()
			r = c.must(t, 0, "rotate", "api-token", "--wait=retired", "-o", "json")
			if got := decodeFull(t, r.stdout)["api-token"]; got.State != "succeeded" {
				t.Fatalf("rotate --wait=retired: %+v\n%s", got, r)
			}
			if d := time.Since(began); d < 4*time.Second {
				t.Errorf("rotate --wait=retired returned after %s, before the 5 s grace ended", d)
			}
			if !strings.Contains(r.stderr, "retiring the previous version at") {
				t.Errorf("no countdown to the retirement:\n%s", r)
			}
			if n := accepted(t, c); n != 1 {
				t.Errorf("resource accepts %d values after --wait=retired, want 1 (the previous one revoked)", n)
			}

			// The next rotation runs (it is not skipped as "already
			// rotating"); plain --wait returns at cutover and says what
			// retires the previous version.
			r = c.must(t, 0, "rotate", "api-token", "--wait", "-o", "json")
			got := decodeFull(t, r.stdout)["api-token"]
			if got.Skipped || got.State != "cut_over" || got.RetireAfter == nil || !strings.Contains(got.Note, "rotator runs resume") {
				t.Fatalf("second rotation: %+v\n%s", got, r)
			}
			if n := accepted(t, c); n != 2 {
				t.Errorf("resource accepts %d values during the grace period, want 2", n)
			}
			// While the grace runs, another rotation is not what was asked:
			// it is skipped with the reason, exit 1.
			r = c.must(t, 1, "rotate", "api-token", "--wait", "-o", "json")
			if got := decodeFull(t, r.stdout)["api-token"]; !got.Skipped || !strings.Contains(got.Note, "grace") {
				t.Errorf("rotation during the grace period: %+v\n%s", got, r)
			}

			// runs resume retires the version whose grace ended while
			// nothing ran.
			time.Sleep(time.Until(*got.RetireAfter) + 200*time.Millisecond)
			r = c.must(t, 0, "runs", "resume", "-o", "json")
			if res := decodeFull(t, r.stdout)["api-token"]; res.State != "succeeded" || res.Run != got.Run {
				t.Errorf("runs resume: %+v\n%s", res, r)
			}
			if n := accepted(t, c); n != 1 {
				t.Errorf("resource accepts %d values after runs resume, want 1", n)
			}
			r = c.must(t, 0, "runs", "resume")
			if !strings.Contains(r.stderr, "nothing is due") {
				t.Errorf("second runs resume:\n%s", r)
			}

			// A provider that fails twice, then recovers: rotate --wait
			// retries after its backoff and succeeds on the third attempt.
			writeFile(t, c.path("control.json"), `{"fail":["verify"],"fail_times":2}`)
			r = c.must(t, 0, "rotate", "other-token", "--wait", "--retry-backoff", "1s", "-o", "json")
			res := decodeFull(t, r.stdout)["other-token"]
			if res.State != "succeeded" || len(res.Attempts) != 3 {
				t.Errorf("rotation through two failures: %+v\n%s", res, r)
			}
			if strings.Count(r.stderr, "failed (verify failed") != 2 || !strings.Contains(r.stderr, "next attempt at") {
				t.Errorf("the failed attempts and the next attempt times are not shown:\n%s", r)
			}
			writeFile(t, c.path("control.json"), `{}`)

			// After rotate --all --wait with no service, nothing is left
			// unsealed.
			c.must(t, 0, "rotate", "--all", "--emergency", "--reason", "drill", "--wait")
			r = c.must(t, 0, "audit", "verify", "-o", "json")
			var ver struct {
				Chain struct {
					Unsealed int64 `json:"unsealed"`
					OK       bool  `json:"ok"`
				} `json:"audit_chain"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &ver); err != nil {
				t.Fatal(err)
			}
			if !ver.Chain.OK || ver.Chain.Unsealed != 0 {
				t.Errorf("audit verify after rotate --all --wait: %s", r.stdout)
			}
		})
	}
}

// TestRunsControl: runs wait, cancel and retry, with run ids in any case,
// as unique prefixes and as "latest".
func TestRunsControl(t *testing.T) {
	for _, store := range storeKinds {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, store, "ROTATOR_ENABLE_FAULTY_PROVIDER=1")
			writeFile(t, c.path("rotator.yaml"), graceConfig)
			c.copyRunbooks(t)
			c.must(t, 0, "apply", "-f", "rotator.yaml")
			r := c.must(t, 0, "rotate", "api-token", "--wait", "-o", "json")
			first := decodeFull(t, r.stdout)["api-token"]

			for _, arg := range []string{"latest", strings.ToLower(first.Run), first.Run[:12]} {
				r = c.must(t, 0, "runs", "show", arg, "-o", "json")
				if !strings.Contains(r.stdout, first.Run) {
					t.Errorf("runs show %s does not show run %s:\n%s", arg, first.Run, r)
				}
			}
			c.must(t, 3, "runs", "show", "01ZZZZZZZZZZZZ")

			// A run that cut over cannot be cancelled.
			r = c.must(t, 0, "rotate", "api-token", "--wait", "-o", "json")
			cut := decodeFull(t, r.stdout)["api-token"]
			r = c.must(t, 2, "runs", "cancel", cut.Run, "--reason", "test")
			if !strings.Contains(r.stderr, "rotate the credential again") {
				t.Errorf("cancel after cutover:\n%s", r)
			}
			// runs wait --until retired retires it.
			r = c.must(t, 0, "runs", "wait", strings.ToLower(cut.Run), "--until", "retired", "-o", "json")
			if got := decodeFull(t, r.stdout)["api-token"]; got.State != "succeeded" {
				t.Errorf("runs wait --until retired: %+v\n%s", got, r)
			}

			// A run left planned (queued while nothing executes it) is
			// cancelled: rolled back, not counted as a failure.
			writeFile(t, c.path("control.json"), `{"fail":["mint"]}`)
			r = c.must(t, 1, "rotate", "other-token", "--wait", "--timeout", "3s", "-o", "json")
			failed := decodeFull(t, r.stdout)["other-token"]
			if failed.State != "rolled_back" {
				t.Fatalf("failing rotation: %+v\n%s", failed, r)
			}
			writeFile(t, c.path("control.json"), `{}`)
			r = c.must(t, 0, "runs", "retry", failed.Run, "--wait", "-o", "json")
			if got := decodeFull(t, r.stdout)["other-token"]; got.State != "succeeded" || got.Run == failed.Run {
				t.Errorf("runs retry: %+v\n%s", got, r)
			}
			c.must(t, 2, "runs", "retry", "latest")

			// --quiet: the result on stdout, no progress on stderr.
			r = c.must(t, 0, "rotate", "other-token", "--wait", "-q", "-o", "json")
			if got := decodeFull(t, r.stdout)["other-token"]; got.State == "" || strings.Contains(r.stderr, "rotating:") {
				t.Errorf("rotate --quiet: %+v\n%s", got, r)
			}
		})
	}
}

// TestAuditVerifyUnsealedWithoutService: events left unsealed for over a
// minute with no service to seal them fail audit verify (exit 1), until
// --seal chains them.
func TestAuditVerifyUnsealedWithoutService(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
	c.copyRunbooks(t)
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	// Fresh unsealed events are the sealer's normal backlog.
	c.must(t, 0, "audit", "verify")

	st, err := storeopen.Open(t.Context(), "sqlite://"+c.path("rotator.db"))
	if err != nil {
		t.Fatal(err)
	}
	db := st.Handle().(*sql.DB)
	if _, err := db.ExecContext(t.Context(), `UPDATE audit_pending SET occurred_at = occurred_at - 120000000`); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	r := c.must(t, 1, "audit", "verify")
	if !strings.Contains(r.stderr, "not sealed and no 'rotator serve' is running") || !strings.Contains(r.stderr, "--seal") {
		t.Errorf("old unsealed events:\n%s", r)
	}
	c.must(t, 0, "audit", "verify", "--seal")
	c.must(t, 0, "audit", "verify")
}
