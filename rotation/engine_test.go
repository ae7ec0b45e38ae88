package rotation_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/providers/faulty"
	"github.com/rotatorhq/rotator/rotation"
)

// waitTimeout bounds every wait for an outcome; a test that reaches it fails.
const waitTimeout = 30 * time.Second

// forEachStore runs fn against a fresh Postgres schema and a fresh SQLite
// file, both migrated (with River's tables), in parallel.
func forEachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Helper()
	open := map[string]func(t *testing.T) store.Store{
		"postgres": func(t *testing.T) store.Store {
			s, err := postgres.Open(t.Context(), testpg.New(t)+"&pool_max_conns=8")
			if err != nil {
				t.Fatalf("open postgres: %v", err)
			}
			return s
		},
		"sqlite": func(t *testing.T) store.Store {
			s, err := sqlite.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "rotator.db"))
			if err != nil {
				t.Fatalf("open sqlite: %v", err)
			}
			return s
		},
	}
	for _, name := range []string{"postgres", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open[name](t)
			t.Cleanup(func() {
				if err := st.Close(); err != nil {
					t.Errorf("close store: %v", err)
				}
			})
			if err := st.Migrate(t.Context()); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			if err := rotation.MigrateQueue(t.Context(), st); err != nil {
				t.Fatalf("migrate queue: %v", err)
			}
			fn(t, st)
		})
	}
}

// baseConfig declares the providers and targets every test may use;
// {{dir}} is the test's temporary directory.
const baseConfig = `
providers:
  gen:
    type: generated
    length: 32
    prefix: "tst_"
  flt:
    type: faulty
    state_dir: "{{dir}}/resource"
    control_file: "{{dir}}/control.json"
  fst:
    type: faulty
    state_dir: "{{dir}}/chain"
    control_file: "{{dir}}/control-fst.json"
    stateful: true
  flocal:
    type: faulty
    control_file: "{{dir}}/control-local.json"
    local: true
targets:
  out:
    type: file
    path: "{{dir}}/out.env"
    format: dotenv
  out2:
    type: file
    path: "{{dir}}/out2.env"
    format: dotenv
  blocked:
    type: file
    path: "{{dir}}/blocker/sub/out.env"
    format: dotenv
credentials:
`

// credYAML declares one credential. policy is "key: value" lines separated
// by ";"; bindings are "target=KEY".
func credYAML(id, provider, policy string, bindings ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - id: %s\n    consumer: mcp-server-%s\n    provider: %s\n    runbook: runbooks/generated.md#rotation\n", id, id, provider)
	for l := range strings.SplitSeq(policy, ";") {
		if l = strings.TrimSpace(l); l != "" {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	if len(bindings) > 0 {
		b.WriteString("    targets:\n")
		for _, bd := range bindings {
			target, key, _ := strings.Cut(bd, "=")
			fmt.Fprintf(&b, "      - {target: %s, key: %s}\n", target, key)
		}
	}
	return b.String()
}

// notes records the notifications the engine sends.
type notes struct {
	mu  sync.Mutex
	evs []notify.Event
	err error // returned by every delivery
}

func (n *notes) notify(_ context.Context, ev notify.Event) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.evs = append(n.evs, ev)
	return false, n.err
}

func (n *notes) events() []notify.Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.evs)
}

type bundle struct {
	st     store.Store
	e      *rotation.Engine
	runner *rotation.Runner
	kr     secret.Keyring
	red    *secret.Redactor
	dir    string
	logs   *testlog.Buffer
	notes  *notes
}

type setupOpts struct {
	engine  func(*rotation.Options)
	runner  func(*rotation.RunnerOptions)
	noStart bool // build the Runner (so Rotate can enqueue) but run no worker
}

// setup applies the credentials to st, builds an engine whose logs go
// through the redacting handler into a buffer, and starts its workers.
func setup(t *testing.T, st store.Store, creds string, o setupOpts) *bundle {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	// A regular file where the "blocked" target expects a directory.
	if err := os.WriteFile(filepath.Join(dir, "blocker"), []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.ReplaceAll(baseConfig, "{{dir}}", dir) + creds
	cfg, err := config.Parse(filepath.Join(dir, "rotator.yaml"), []byte(doc), config.Options{BaseDir: root})
	if err != nil {
		t.Fatalf("config:\n%s\n%v", doc, err)
	}
	if _, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: "test"}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	kr, err := secret.NewKeyring(secret.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{st: st, kr: kr, red: &secret.Redactor{}, dir: dir, logs: &testlog.Buffer{}, notes: &notes{}}
	logger := slog.New(secret.NewHandler(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}), b.red))
	opts := rotation.Options{
		Store: st, Keyring: kr, Redactor: b.red, Logger: logger,
		Notifier: notify.Func(b.notes.notify), RunbookDir: root,
		StepTimeout: 20 * time.Second,
	}
	if o.engine != nil {
		o.engine(&opts)
	}
	b.e, err = rotation.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ropts := rotation.RunnerOptions{
		Workers: 8, FetchPollInterval: 20 * time.Millisecond, TickInterval: 50 * time.Millisecond,
		JobTimeout: 45 * time.Second, Logger: logger,
	}
	if o.runner != nil {
		o.runner(&ropts)
	}
	b.runner, err = rotation.NewRunner(b.e, ropts)
	if err != nil {
		t.Fatal(err)
	}
	if !o.noStart {
		if err := b.runner.Start(context.WithoutCancel(ctx)); err != nil {
			t.Fatalf("start runner: %v", err)
		}
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := b.runner.Stop(sctx); err != nil {
				t.Errorf("stop runner: %v", err)
			}
		})
	}
	return b
}

// waitFor polls cond until it holds; it fails the test after waitTimeout
// with cond's last description of what it saw.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last saw: %s", waitTimeout, what, saw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bundle) run(t *testing.T, id string) store.Run {
	t.Helper()
	r, err := b.st.GetRun(context.WithoutCancel(t.Context()), id)
	if err != nil {
		t.Fatalf("get run %s: %v", id, err)
	}
	return r
}

// waitRun waits until the run is in one of states and returns it.
func (b *bundle) waitRun(t *testing.T, id string, states ...rotation.State) store.Run {
	t.Helper()
	var r store.Run
	waitFor(t, fmt.Sprintf("run %s to reach %v", id, states), func() (bool, string) {
		r = b.run(t, id)
		return slices.Contains(states, rotation.State(r.State)), fmt.Sprintf("state %s, error %q", r.State, r.Error)
	})
	return r
}

// waitDone waits until the run is terminal.
func (b *bundle) waitDone(t *testing.T, id string) store.Run {
	t.Helper()
	return b.waitRun(t, id, rotation.StateSucceeded, rotation.StateRolledBack, rotation.StateFailed)
}

func (b *bundle) cred(t *testing.T, id string) store.Credential {
	t.Helper()
	c, err := b.st.GetCredential(t.Context(), id)
	if err != nil {
		t.Fatalf("get credential %s: %v", id, err)
	}
	return c
}

func (b *bundle) version(t *testing.T, id string) store.Version {
	t.Helper()
	v, err := b.st.GetVersion(t.Context(), id)
	if err != nil {
		t.Fatalf("get version %s: %v", id, err)
	}
	return v
}

func (b *bundle) versions(t *testing.T, credID string, stages ...store.Stage) []store.Version {
	t.Helper()
	vs, err := b.st.ListVersions(t.Context(), credID, stages...)
	if err != nil {
		t.Fatalf("list versions of %s: %v", credID, err)
	}
	return vs
}

func (b *bundle) runs(t *testing.T, credID string) []store.Run {
	t.Helper()
	rs, err := b.st.ListRuns(t.Context(), store.RunFilter{CredentialID: credID})
	if err != nil {
		t.Fatalf("list runs of %s: %v", credID, err)
	}
	return rs
}

func (b *bundle) steps(t *testing.T, runID string) []store.Step {
	t.Helper()
	s, err := b.st.ListSteps(t.Context(), runID)
	if err != nil {
		t.Fatalf("list steps of %s: %v", runID, err)
	}
	return s
}

