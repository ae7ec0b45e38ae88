//go:build soak

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

const killCredentials = 200

// killConfig: credentials due every 5 s on a resource whose activation
// takes 300 ms, so that a kill lands in the middle of runs.
func killConfig(dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `providers:
  res:
    type: faulty
    state_dir: %q
    control_file: %q
credentials:
`, filepath.Join(dir, "resource"), filepath.Join(dir, "control.json"))
	for i := range killCredentials {
		fmt.Fprintf(&b, `  - id: key-%04d
    consumer: mcp-server-%02d
    provider: res
    schedule: "@every 5s"
    max_age: 1h
    grace: 1s
    runbook: runbooks/e2e.md#rotation
`, i, i%20)
	}
	return b.String()
}

// TestKillReplicas runs two `serve` replicas on one Postgres database and
// SIGKILLs one of them (restarting it at once) every few seconds for 3
// minutes (E2E_SOAK_DURATION), then lets them settle 30 s. No credential
// may have two runs whose executions overlap, every run started before the
// settle must have ended, and every credential must have a current
// version. It reports how long runs of a killed replica waited.
func TestKillReplicas(t *testing.T) {
	h := newHarness(t, postgresDB, 0)
	d := soakDuration(t, 3*time.Minute)
	writeFile(t, filepath.Join(h.dir, "control.json"), `{"delay": {"activate": "300ms"}}`)
	config := filepath.Join(h.dir, "rotator.yaml")
	writeFile(t, config, killConfig(h.dir))
	pool := h.st.Handle().(*pgxpool.Pool)
	ctx := context.Background()

	procs := [2]*proc{h.serve("serve-a0", config), h.serve("serve-b0", config)}
	var doubleActive atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			var dup int64
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT credential_id FROM runs WHERE active GROUP BY credential_id HAVING count(*) > 1) d`).Scan(&dup); err == nil {
				doubleActive.Add(dup)
			}
		}
	}()

	kills := 0
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		time.Sleep(4 * time.Second)
		victim := i % 2
		procs[victim].kill()
		kills++
		procs[victim] = h.serve(fmt.Sprintf("serve-%c%d", 'a'+victim, i+1), config)
	}
	settle := time.Now()
	time.Sleep(30 * time.Second)
	close(stop)
	<-sampled
	for _, p := range procs {
		if err := p.stop(30 * time.Second); err != nil {
			t.Errorf("stopping %s: %v", p.name, err)
		}
	}

	runs, err := h.st.ListRuns(ctx, store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byCred := map[string][]store.Run{}
	unfinished, failed, succeeded := 0, 0, 0
	for _, r := range runs {
		byCred[r.CredentialID] = append(byCred[r.CredentialID], r)
		switch {
		case !rotation.State(r.State).Terminal():
			if r.CreatedAt.Before(settle) {
				unfinished++
				t.Errorf("run %s of %s (created %s, before the settle) is still %s", r.ID, r.CredentialID, r.CreatedAt.Format(time.RFC3339Nano), r.State)
			}
		case r.State == string(rotation.StateSucceeded):
			succeeded++
		default:
			failed++
		}
	}
	// Overlap: a run's steps all lie between its creation and its end, and
	// runs of one credential follow each other.
	overlaps := 0
	for id, rs := range byCred {
		for i := 1; i < len(rs); i++ { // newest first
			newer, older := rs[i-1], rs[i]
			if !older.FinishedAt.IsZero() && newer.StartedAt.Before(older.FinishedAt) && !newer.StartedAt.IsZero() {
				overlaps++
				t.Errorf("%s: run %s started %s before run %s finished %s", id, newer.ID, newer.StartedAt.Format(time.RFC3339Nano),
					older.ID, older.FinishedAt.Format(time.RFC3339Nano))
			}
		}
	}
	creds, err := h.st.ListCredentials(ctx, store.CredentialFilter{})
	if err != nil {
		t.Fatal(err)
	}
	noCurrent := 0
	for _, c := range creds {
		if c.Current == nil {
			noCurrent++
			t.Errorf("credential %s has no current version", c.ID)
		}
	}
	takeovers := 0
	logs, _ := filepath.Glob(filepath.Join(h.dir, "serve-*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		takeovers += strings.Count(string(b), "resuming a run whose worker is gone")
	}
	// The longest wait inside a run between two steps: a run interrupted by
	// a kill waits until another replica takes it over.
	var maxGap float64
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(extract(epoch FROM gap)), 0) FROM (
SELECT started_at - lag(finished_at) OVER (PARTITION BY run_id ORDER BY seq) AS gap FROM run_steps) g`).Scan(&maxGap); err != nil {
		t.Fatal(err)
	}
	if maxGap > 10 {
		t.Errorf("a run waited %.1fs between two steps; runs of a killed replica must resume within 10s", maxGap)
	}
	if doubleActive.Load() > 0 {
		t.Errorf("%d samples saw a credential with two active runs", doubleActive.Load())
	}
	t.Logf("%s with %d kills: %d runs (%d succeeded, %d rolled back or failed), %d unfinished from before the settle, %d overlapping, %d credentials without a current version; %d takeovers, longest wait between two steps of a run %.1fs",
		d, kills, len(runs), succeeded, failed, unfinished, overlaps, noCurrent, takeovers, maxGap)
}
