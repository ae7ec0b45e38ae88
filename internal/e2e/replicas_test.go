//go:build soak

package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// soakDuration is how long the soak tests run (E2E_SOAK_DURATION, default d).
func soakDuration(t *testing.T, d time.Duration) time.Duration {
	if s := os.Getenv("E2E_SOAK_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("E2E_SOAK_DURATION: %v", err)
		}
		return v
	}
	return d
}

const (
	replicaCredentials = 500
	replicaInterval    = 10 * time.Second
)

func replicasConfig(envFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `providers:
  keys:
    type: generated
    length: 32
    prefix: "rep_"
targets:
  env:
    type: file
    path: %q
    format: dotenv
credentials:
`, envFile)
	for i := range replicaCredentials {
		fmt.Fprintf(&b, `  - id: key-%04d
    consumer: mcp-server-%02d
    provider: keys
    owner: e2e
    schedule: "@every 10s"
    max_age: 1h
    grace: 2s
    runbook: runbooks/e2e.md#rotation
    targets:
      - {target: env, key: KEY_%04d}
`, i, i%50, i)
	}
	return b.String()
}

// TestReplicas runs two `serve` processes on one Postgres database with 500
// credentials due every 10s, for 2 minutes (E2E_SOAK_DURATION), and checks
// that no credential ever has two overlapping runs, that every due rotation
// happens, and that no run fails. It reports the scheduling lag.
func TestReplicas(t *testing.T) {
	h := newHarness(t, postgresDB, 0)
	d := soakDuration(t, 2*time.Minute)
	envFile := filepath.Join(h.dir, "run", "mcp.env")
	config := filepath.Join(h.dir, "rotator.yaml")
	writeFile(t, config, replicasConfig(envFile))
	pool := h.st.Handle().(*pgxpool.Pool)
	ctx := context.Background()

	var idx int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'runs_one_active_per_credential'`).Scan(&idx); err != nil || idx != 1 {
		t.Fatalf("the one-active-run index is missing (%d, %v)", idx, err)
	}

	// Both replicas start together, each applying the file.
	start := time.Now()
	a := h.serve("serve-a", config, "--workers", "50")
	b := h.serve("serve-b", config, "--workers", "50")
	procs := []*proc{a, b}

	// Sample the database: never two active runs for one credential.
	var samples, doubleActive, maxActive atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tk.C:
			}
			var dup, active int64
			err := pool.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM (SELECT credential_id FROM runs WHERE active GROUP BY credential_id HAVING count(*) > 1) d),
				(SELECT count(*) FROM runs WHERE active)`).Scan(&dup, &active)
			if err != nil {
				continue
			}
			samples.Add(1)
			doubleActive.Add(dup)
			if active > maxActive.Load() {
				maxActive.Store(active)
			}
		}
	}()

	for time.Since(start) < d {
		for _, p := range procs {
			if p.exited() {
				close(stopSampling)
				<-sampled
				t.Fatalf("%s exited early: %v", p.name, p.err)
			}
		}
		time.Sleep(time.Second)
	}
	end := time.Now()
	for _, p := range procs {
		if err := p.stop(60 * time.Second); err != nil {
			t.Errorf("stopping %s: %v", p.name, err)
		}
	}
	close(stopSampling)
	<-sampled

	// Analysis.
	runs, err := h.st.ListRuns(ctx, store.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byCred := map[string][]store.Run{}
	states := map[string]int{}
	var lags, firstLags, enqueueLags, queueLags, durations []time.Duration
	first := map[string]time.Time{}
	for _, r := range runs {
		if f, ok := first[r.CredentialID]; !ok || r.CreatedAt.Before(f) {
			first[r.CredentialID] = r.CreatedAt
		}
	}
	for _, r := range runs {
		byCred[r.CredentialID] = append(byCred[r.CredentialID], r)
		states[r.State]++
		if due := rotation.OptionsOf(r).DueAt; !due.IsZero() && !r.StartedAt.IsZero() {
			if r.CreatedAt.Equal(first[r.CredentialID]) {
				// New credentials: due when applied, before the workers start.
				firstLags = append(firstLags, r.StartedAt.Sub(due))
			} else {
				lags = append(lags, r.StartedAt.Sub(due))
				enqueueLags = append(enqueueLags, r.CreatedAt.Sub(due))
				queueLags = append(queueLags, r.StartedAt.Sub(r.CreatedAt))
			}
		}
		if r.State == string(rotation.StateSucceeded) {
			durations = append(durations, r.FinishedAt.Sub(r.StartedAt))
		}
	}
	if len(byCred) != replicaCredentials {
		t.Errorf("%d credentials have runs, want %d", len(byCred), replicaCredentials)
	}
	for s, n := range states {
		switch rotation.State(s) {
		case rotation.StateRolledBack, rotation.StateFailed:
			t.Errorf("%d runs ended %s", n, s)
		}
	}
	for _, r := range runs {
		if r.State == string(rotation.StateRolledBack) || r.State == string(rotation.StateFailed) {
			t.Logf("run %s of %s: %s: %s", r.ID, r.CredentialID, r.State, r.Error)
			break
		}
	}

	want := int(d/replicaInterval) - 1
	minRuns, maxRuns := math.MaxInt, 0
	overlaps := 0
	short := 0
	for id, rs := range byCred {
		slices.SortFunc(rs, func(x, y store.Run) int { return x.CreatedAt.Compare(y.CreatedAt) })
		n := 0
		for i, r := range rs {
			if !r.StartedAt.IsZero() && !r.StartedAt.Before(start) && !r.StartedAt.After(end) {
				n++
			}
			if i == 0 {
				continue
			}
			p := rs[i-1]
			if p.Active || p.FinishedAt.IsZero() || p.FinishedAt.After(r.CreatedAt) {
				overlaps++
				if overlaps <= 5 {
					t.Errorf("%s: run %s [%s, %s] overlaps run %s created %s", id, p.ID, p.CreatedAt.Format(time.RFC3339Nano), p.FinishedAt.Format(time.RFC3339Nano), r.ID, r.CreatedAt.Format(time.RFC3339Nano))
				}
			}
		}
		minRuns, maxRuns = min(minRuns, n), max(maxRuns, n)
		if n < want {
			short++
			if short <= 5 {
				t.Errorf("%s rotated %d times in %s, want at least %d", id, n, d, want)
			}
		}
	}
	if overlaps > 0 {
		t.Errorf("%d overlapping runs", overlaps)
	}
	if short > 0 {
		t.Errorf("%d of %d credentials rotated fewer than %d times", short, len(byCred), want)
	}
	if n := doubleActive.Load(); n > 0 {
		t.Errorf("the database had two active runs for one credential %d times in %d samples", n, samples.Load())
	}

	// Every credential: one current version, published in the shared file
	// (or the value of its interrupted run, which resumes at the next start).
	env, err := readDotenv(envFile)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := h.st.ListCredentials(ctx, store.CredentialFilter{})
	if err != nil {
		t.Fatal(err)
	}
	mismatched := 0
	for _, c := range creds {
		if c.Current == nil {
			t.Errorf("%s has no current version", c.ID)
			continue
		}
		key := "KEY_" + strings.TrimPrefix(c.ID, "key-")
		ok := env[key] == h.open(*c.Current)
		if !ok && c.State.PendingVersionID != "" {
			if v, err := h.st.GetVersion(ctx, c.State.PendingVersionID); err == nil && len(v.Sealed) > 0 {
				ok = env[key] == h.open(v)
			}
		}
		if !ok {
			mismatched++
		}
	}
	if mismatched > 0 {
		t.Errorf("%d credentials: the shared file does not hold the current (or pending) value", mismatched)
	}
	var multiCurrent int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT credential_id FROM versions WHERE stage = 'current' GROUP BY credential_id HAVING count(*) > 1) d`).Scan(&multiCurrent); err != nil {
		t.Fatal(err)
	}
	if multiCurrent > 0 {
		t.Errorf("%d credentials have more than one current version", multiCurrent)
	}

	// Who worked the jobs.
	perClient := map[string]int{}
	rows, err := pool.Query(ctx, `SELECT coalesce(attempted_by[array_length(attempted_by, 1)], ''), count(*) FROM river_job WHERE kind = $1 GROUP BY 1`, rotation.RotateArgs{}.Kind())
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var who string
		var n int
		if err := rows.Scan(&who, &n); err != nil {
			t.Fatal(err)
		}
		perClient[who] = n
	}
	rows.Close()
	if len(perClient) < 2 {
		t.Errorf("only %d process(es) worked rotate jobs: %v", len(perClient), perClient)
	}

	t.Logf("duration %s, %d credentials, %d runs (%.1f/s): %v", end.Sub(start).Round(time.Second), len(byCred), len(runs), float64(len(runs))/end.Sub(start).Seconds(), states)
	t.Logf("runs per credential in the window: min %d, max %d (want ≥ %d)", minRuns, maxRuns, want)
	t.Logf("scheduling lag (started_at − due_at) over %d scheduled runs: p50 %s, p99 %s, max %s", len(lags), pct(lags, 50), pct(lags, 99), pct(lags, 100))
	t.Logf("  of which due → enqueued (created_at − due_at): p50 %s, p99 %s; enqueued → started: p50 %s, p99 %s", pct(enqueueLags, 50), pct(enqueueLags, 99), pct(queueLags, 50), pct(queueLags, 99))
	t.Logf("first rotation of the %d new credentials (due at apply): lag p50 %s, p99 %s, max %s", len(firstLags), pct(firstLags, 50), pct(firstLags, 99), pct(firstLags, 100))
	t.Logf("run duration (started → succeeded, incl. 2s grace): p50 %s, p99 %s, max %s", pct(durations, 50), pct(durations, 99), pct(durations, 100))
	t.Logf("active runs at once: max %d; double-active samples: %d of %d", maxActive.Load(), doubleActive.Load(), samples.Load())
	t.Logf("rotate jobs per worker client: %v", perClient)
	for _, p := range procs {
		if n := strings.Count(p.log(), "level=ERROR"); n > 0 {
			t.Logf("%s logged %d errors, e.g. %s", p.name, n, firstLine(p.log(), "level=ERROR"))
		}
		if n := strings.Count(p.log(), "level=WARN"); n > 0 {
			t.Logf("%s logged %d warnings, e.g. %s", p.name, n, firstLine(p.log(), "level=WARN"))
		}
	}
}

// pct returns the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))].Round(time.Millisecond)
}

func firstLine(s, sub string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