// stepSummary renders steps as "name:state" for comparison.
func stepSummary(steps []store.Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name + ":" + s.State
	}
	return out
}

func (b *bundle) checkSteps(t *testing.T, runID string, want ...string) []store.Step {
	t.Helper()
	steps := b.steps(t, runID)
	if got := stepSummary(steps); !slices.Equal(got, want) {
		t.Errorf("steps of run %s:\n got %v\nwant %v", runID, got, want)
	}
	for i, s := range steps {
		if s.Seq != i {
			t.Errorf("step %d (%s) has seq %d", i, s.Name, s.Seq)
		}
		if s.StartedAt.IsZero() || s.FinishedAt.Before(s.StartedAt) {
			t.Errorf("step %s has times %v..%v", s.Name, s.StartedAt, s.FinishedAt)
		}
		if i > 0 && s.StartedAt.Before(steps[i-1].StartedAt) {
			t.Errorf("step %s started before step %s", s.Name, steps[i-1].Name)
		}
		if s.State == string(rotation.StepFailed) && s.Error == "" {
			t.Errorf("failed step %s has no error", s.Name)
		}
	}
	return steps
}

func (b *bundle) audit(t *testing.T, f store.AuditFilter) []store.AuditEvent {
	t.Helper()
	var evs []store.AuditEvent
	if err := b.st.ScanAuditEvents(t.Context(), f, func(ev store.AuditEvent) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		t.Fatalf("scan audit events: %v", err)
	}
	return evs
}

func (b *bundle) open(t *testing.T, v store.Version) secret.Value {
	t.Helper()
	if len(v.Sealed) == 0 {
		t.Fatalf("version %s (%s) has no sealed value", v.ID, v.Stage)
	}
	val, err := b.kr.Open(v.CredentialID, v.ID, v.KeyID, v.Sealed)
	if err != nil {
		t.Fatalf("open version %s: %v", v.ID, err)
	}
	if got := b.kr.Fingerprint(val); got != v.Fingerprint {
		t.Errorf("version %s: fingerprint %s, stored %s", v.ID, got, v.Fingerprint)
	}
	return val
}

// rotate asks for one credential's rotation and returns the new run's id.
func (b *bundle) rotate(t *testing.T, req rotation.Request) string {
	t.Helper()
	if req.Trigger == "" {
		req.Trigger = store.TriggerManual
	}
	if req.Actor == "" {
		req.Actor = "tester"
	}
	started, err := b.e.Rotate(t.Context(), req)
	if err != nil {
		t.Fatalf("Rotate(%+v): %v", req.Selection, err)
	}
	if len(started) != 1 || started[0].Skipped || started[0].RunID == "" {
		t.Fatalf("Rotate(%+v) = %+v, want one started run", req.Selection, started)
	}
	return started[0].RunID
}

func ids(id ...string) rotation.Selection { return rotation.Selection{IDs: id} }

// rotateOK rotates and waits for success; it returns the run.
func (b *bundle) rotateOK(t *testing.T, id string) store.Run {
	t.Helper()
	r := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids(id)}))
	if r.State != string(rotation.StateSucceeded) {
		t.Fatalf("run %s of %s: %s (%s), want succeeded", r.ID, id, r.State, r.Error)
	}
	return r
}

// env reads a dotenv target file.
func (b *bundle) env(t *testing.T, name string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.dir, name))
	if err != nil {
		t.Fatalf("read target %s: %v", name, err)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		m[k] = strings.Trim(v, `'"`)
	}
	return m
}

func (b *bundle) readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.dir, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return data
}

// control writes the faulty provider's control file ("" removes it).
func (b *bundle) control(t *testing.T, js string) {
	t.Helper()
	path := filepath.Join(b.dir, "control.json")
	if js == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(path, []byte(js), 0o600); err != nil {
		t.Fatal(err)
	}
}

// resource is a view of the faulty provider's resource (the state_dir the
// engine's instance writes).
func (b *bundle) resource() *faulty.Provider {
	return faulty.New(faulty.Config{StateDir: filepath.Join(b.dir, "resource")})
}

// resourceCount is how many values the faulty resource accepts.
func (b *bundle) resourceCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(b.dir, "resource"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return len(entries)
}

func auditActions(evs []store.AuditEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Action
	}
	return out
}

func TestRotateHappyPath(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		const grace = 2 * time.Second
		b := setup(t, st, credYAML("api", "gen", "max_age: 1h; grace: 2s", "out=API_KEY"), setupOpts{})

		// First rotation: no previous version, so no grace and no revoke.
		r1 := b.rotate(t, rotation.Request{Selection: ids("api"), Actor: "bob", Reason: "first value"})
		run1 := b.waitDone(t, r1)
		if run1.State != string(rotation.StateSucceeded) || run1.Error != "" {
			t.Fatalf("run 1: %s %q", run1.State, run1.Error)
		}
		b.checkSteps(t, r1, "mint:ok", "activate:ok", "stage:out:skipped", "verify:ok", "promote:out:ok", "cutover:ok")
		if run1.OldVersionID != "" || run1.NewVersionID == "" {
			t.Errorf("run 1 versions: old %q new %q", run1.OldVersionID, run1.NewVersionID)
		}
		v1 := b.version(t, run1.NewVersionID)
		if v1.Stage != store.StageCurrent {
			t.Errorf("v1 stage %s, want current", v1.Stage)
		}
		val1 := b.open(t, v1)
		if got := b.env(t, "out.env")["API_KEY"]; got != val1.RevealString() {
			t.Errorf("target holds %d bytes that differ from the current value", len(got))
		}
		if !strings.HasPrefix(val1.RevealString(), "tst_") || val1.Len() != 36 {
			t.Errorf("minted value has length %d, want prefix tst_ and length 36", val1.Len())
		}

		// Second rotation: v1 becomes previous for the grace period.
		r2 := b.rotate(t, rotation.Request{Selection: ids("api"), Actor: "bob", Reason: "routine"})
		cut := b.waitRun(t, r2, rotation.StateCutOver, rotation.StateSucceeded)
		if cut.State != string(rotation.StateCutOver) {
			t.Fatalf("run 2 reached %s before its grace of %v ended", cut.State, grace)
		}
		c := b.cred(t, "api")
		if c.Current == nil || c.Current.ID != cut.NewVersionID || cut.OldVersionID != v1.ID {
			t.Fatalf("during grace: current %v, run old %s new %s", c.Current, cut.OldVersionID, cut.NewVersionID)
		}
		if prev := b.version(t, v1.ID); prev.Stage != store.StagePrevious || len(prev.Sealed) == 0 {
			t.Errorf("during grace v1 is %s with %d sealed bytes, want previous and still sealed", prev.Stage, len(prev.Sealed))
		}
		val2 := b.open(t, *c.Current)
		if got := b.env(t, "out.env")["API_KEY"]; got != val2.RevealString() {
			t.Error("during grace the target does not hold the new current value")
		}
		if val2.Equal(val1) {
			t.Fatal("the second rotation minted the same value")
		}

		run2 := b.waitDone(t, r2)
		if run2.State != string(rotation.StateSucceeded) {
			t.Fatalf("run 2: %s %q", run2.State, run2.Error)
		}
		steps := b.checkSteps(t, r2, "mint:ok", "activate:ok", "stage:out:skipped", "verify:ok", "promote:out:ok", "cutover:ok", "revoke_previous:skipped")
		if got := steps[6].Evidence["version"]; got != v1.ID {
			t.Errorf("revoke_previous evidence names version %q, want %s", got, v1.ID)
		}
		retireAfter := rotation.OptionsOf(run2).RetireAfter
		c = b.cred(t, "api")
		if d := retireAfter.Sub(c.State.LastRotatedAt); d != grace {
			t.Errorf("retire_after is %v after cutover, want the grace %v", d, grace)
		}
		prev := b.version(t, v1.ID)
		if prev.Stage != store.StageRetired || len(prev.Sealed) != 0 || prev.RetiredAt.Before(retireAfter) {
			t.Errorf("after grace v1 is %s, sealed %d bytes, retired at %v (retire after %v); want retired, cleared, not early",
				prev.Stage, len(prev.Sealed), prev.RetiredAt, retireAfter)
		}
		if cur := b.versions(t, "api", store.StageCurrent); len(cur) != 1 || cur[0].ID != run2.NewVersionID {
			t.Errorf("current versions: %+v, want exactly %s", cur, run2.NewVersionID)
		}
		if all := b.versions(t, "api"); len(all) != 2 {
			t.Errorf("%d versions, want 2", len(all))
		}

		// Run record.
		if run2.Trigger != store.TriggerManual || run2.Actor != "bob" || run2.Reason != "routine" || run2.Attempt != 1 ||
			run2.Active || run2.StartedAt.IsZero() || run2.FinishedAt.Before(run2.StartedAt) {
			t.Errorf("run 2 record: %+v", run2)
		}
		if run2.Runbook.Path == "" || run2.Runbook.Anchor != "rotation" || run2.Runbook.Digest == "" {
			t.Errorf("run 2 runbook: %+v, want path, anchor rotation and a digest", run2.Runbook)
		}

		// Credential state and schedule.
		if c.State.Status != store.StatusHealthy || c.State.CurrentVersionID != run2.NewVersionID || c.State.PendingVersionID != "" || c.State.FailureCount != 0 {
			t.Errorf("credential state: %+v", c.State)
		}
		plan, err := rotation.Schedule(c, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if d := c.State.NextRotationAt.Sub(plan.Due).Abs(); d > time.Microsecond {
			t.Errorf("next_rotation_at %v, want the schedule's %v", c.State.NextRotationAt, plan.Due)
		}
		if d := c.State.NextRotationAt.Sub(c.Current.ActivatedAt); d < 48*time.Minute || d > 50*time.Minute {
			t.Errorf("next rotation %v after activation, want 48m plus at most 2m jitter", d)
		}
		if !c.State.ExpiresAt.Equal(c.Current.ActivatedAt.Add(time.Hour)) {
			t.Errorf("expires_at %v, want activation + max_age", c.State.ExpiresAt)
		}
		if got := rotation.EffectiveStatus(c, time.Now()); got != store.StatusHealthy {
			t.Errorf("effective status %s, want healthy", got)
		}

		// Audit: the plan, every step, and the cutover.
		evs := b.audit(t, store.AuditFilter{RunID: r2})
		acts := auditActions(evs)
		want := []string{"run.planned", "run.mint", "run.activate", "run.stage:out", "run.verify", "run.promote:out", "run.cut_over", "run.cutover", "run.revoke_previous"}
		for _, a := range want {
			if !slices.Contains(acts, a) {
				t.Errorf("audit events of run 2 lack %s: %v", a, acts)
			}
		}
		for _, ev := range evs {
			if ev.CredentialID != "api" || ev.Actor != "bob" {
				t.Errorf("audit event %s: credential %q actor %q", ev.Action, ev.CredentialID, ev.Actor)
			}
		}
	})
}

