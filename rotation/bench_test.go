package rotation_test

// Engine benchmarks (docs/benchmarks.md). They only run with -bench:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./rotation/
//
// Every benchmark seeds its credentials in bulk through the store (a
// provider of type generated, no targets, grace 0, a real runbook), runs a
// Runner in this process and reports custom metrics:
//
//	BenchmarkRotations      rotations/s from Rotate until every run is terminal
//	BenchmarkSchedulingLag  lag-p50-ms, lag-p99-ms (run started_at − due time)
//	                        and rss-MB / go-heap-MB with 100,000 credentials
//	BenchmarkEmergency10k   seconds for an emergency rotation of 10,000
//
// Sizes and knobs are flags, passed after -args, e.g.
//
//	go test -run '^$' -bench Lag/postgres -benchtime 1x ./rotation/ -args -bench.lag.creds=20000

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/cpustat"
	"github.com/rotatorhq/rotator/internal/gctune"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/rotation"
)

var (
	benchRotations    = flag.Int("bench.rotations", 20000, "credentials rotated per iteration of BenchmarkRotations")
	benchWorkers      = flag.Int("bench.workers", 100, "Runner workers (RunnerOptions.Workers)")
	benchLagCreds     = flag.Int("bench.lag.creds", 100000, "credentials of BenchmarkSchedulingLag")
	benchLagLead      = flag.Duration("bench.lag.lead", 60*time.Second, "BenchmarkSchedulingLag: first due time after the start of seeding")
	benchLagSpread    = flag.Duration("bench.lag.spread", 40*time.Second, "BenchmarkSchedulingLag: due times are spread evenly over this span")
	benchLagDue       = flag.Int("bench.lag.due", 0, "BenchmarkSchedulingLag: only this many of the credentials come due during the span, the others a day later (0: all of them)")
	benchEmergency    = flag.Int("bench.emergency", 10000, "credentials of BenchmarkEmergency10k")
	benchTick         = flag.Duration("bench.tick", 0, "RunnerOptions.TickInterval (0: the default)")
	benchBatch        = flag.Int("bench.batch", 0, "RunnerOptions.SchedulerBatch (0: the default)")
	benchFetchPoll    = flag.Duration("bench.fetchpoll", 0, "RunnerOptions.FetchPollInterval (0: the default)")
	benchPoolConns    = flag.Int("bench.pgconns", 0, "Postgres pool size (0: the store's default)")
	benchGroupCommits = flag.Int("bench.groups", -1, "Postgres group commits in flight (0: every transaction alone; -1: the store's default)")
	benchProvType     = flag.String("bench.provider", "generated", "provider type of the seeded credentials: generated (not revocable: cut-over and retirement share a commit) or faulty (revocable, in memory: three commits)")
	benchPgSetup      = flag.String("bench.pgsetup", "", "SQL run on the Postgres schema after migrating (experiments, e.g. dropping an index)")
	benchServe        = flag.String("bench.serve", "", "BenchmarkSchedulingLag: path of a rotator binary; its `serve` (a separate process, with its own sealer and --workers -bench.workers) does the work instead of a Runner in this process, and its RSS is measured")
	benchFileTgts     = flag.Int("bench.filetargets", 0, "bind credential i to file target i mod N (dotenv files in a temporary directory; 0: no targets)")
	benchRotSealer    = flag.Bool("bench.rot.sealer", false, "BenchmarkRotations: run the Runner as serve does (scheduler on, audit sealer as a leader task)")
	benchNotify       = flag.Bool("bench.notify", false, "BenchmarkRotations and BenchmarkSchedulingLag: the engine writes every notification kind to the outbox, the machine kinds (staged, cut_over, retired: three rows per rotation) too, as serve does when a route asks for them")
	benchSealer       = flag.Bool("bench.sealer", true, "BenchmarkSchedulingLag: run the audit sealer as a leader task, as serve does")
)

// benchSealerBatches mirrors serve's sealer batches per scheduler slice
// (cmd/rotator sealerBatchesPerSlice).
const benchSealerBatches = 20

// The credentials' runbook: the repository's own, so runs resolve and hash
// a real file.
const (
	benchRunbookDir = ".."
	benchRunbook    = "runbooks/generated.md#rotation"
	benchProvider   = "bench-gen"
)

var benchDialects = []string{"postgres", "sqlite"}

