package rotation_test

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

var (
	benchIsoCreds  = flag.Int("bench.iso.creds", 3000, "BenchmarkIsolation: healthy credentials, due evenly over -bench.iso.spread")
	benchIsoSpread = flag.Duration("bench.iso.spread", 60*time.Second, "BenchmarkIsolation: the healthy credentials are due over this span")
	benchIsoBad    = flag.Int("bench.iso.bad", 1, "BenchmarkIsolation: credentials whose provider fails or hangs, due in the first tenth of the span")
)

// BenchmarkIsolation measures the scheduling lag of healthy credentials
// alone ("none"), and beside -bench.iso.bad credentials whose provider
// fails every mint at once ("fail") or hangs every mint until the step
// timeout ("hang", the worse case: each attempt holds a worker for the
// timeout). The engine runs as serve does (scheduler, sealer) with a 2 s
// step timeout, a 1–2 s backoff and 3 attempts, so the bad credentials
// reach needs_attention within the run. Reported: the healthy runs' lag
// p50/p99/max; the benchmark fails unless every bad credential ends
// needs_attention and every healthy run succeeds.
func BenchmarkIsolation(b *testing.B) {
	for _, d := range benchDialects {
		for _, mode := range []string{"none", "fail", "hang"} {
			b.Run(d+"/"+mode, func(b *testing.B) {
				for b.Loop() {
					benchIsolationOnce(b, d, mode)
				}
			})
		}
	}
}

func benchIsolationOnce(b *testing.B, d, mode string) {
	ctx := b.Context()
	n, spread := *benchIsoCreds, *benchIsoSpread
	bad := 0
	if mode != "none" {
		bad = *benchIsoBad
	}
	h := newBenchHarness(b, d)
	e, err := rotation.New(rotation.Options{Store: h.s, Keyring: h.kr, RunbookDir: benchRunbookDir,
		StepTimeout: 2 * time.Second, BackoffBase: time.Second, BackoffMax: 2 * time.Second, MaxAttempts: 3})
	if err != nil {
		b.Fatal(err)
	}
	h.e = e
	base := time.Now().Add(10 * time.Second).Truncate(time.Second)
	h.seed(n+bad, func(i int) time.Time {
		if i < bad { // the bad ones, due in the first tenth of the span
			return base.Add(spread / 10 * time.Duration(i+1) / time.Duration(bad+1))
		}
		return base.Add(spread * time.Duration(i-bad) / time.Duration(n))
	})
	if time.Until(base) < 3*time.Second {
		b.Fatalf("seeding ended %s before the first due time", time.Until(base).Round(time.Millisecond))
	}
	badIDs := map[string]bool{}
	if bad > 0 {
		dir := b.TempDir()
		control := filepath.Join(dir, "control.json")
		verb := map[string]string{"fail": "fail", "hang": "hang"}[mode]
		if err := os.WriteFile(control, fmt.Appendf(nil, `{%q: ["mint"]}`, verb), 0o600); err != nil {
			b.Fatal(err)
		}
		ids := make([]string, bad)
		for i := range ids {
			ids[i] = fmt.Sprintf("bench-%06d", i) // as seeded
		}
		creds, err := h.s.ListCredentials(ctx, store.CredentialFilter{IDs: ids})
		if err == nil && len(creds) != bad {
			err = fmt.Errorf("found %d of the %d credentials to break", len(creds), bad)
		}
		if err != nil {
			b.Fatal(err)
		}
		err = h.s.InTx(ctx, func(tx store.Tx) error {
			if err := tx.UpsertProvider(ctx, store.Provider{Name: "bench-bad", Type: "faulty", SpecHash: "bench",
				Settings: settings.Map{"control_file": control, "state_dir": dir}}); err != nil {
				return err
			}
			for _, c := range creds {
				c.Provider = "bench-bad"
				badIDs[c.ID] = true
				if err := tx.UpsertCredentialSpec(ctx, c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	r := h.startRunner(benchServeLikeOptions(h))
	end := base.Add(spread)
	deadline := end.Add(5 * time.Minute)
	badList := slices.Collect(maps.Keys(badIDs))
	for {
		total, active := h.countRuns()
		// Every healthy credential has its run, and every run has ended.
		if time.Now().After(end) && active == 0 && total-h.countRunsOf(badList) >= n && h.allNeedAttention(badIDs) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d runs (%d active) at the deadline, want %d healthy runs finished and %d credentials needing attention", total, active, n, bad)
		}
		time.Sleep(250 * time.Millisecond)
	}
	h.stop(r)

	runs, err := h.s.ListRuns(ctx, store.RunFilter{})
	if err != nil {
		b.Fatal(err)
	}
	var lags []time.Duration
	badRuns := 0
	for _, run := range runs {
		if badIDs[run.CredentialID] {
			badRuns++
			continue
		}
		if run.State != string(rotation.StateSucceeded) {
			b.Errorf("healthy run %s of %s: %s %q", run.ID, run.CredentialID, run.State, run.Error)
		}
		lags = append(lags, run.StartedAt.Sub(rotation.OptionsOf(run).DueAt))
	}
	if len(lags) != n {
		b.Fatalf("%d healthy runs, want %d", len(lags), n)
	}
	slices.Sort(lags)
	p := func(q float64) time.Duration { return lags[min(len(lags)-1, int(q*float64(len(lags))))] }
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.Logf("%s/%s: %d healthy runs due at %.0f/s: lag p50 %s p99 %s max %s; %d bad credentials (%d runs, each credential ended needs_attention)",
		d, mode, n, float64(n)/spread.Seconds(), p(0.5), p(0.99), lags[len(lags)-1], bad, badRuns)
	b.ReportMetric(ms(p(0.5)), "lag-p50-ms")
	b.ReportMetric(ms(p(0.99)), "lag-p99-ms")
	b.ReportMetric(ms(lags[len(lags)-1]), "lag-max-ms")
	b.ReportMetric(float64(badRuns), "bad-runs")
}

// countRunsOf counts the runs of the credentials ids.
func (h *benchHarness) countRunsOf(ids []string) int {
	if len(ids) == 0 {
		return 0
	}
	runs, err := h.s.ListRuns(h.b.Context(), store.RunFilter{CredentialIDs: ids})
	if err != nil {
		h.b.Fatal(err)
	}
	return len(runs)
}

// allNeedAttention reports whether every credential in ids needs attention.
func (h *benchHarness) allNeedAttention(ids map[string]bool) bool {
	for id := range ids {
		c, err := h.s.GetCredential(h.b.Context(), id)
		if err != nil {
			h.b.Fatal(err)
		}
		if c.State.Status != store.StatusNeedsAttention {
			return false
		}
	}
	return true
}