// A resource that grants more scope than the credential declares: the
// rotation goes through, and the excess is recorded as a policy.over_scoped
// event of the run, with the runbook, for reports to list.
func TestOverScopedIsRecorded(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("wide", "flt", "max_age: 1h; scope: [notes:read]", "out=WIDE"), setupOpts{})
		r0 := b.rotate(t, rotation.Request{Selection: ids("wide")})
		if run := b.waitDone(t, r0); run.State != string(rotation.StateSucceeded) {
			t.Fatalf("run 0: %s %q", run.State, run.Error)
		}
		if acts := auditActions(b.audit(t, store.AuditFilter{RunID: r0})); slices.Contains(acts, "policy.over_scoped") {
			t.Fatalf("policy.over_scoped recorded although the granted scope is the declared one: %v", acts)
		}

		b.control(t, `{"grant": ["notes:admin"]}`)
		r1 := b.rotate(t, rotation.Request{Selection: ids("wide")})
		run1 := b.waitDone(t, r1)
		if run1.State != string(rotation.StateSucceeded) {
			t.Fatalf("run 1: %s %q, want succeeded (over-scope is recorded, not refused)", run1.State, run1.Error)
		}
		var found *store.AuditEvent
		for _, ev := range b.audit(t, store.AuditFilter{RunID: r1}) {
			if ev.Action == "policy.over_scoped" {
				found = &ev
			}
		}
		if found == nil {
			t.Fatalf("no policy.over_scoped event in run 1: %v", auditActions(b.audit(t, store.AuditFilter{RunID: r1})))
		}
		var data struct {
			Version  string   `json:"version"`
			Extra    []string `json:"extra"`
			Declared []string `json:"declared"`
			Runbook  string   `json:"runbook"`
		}
		if err := json.Unmarshal(found.Data, &data); err != nil {
			t.Fatal(err)
		}
		if data.Version != run1.NewVersionID || !slices.Equal(data.Extra, []string{"notes:admin"}) ||
			!slices.Equal(data.Declared, []string{"notes:read"}) || data.Runbook != "runbooks/generated.md#rotation" {
			t.Errorf("policy.over_scoped data %s, want version %s, extra [notes:admin], declared [notes:read] and the runbook", found.Data, run1.NewVersionID)
		}
		if found.CredentialID != "wide" {
			t.Errorf("event credential %q, want wide", found.CredentialID)
		}
	})
}

func TestScheduler(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("ticker", "gen", `max_age: 1h; schedule: "@every 1s"`, "out=TICK"),
			setupOpts{runner: func(o *rotation.RunnerOptions) { o.Scheduler = true }})
		var ok []store.Run
		waitFor(t, "two scheduled rotations", func() (bool, string) {
			ok = ok[:0]
			var states []string
			for _, r := range b.runs(t, "ticker") {
				states = append(states, r.State)
				if r.State == string(rotation.StateSucceeded) {
					ok = append(ok, r)
				}
			}
			return len(ok) >= 2, fmt.Sprint(states)
		})
		for _, r := range b.runs(t, "ticker") {
			if r.Actor != "scheduler" || (r.Trigger != store.TriggerSchedule && r.Trigger != store.TriggerExpiry) {
				t.Errorf("run %s: actor %q trigger %q, want the scheduler", r.ID, r.Actor, r.Trigger)
			}
			if r.State == string(rotation.StateRolledBack) || r.State == string(rotation.StateFailed) {
				t.Errorf("run %s: %s %q", r.ID, r.State, r.Error)
			}
		}
		// The newest run rotated away the value of the one before.
		newer, older := ok[0], ok[1]
		if newer.OldVersionID != older.NewVersionID {
			t.Errorf("run %s replaced %q, want %s", newer.ID, newer.OldVersionID, older.NewVersionID)
		}
		if due := rotation.OptionsOf(newer).DueAt; due.IsZero() || newer.StartedAt.Before(due) {
			t.Errorf("scheduled run %s started %v, due %v", newer.ID, newer.StartedAt, due)
		}
		if v := b.version(t, older.NewVersionID); v.Stage != store.StageRetired && v.Stage != store.StagePrevious {
			t.Errorf("version of an older run is %s", v.Stage)
		}
		if cur := b.versions(t, "ticker", store.StageCurrent); len(cur) != 1 {
			t.Errorf("%d current versions", len(cur))
		}
	})
}