// BenchmarkRotations measures sustained rotations per second: each
// iteration rotates every seeded credential (a manual Rotate of all) and
// waits until every run is terminal. Each rotation mints, cuts over and
// retires the previous version (grace 0): three commits after the run is
// created.
func BenchmarkRotations(b *testing.B) {
	for _, d := range benchDialects {
		b.Run(d, func(b *testing.B) {
			n := *benchRotations
			// The machine's yardstick, measured before and after in the
			// same run: the engine's figure is reported as a multiple of
			// pgbench -N's tps too (the goal is 0.3 or more), and pgbench
			// -C -N (a new connection per transaction) tells how dear
			// connections are here.
			var yard []float64 // -N, -C -N before; then after
			if d == "postgres" && *benchPgbench {
				yard = append(yard, benchPgbenchOnce(b, "-N", "-C -N")...)
			}
			h := newBenchHarness(b, d)
			h.seed(n, func(int) time.Time { return time.Now().Add(30 * 24 * time.Hour) })
			ropts := rotation.RunnerOptions{Workers: *benchWorkers}
			if *benchRotSealer {
				ropts.Scheduler = true
				ropts.LeaderTasks = append(ropts.LeaderTasks, audit.NewSealer(h.s, audit.SealerOptions{}).Task(benchSealerBatches))
				b.Logf("%s: scheduler and audit sealer on", d)
			}
			r := h.startRunner(ropts)
			var total, steadyT time.Duration
			rotated, steadyN := 0, 0
			cost := h.startCost()
			for b.Loop() {
				t0 := time.Now()
				started, err := h.e.Rotate(b.Context(), rotation.Request{
					Selection: rotation.Selection{All: true}, Trigger: store.TriggerManual, Actor: "bench",
				})
				if err != nil {
					b.Fatal(err)
				}
				enqueued := time.Since(t0)
				ids := benchRunIDs(b, started, n)
				last, finished := h.waitTerminal(ids, t0, 10*time.Minute)
				total += last.Sub(t0)
				rotated += len(ids)
				// Steady state: the runs finished after Rotate returned,
				// when workers no longer share the machine with the
				// enqueueing of 20,000 runs.
				from := t0.Add(enqueued)
				for _, f := range finished {
					if !f.Before(from) {
						steadyN++
					}
				}
				steadyT += last.Sub(from)
				b.Logf("%s: %d rotations in %s (%.0f/s; Rotate returned after %s; %.0f/s after that) with %d workers",
					d, len(ids), last.Sub(t0).Round(time.Millisecond), float64(len(ids))/last.Sub(t0).Seconds(),
					enqueued.Round(time.Millisecond), float64(steadyN)/steadyT.Seconds(), *benchWorkers)
			}
			h.stop(r)
			cost.report(rotated)
			b.ReportMetric(float64(rotated)/total.Seconds(), "rotations/s")
			b.ReportMetric(float64(steadyN)/steadyT.Seconds(), "steady-rot/s")
			if len(yard) > 0 {
				yard = append(yard, benchPgbenchOnce(b, "-N", "-C -N")...)
				mean := (yard[0] + yard[2]) / 2
				b.ReportMetric(mean, "pgbench-N-tps")
				b.ReportMetric((yard[1]+yard[3])/2, "pgbench-CN-tps")
				b.ReportMetric(float64(rotated)/total.Seconds()/mean, "x-pgbench-N")
				b.Logf("%s: %.0f rotations/s against pgbench -N %.0f tps before and %.0f after: %.2fx (pgbench -C -N %.0f and %.0f tps)",
					d, float64(rotated)/total.Seconds(), yard[0], yard[2], float64(rotated)/total.Seconds()/mean, yard[1], yard[3])
			}
		})
	}
}

// BenchmarkSchedulingLag seeds 100,000 credentials whose next rotation is
// spread evenly over [lead, lead+spread) after seeding began, runs a Runner
// with the scheduler, and reports the lag between each run's due time
// (RunOptions.DueAt) and its start (started_at, when a worker began to
// mint), and the process's peak RSS and Go heap while serving.
func BenchmarkSchedulingLag(b *testing.B) {
	for _, d := range benchDialects {
		b.Run(d, func(b *testing.B) {
			for b.Loop() {
				benchLagOnce(b, d)
			}
		})
	}
}

