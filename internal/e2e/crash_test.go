package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

const crashCredential = "crash-key"

// crashConfig is one credential on the faulty provider, published to two
// dotenv files (promoted in that order), with a 3s grace. max_age is long,
// so only the first rotation (the credential is new) and explicit `rotate`
// runs happen.
const crashConfig = `providers:
  flaky:
    type: faulty
    state_dir: %q
    control_file: %q
targets:
  env:
    type: file
    path: %q
    format: dotenv
  env2:
    type: file
    path: %q
    format: dotenv
credentials:
  - id: crash-key
    consumer: mcp-server-crash
    provider: flaky
    owner: e2e
    max_age: 30d
    grace: 3s
    runbook: runbooks/e2e.md#rotation
    targets:
      - {target: env, key: CRASH_KEY}
      - {target: env2, key: CRASH_KEY}
`

// crashRig is a harness with the crash test's configuration.
type crashRig struct {
	*harness
	config, stateDir, control string
	// envFiles are the targets env and env2.
	envFiles [2]string
}

// pgSlots bounds the crash tests using Postgres at once (each holds about
// four connections), leaving room on the server for other test binaries.
var pgSlots = make(chan struct{}, 8)

func newCrashRig(t *testing.T, kind string) *crashRig {
	if kind == postgresDB {
		pgSlots <- struct{}{}
		t.Cleanup(func() { <-pgSlots })
	}
	h := newHarness(t, kind, 3)
	r := &crashRig{
		harness:  h,
		config:   filepath.Join(h.dir, "rotator.yaml"),
		stateDir: filepath.Join(h.dir, "resource"),
		control:  filepath.Join(h.dir, "control.json"),
		envFiles: [2]string{filepath.Join(h.dir, "run", "mcp.env"), filepath.Join(h.dir, "run", "other.env")},
	}
	writeFile(t, r.config, fmt.Sprintf(crashConfig, r.stateDir, r.control, r.envFiles[0], r.envFiles[1]))
	r.setControl(`{}`)
	return r
}

func (r *crashRig) setControl(js string) { writeFile(r.t, r.control, js) }

// lockTarget takes the lock of the second file target (the target flocks
// <path>.lock around every write), so its promote blocks, after the first
// target switched, until unlock is called.
func (r *crashRig) lockTarget() (unlock func()) {
	r.t.Helper()
	path := r.envFiles[1]
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		r.t.Fatal(err)
	}
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		r.t.Fatal(err)
	}
	done := false
	unlock = func() {
		if !done {
			done = true
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			_ = f.Close()
		}
	}
	r.t.Cleanup(unlock)
	return unlock
}

// targetRun returns the index-th run (0 = first) of the credential.
func (r *crashRig) targetRun(index int) (store.Run, bool, error) {
	rs, err := r.runs(crashCredential)
	if err != nil || len(rs) <= index {
		return store.Run{}, false, err
	}
	return rs[index], true, nil
}

// jobRunning reports whether the rotate job of a run is being worked.
func (r *crashRig) jobRunning(runID string) (bool, error) {
	j, ok, err := r.jobOf(runID)
	return ok && j.State == "running", err
}

// boundary is a point of a run where the serve process is killed.
type boundary struct {
	name string
	// second targets the second run (an explicit `rotate` after a clean
	// first rotation), so that a current version exists; otherwise the
	// first rotation of the new credential is targeted.
	second bool
	// arm makes the targeted step slow (before the targeted run starts);
	// it returns what undoes it before the restart.
	arm func(r *crashRig) (disarm func())
	// inWindow reports that the process is inside the targeted step.
	inWindow func(r *crashRig, p *proc, run store.Run) (bool, error)
	// committed is the state the run must still be in after the kill
	// (proof that the kill landed inside the window).
	committed rotation.State
	// resumed is how many of the run's final steps were committed before
	// the kill; the others must have started after it.
	resumed int
	// valuesAfterKill is how many values the resource accepts right after
	// the kill.
	valuesAfterKill func(second bool) int
	// restart is the control file of the restarted process ({} if empty).
	restart string
	// want is how the targeted run must end (succeeded if empty).
	want rotation.State
	// sigterm stops the process gracefully instead of killing it.
	sigterm bool
}

func delayStep(step string) func(r *crashRig) func() {
	return func(r *crashRig) func() {
		r.setControl(fmt.Sprintf(`{"delay":{%q:"60s"}}`, step))
		return func() { r.setControl(`{}`) }
	}
}