func TestFailureBeforeCutover(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		const backoff = 3 * time.Second
		b := setup(t, st,
			credYAML("flaky", "flt", "max_age: 1h", "out=FLAKY")+
				credYAML("steady", "gen", `max_age: 1h; schedule: "@every 1s"`, "out2=STEADY"),
			setupOpts{
				engine: func(o *rotation.Options) { o.MaxAttempts, o.BackoffBase, o.BackoffMax = 2, backoff, backoff },
				runner: func(o *rotation.RunnerOptions) { o.Scheduler = true },
			})
		res := b.resource()

		// The scheduler gives the new credential its first value.
		waitFor(t, "the first run of flaky to succeed", func() (bool, string) {
			runs := b.runs(t, "flaky")
			return len(runs) == 1 && runs[0].State == string(rotation.StateSucceeded), fmt.Sprintf("%+v", runs)
		})
		before := b.cred(t, "flaky")
		curVal := b.open(t, *before.Current)
		if !res.Valid(curVal) {
			t.Fatal("the resource does not accept the current value")
		}
		fileBefore := b.readFile(t, "out.env")

		b.control(t, `{"fail": ["verify"]}`)
		r1 := b.rotate(t, rotation.Request{Selection: ids("flaky")})
		run1 := b.waitDone(t, r1)
		after := b.cred(t, "flaky") // read at once: the retry comes after the backoff
		if run1.State != string(rotation.StateRolledBack) || !strings.Contains(run1.Error, "verify failed") || !strings.Contains(run1.Error, faulty.ErrInjected.Error()) {
			t.Fatalf("run 1: %s %q, want rolled_back by the verify failure", run1.State, run1.Error)
		}
		b.checkSteps(t, r1, "mint:ok", "activate:ok", "stage:out:skipped", "verify:failed", "rollback_revoke:ok")

		// The pending version is discarded and no longer valid at the resource:
		// the resource accepts exactly one value, the current one.
		pend := b.version(t, run1.NewVersionID)
		if pend.Stage != store.StageDiscarded || len(pend.Sealed) != 0 || pend.RetiredAt.IsZero() {
			t.Errorf("pending version: %s, %d sealed bytes, retired %v; want discarded and cleared", pend.Stage, len(pend.Sealed), pend.RetiredAt)
		}
		if n := b.resourceCount(t); n != 1 || !res.Valid(curVal) {
			t.Errorf("resource accepts %d values (current valid: %v); want only the current one", n, res.Valid(curVal))
		}
		// Current untouched, target untouched.
		if after.Current == nil || after.Current.ID != before.Current.ID || after.Current.Stage != store.StageCurrent {
			t.Errorf("current version changed: %v -> %v", before.Current, after.Current)
		}
		if got := b.readFile(t, "out.env"); !bytes.Equal(got, fileBefore) {
			t.Error("the target file changed although the run rolled back before cutover")
		}
		// Failing, retried after a backoff.
		if after.State.Status != store.StatusFailing || after.State.FailureCount != 1 || after.State.PendingVersionID != "" {
			t.Errorf("after one failure: %+v", after.State)
		}
		if d := after.State.NextRotationAt.Sub(run1.FinishedAt); d < backoff*8/10-100*time.Millisecond || d > backoff*12/10 {
			t.Errorf("next attempt %v after the failure, want the backoff %v ±20%%", d, backoff)
		}
		if got := rotation.EffectiveStatus(after, time.Now()); got != store.StatusFailing {
			t.Errorf("effective status %s, want failing", got)
		}

		// The scheduler retries after the backoff; the second failure is the
		// last attempt: needs_attention, unscheduled, notified.
		waitFor(t, "flaky to need attention", func() (bool, string) {
			c := b.cred(t, "flaky")
			return c.State.Status == store.StatusNeedsAttention, fmt.Sprintf("%+v", c.State)
		})
		c := b.cred(t, "flaky")
		if !c.State.NextRotationAt.IsZero() || c.State.FailureCount != 2 || c.Current == nil || c.Current.ID != before.Current.ID {
			t.Errorf("needs attention: %+v, current %v", c.State, c.Current)
		}
		runs := b.runs(t, "flaky")
		if len(runs) != 3 {
			t.Fatalf("%d runs of flaky, want 3", len(runs))
		}
		last := runs[0]
		if last.State != string(rotation.StateRolledBack) || last.Attempt != 2 || last.Actor != "scheduler" {
			t.Errorf("retry run: %s attempt %d actor %q", last.State, last.Attempt, last.Actor)
		}
		if last.CreatedAt.Before(after.State.NextRotationAt.Truncate(time.Millisecond)) {
			t.Errorf("retry started %v, before the backoff ended %v", last.CreatedAt, after.State.NextRotationAt)
		}
		var attention []notify.Event
		waitFor(t, "the needs-attention notification", func() (bool, string) { // sent after the commit
			attention = attention[:0]
			for _, ev := range b.notes.events() {
				if ev.Kind == notify.KindNeedsAttention {
					attention = append(attention, ev)
				}
			}
			return len(attention) > 0, ""
		})
		if len(attention) != 1 || attention[0].CredentialID != "flaky" || attention[0].RunID != last.ID ||
			attention[0].Runbook == "" || attention[0].Consumer != "mcp-server-flaky" {
			t.Errorf("needs-attention notifications: %+v", attention)
		}
		if acts := auditActions(b.audit(t, store.AuditFilter{RunID: last.ID})); !slices.Contains(acts, "credential.needs_attention") {
			t.Errorf("audit of the last attempt lacks credential.needs_attention: %v", acts)
		}
		if n := b.resourceCount(t); n != 1 || !res.Valid(curVal) {
			t.Errorf("after the retry the resource accepts %d values (current valid: %v)", n, res.Valid(curVal))
		}

		// Isolation: steady kept rotating while flaky failed, and goes on
		// (at least two more rotations, during which flaky is not retried).
		countSteady := func(since time.Time) int {
			n := 0
			for _, r := range b.runs(t, "steady") {
				if r.State == string(rotation.StateRolledBack) || r.State == string(rotation.StateFailed) {
					t.Fatalf("steady run %s: %s %q", r.ID, r.State, r.Error)
				}
				if r.State == string(rotation.StateSucceeded) && r.CreatedAt.After(since) {
					n++
				}
			}
			return n
		}
		if n := countSteady(run1.CreatedAt); n < 1 {
			t.Errorf("steady rotated %d times while flaky was failing", n)
		}
		mark := time.Now()
		waitFor(t, "steady to rotate twice more", func() (bool, string) {
			n := countSteady(mark)
			return n >= 2, fmt.Sprint(n)
		})
		if n := len(b.runs(t, "flaky")); n != 3 {
			t.Errorf("flaky has %d runs after needs_attention, want no new run", n)
		}
		if got, want := b.env(t, "out2.env")["STEADY"], b.open(t, *b.cred(t, "steady").Current).RevealString(); got != want {
			// steady may have rotated between the two reads; re-read once.
			if got2 := b.env(t, "out2.env")["STEADY"]; got2 != b.open(t, *b.cred(t, "steady").Current).RevealString() {
				t.Error("steady's target does not hold its current value")
			}
		}
	})
}

// TestHungProviderIsolated: a provider that hangs holds up only its own
// credential's run, which ends at the step timeout.
func TestHungProviderIsolated(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st,
			credYAML("hung", "flt", "max_age: 1h", "out=HUNG")+credYAML("quick", "gen", "max_age: 1h", "out2=QUICK"),
			setupOpts{engine: func(o *rotation.Options) { o.StepTimeout = 4 * time.Second }})
		b.control(t, `{"hang": ["verify"]}`)
		started, err := b.e.Rotate(t.Context(), rotation.Request{Selection: ids("hung", "quick"), Trigger: store.TriggerAPI, Actor: "ops"})
		if err != nil || len(started) != 2 {
			t.Fatalf("Rotate: %+v, %v", started, err)
		}
		runOf := map[string]string{}
		for _, s := range started {
			runOf[s.CredentialID] = s.RunID
		}
		quick := b.waitDone(t, runOf["quick"])
		if quick.State != string(rotation.StateSucceeded) {
			t.Fatalf("quick: %s %q", quick.State, quick.Error)
		}
		if h := b.run(t, runOf["hung"]); rotation.State(h.State).Terminal() {
			t.Errorf("the hung run is already %s (%q) when the other finished", h.State, h.Error)
		}
		hung := b.waitDone(t, runOf["hung"])
		if hung.State != string(rotation.StateRolledBack) || !strings.Contains(hung.Error, "timed out") {
			t.Errorf("hung: %s %q, want rolled back at the step timeout", hung.State, hung.Error)
		}
		if d := hung.FinishedAt.Sub(quick.FinishedAt); d < 2*time.Second {
			t.Errorf("quick finished only %v before the hung run", d)
		}
		b.checkSteps(t, runOf["hung"], "mint:ok", "activate:ok", "stage:out:skipped", "verify:failed", "rollback_revoke:ok")
		if n := b.resourceCount(t); n != 0 {
			t.Errorf("the resource still accepts %d values of a rolled-back run", n)
		}
		c := b.cred(t, "hung")
		if c.Current != nil || c.State.Status != store.StatusFailing {
			t.Errorf("hung credential: current %v, state %+v", c.Current, c.State)
		}
		if _, err := os.Stat(filepath.Join(b.dir, "out.env")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the hung credential's target was written: %v", err)
		}
	})
}

