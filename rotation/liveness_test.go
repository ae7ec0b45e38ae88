package rotation_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// execSQL runs a statement on the store's database (River's tables).
func execSQL(t *testing.T, st store.Store, pg, lite string, args ...any) {
	t.Helper()
	var err error
	switch db := st.Handle().(type) {
	case *pgxpool.Pool:
		_, err = db.Exec(t.Context(), pg, args...)
	case *sql.DB:
		_, err = db.ExecContext(t.Context(), lite, args...)
	}
	if err != nil {
		t.Fatalf("%s: %v", pg, err)
	}
}

// TestExhaustedJobEndsRun: a run whose job fails every attempt (here: the
// provider hangs past the job timeout) ends rolled back with the last
// error, its credential needs attention, and the next rotation goes ahead.
func TestExhaustedJobEndsRun(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("stuck", "flt", "max_age: 1h", "out=STUCK"), setupOpts{runner: func(o *rotation.RunnerOptions) {
			o.MaxJobAttempts, o.JobTimeout, o.RescueAfter = 2, time.Second, 2*time.Second
		}})
		b.control(t, `{"hang": ["activate"]}`)
		runID := b.rotate(t, rotation.Request{Selection: ids("stuck")})
		r := b.waitRun(t, runID, rotation.StateRolledBack, rotation.StateFailed, rotation.StateSucceeded)
		if r.State != string(rotation.StateRolledBack) || !strings.Contains(r.Error, "gave up after 2 attempts") {
			t.Fatalf("run after its job's last attempt: %s %q", r.State, r.Error)
		}
		c := b.cred(t, "stuck")
		if c.State.Status != store.StatusNeedsAttention || c.State.PendingVersionID != "" {
			t.Errorf("credential after the run gave up: %+v", c.State)
		}
		if len(b.notes.events()) == 0 {
			t.Error("no needs-attention notification")
		}
		// Not stuck: the next rotation is not skipped, and succeeds.
		b.control(t, "")
		next := b.rotateOK(t, "stuck")
		if next.ID == runID {
			t.Error("the next rotation reused the given-up run")
		}
	})
}

// TestReconcilerResumesRunWithoutJob: an active run whose job was deleted
// is resumed with a new job; one whose job was discarded is given up.
func TestReconcilerResumesRunWithoutJob(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("orphan", "gen", "max_age: 1h", "out=ORPHAN")+credYAML("dropped", "gen", "max_age: 1h"),
			setupOpts{noStart: true})
		orphan := b.rotate(t, rotation.Request{Selection: ids("orphan")})
		dropped := b.rotate(t, rotation.Request{Selection: ids("dropped")})
		execSQL(t, st, `DELETE FROM river_job WHERE args->>'run_id' = $1`, `DELETE FROM river_job WHERE json_extract(args, '$.run_id') = ?`, orphan)
		execSQL(t, st, `UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE args->>'run_id' = $1`,
			`UPDATE river_job SET state = 'discarded', finalized_at = datetime('now') WHERE json_extract(args, '$.run_id') = ?`, dropped)

		n, err := b.e.Reconcile(t.Context(), 0)
		if err != nil || n != 2 {
			t.Fatalf("Reconcile = %d, %v; want 2 runs handled", n, err)
		}
		if r := b.run(t, dropped); r.State != string(rotation.StateRolledBack) || !strings.Contains(r.Error, "gave up") {
			t.Errorf("run with a discarded job: %s %q", r.State, r.Error)
		}
		if c := b.cred(t, "dropped"); c.State.Status != store.StatusNeedsAttention {
			t.Errorf("credential of the discarded job: %s", c.State.Status)
		}
		// A second pass finds nothing left to do.
		if n, err := b.e.Reconcile(t.Context(), 0); err != nil || n != 0 {
			t.Errorf("second Reconcile = %d, %v; want 0", n, err)
		}
		if err := b.runner.Start(context.WithoutCancel(t.Context())); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = b.runner.Stop(ctx)
		})
		if r := b.waitDone(t, orphan); r.State != string(rotation.StateSucceeded) {
			t.Errorf("resumed run: %s", r.State)
		}
	})
}

// TestEmergencyPreemptsRoutineRun: an emergency on a credential whose
// routine run has not cut over cancels that run (rolled back, not counted
// as a failure) and starts at once.
func TestEmergencyPreemptsRoutineRun(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("busy", "flt", "max_age: 1h", "out=BUSY"), setupOpts{noStart: true})
		routine := b.rotate(t, rotation.Request{Selection: ids("busy")})
		started, err := b.e.Rotate(t.Context(), rotation.Request{Selection: ids("busy"), Trigger: store.TriggerManual,
			Actor: "oncall", Reason: "leak", Emergency: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(started) != 1 || started[0].Skipped || started[0].Preempted != routine {
			t.Fatalf("emergency = %+v, want a new run pre-empting %s", started, routine)
		}
		r := b.run(t, routine)
		if r.State != string(rotation.StateRolledBack) || !strings.Contains(r.Error, "cancelled by oncall: pre-empted by an emergency rotation: leak") {
			t.Errorf("pre-empted run: %s %q", r.State, r.Error)
		}
		if c := b.cred(t, "busy"); c.State.FailureCount != 0 {
			t.Errorf("the pre-emption counted as a failure: %+v", c.State)
		}
		if err := b.runner.Start(context.WithoutCancel(t.Context())); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = b.runner.Stop(ctx)
		})
		if r := b.waitDone(t, started[0].RunID); r.State != string(rotation.StateSucceeded) || r.Trigger != store.TriggerEmergency {
			t.Errorf("emergency run: %s %s", r.State, r.Trigger)
		}
	})
}

// TestCancelStopsRunningWorker: cancelling a run that a worker is executing
// (here hanging in activate) stops the worker at a committed step and rolls
// the run back; the pending value is revoked.
func TestCancelStopsRunningWorker(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("slow", "flt", "max_age: 1h", "out=SLOW"), setupOpts{})
		b.control(t, `{"hang": ["activate"]}`)
		runID := b.rotate(t, rotation.Request{Selection: ids("slow")})
		b.waitRun(t, runID, rotation.StateMinted)
		r, err := b.e.Cancel(t.Context(), runID, "oncall", "wrong window")
		if err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		if r.State != string(rotation.StateRolledBack) || r.Error != "cancelled by oncall: wrong window" {
			t.Errorf("cancelled run: %s %q", r.State, r.Error)
		}
		if n := b.resourceCount(t); n != 0 {
			t.Errorf("the resource accepts %d values after the cancel, want 0", n)
		}
		if _, err := b.e.Cancel(t.Context(), runID, "oncall", "again"); err == nil {
			t.Error("cancelling a finished run succeeded")
		}
	})
}