func base(second bool) int {
	if second {
		return 1
	}
	return 0
}

// inPromote: the first target switched, the second one's write waits for
// the lock the test holds.
func inPromote(r *crashRig, _ *proc, run store.Run) (bool, error) {
	if run.State != string(rotation.StateMinted) || run.NewVersionID == "" {
		return false, nil
	}
	// The file target polls for the lock (so its wait honours the step's
	// context), so the sign is that the first target already publishes the
	// pending value while the run has not cut over.
	v, err := r.st.GetVersion(r.t.Context(), run.NewVersionID)
	if err != nil {
		return false, err
	}
	env, err := readDotenv(r.envFiles[0])
	if err != nil {
		return false, nil
	}
	return env["CRASH_KEY"] == r.open(v), nil
}

func lockSecondTarget(r *crashRig) func() { return r.lockTarget() }

// jobRunningIn is the window of a step that runs while the run is
// committed in state s: a worker holds the run's job.
func jobRunningIn(s rotation.State) func(*crashRig, *proc, store.Run) (bool, error) {
	return func(r *crashRig, _ *proc, run store.Run) (bool, error) {
		if run.State != string(s) {
			return false, nil
		}
		return r.jobRunning(run.ID)
	}
}

var boundaries = []boundary{
	{
		name:            "mint",
		arm:             delayStep("mint"),
		inWindow:        jobRunningIn(rotation.StatePlanned),
		committed:       rotation.StatePlanned,
		resumed:         0,
		valuesAfterKill: base,
	},
	{
		name:            "activate",
		arm:             delayStep("activate"),
		inWindow:        jobRunningIn(rotation.StateMinted),
		committed:       rotation.StateMinted,
		resumed:         1, // mint
		valuesAfterKill: base,
	},
	{
		name: "verify",
		arm:  delayStep("verify"),
		inWindow: func(r *crashRig, _ *proc, run store.Run) (bool, error) {
			if run.State != string(rotation.StateMinted) {
				return false, nil
			}
			// Activated: the resource accepts one more value than before.
			names, err := dirNames(r.stateDir)
			if err != nil || len(names) != base(run.OldVersionID != "")+1 {
				return false, err
			}
			return r.jobRunning(run.ID)
		},
		committed:       rotation.StateMinted,
		resumed:         1,
		valuesAfterKill: func(second bool) int { return base(second) + 1 },
	},
	{
		// Killed between the two targets' promotes.
		name:            "promote",
		arm:             lockSecondTarget,
		inWindow:        inPromote,
		committed:       rotation.StateMinted,
		resumed:         1,
		valuesAfterKill: func(second bool) int { return base(second) + 1 },
	},
	{
		// Killed between the two targets' promotes, and the resumed run
		// fails (verify) before it reaches the cutover again: the rollback
		// must put the current value back at the target that had switched.
		name:            "promote-then-fail",
		second:          true,
		arm:             lockSecondTarget,
		inWindow:        inPromote,
		committed:       rotation.StateMinted,
		resumed:         1,
		valuesAfterKill: func(bool) int { return 2 },
		restart:         `{"fail":["verify"]}`,
		want:            rotation.StateRolledBack,
	},
	{
		// SIGTERM during a step: the process stops promptly, nothing is
		// rolled back, and the next start resumes the run at once (its
		// job is retryable, not stuck).
		name:            "shutdown",
		arm:             delayStep("activate"),
		inWindow:        jobRunningIn(rotation.StateMinted),
		committed:       rotation.StateMinted,
		resumed:         1,
		valuesAfterKill: base,
		sigterm:         true,
	},
	{
		// The run cut over and waits (a snoozed River job) for the 3s
		// grace to end before retiring the previous version.
		name:   "grace",
		second: true,
		arm:    func(*crashRig) func() { return func() {} },
		inWindow: func(r *crashRig, _ *proc, run store.Run) (bool, error) {
			if run.State != string(rotation.StateCutOver) {
				return false, nil
			}
			// Wait until the job is parked until the grace ends (not in
			// the instant between the commit and the snooze).
			j, ok, err := r.jobOf(run.ID)
			return ok && j.State != "running", err
		},
		committed:       rotation.StateCutOver,
		resumed:         8, // mint activate stage×2 verify promote×2 cutover
		valuesAfterKill: func(bool) int { return 2 },
	},
	{
		// The grace ended and the previous version is being revoked.
		name:   "revoke",
		second: true,
		arm:    delayStep("revoke"),
		inWindow: func(r *crashRig, _ *proc, run store.Run) (bool, error) {
			if run.State != string(rotation.StateCutOver) || time.Now().Before(rotation.OptionsOf(run).RetireAfter) {
				return false, nil
			}
			return r.jobRunning(run.ID)
		},
		committed:       rotation.StateCutOver,
		resumed:         8,
		valuesAfterKill: func(bool) int { return 2 },
	},
}