func TestFailureAtCutover(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st,
			credYAML("dual", "gen", "max_age: 1h; grace: 1h", "out=DUAL", "out2=DUAL")+
				credYAML("walled", "gen", "max_age: 1h", "blocked=WALLED"),
			setupOpts{})
		first := b.rotateOK(t, "dual")
		v1 := b.version(t, first.NewVersionID)
		val1 := b.open(t, v1)
		for _, f := range []string{"out.env", "out2.env"} {
			if b.env(t, f)["DUAL"] != val1.RevealString() {
				t.Fatalf("%s does not hold the first value", f)
			}
		}

		// out2's path becomes a directory: staging (a writable directory)
		// passes, promoting fails after out was already switched.
		out2 := filepath.Join(b.dir, "out2.env")
		if err := os.Remove(out2); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(out2, 0o700); err != nil {
			t.Fatal(err)
		}
		r := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("dual")}))
		if r.State != string(rotation.StateRolledBack) || !strings.Contains(r.Error, "promote:out2 failed") {
			t.Fatalf("run: %s %q, want rolled back at promote:out2", r.State, r.Error)
		}
		b.checkSteps(t, r.ID, "mint:ok", "activate:ok", "stage:out:skipped", "stage:out2:skipped", "verify:ok",
			"promote:out:ok", "promote:out2:failed", "restore:out:ok", "restore:out2:failed", "rollback_revoke:skipped")
		c := b.cred(t, "dual")
		if c.Current == nil || c.Current.ID != v1.ID || c.State.Status != store.StatusFailing || c.State.PendingVersionID != "" {
			t.Errorf("after a failed cutover: current %v, state %+v", c.Current, c.State)
		}
		if got := b.env(t, "out.env")["DUAL"]; got != val1.RevealString() {
			t.Error("out was not restored to the current value")
		}
		if nv := b.version(t, r.NewVersionID); nv.Stage != store.StageDiscarded || len(nv.Sealed) != 0 {
			t.Errorf("new version %s with %d sealed bytes, want discarded", nv.Stage, len(nv.Sealed))
		}
		if cur := b.versions(t, "dual", store.StageCurrent); len(cur) != 1 || cur[0].ID != v1.ID {
			t.Errorf("current versions %+v", cur)
		}
		if prev := b.versions(t, "dual", store.StagePrevious); len(prev) != 0 {
			t.Errorf("a rolled-back cutover left previous versions: %+v", prev)
		}

		// A target whose directory cannot be created fails at stage, before
		// anything was published.
		w := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("walled")}))
		if w.State != string(rotation.StateRolledBack) || !strings.Contains(w.Error, "stage:blocked failed") {
			t.Errorf("walled: %s %q, want rolled back at stage:blocked", w.State, w.Error)
		}
		b.checkSteps(t, w.ID, "mint:ok", "activate:ok", "stage:blocked:failed", "rollback_revoke:skipped")
		if c := b.cred(t, "walled"); c.Current != nil || c.State.Status != store.StatusFailing {
			t.Errorf("walled: current %v state %+v", c.Current, c.State)
		}
	})
}

func TestEmergency(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("leaky", "gen", "max_age: 1h; grace: 1h", "out=LEAKY"), setupOpts{})
		v1 := b.rotateOK(t, "leaky").NewVersionID

		if _, err := b.e.Rotate(t.Context(), rotation.Request{Selection: ids("leaky"), Emergency: true, Actor: "alice"}); err == nil {
			t.Error("an emergency rotation without a reason was accepted")
		}
		if n := len(b.runs(t, "leaky")); n != 1 {
			t.Errorf("%d runs after a refused emergency, want 1", n)
		}

		// An emergency ignores the 1h grace: the previous is retired at once.
		e1 := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("leaky"), Emergency: true, Reason: "leak", Actor: "alice"}))
		if e1.State != string(rotation.StateSucceeded) {
			t.Fatalf("emergency run: %s %q", e1.State, e1.Error)
		}
		if e1.Trigger != store.TriggerEmergency || e1.Actor != "alice" || e1.Reason != "leak" || e1.Priority != rotation.PriorityEmergency ||
			!rotation.OptionsOf(e1).Emergency || e1.OldVersionID != v1 {
			t.Errorf("emergency run record: %+v", e1)
		}
		b.checkSteps(t, e1.ID, "mint:ok", "activate:ok", "stage:out:skipped", "verify:ok", "promote:out:ok", "cutover:ok", "revoke_previous:skipped")
		if v := b.version(t, v1); v.Stage != store.StageRetired || len(v.Sealed) != 0 || v.RetiredAt.After(e1.FinishedAt) {
			t.Errorf("leaked version: %s, %d sealed bytes, retired %v (run finished %v)", v.Stage, len(v.Sealed), v.RetiredAt, e1.FinishedAt)
		}
		planned := b.audit(t, store.AuditFilter{RunID: e1.ID})
		if len(planned) == 0 || planned[0].Action != "run.planned" || planned[0].Actor != "alice" || !strings.Contains(string(planned[0].Data), `"leak"`) {
			t.Errorf("first audit event of the emergency run: %+v", planned)
		}
		v2 := e1.NewVersionID

		// A routine rotation now waits out its 1h grace at cut_over ...
		r3 := b.rotate(t, rotation.Request{Selection: ids("leaky")})
		waiting := b.waitRun(t, r3, rotation.StateCutOver)
		v3 := waiting.NewVersionID
		if v := b.version(t, v2); v.Stage != store.StagePrevious {
			t.Fatalf("v2 is %s during the grace, want previous", v.Stage)
		}
		// ... so a routine request is skipped, naming the active run ...
		started, err := b.e.Rotate(t.Context(), rotation.Request{Selection: ids("leaky"), Trigger: store.TriggerManual})
		if err != nil || len(started) != 1 || !started[0].Skipped || started[0].RunID != r3 {
			t.Errorf("rotation during grace: %+v, %v; want skipped for run %s", started, err, r3)
		}
		// ... but an emergency ends the grace (v2 retired) and rotates (v3 retired).
		e2 := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("leaky"), Emergency: true, Reason: "leak again", Actor: "carol"}))
		if e2.State != string(rotation.StateSucceeded) || e2.OldVersionID != v3 {
			t.Fatalf("second emergency: %s %q, old %s (want %s)", e2.State, e2.Error, e2.OldVersionID, v3)
		}
		if r := b.run(t, r3); r.State != string(rotation.StateSucceeded) || r.Active {
			t.Errorf("the run in grace is %s (active %v), want succeeded", r.State, r.Active)
		}
		for _, id := range []string{v1, v2, v3} {
			if v := b.version(t, id); v.Stage != store.StageRetired || len(v.Sealed) != 0 {
				t.Errorf("version %s is %s", id, v.Stage)
			}
		}
		c := b.cred(t, "leaky")
		if c.Current == nil || c.Current.ID != e2.NewVersionID || c.State.Status != store.StatusHealthy {
			t.Fatalf("after the emergencies: current %v state %+v", c.Current, c.State)
		}
		if got := b.env(t, "out.env")["LEAKY"]; got != b.open(t, *c.Current).RevealString() {
			t.Error("the target does not hold the emergency value")
		}
		if cur := b.versions(t, "leaky", store.StageCurrent); len(cur) != 1 {
			t.Errorf("%d current versions", len(cur))
		}
	})
}