func benchLagOnce(b *testing.B, d string) {
	total := *benchLagCreds
	n := total // the credentials that come due during the span
	if *benchLagDue > 0 && *benchLagDue < total {
		n = *benchLagDue
	}
	lead, spread := *benchLagLead, *benchLagSpread
	h := newBenchHarness(b, d)
	base := time.Now().Add(lead).Truncate(time.Second)
	seedStart := time.Now()
	h.seed(total, func(i int) time.Time {
		if i >= n {
			return base.Add(24 * time.Hour)
		}
		return base.Add(spread * time.Duration(i) / time.Duration(n))
	})
	b.Logf("%s: seeded %d credentials in %s; %d of them due over %s", d, total, time.Since(seedStart).Round(time.Millisecond), n, spread)
	if time.Until(base) < 5*time.Second {
		b.Fatalf("seeding ended %s before the first due time; raise -bench.lag.lead", time.Until(base).Round(time.Millisecond))
	}

	runtime.GC()
	debug.FreeOSMemory()
	opts := benchServeLikeOptions(h)
	end := base.Add(spread)
	var rssPeak, heapPeak, rssIdle uint64
	if *benchServe != "" {
		// A rotator serve process does the work; this one only watches.
		srv := h.startServe(*benchServe, *benchWorkers)
		h.waitScheduled(n, end.Add(10*time.Minute))
		rssPeak, rssIdle = srv.stop()
		b.Logf("%s: rotator serve (pid %d, --workers %d): RSS after start %.0f MB, peak %.0f MB (VmHWM)", d, srv.cmd.Process.Pid, *benchWorkers, benchMB(rssIdle), benchMB(rssPeak))
	} else {
		mem := benchStartMem(250 * time.Millisecond)
		cost := h.startCost()
		r := h.startRunner(opts)
		// Every credential is due by end; wait for the runs to finish.
		h.waitScheduled(n, end.Add(10*time.Minute))
		rssPeak, heapPeak, rssIdle = mem.stop()
		h.stop(r)
		cost.report(n)
	}

	runs, err := h.s.ListRuns(b.Context(), store.RunFilter{})
	if err != nil {
		b.Fatal(err)
	}
	lags := make([]time.Duration, 0, len(runs))
	failed := 0
	var firstStart, lastFinish time.Time
	for _, run := range runs {
		if run.State != string(rotation.StateSucceeded) {
			failed++
		}
		due := rotation.OptionsOf(run).DueAt
		if due.IsZero() || run.StartedAt.IsZero() {
			b.Fatalf("run %s (%s) has no due time or start", run.ID, run.State)
		}
		lags = append(lags, run.StartedAt.Sub(due))
		if firstStart.IsZero() || run.StartedAt.Before(firstStart) {
			firstStart = run.StartedAt
		}
		if run.FinishedAt.After(lastFinish) {
			lastFinish = run.FinishedAt
		}
	}
	if failed > 0 {
		b.Errorf("%d of %d runs did not succeed", failed, len(runs))
	}
	slices.Sort(lags)
	p := func(q float64) time.Duration { return lags[min(len(lags)-1, int(q*float64(len(lags))))] }
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	unsealed := 0
	err = h.s.ScanAuditEvents(b.Context(), store.AuditFilter{Unsealed: true}, func(store.AuditEvent) error { unsealed++; return nil })
	if err != nil {
		b.Fatal(err)
	}
	sealer := fmt.Sprint(*benchSealer)
	if *benchServe != "" {
		sealer = "serve's own"
	}
	b.Logf("%s: sealer %s, %d audit events unsealed at the end", d, sealer, unsealed)
	b.Logf("%s: %d runs, %d workers, due over %s (%.0f/s): lag p50 %s p90 %s p99 %s max %s; last run finished %s after the last due time; rss idle %.0f MB, peak %.0f MB; go heap+stacks peak %.0f MB (0: not measured)",
		d, len(runs), opts.Workers, spread, float64(n)/spread.Seconds(), p(0.5), p(0.9), p(0.99), lags[len(lags)-1],
		lastFinish.Sub(end).Round(time.Millisecond), benchMB(rssIdle), benchMB(rssPeak), benchMB(heapPeak))
	b.ReportMetric(ms(p(0.5)), "lag-p50-ms")
	b.ReportMetric(ms(p(0.99)), "lag-p99-ms")
	b.ReportMetric(ms(lags[len(lags)-1]), "lag-max-ms")
	b.ReportMetric(benchMB(rssPeak), "rss-MB")
	if *benchServe == "" {
		b.ReportMetric(benchMB(heapPeak), "go-heap-MB")
	}
}

// benchServeLikeOptions are the Runner options of the lag benchmarks: the
// scheduler on and, unless -bench.sealer=false, the audit sealer as a
// leader task, as serve runs them.
func benchServeLikeOptions(h *benchHarness) rotation.RunnerOptions {
	opts := rotation.RunnerOptions{Workers: *benchWorkers, Scheduler: true, TickInterval: *benchTick,
		SchedulerBatch: *benchBatch, FetchPollInterval: *benchFetchPoll}
	if *benchSealer {
		opts.LeaderTasks = append(opts.LeaderTasks, audit.NewSealer(h.s, audit.SealerOptions{}).Task(benchSealerBatches))
	}
	return opts
}