// TestCrashResume kills `rotator serve` (SIGKILL) inside each step of a
// rotation, restarts it with a short --rescue-after, and checks that the
// run resumes from its last committed state and ends with exactly one
// current version that the resource accepts and every target publishes.
func TestCrashResume(t *testing.T) {
	t.Parallel()
	for _, kind := range databases {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			for _, b := range boundaries {
				variants := []bool{false, true}
				if b.second {
					variants = []bool{true}
				}
				for _, second := range variants {
					name := b.name
					if second && !b.second {
						name += "-with-current"
					}
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						testCrash(t, kind, b, second)
					})
				}
			}
		})
	}
}

func testCrash(t *testing.T, kind string, b boundary, second bool) {
	r := newCrashRig(t, kind)
	targetIndex := 0
	var disarm func()
	if !second {
		disarm = b.arm(r)
	}
	// The first process must not rescue or time out the job itself.
	p1 := r.serve("serve-1", r.config, "--job-timeout", "2m", "--rescue-after", "3m")

	if second {
		waitFor(t, 30*time.Second, "the first rotation to succeed", func() (bool, error) {
			run, ok, err := r.targetRun(0)
			return ok && run.State == string(rotation.StateSucceeded), err
		})
		disarm = b.arm(r)
		// serve-1 is running: rotate only queues the run (it would block on
		// the armed boundary if it executed the run itself).
		out, err := r.cli("rotate", crashCredential, "--actor", "e2e", "--reason", "crash test")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "Queued for the running 'rotator serve'") {
			t.Errorf("rotate with a service running did not queue the run:\n%s", out)
		}
		targetIndex = 1
	}

	var run store.Run
	waitFor(t, 30*time.Second, "the run to be inside "+b.name, func() (bool, error) {
		if p1.exited() {
			return false, fmt.Errorf("serve-1 exited: %v", p1.err)
		}
		var ok bool
		var err error
		run, ok, err = r.targetRun(targetIndex)
		if !ok || err != nil {
			return false, err
		}
		return b.inWindow(r, p1, run)
	})
	killedAt := time.Now()
	if b.sigterm {
		if err := p1.stop(15 * time.Second); err != nil {
			t.Fatalf("serve-1 did not stop cleanly on SIGTERM: %v", err)
		}
		t.Logf("serve-1 stopped %.1fs after SIGTERM", time.Since(killedAt).Seconds())
	} else {
		p1.kill()
	}

	// The kill landed inside the window: nothing past it was committed.
	after, err := r.st.GetRun(t.Context(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != string(b.committed) {
		t.Fatalf("after the kill the run is %s, want %s: the kill missed the %s window", after.State, b.committed, b.name)
	}
	if names, _ := dirNames(r.stateDir); len(names) != b.valuesAfterKill(second) {
		t.Fatalf("after the kill the resource accepts %d values, want %d", len(names), b.valuesAfterKill(second))
	}
	if strings.HasPrefix(b.name, "promote") {
		// The first target already publishes the new value.
		v, err := r.st.GetVersion(t.Context(), after.NewVersionID)
		if err != nil {
			t.Fatal(err)
		}
		if env, err := readDotenv(r.envFiles[0]); err != nil || env["CRASH_KEY"] != r.open(v) {
			t.Fatalf("after the kill the first target does not publish the new value (%v)", err)
		}
	}
	disarm()
	if b.restart != "" {
		r.setControl(b.restart)
	}

	p2 := r.serve("serve-2", r.config, "--job-timeout", "5s", "--rescue-after", "8s")
	var final []store.Run
	waitFor(t, 100*time.Second, "every run to end after the restart", func() (bool, error) {
		if p2.exited() {
			return false, fmt.Errorf("serve-2 exited: %v", p2.err)
		}
		rs, err := r.runs(crashCredential)
		if err != nil {
			return false, err
		}
		for _, x := range rs {
			if !rotation.State(x.State).Terminal() {
				return false, nil
			}
		}
		final = rs
		return len(rs) > targetIndex, nil
	})
	if err := p2.stop(30 * time.Second); err != nil {
		t.Errorf("stopping serve-2: %v", err)
	}

	r.checkAfterCrash(t, b, final, targetIndex, killedAt, p1, p2)
}

func (r *crashRig) checkAfterCrash(t *testing.T, b boundary, final []store.Run, targetIndex int, killedAt time.Time, procs ...*proc) {
	ctx := t.Context()
	want := b.want
	if want == "" {
		want = rotation.StateSucceeded
	}
	// No duplicated run: one per rotation asked for.
	if len(final) != targetIndex+1 {
		t.Errorf("the credential has %d runs, want %d", len(final), targetIndex+1)
	}
	for i, x := range final {
		w := rotation.StateSucceeded
		if i == targetIndex {
			w = want
		}
		if x.State != string(w) {
			t.Errorf("run %s ended %s (error %q), want %s", x.ID, x.State, x.Error, w)
		}
		if x.Active {
			t.Errorf("run %s is terminal but still active", x.ID)
		}
	}
	run := final[min(targetIndex, len(final)-1)]
	rolledBack := want == rotation.StateRolledBack

	// Exactly one current version, no pending one, every other retired
	// (or, for the rolled-back run's, discarded).
	cred, err := r.st.GetCredential(ctx, crashCredential)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := r.st.ListVersions(ctx, crashCredential)
	if err != nil {
		t.Fatal(err)
	}
	var current []store.Version
	for _, v := range versions {
		switch v.Stage {
		case store.StageCurrent:
			current = append(current, v)
		case store.StageRetired, store.StageDiscarded:
			if len(v.Sealed) > 0 {
				t.Errorf("version %s is %s but still holds its sealed value", v.ID, v.Stage)
			}
		case store.StagePending, store.StagePrevious:
			t.Errorf("version %s is still %s", v.ID, v.Stage)
		}
		if v.ID == run.NewVersionID && rolledBack && v.Stage != store.StageDiscarded {
			t.Errorf("the rolled-back run's version %s is %s, want discarded", v.ID, v.Stage)
		}
	}
	if len(current) != 1 {
		t.Fatalf("the credential has %d current versions, want 1 (versions: %v)", len(current), stages(versions))
	}
	cur := current[0]
	if want := targetIndex + 1; len(versions) != want {
		t.Errorf("the credential has %d versions %v, want %d (one per run)", len(versions), stages(versions), want)
	}
	if cred.Current == nil || cred.Current.ID != cur.ID || cred.State.CurrentVersionID != cur.ID {
		t.Errorf("the credential's current version is not %s: %+v", cur.ID, cred.State)
	}
	if cred.State.PendingVersionID != "" {
		t.Errorf("the credential still names pending version %s", cred.State.PendingVersionID)
	}
	switch {
	case rolledBack:
		if cred.State.Status != store.StatusFailing || cred.State.FailureCount != 1 {
			t.Errorf("credential status %s with %d failures, want failing with 1", cred.State.Status, cred.State.FailureCount)
		}
		if run.OldVersionID != cur.ID {
			t.Errorf("the rolled-back run replaced %s, but %s is current", run.OldVersionID, cur.ID)
		}
	default:
		if cred.State.Status != store.StatusHealthy || cred.State.FailureCount != 0 {
			t.Errorf("credential status %s with %d failures, want healthy with 0", cred.State.Status, cred.State.FailureCount)
		}
		if run.NewVersionID != cur.ID {
			t.Errorf("the resumed run made version %s, but %s is current", run.NewVersionID, cur.ID)
		}
	}

	// Every target publishes the current value and the resource accepts
	// it, and nothing else (a previous value was revoked after its grace,
	// a rolled-back one at once).
	value := r.open(cur)
	for _, f := range r.envFiles {
		env, err := readDotenv(f)
		switch {
		case err != nil:
			t.Error(err)
		case env["CRASH_KEY"] != value:
			t.Errorf("target %s does not publish the current value (it publishes a value the resource accepts: %v)", filepath.Base(f), fileExists(filepath.Join(r.stateDir, sha256Hex(env["CRASH_KEY"]))))
		}
	}
	names, err := dirNames(r.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{sha256Hex(value)}) {
		t.Errorf("the resource accepts %d values %v, want exactly the current one %s", len(names), names, sha256Hex(value))
	}

	// The steps show the resumption: those committed before the kill, then
	// the rest, which started after it.
	steps, err := r.st.ListSteps(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, s := range steps {
		got = append(got, s.Name)
		if s.Seq != i {
			t.Errorf("step %d (%s) has seq %d", i, s.Name, s.Seq)
		}
		want := string(rotation.StepOK)
		if strings.HasPrefix(s.Name, "stage:") {
			want = string(rotation.StepSkipped) // a file has no pending slot
		}
		if s.State != want && !(rolledBack && s.Name == "verify") {
			t.Errorf("step %s: %s %s", s.Name, s.State, s.Error)
		}
		if i < b.resumed && !s.FinishedAt.Before(killedAt) {
			t.Errorf("step %s (committed before the kill) finished at %s, after the kill at %s", s.Name, s.FinishedAt.Format(time.RFC3339Nano), killedAt.Format(time.RFC3339Nano))
		}
		if i >= b.resumed && !s.StartedAt.After(killedAt) {
			t.Errorf("step %s (resumed) started at %s, before the kill at %s", s.Name, s.StartedAt.Format(time.RFC3339Nano), killedAt.Format(time.RFC3339Nano))
		}
	}
	wantSteps := []string{"mint", "activate", "stage:env", "stage:env2", "verify", "promote:env", "promote:env2", "cutover"}
	if run.OldVersionID != "" {
		wantSteps = append(wantSteps, "revoke_previous")
	}
	if rolledBack {
		wantSteps = []string{"mint", "activate", "stage:env", "stage:env2", "verify", "restore:env", "restore:env2", "rollback_revoke"}
	}
	if !slices.Equal(got, wantSteps) {
		t.Errorf("steps %v, want %v", got, wantSteps)
	}
	mark := "[KILL]"
	if b.sigterm {
		mark = "[SIGTERM]"
	}
	t.Logf("steps: %s", stepTimeline(steps, killedAt, mark))

	// The job was resumed: on Postgres the leader of serve-2 put the killed
	// attempt back in the queue as soon as it found the run's lock free; on
	// SQLite River rescued it; (grace) the snoozed job came back.
	tookOver := false
	for _, p := range procs {
		tookOver = tookOver || strings.Contains(p.log(), "resuming a run whose worker is gone")
	}
	job, ok, err := r.jobOf(run.ID)
	switch {
	case err != nil:
		t.Error(err)
	case !ok:
		t.Errorf("no River job for run %s", run.ID)
	case job.State != "completed":
		t.Errorf("the run's job is %s, want completed", job.State)
	case b.sigterm && (strings.Contains(job.Errors, "Stuck job rescued") || !strings.Contains(job.Errors, "context canceled")):
		t.Errorf("the run's job should have been stopped (context canceled), not rescued (attempt %d, errors %s)", job.Attempt, job.Errors)
	case !b.sigterm && b.name != "grace" && r.kind == postgresDB && !tookOver:
		t.Errorf("the run's job was not taken over after the kill (attempt %d, errors %s)", job.Attempt, job.Errors)
	case !b.sigterm && b.name != "grace" && r.kind != postgresDB && !strings.Contains(job.Errors, "Stuck job rescued"):
		t.Errorf("the run's job was not rescued by River (attempt %d, errors %s)", job.Attempt, job.Errors)
	}

	// The CLI reads the same run.
	out, err := r.cli("runs", "show", run.ID, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		Run struct {
			State string `json:"state"`
			Steps []struct {
				Name string `json:"name"`
			} `json:"steps"`
		} `json:"run"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("runs show -o json: %v\n%s", err, out)
	}
	if shown.Run.State != string(want) || len(shown.Run.Steps) != len(steps) {
		t.Errorf("runs show: state %s with %d steps, want %s with %d", shown.Run.State, len(shown.Run.Steps), want, len(steps))
	}

	var values []string
	for _, v := range versions {
		if len(v.Sealed) > 0 {
			values = append(values, r.open(v))
		}
	}
	assertNoLeak(t, procs, values...)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func stages(vs []store.Version) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.ID[len(v.ID)-6:] + ":" + string(v.Stage)
	}
	return out
}

func stepTimeline(steps []store.Step, killedAt time.Time, mark string) string {
	var b strings.Builder
	marked := false
	for _, s := range steps {
		if !marked && s.StartedAt.After(killedAt) {
			b.WriteString(" " + mark + " ")
			marked = true
		}
		fmt.Fprintf(&b, " %s(%+.1fs)", s.Name, s.StartedAt.Sub(killedAt).Seconds())
	}
	return b.String()
}