// TestEmergencyEndsManyGraces rotates credentials into their grace period
// and then declares an emergency on all of them: every previous value is
// revoked at the resource (the grace periods are ended several at a time),
// every emergency run succeeds, and no credential is skipped.
func TestEmergencyEndsManyGraces(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		const n = 16
		var creds strings.Builder
		names := make([]string, n)
		for i := range n {
			names[i] = fmt.Sprintf("graced-%02d", i)
			creds.WriteString(credYAML(names[i], "flt", "max_age: 1h; grace: 1h"))
		}
		b := setup(t, st, creds.String(), setupOpts{})
		res := b.resource()
		first := map[string]string{}
		for _, name := range names {
			first[name] = b.rotateOK(t, name).NewVersionID
		}
		// Into the grace period: each run waits at cut_over, the first
		// version previous and still valid.
		inGrace := map[string]store.Run{}
		for _, name := range names {
			inGrace[name] = b.waitRun(t, b.rotate(t, rotation.Request{Selection: ids(name)}), rotation.StateCutOver)
		}
		previous := map[string]secret.Value{}
		for _, name := range names {
			v := b.version(t, first[name])
			if v.Stage != store.StagePrevious {
				t.Fatalf("%s: version %s is %s during the grace, want previous", name, v.ID, v.Stage)
			}
			previous[name] = b.open(t, v)
			if !res.Valid(previous[name]) {
				t.Fatalf("%s: the previous value is not valid during the grace", name)
			}
		}
		b.control(t, `{"delay": {"revoke": "50ms"}}`)
		started, err := b.e.Rotate(t.Context(), rotation.Request{Selection: ids(names...), Emergency: true, Reason: "leak", Actor: "oncall"})
		if err != nil {
			t.Fatal(err)
		}
		if len(started) != n {
			t.Fatalf("%d runs started, want %d", len(started), n)
		}
		for _, s := range started {
			if s.Skipped {
				t.Errorf("%s skipped: %s", s.CredentialID, s.Reason)
				continue
			}
			e := b.waitDone(t, s.RunID)
			if e.State != string(rotation.StateSucceeded) || e.OldVersionID != inGrace[s.CredentialID].NewVersionID {
				t.Errorf("%s: emergency run %s %q, old version %s (want %s)", s.CredentialID, e.State, e.Error, e.OldVersionID, inGrace[s.CredentialID].NewVersionID)
			}
			if r := b.run(t, inGrace[s.CredentialID].ID); r.State != string(rotation.StateSucceeded) {
				t.Errorf("%s: the run in grace is %s %q, want succeeded", s.CredentialID, r.State, r.Error)
			}
			if v := b.version(t, first[s.CredentialID]); v.Stage != store.StageRetired {
				t.Errorf("%s: the value previous during the grace is %s, want retired", s.CredentialID, v.Stage)
			}
			if res.Valid(previous[s.CredentialID]) {
				t.Errorf("%s: the value previous during the grace is still valid at the resource", s.CredentialID)
			}
		}
	})
}

func TestRevokeFirst(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("burned", "flt", "max_age: 1h; grace: 1h", "out=BURNED"), setupOpts{})
		res := b.resource()
		first := b.rotateOK(t, "burned")
		v1 := b.version(t, first.NewVersionID)
		val1 := b.open(t, v1)
		if !res.Valid(val1) {
			t.Fatal("the first value is not valid at the resource")
		}

		r := b.waitDone(t, b.rotate(t, rotation.Request{Selection: ids("burned"), Emergency: true, RevokeFirst: true, Reason: "key in a public repo", Actor: "alice"}))
		if r.State != string(rotation.StateSucceeded) {
			t.Fatalf("revoke-first run: %s %q", r.State, r.Error)
		}
		steps := b.checkSteps(t, r.ID, "revoke_first:ok", "mint:ok", "activate:ok", "stage:out:skipped", "verify:ok", "promote:out:ok", "cutover:ok")
		if steps[0].Evidence["version"] != v1.ID || steps[0].FinishedAt.After(steps[1].StartedAt) {
			t.Errorf("revoke_first %+v did not revoke %s before minting", steps[0], v1.ID)
		}
		if res.Valid(val1) {
			t.Error("the leaked value is still valid at the resource")
		}
		if v := b.version(t, v1.ID); v.Stage != store.StageRetired || len(v.Sealed) != 0 {
			t.Errorf("leaked version is %s with %d sealed bytes", v.Stage, len(v.Sealed))
		}
		c := b.cred(t, "burned")
		if c.Current == nil || c.Current.ID != r.NewVersionID || r.OldVersionID != v1.ID {
			t.Fatalf("current %v, run old %s new %s", c.Current, r.OldVersionID, r.NewVersionID)
		}
		val2 := b.open(t, *c.Current)
		if !res.Valid(val2) || b.resourceCount(t) != 1 {
			t.Errorf("new value valid: %v; resource accepts %d values, want only the new one", res.Valid(val2), b.resourceCount(t))
		}
		if got := b.env(t, "out.env")["BURNED"]; got != val2.RevealString() {
			t.Error("the target does not hold the new value")
		}
	})
}

func TestOneActiveRunPerCredential(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("busy", "flt", "max_age: 1h", "out=BUSY"), setupOpts{})
		b.control(t, `{"delay": {"mint": "2s"}}`) // keeps the run active
		const n = 6
		results := make([][]rotation.Started, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-gate
				results[i], errs[i] = b.e.Rotate(t.Context(), rotation.Request{Selection: ids("busy"), Trigger: store.TriggerManual, Actor: fmt.Sprint("caller-", i)})
			})
		}
		close(gate)
		wg.Wait()
		var created []string
		var skipped []rotation.Started
		for i := range n {
			if errs[i] != nil || len(results[i]) != 1 {
				t.Fatalf("caller %d: %+v, %v", i, results[i], errs[i])
			}
			if s := results[i][0]; s.Skipped {
				skipped = append(skipped, s)
			} else {
				created = append(created, s.RunID)
			}
		}
		if len(created) != 1 {
			t.Fatalf("%d runs created by %d concurrent requests, want 1: %v", len(created), n, created)
		}
		for _, s := range skipped {
			if s.RunID != created[0] || s.Reason == "" {
				t.Errorf("skipped request: %+v, want the active run %s", s, created[0])
			}
		}
		if runs := b.runs(t, "busy"); len(runs) != 1 {
			t.Errorf("%d runs stored, want 1", len(runs))
		}
		if r := b.waitDone(t, created[0]); r.State != string(rotation.StateSucceeded) {
			t.Errorf("the run: %s %q", r.State, r.Error)
		}
	})
}

// interruptedAtMinted checks that an interrupted run stopped at minted,
// active, with its pending version recorded, and returns that version.
func (b *bundle) interruptedAtMinted(t *testing.T, runID string) store.Version {
	t.Helper()
	mid := b.run(t, runID)
	if mid.State != string(rotation.StateMinted) || !mid.Active || mid.NewVersionID == "" {
		t.Fatalf("interrupted run: %s active %v new %q, want minted with its pending version", mid.State, mid.Active, mid.NewVersionID)
	}
	pend := b.version(t, mid.NewVersionID)
	if pend.Stage != store.StagePending {
		t.Fatalf("pending version is %s", pend.Stage)
	}
	return pend
}

