package report_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/cpustat"
	"github.com/rotatorhq/rotator/internal/report"
	"github.com/rotatorhq/rotator/internal/store"
)

// BenchmarkReportHTML writes the HTML report of a database holding
// ROTATOR_BENCH_REPORT_EVENTS audit events (default 100,000; the goal is
// set for 1,000,000: at most 10 s and 200 MB resident), one credential per
// 100 events and one run per 10 events in the 30-day period (5% rolled
// back, 1% emergencies). It reports the seconds per report and the peak
// resident memory of the report alone (the peak is reset after seeding),
// and the CPU time the report took in this process, which depends far less
// on the machine's load than the wall time.
// Seeding takes minutes at full scale.
func BenchmarkReportHTML(b *testing.B) {
	events := 100_000
	if v := os.Getenv("ROTATOR_BENCH_REPORT_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("ROTATOR_BENCH_REPORT_EVENTS=%q: want a number of at least 1000", v)
		}
		events = n
	}
	for _, name := range []string{"postgres", "sqlite"} {
		b.Run(fmt.Sprintf("%s/events=%d", name, events), func(b *testing.B) {
			st, _ := dialects[name](b)
			start := time.Now()
			seedLarge(b, st, events)
			b.Logf("seeded %d events in %s", events, time.Since(start).Round(time.Second))
			dir, err := filepath.Abs("../..")
			if err != nil {
				b.Fatal(err)
			}
			out := filepath.Join(b.TempDir(), "report.html")
			runtime.GC()
			debug.FreeOSMemory()
			resetPeakRSS(b)
			cpu0 := cpustat.Self()
			b.ResetTimer()
			var stats report.Stats
			for b.Loop() {
				f, err := os.Create(out)
				if err != nil {
					b.Fatal(err)
				}
				stats, err = report.Write(context.Background(), st, f, report.Options{
					Format: report.FormatHTML, Now: now, Since: now.Add(-30 * 24 * time.Hour), RunbookDir: dir, Parallel: parallel[name],
				})
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((cpustat.Self()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(peakRSS(b))/(1<<20), "peak-RSS-MB")
			if fi, err := os.Stat(out); err == nil {
				b.ReportMetric(float64(fi.Size())/(1<<20), "report-MB")
			}
			if stats.Audit.Checked != int64(events) || stats.Credentials != events/100 || stats.Runs != events/10 {
				b.Fatalf("report covered %d events, %d credentials, %d runs", stats.Audit.Checked, stats.Credentials, stats.Runs)
			}
		})
	}
}

// parallel is what rotator report uses for the audit check per store.
var parallel = map[string]int{"postgres": 4, "sqlite": 1}

// seedLarge writes events/100 credentials, events/10 runs spread over the
// 30 days before now and events audit events (10 per run), then seals them.
func seedLarge(b *testing.B, st store.Store, events int) {
	b.Helper()
	ctx := context.Background()
	creds, runs := events/100, events/10
	day := 24 * time.Hour
	err := st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.UpsertProvider(ctx, store.Provider{Name: "gen", Type: "generated", CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		for i := range creds {
			id := fmt.Sprintf("cred-%05d", i)
			issued := now.Add(-time.Duration(i%40) * day)
			if err := tx.UpsertCredentialSpec(ctx, store.Credential{
				ID: id, Consumer: fmt.Sprintf("mcp-server-%d", i%50), Provider: "gen", Scope: []string{"repo:read", "issues:write"},
				Owner: "platform-team", Labels: map[string]string{"team": fmt.Sprintf("t%d", i%10), "env": "prod"},
				Policy: store.Policy{MaxAge: 30 * day}, Runbook: "runbooks/generated.md#rotation", CreatedAt: now.Add(-90 * day), UpdatedAt: now,
			}); err != nil {
				return err
			}
			v := store.Version{ID: id + "-v1", CredentialID: id, Stage: store.StageCurrent, Sealed: []byte("x"), KeyID: "k",
				Fingerprint: fmt.Sprintf("%016x", i), CreatedAt: issued, ActivatedAt: issued, GrantedScope: []string{"repo:read", "issues:write"}}
			if err := tx.InsertVersion(ctx, v); err != nil {
				return err
			}
			if err := tx.UpdateCredentialState(ctx, id, store.CredentialState{
				Status: store.StatusHealthy, CurrentVersionID: v.ID, LastRotatedAt: issued, NextRotationAt: issued.Add(24 * day),
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("seed credentials: %v", err)
	}
	const chunk = 500
	span := 30 * day
	for start := 0; start < runs; start += chunk {
		var batch []store.Run
		var steps []store.Step
		var evs []store.AuditEvent
		for i := start; i < min(start+chunk, runs); i++ {
			created := now.Add(-span + span/time.Duration(runs)*time.Duration(i))
			r := store.Run{
				ID: fmt.Sprintf("run-%07d", i), CredentialID: fmt.Sprintf("cred-%05d", i%creds), Trigger: store.TriggerSchedule,
				Actor: "scheduler", State: "succeeded", Attempt: 1,
				Runbook:   store.RunbookRef{Path: "runbooks/generated.md", Anchor: "rotation", Digest: "sha256:0123"},
				CreatedAt: created, StartedAt: created.Add(time.Second), FinishedAt: created.Add(4 * time.Second), UpdatedAt: created.Add(4 * time.Second),
			}
			switch {
			case i%100 == 7:
				r.Trigger, r.Actor, r.Reason = store.TriggerEmergency, "oncall", "suspected leak in INC-"+strconv.Itoa(i)
			case i%20 == 3:
				r.State, r.Error = "rolled_back", "verify failed: provider answered 403"
				for s, name := range []string{"mint", "activate", "verify"} {
					state := "ok"
					if name == "verify" {
						state = "failed"
					}
					steps = append(steps, store.Step{RunID: r.ID, Seq: s, Name: name, State: state, StartedAt: created, FinishedAt: created})
				}
			}
			batch = append(batch, r)
			for k, action := range []string{"run.planned", "run.mint", "run.activate", "run.stage:out", "run.verify",
				"run.promote:out", "run.cut_over", "run.cutover", "run.revoke_previous", "run.succeeded"} {
				data, _ := json.Marshal(map[string]any{"step": action, "outcome": "ok", "fingerprint": fmt.Sprintf("%016x", i), "attempt": 1})
				evs = append(evs, store.AuditEvent{OccurredAt: created.Add(time.Duration(k) * time.Millisecond), Actor: r.Actor, Action: action,
					CredentialID: r.CredentialID, RunID: r.ID, Data: data})
			}
		}
		err := st.InTx(ctx, func(tx store.Tx) error {
			if _, err := tx.InsertRunsIfIdle(ctx, batch); err != nil {
				return err
			}
			if len(steps) > 0 {
				if err := tx.InsertStep(ctx, steps...); err != nil {
					return err
				}
			}
			return tx.InsertAuditEvents(ctx, evs...)
		})
		if err != nil {
			b.Fatalf("seed runs: %v", err)
		}
	}
	if _, err := audit.NewSealer(st, audit.SealerOptions{Batch: 5000}).Seal(ctx, 0); err != nil {
		b.Fatalf("seal: %v", err)
	}
}

// resetPeakRSS resets the process's peak resident set size (Linux).
func resetPeakRSS(b *testing.B) {
	b.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset the peak RSS (%v): it includes seeding", err)
	}
}

// peakRSS returns the peak resident set size in bytes (VmHWM, Linux).
func peakRSS(b *testing.B) int64 {
	b.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Logf("no /proc/self/status: %v", err)
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