// benchServeProc is a rotator serve process working on the harness's store.
type benchServeProc struct {
	b       *testing.B
	cmd     *exec.Cmd
	rssIdle uint64
}

// startServe starts `rotator serve` on the harness's database and master
// key, from the repository root (where the credentials' runbook resolves),
// and waits until it is ready.
func (h *benchHarness) startServe(bin string, workers int) *benchServeProc {
	b := h.b
	b.Helper()
	log, err := os.Create(filepath.Join(b.TempDir(), "serve.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = log.Close() })
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--workers", strconv.Itoa(workers))
	cmd.Dir = benchRunbookDir
	cmd.Env = append(os.Environ(), "ROTATOR_DATABASE_URL="+h.url, "ROTATOR_MASTER_KEY="+h.keyB64)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	srv := &benchServeProc{b: b, cmd: cmd}
	b.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(log.Name())
		if strings.Contains(string(data), "rotator serving") {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("rotator serve did not start:\n%s", data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.rssIdle = procStatus(cmd.Process.Pid, "VmRSS:")
	return srv
}

// stop ends the serve process (SIGTERM) and returns its peak RSS (VmHWM)
// and its RSS once it was serving.
func (s *benchServeProc) stop() (peak, idle uint64) {
	peak = procStatus(s.cmd.Process.Pid, "VmHWM:")
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.cmd.Wait(); err != nil {
		s.b.Errorf("rotator serve: %v", err)
	}
	return peak, s.rssIdle
}

// BenchmarkEmergency10k measures an emergency rotation of 10,000
// credentials: Rotate(Emergency) from a Runner's process until every run
// is terminal.
func BenchmarkEmergency10k(b *testing.B) {
	for _, d := range benchDialects {
		b.Run(d, func(b *testing.B) {
			n := *benchEmergency
			h := newBenchHarness(b, d)
			h.seed(n, func(int) time.Time { return time.Now().Add(30 * 24 * time.Hour) })
			r := h.startRunner(rotation.RunnerOptions{Workers: *benchWorkers})
			var total time.Duration
			iters := 0
			cost := h.startCost()
			for b.Loop() {
				t0 := time.Now()
				started, err := h.e.Rotate(b.Context(), rotation.Request{
					Selection: rotation.Selection{All: true}, Actor: "bench", Reason: "benchmark: leaked", Emergency: true,
				})
				if err != nil {
					b.Fatal(err)
				}
				enqueued := time.Since(t0)
				ids := benchRunIDs(b, started, n)
				last, _ := h.waitTerminal(ids, t0, 10*time.Minute)
				total += last.Sub(t0)
				iters++
				b.Logf("%s: emergency rotation of %d credentials took %s (Rotate returned after %s) with %d workers",
					d, n, last.Sub(t0).Round(time.Millisecond), enqueued.Round(time.Millisecond), *benchWorkers)
			}
			h.stop(r)
			cost.report(n * iters)
			b.ReportMetric(total.Seconds()/float64(iters), "s/emergency")
			b.ReportMetric(float64(n*iters)/total.Seconds(), "rotations/s")
		})
	}
}

// benchHarness is one store, engine and keyring.
type benchHarness struct {
	b      *testing.B
	s      store.Store
	e      *rotation.Engine
	kr     secret.Keyring
	url    string // the store's database URL
	keyB64 string // the master key, base64 (for a rotator serve process)
}

func newBenchHarness(b *testing.B, dialect string) *benchHarness {
	b.Helper()
	b.Logf("%s: load average at start %s; provider type %s; %d file targets", dialect, benchLoad(), *benchProvType, *benchFileTgts)
	b.Cleanup(func() { b.Logf("%s: load average at end %s", dialect, benchLoad()) })
	// The collector as serve and rotate set it (GOGC in the environment
	// wins, as it does for them).
	if gctune.Apply() {
		b.Cleanup(func() { debug.SetGCPercent(100) })
		b.Logf("%s: GOGC %d, as serve sets it", dialect, gctune.Percent)
	} else {
		b.Logf("%s: GOGC %s, from the environment", dialect, os.Getenv("GOGC"))
	}
	ctx := b.Context()
	var s store.Store
	var url string
	switch dialect {
	case "postgres":
		opts := []postgres.Option{postgres.WithPool(func(c *pgxpool.Config) { c.ConnConfig.Tracer = &benchStatements })}
		if *benchPoolConns > 0 {
			opts = append(opts, postgres.WithMaxConns(int32(*benchPoolConns)))
		}
		if *benchGroupCommits >= 0 {
			opts = append(opts, postgres.WithGroupCommits(*benchGroupCommits))
		}
		b.Logf("%s: group commits in flight: %d (-1: the store's default)", dialect, *benchGroupCommits)
		url = testpg.New(b)
		ps, err := postgres.Open(ctx, url, opts...)
		if err != nil {
			b.Fatal(err)
		}
		s = ps
	case "sqlite":
		url = "sqlite://" + b.TempDir() + "/bench.db"
		ss, err := sqlite.Open(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		s = ss
	default:
		b.Fatalf("unknown dialect %s", dialect)
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	if err := rotation.MigrateQueue(ctx, s); err != nil {
		b.Fatal(err)
	}
	if pool, ok := s.Handle().(*pgxpool.Pool); ok && *benchPgSetup != "" {
		if _, err := pool.Exec(ctx, *benchPgSetup); err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: ran %q", dialect, *benchPgSetup)
	}
	raw := make([]byte, secret.KeySize)
	_, _ = rand.Read(raw)
	keyB64 := base64.StdEncoding.EncodeToString(raw)
	key, err := secret.ParseKey(keyB64)
	if err != nil {
		b.Fatal(err)
	}
	kr, err := secret.NewKeyring(key)
	if err != nil {
		b.Fatal(err)
	}
	opts := rotation.Options{Store: s, Keyring: kr, RunbookDir: benchRunbookDir}
	if *benchNotify {
		opts.NotifyKinds = func(notify.Kind) bool { return true }
	}
	e, err := rotation.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	return &benchHarness{b: b, s: s, e: e, kr: kr, url: url, keyB64: keyB64}
}

// seed creates the provider and n healthy credentials, each with a sealed
// current version, due at due(i), in transactions of 1,000 credentials
// (four at once on Postgres).
func (h *benchHarness) seed(n int, due func(i int) time.Time) {
	b, ctx := h.b, h.b.Context()
	b.Helper()
	err := h.s.InTx(ctx, func(tx store.Tx) error {
		p := store.Provider{Name: benchProvider, Type: *benchProvType, SpecHash: "bench"}
		if p.Type == "generated" {
			p.Settings = settings.Map{"length": 40, "prefix": "rtr_"}
		}
		if err := tx.UpsertProvider(ctx, p); err != nil {
			return err
		}
		if *benchFileTgts > 0 {
			dir := b.TempDir()
			for t := range *benchFileTgts {
				err := tx.UpsertTarget(ctx, store.Target{Name: fmt.Sprintf("bench-file-%03d", t), Type: "file", SpecHash: "bench",
					Settings: settings.Map{"path": filepath.Join(dir, fmt.Sprintf("mcp-%03d.env", t)), "format": "dotenv"}})
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	parallel := 1
	if h.s.Dialect() == store.DialectPostgres {
		parallel = 4
	}
	starts := make(chan int)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for start := range starts {
				if err := h.seedBatch(ctx, start, min(start+batch, n), due); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	go func() {
		defer close(starts)
		for start := 0; start < n; start += batch {
			select {
			case starts <- start:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// benchTargets binds credential i to one of -bench.filetargets files.
func benchTargets(i int) []store.TargetBinding {
	if *benchFileTgts <= 0 {
		return nil
	}
	return []store.TargetBinding{{Target: fmt.Sprintf("bench-file-%03d", i%*benchFileTgts), Key: fmt.Sprintf("CRED_%06d", i)}}
}

func (h *benchHarness) seedBatch(ctx context.Context, from, to int, due func(int) time.Time) error {
	issued := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	type row struct {
		c store.Credential
		v store.Version
	}
	rows := make([]row, 0, to-from)
	for i := from; i < to; i++ {
		id := fmt.Sprintf("bench-%06d", i)
		vid := rotation.NewID(issued)
		val := secret.New([]byte(fmt.Sprintf("rtr_seed%032d", i)))
		keyID, sealed, err := h.kr.Seal(id, vid, val)
		if err != nil {
			return err
		}
		rows = append(rows, row{
			c: store.Credential{
				ID: id, Consumer: fmt.Sprintf("mcp-server-%03d", i%500), Provider: benchProvider,
				Scope: []string{"read"}, Owner: "bench", Labels: map[string]string{"team": fmt.Sprintf("t%02d", i%50)},
				Policy: store.Policy{MaxAge: 30 * 24 * time.Hour}, Runbook: benchRunbook, SpecHash: "bench", Targets: benchTargets(i),
				State: store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: vid,
					NextRotationAt: due(i).UTC().Truncate(time.Microsecond), LastRotatedAt: issued},
			},
			v: store.Version{ID: vid, CredentialID: id, Stage: store.StageCurrent, Sealed: sealed, KeyID: keyID,
				Fingerprint: h.kr.Fingerprint(val), CreatedAt: issued, ActivatedAt: issued},
		})
	}
	return h.s.InTx(ctx, func(tx store.Tx) error {
		for _, r := range rows {
			// The credential first (the version refers to it). On
			// SQLite without its current version id, set afterwards:
			// inserting a version while a credential already points at
			// it makes SQLite scan every table that refers to versions (a
			// pending deferred foreign key), quadratic over 100,000
			// credentials. Postgres checks the pointer at commit.
			st := r.c.State
			sqliteOrder := h.s.Dialect() == store.DialectSQLite
			if sqliteOrder {
				r.c.State.CurrentVersionID = ""
			}
			if err := tx.UpsertCredentialSpec(ctx, r.c); err != nil {
				return err
			}
			if err := tx.InsertVersion(ctx, r.v); err != nil {
				return err
			}
			if sqliteOrder {
				if err := tx.UpdateCredentialState(ctx, r.c.ID, st); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (h *benchHarness) startRunner(opts rotation.RunnerOptions) *rotation.Runner {
	h.b.Helper()
	r, err := rotation.NewRunner(h.e, opts)
	if err != nil {
		h.b.Fatal(err)
	}
	if err := r.Start(h.b.Context()); err != nil {
		h.b.Fatal(err)
	}
	return r
}

func (h *benchHarness) stop(r *rotation.Runner) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.b.Context()), time.Minute)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		h.b.Errorf("stopping the runner: %v", err)
	}
}

func benchRunIDs(b *testing.B, started []rotation.Started, want int) []string {
	b.Helper()
	ids := make([]string, 0, len(started))
	for _, s := range started {
		if s.Skipped {
			b.Fatalf("credential %s skipped: %s", s.CredentialID, s.Reason)
		}
		ids = append(ids, s.RunID)
	}
	if len(ids) != want {
		b.Fatalf("started %d runs, want %d", len(ids), want)
	}
	return ids
}

// waitTerminal waits until no run is active, checks that every run in ids
// succeeded, and returns when the last of them finished.
func (h *benchHarness) waitTerminal(ids []string, since time.Time, timeout time.Duration) (time.Time, []time.Time) {
	h.b.Helper()
	deadline := time.Now().Add(timeout)
	// The figures come from the runs' finished_at, not from when this loop
	// notices, so it polls rarely while many runs remain: each count takes
	// database CPU from the rotations being measured.
	for n := h.countActive(); n > 0; n = h.countActive() {
		if time.Now().After(deadline) {
			h.b.Fatalf("runs still active after %s", timeout)
		}
		time.Sleep(min(max(time.Duration(n)*time.Second/4000, 100*time.Millisecond), 2*time.Second))
	}
	var last time.Time
	states := map[string]int{}
	finished := make([]time.Time, 0, len(ids))
	for _, r := range h.runs(ids) {
		states[r.State]++
		finished = append(finished, r.FinishedAt)
		if r.FinishedAt.After(last) {
			last = r.FinishedAt
		}
	}
	if states[string(rotation.StateSucceeded)] != len(ids) {
		h.b.Fatalf("run states %v, want %d succeeded", states, len(ids))
	}
	if last.Before(since) {
		h.b.Fatalf("last run finished at %s, before the rotation started at %s", last, since)
	}
	return last, finished
}

// waitScheduled waits until n runs exist and none is active.
func (h *benchHarness) waitScheduled(n int, deadline time.Time) {
	h.b.Helper()
	for {
		if total, active := h.countRuns(); total >= n && active == 0 {
			break
		}
		if time.Now().After(deadline) {
			total, active := h.countRuns()
			h.b.Fatalf("%d runs (%d active) at the deadline, want %d finished", total, active, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// runs reads runs by id, in pages.
func (h *benchHarness) runs(ids []string) []store.Run {
	h.b.Helper()
	out := make([]store.Run, 0, len(ids))
	for i := 0; i < len(ids); i += 5000 {
		part, err := h.s.ListRuns(h.b.Context(), store.RunFilter{IDs: ids[i:min(i+5000, len(ids))]})
		if err != nil {
			h.b.Fatal(err)
		}
		out = append(out, part...)
	}
	return out
}

// countActive counts the active runs (through the partial unique index of
// active runs). Every count takes database CPU from the rotations being
// measured, so waitTerminal calls it rarely while many runs remain
// (counting the whole runs table every 100 ms took about 3% of it).
func (h *benchHarness) countActive() int {
	h.b.Helper()
	const q = `SELECT count(*) FROM runs WHERE active`
	ctx := h.b.Context()
	var n int
	var err error
	switch db := h.s.Handle().(type) {
	case *pgxpool.Pool:
		err = db.QueryRow(ctx, q).Scan(&n)
	case *sql.DB:
		err = db.QueryRowContext(ctx, q).Scan(&n)
	default:
		err = errors.New("unknown store handle")
	}
	if err != nil {
		h.b.Fatal(err)
	}
	return n
}

// countRuns counts all and active runs with one query on the store's
// handle.
func (h *benchHarness) countRuns() (total, active int) {
	h.b.Helper()
	const q = `SELECT count(*), coalesce(sum(CASE WHEN active THEN 1 ELSE 0 END), 0) FROM runs`
	ctx := h.b.Context()
	var err error
	switch db := h.s.Handle().(type) {
	case *pgxpool.Pool:
		err = db.QueryRow(ctx, q).Scan(&total, &active)
	case *sql.DB:
		err = db.QueryRowContext(ctx, q).Scan(&total, &active)
	default:
		err = errors.New("unknown store handle")
	}
	if err != nil {
		h.b.Fatal(err)
	}
	return total, active
}

// benchMem records the peak resident set size (VmRSS) and the peak Go
// heap objects + goroutine stacks (runtime/metrics) of this process.
type benchMem struct {
	done             chan struct{}
	wg               sync.WaitGroup
	mu               sync.Mutex
	rssPeak, goPeak  uint64
	rssIdle          uint64
	heapMetricSample []metrics.Sample
}

func benchStartMem(every time.Duration) *benchMem {
	m := &benchMem{done: make(chan struct{}), heapMetricSample: []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"},
	}}
	m.rssIdle = benchRSS()
	m.sample()
	m.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.done:
				return
			case <-t.C:
				m.sample()
			}
		}
	})
	return m
}

func (m *benchMem) sample() {
	r := benchRSS()
	metrics.Read(m.heapMetricSample)
	g := m.heapMetricSample[0].Value.Uint64() + m.heapMetricSample[1].Value.Uint64()
	m.mu.Lock()
	m.rssPeak, m.goPeak = max(m.rssPeak, r), max(m.goPeak, g)
	m.mu.Unlock()
}

// stop returns the peak RSS, the peak Go heap+stacks and the RSS when
// sampling started.
func (m *benchMem) stop() (rssPeak, goPeak, rssIdle uint64) {
	m.sample()
	close(m.done)
	m.wg.Wait()
	return m.rssPeak, m.goPeak, m.rssIdle
}

// benchRSS returns this process's resident set size (0 where /proc is
// missing).
func benchRSS() uint64 { return procStatus(os.Getpid(), "VmRSS:") }

// procStatus returns a size field (VmRSS:, VmHWM:) of /proc/<pid>/status in
// bytes; 0 if unavailable.
func procStatus(pid int, field string) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func benchMB(b uint64) float64 { return float64(b) / (1 << 20) }

// benchCost measures what rotations cost in CPU (this process, and on
// Postgres the server processes serving the store's connections) and in
// Postgres transactions, which are independent of how busy the shared
// machine is.
type benchCost struct {
	h          *benchHarness
	self       time.Duration
	pg         map[int]time.Duration // by backend pid
	commits    int64
	credUpd    [2]int64 // credentials' updates and HOT updates
	statements int64
	trips      int64
	groups     [2]int64 // group commits and the transactions they held
}

// groupCommits returns the store's group commits and the transactions
// they held (zeros but on Postgres).
func (h *benchHarness) groupCommits() [2]int64 {
	if ps, ok := h.s.(*postgres.Store); ok {
		g, t := ps.GroupCommits()
		return [2]int64{g, t}
	}
	return [2]int64{}
}

// benchStatements counts the statements sent to Postgres (begin and commit
// included) and the round trips they took (a batch is one) by every store
// the benchmarks open.
var benchStatements benchTracer

type benchTracer struct {
	n, trips atomic.Int64
	// bySQL counts statements by their first line (with -bench.stmts).
	mu    sync.Mutex
	bySQL map[string]int64
}

var benchStmts = flag.Bool("bench.stmts", false, "log how many of each statement the Postgres benchmarks sent per rotation in the measured span (with -test.v: benchmark logs are truncated otherwise)")

func (t *benchTracer) count(sql string) {
	if !*benchStmts {
		return
	}
	sql = strings.Join(strings.Fields(sql), " ")
	if len(sql) > 110 {
		sql = sql[:110]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bySQL == nil {
		t.bySQL = make(map[string]int64)
	}
	t.bySQL[sql]++
}

// logStatements logs the counts of -bench.stmts per rotation, most first.
func (t *benchTracer) logStatements(b *testing.B, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	type kv struct {
		sql string
		n   int64
	}
	var all []kv
	for k, v := range t.bySQL {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int { return int(b.n - a.n) })
	for _, e := range all {
		if float64(e.n)/float64(n) >= 0.01 {
			b.Logf("%6.2f/rot  %s", float64(e.n)/float64(n), e.sql)
		}
	}
	clear(t.bySQL)
}

func (t *benchTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t.n.Add(1)
	t.trips.Add(1)
	t.count(d.SQL)
	return ctx
}

func (t *benchTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t *benchTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	t.n.Add(int64(d.Batch.Len()))
	t.trips.Add(1)
	if *benchStmts {
		for _, q := range d.Batch.QueuedQueries {
			t.count(q.SQL)
		}
	}
	return ctx
}

func (t *benchTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t *benchTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (h *benchHarness) startCost() *benchCost {
	benchStatements.mu.Lock()
	clear(benchStatements.bySQL) // count the measured span's statements only
	benchStatements.mu.Unlock()
	c := &benchCost{h: h, self: cpustat.Self(), statements: benchStatements.n.Load(), trips: benchStatements.trips.Load()}
	c.pg, c.commits = h.pgCost()
	c.credUpd = h.credentialUpdates()
	c.groups = h.groupCommits()
	return c
}

// report adds cpu-ms/rot, and on Postgres pg-cpu-ms/rot and commits/rot,
// for n rotations since startCost.
func (c *benchCost) report(n int) {
	b := c.h.b
	self := cpustat.Self() - c.self
	b.ReportMetric(float64(self)/float64(time.Millisecond)/float64(n), "cpu-ms/rot")
	if c.h.s.Dialect() != store.DialectPostgres {
		return
	}
	// Backends publish their transaction counts when idle, at most 10s
	// late. The statements counted meanwhile (the benchmark's own
	// queries) are left out.
	stmts, trips := benchStatements.n.Load(), benchStatements.trips.Load()
	time.Sleep(11 * time.Second)
	pg, commits := c.h.pgCost()
	var server time.Duration
	for pid, t := range pg {
		server += t - c.pg[pid]
	}
	b.ReportMetric(float64(server)/float64(time.Millisecond)/float64(n), "pg-cpu-ms/rot")
	b.ReportMetric(float64(commits-c.commits)/float64(n), "xacts/rot")
	if upd := c.h.credentialUpdates(); upd[0] > c.credUpd[0] {
		// Updates that wrote no index (migration 00014).
		b.ReportMetric(100*float64(upd[1]-c.credUpd[1])/float64(upd[0]-c.credUpd[0]), "cred-hot-%")
	}
	b.ReportMetric(float64(stmts-c.statements)/float64(n), "stmts/rot")
	b.ReportMetric(float64(trips-c.trips)/float64(n), "trips/rot")
	if g := c.h.groupCommits(); g[0] > c.groups[0] {
		b.ReportMetric(float64(g[1]-c.groups[1])/float64(g[0]-c.groups[0]), "txs/group")
	}
	if *benchStmts {
		benchStatements.logStatements(b, n)
	}
}

// pgCost returns the CPU time of the server processes of this database's
// connections and the database's committed transactions.
func (h *benchHarness) pgCost() (map[int]time.Duration, int64) {
	pool, ok := h.s.Handle().(*pgxpool.Pool)
	if !ok {
		return nil, 0
	}
	ctx := h.b.Context()
	var commits int64
	if err := pool.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`).Scan(&commits); err != nil {
		h.b.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		h.b.Fatal(err)
	}
	defer rows.Close()
	cpu := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			h.b.Fatal(err)
		}
		cpu[pid] = cpustat.Process(pid)
	}
	return cpu, commits
}

// credentialUpdates returns the updates and HOT updates of the store's
// credentials table so far, as its backends have reported them.
func (h *benchHarness) credentialUpdates() [2]int64 {
	pool, ok := h.s.Handle().(*pgxpool.Pool)
	if !ok {
		return [2]int64{}
	}
	var u [2]int64
	if err := pool.QueryRow(h.b.Context(), `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
WHERE relid = 'credentials'::regclass`).Scan(&u[0], &u[1]); err != nil {
		h.b.Fatal(err)
	}
	return u
}

// benchLoad returns the 1, 5 and 15 minute load averages: the machine is
// shared, so every figure is reported with the load it was measured under.
func benchLoad() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