// TestExecuteResumes drives a run with Engine.Execute directly (no worker):
// interrupted after the write-ahead commit, it resumes with the same value,
// and executing a finished run is a no-op.
func TestExecuteResumes(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("resumable", "flt", "max_age: 1h", "out=RES"), setupOpts{noStart: true})
		res := b.resource()
		if _, _, err := b.e.Execute(t.Context(), "no-such-run"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Execute of an unknown run: %v, want ErrNotFound", err)
		}

		b.control(t, `{"hang": ["activate"]}`)
		runID := b.rotate(t, rotation.Request{Selection: ids("resumable")})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			// Interrupt once the minted value is committed (activate hangs).
			for ctx.Err() == nil {
				if r, err := b.st.GetRun(ctx, runID); err == nil && r.State == string(rotation.StateMinted) {
					cancel()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		_, _, err := b.e.Execute(ctx, runID)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted Execute: %v, want context.Canceled", err)
		}
		pend := b.interruptedAtMinted(t, runID)
		pendVal := b.open(t, pend) // written ahead: sealed before anything used it
		if c := b.cred(t, "resumable"); c.State.PendingVersionID != pend.ID || c.State.Status != store.StatusRotating {
			t.Errorf("credential during the interruption: %+v", c.State)
		}
		b.checkSteps(t, runID, "mint:ok")
		if res.Valid(pendVal) {
			t.Error("the value was activated although activate never returned")
		}

		b.control(t, "")
		out, _, err := b.e.Execute(t.Context(), runID)
		if err != nil || out != rotation.Done {
			t.Fatalf("resumed Execute: %v, %v", out, err)
		}
		done := b.run(t, runID)
		if done.State != string(rotation.StateSucceeded) || done.NewVersionID != pend.ID {
			t.Fatalf("resumed run: %s, new version %s (want %s)", done.State, done.NewVersionID, pend.ID)
		}
		b.checkSteps(t, runID, "mint:ok", "activate:ok", "stage:out:skipped", "verify:ok", "promote:out:ok", "cutover:ok")
		c := b.cred(t, "resumable")
		if c.Current == nil || c.Current.ID != pend.ID || !res.Valid(pendVal) {
			t.Errorf("after resuming: current %v, value valid %v", c.Current, res.Valid(pendVal))
		}
		if got := b.env(t, "out.env")["RES"]; got != pendVal.RevealString() {
			t.Error("the target does not hold the resumed value")
		}
		if vs := b.versions(t, "resumable"); len(vs) != 1 {
			t.Errorf("%d versions, want the one minted before the interruption", len(vs))
		}

		// Executing a terminal run changes nothing.
		nSteps, nEvents := len(b.steps(t, runID)), len(b.audit(t, store.AuditFilter{RunID: runID}))
		out, _, err = b.e.Execute(t.Context(), runID)
		if err != nil || out != rotation.Done {
			t.Errorf("Execute of a finished run: %v, %v", out, err)
		}
		again := b.run(t, runID)
		if !again.UpdatedAt.Equal(done.UpdatedAt) || again.State != done.State {
			t.Errorf("Execute of a finished run changed it: %+v -> %+v", done, again)
		}
		if len(b.steps(t, runID)) != nSteps || len(b.audit(t, store.AuditFilter{RunID: runID})) != nEvents {
			t.Error("Execute of a finished run recorded steps or events")
		}
	})
}

// TestInterruptedMintIsRecorded cancels a run while its provider is
// minting (Ctrl-C in the CLI, a stopping service), and the provider
// completes the mint all the same, as a resource does with a request its
// client gave up on. The minted value must be recorded, not forgotten and
// revoked: the run stops at minted, and resuming it cuts over to that very
// value.
func TestInterruptedMintIsRecorded(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("interrupted", "flt", "max_age: 1h", "out=INT"), setupOpts{noStart: true})
		// activate hangs: however late the cancellation comes, the run
		// stops after the mint's commit.
		b.control(t, `{"delay": {"mint": "2s"}, "uninterruptible": ["mint"], "hang": ["activate"]}`)
		runID := b.rotate(t, rotation.Request{Selection: ids("interrupted")})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var cancelledAt time.Time
		timer := time.AfterFunc(300*time.Millisecond, func() { cancelledAt = time.Now(); cancel() })
		defer timer.Stop()
		_, _, err := b.e.Execute(ctx, runID)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted Execute: %v, want context.Canceled", err)
		}
		steps := b.checkSteps(t, runID, "mint:ok")
		if !steps[0].FinishedAt.After(cancelledAt) {
			t.Fatalf("the mint finished at %s, before the cancellation at %s: the test did not interrupt it",
				steps[0].FinishedAt, cancelledAt)
		}
		pend := b.interruptedAtMinted(t, runID)
		pendVal := b.open(t, pend)
		if logs := b.logs.String(); strings.Contains(logs, "could not be recorded") {
			t.Errorf("the minted value was given up:\n%s", logs)
		}

		b.control(t, "")
		if out, _, err := b.e.Execute(t.Context(), runID); err != nil || out != rotation.Done {
			t.Fatalf("resumed Execute: %v, %v", out, err)
		}
		done := b.run(t, runID)
		if done.State != string(rotation.StateSucceeded) || done.NewVersionID != pend.ID {
			t.Fatalf("resumed run: %s, new version %s (want %s)", done.State, done.NewVersionID, pend.ID)
		}
		if got := b.env(t, "out.env")["INT"]; got != pendVal.RevealString() {
			t.Error("the target does not hold the value minted before the interruption")
		}
		if vs := b.versions(t, "interrupted"); len(vs) != 1 {
			t.Errorf("%d versions, want the one minted before the interruption", len(vs))
		}
	})
}

// TestNoSecretLeaks runs successes and every kind of failure and checks
// that no minted value appears in logs, step rows, audit events, run
// errors, notifications or River's job rows.
func TestNoSecretLeaks(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st,
			credYAML("gen-leak", "gen", "max_age: 1h", "out=GEN")+credYAML("flt-leak", "flt", "max_age: 1h", "out=FLT"),
			setupOpts{engine: func(o *rotation.Options) { o.StepTimeout, o.MaxAttempts = 2*time.Second, 2 }})
		b.notes.err = errors.New("pager is down")
		values := map[string]secret.Value{} // version id → value
		collect := func(v store.Version) {
			if _, ok := values[v.ID]; !ok {
				values[v.ID] = b.open(t, v)
			}
		}
		// collectPending opens a run's pending version while a step stalls.
		collectPending := func(runID string) {
			waitFor(t, "the pending version of run "+runID, func() (bool, string) {
				r := b.run(t, runID)
				if r.NewVersionID == "" {
					return false, r.State
				}
				v := b.version(t, r.NewVersionID)
				if len(v.Sealed) == 0 {
					t.Fatalf("pending version %s was cleared (%s) before it could be read", v.ID, v.Stage)
				}
				collect(v)
				return true, ""
			})
		}

		for range 2 {
			for _, id := range []string{"gen-leak", "flt-leak"} {
				r := b.rotateOK(t, id)
				collect(b.version(t, r.NewVersionID))
			}
		}
		// A verify that hangs until the step timeout.
		b.control(t, `{"hang": ["verify"]}`)
		r := b.rotate(t, rotation.Request{Selection: ids("flt-leak")})
		collectPending(r)
		if got := b.waitDone(t, r); got.State != string(rotation.StateRolledBack) {
			t.Fatalf("hung run: %s", got.State)
		}
		// An activate that fails after a delay; the second failure needs
		// attention and the notifier fails.
		b.control(t, `{"delay": {"activate": "2s"}, "fail": ["activate"]}`)
		r = b.rotate(t, rotation.Request{Selection: ids("flt-leak")})
		collectPending(r)
		if got := b.waitDone(t, r); got.State != string(rotation.StateRolledBack) {
			t.Fatalf("failed run: %s", got.State)
		}
		if c := b.cred(t, "flt-leak"); c.State.Status != store.StatusNeedsAttention {
			t.Fatalf("after two failures: %+v", c.State)
		}
		waitFor(t, "the needs-attention notification", func() (bool, string) {
			return len(b.notes.events()) == 1, fmt.Sprint(len(b.notes.events()))
		})
		// Revoking the previous value fails: the run stays at
		// retiring_previous and its job is retried until revoke works.
		b.control(t, `{"fail": ["revoke"]}`)
		r = b.rotate(t, rotation.Request{Selection: ids("flt-leak")})
		stuck := b.waitRun(t, r, rotation.StateRetiringPrevious)
		collect(b.version(t, stuck.NewVersionID))
		if c := b.cred(t, "flt-leak"); c.Current == nil || c.Current.ID != stuck.NewVersionID || c.State.Status != store.StatusHealthy {
			t.Errorf("while the previous cannot be revoked: current %v, state %+v", c.Current, c.State)
		}
		b.control(t, "")
		if got := b.waitDone(t, r); got.State != string(rotation.StateSucceeded) {
			t.Fatalf("retried retirement: %s %q", got.State, got.Error)
		}
		b.checkSteps(t, r, "mint:ok", "activate:ok", "stage:out:skipped", "verify:ok", "promote:out:ok", "cutover:ok", "revoke_previous:failed", "revoke_previous:ok")
		// An emergency revoke-first.
		r = b.rotate(t, rotation.Request{Selection: ids("flt-leak"), Emergency: true, RevokeFirst: true, Reason: "leak drill", Actor: "alice"})
		if got := b.waitDone(t, r); got.State != string(rotation.StateSucceeded) {
			t.Fatalf("emergency: %s %q", got.State, got.Error)
		}
		collect(b.version(t, b.run(t, r).NewVersionID))

		// Every minted value was collected.
		var minted int
		for _, id := range []string{"gen-leak", "flt-leak"} {
			minted += len(b.versions(t, id))
		}
		if minted != len(values) || minted != 8 {
			t.Fatalf("collected %d values of %d minted versions, want 8", len(values), minted)
		}

		// Everything that must stay free of values.
		var hay []string
		hay = append(hay, b.logs.String())
		for _, id := range []string{"gen-leak", "flt-leak"} {
			for _, run := range b.runs(t, id) {
				hay = append(hay, run.Error, run.Reason, string(run.Options))
				for _, s := range b.steps(t, run.ID) {
					ev, _ := json.Marshal(s.Evidence)
					hay = append(hay, s.Error, string(ev))
				}
			}
		}
		for _, ev := range b.audit(t, store.AuditFilter{}) {
			hay = append(hay, ev.Action, string(ev.Data))
		}
		for _, ev := range b.notes.events() {
			js, _ := json.Marshal(ev)
			hay = append(hay, string(js))
		}
		hay = append(hay, riverJobs(t, st)...)
		all := strings.Join(hay, "\n")
		for id, v := range values {
			if strings.Contains(all, v.RevealString()) {
				t.Errorf("the value of version %s leaked:\n%s", id, firstLineWith(all, v.RevealString()))
			}
		}
		// The places searched are not empty: the failures were logged.
		logs := b.logs.String()
		for _, want := range []string{"rolling back", "notifying needs_attention failed"} {
			if !strings.Contains(logs, want) {
				t.Errorf("the logs lack %q", want)
			}
		}
		if !strings.Contains(all, "revoking previous version") {
			t.Error("River's job rows do not hold the retirement error")
		}
	})
}

