package rotation_test

import (
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// TestInsertedRunsWakeIdleWorkers: a run that another process enqueues
// (the CLI while the service runs) reaches the service's idle workers by
// River's insert notification, not by their fetch poll. The default poll is
// 1s on SQLite (RunnerOptions.FetchPollInterval), which is only a fallback;
// here it is an hour, so the run completes only if the notification arrives
// (through LISTEN/NOTIFY on Postgres, through River's outbox on SQLite).
func TestInsertedRunsWakeIdleWorkers(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		b := setup(t, st, credYAML("api", "gen", "max_age: 1h", "out=API_KEY"), setupOpts{
			runner: func(o *rotation.RunnerOptions) { o.FetchPollInterval = time.Hour },
		})
		// Let the workers finish their first fetch (at start) and go idle.
		// Should the first run still meet that fetch on a slow machine, the
		// second and third come after it whatever the timing: only a
		// notification can start them.
		time.Sleep(300 * time.Millisecond)

		// The other process: an engine on the same database whose Runner is
		// built (so Rotate can enqueue) but not started, as the CLI has when
		// a service is running.
		cli, err := rotation.New(rotation.Options{Store: st, Keyring: b.kr, Redactor: b.red})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rotation.NewRunner(cli, rotation.RunnerOptions{}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			started, err := cli.Rotate(t.Context(), rotation.Request{Selection: ids("api"), Trigger: store.TriggerManual, Actor: "cli"})
			if err != nil || len(started) != 1 || started[0].Skipped {
				t.Fatalf("rotation %d: Rotate = %+v, %v; want one started run", i+1, started, err)
			}
			t0 := time.Now()
			r := b.waitDone(t, started[0].RunID)
			if r.State != string(rotation.StateSucceeded) {
				t.Fatalf("rotation %d: run %s ended %s (%s)", i+1, r.ID, r.State, r.Error)
			}
			t.Logf("rotation %d: the idle service finished the run %v after Rotate returned", i+1, time.Since(t0).Round(time.Millisecond))
			// Idle again before the next one.
			time.Sleep(200 * time.Millisecond)
		}
	})
}