func firstLineWith(s, needle string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, needle) {
			return strings.ReplaceAll(l, needle, "<VALUE>")
		}
	}
	return ""
}

// riverJobs returns the args and errors of every River job, as text.
func riverJobs(t *testing.T, st store.Store) []string {
	t.Helper()
	ctx := t.Context()
	var out []string
	switch db := st.Handle().(type) {
	case *pgxpool.Pool:
		rows, err := db.Query(ctx, `SELECT args::text, coalesce(array_to_string(errors, ','), '') FROM river_job`)
		if err != nil {
			t.Fatalf("read river_job: %v", err)
		}
		defer rows.Close()
		for rows.Next() {
			var args, errs string
			if err := rows.Scan(&args, &errs); err != nil {
				t.Fatal(err)
			}
			out = append(out, args, errs)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	case *sql.DB:
		rows, err := db.QueryContext(ctx, `SELECT CAST(args AS TEXT), CAST(coalesce(errors, '') AS TEXT) FROM river_job`)
		if err != nil {
			t.Fatalf("read river_job: %v", err)
		}
		defer rows.Close()
		for rows.Next() {
			var args, errs string
			if err := rows.Scan(&args, &errs); err != nil {
				t.Fatal(err)
			}
			out = append(out, args, errs)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown store handle %T", db)
	}
	if len(out) == 0 {
		t.Fatal("no River jobs found")
	}
	return out
}

// TestPanickingStepFailsCleanly: a plugin step that panics (the faulty
// provider's panic list: the panic message quotes the value the step was
// given, or minted) fails its run as an error would — rolled back before
// cutover, retried at retirement — and the workers go on rotating; no log
// line, run or step error, audit event, notification or River job holds
// the value.
func TestPanickingStepFailsCleanly(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("flt-panic", "flt", "max_age: 1h", "out=FLT"),
			setupOpts{engine: func(o *rotation.Options) { o.MaxAttempts = 5 }})
		values := map[string]secret.Value{} // version id → value
		collect := func(v store.Version) {
			if _, ok := values[v.ID]; !ok && len(v.Sealed) > 0 {
				values[v.ID] = b.open(t, v)
			}
		}
		r := b.rotateOK(t, "flt-panic")
		collect(b.version(t, r.NewVersionID))

		// Before cutover: the run rolls back with an error naming the
		// panic. The step is delayed so that the pending value can be read
		// before the rollback clears it.
		for _, step := range []string{"mint", "activate", "verify"} {
			b.control(t, `{"delay": {"`+step+`": "1s"}, "panic": ["`+step+`"]}`)
			id := b.rotate(t, rotation.Request{Selection: ids("flt-panic")})
			if step != "mint" {
				waitFor(t, "the pending version of run "+id, func() (bool, string) {
					r := b.run(t, id)
					if r.NewVersionID == "" {
						return false, r.State
					}
					collect(b.version(t, r.NewVersionID))
					return true, ""
				})
			}
			got := b.waitDone(t, id)
			if got.State != string(rotation.StateRolledBack) || !strings.Contains(got.Error, "panicked at github.com/rotatorhq/rotator/providers/faulty.(*Provider).maybePanic") {
				t.Fatalf("%s panicked: run %s %q; want rolled_back with an error saying where it panicked", step, got.State, got.Error)
			}
			if c := b.cred(t, "flt-panic"); c.Current == nil || !b.resource().Valid(b.open(t, *c.Current)) {
				t.Fatalf("%s panicked: the current value is no longer valid", step)
			}
		}
		// At retirement: revoking the previous value panics; the run stays
		// at retiring_previous and its job is retried until revoke works.
		b.control(t, `{"panic": ["revoke"]}`)
		id := b.rotate(t, rotation.Request{Selection: ids("flt-panic")})
		stuck := b.waitRun(t, id, rotation.StateRetiringPrevious)
		collect(b.version(t, stuck.NewVersionID))
		waitFor(t, "a panicked revoke to be recorded", func() (bool, string) {
			steps := stepSummary(b.steps(t, id))
			return slices.Contains(steps, "revoke_previous:failed"), strings.Join(steps, " ")
		})
		b.control(t, "")
		if got := b.waitDone(t, id); got.State != string(rotation.StateSucceeded) {
			t.Fatalf("retried retirement: %s %q", got.State, got.Error)
		}
		// The workers survived: an ordinary rotation succeeds.
		r = b.rotateOK(t, "flt-panic")
		collect(b.version(t, r.NewVersionID))
		if len(values) < 5 {
			t.Fatalf("collected %d values, want at least 5", len(values))
		}

		var hay []string
		hay = append(hay, b.logs.String())
		for _, run := range b.runs(t, "flt-panic") {
			hay = append(hay, run.Error, run.Reason, string(run.Options))
			for _, s := range b.steps(t, run.ID) {
				ev, _ := json.Marshal(s.Evidence)
				hay = append(hay, s.Error, string(ev))
			}
		}
		for _, ev := range b.audit(t, store.AuditFilter{}) {
			hay = append(hay, ev.Action, string(ev.Data))
		}
		for _, ev := range b.notes.events() {
			js, _ := json.Marshal(ev)
			hay = append(hay, string(js))
		}
		hay = append(hay, riverJobs(t, st)...)
		all := strings.Join(hay, "\n")
		for id, v := range values {
			if strings.Contains(all, v.RevealString()) {
				t.Errorf("the value of version %s leaked:\n%s", id, firstLineWith(all, v.RevealString()))
			}
		}
		// The value mint panicked with was never stored: every faulty
		// value starts flt_.
		if strings.Contains(all, "flt_") {
			t.Errorf("a faulty value leaked:\n%s", firstLineWith(all, "flt_"))
		}
		if !strings.Contains(all, "panicked") {
			t.Error("no output says a step panicked")
		}
	})
}
