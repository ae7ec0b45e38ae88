package rotation_test

// postgres-role benchmarks (docs/benchmarks.md, "postgres-role"): the
// engine with the real postgres-role provider rotating the passwords of
// 1,000 real roles on the test server. They only run with -bench; one
// command runs them all, with the pgbench yardstick before and after:
//
//	go test -run '^$' -bench PostgresRole -benchtime 1x -timeout 60m ./rotation/
//
// BenchmarkPostgresRole/verify=<verifier|login>/scheduled: every credential
// on "@every 5s" (grace 0), the scheduler and the audit sealer running as
// serve runs them; after a warm-up, rotations/s is the number of runs that
// finished during the measured span divided by it (at most 1,000/5 s = 200/s
// plus latency). .../emergency: an emergency rotation of all 1,000, from
// Rotate until every run is terminal.
//
// Every role is a member of rotator_test_password_auth, so logins are
// checked by SCRAM (see providers/postgres's tests for the pg_hba.conf
// line); the benchmark fails if the server trusts them.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/testpg"
	pgrole "github.com/rotatorhq/rotator/providers/postgres"
	"github.com/rotatorhq/rotator/rotation"
)

var (
	benchPGRoles    = flag.Int("bench.pgrole.roles", 1000, "postgres-role benchmarks: credentials (each a group role with login roles _a and _b)")
	benchPGSchedule = flag.String("bench.pgrole.schedule", "@every 5s", "postgres-role scheduled benchmark: every credential's schedule")
	benchPGWarmup   = flag.Duration("bench.pgrole.warmup", 20*time.Second, "postgres-role scheduled benchmark: time before the measured span")
	benchPGSpan     = flag.Duration("bench.pgrole.span", 60*time.Second, "postgres-role scheduled benchmark: the measured span")
	benchPGConns    = flag.Int("bench.pgrole.maxconns", 0, "postgres-role provider: max_admin_connections (0: the provider's default)")
	benchPGIters    = flag.Int("bench.pgrole.iterations", 0, "postgres-role provider: scram_iterations (0: the provider's default)")
	benchPgbench    = flag.Bool("bench.pgbench", true, "run the pgbench yardstick (pgbench -N and pgbench -C -N) before and after the postgres-role benchmarks")
	benchPgbenchT   = flag.Duration("bench.pgbench.time", 15*time.Second, "duration of each pgbench run")
	benchPGGrace    = flag.Duration("bench.pgrole.grace", 0, "postgres-role emergency benchmark: every credential's grace period; when set, every credential is rotated first and the emergency finds it in its grace period (the emergency ends each grace, revoking the previous value, before its own run)")
)

const (
	benchPGProvider = "bench-pg"
	benchPGRunbook  = "runbooks/postgres-role.md#rotation"
	benchPGDSNEnv   = "ROTATOR_BENCH_PG_ADMIN_DSN"
	// benchPasswordGroup is the role whose members the test server
	// authenticates by password (providers/postgres tests).
	benchPasswordGroup = "rotator_test_password_auth"
)

// BenchmarkPostgresRole measures the engine with the postgres-role provider
// (alternating strategy, format url) against real roles, with each
// verification mode.
func BenchmarkPostgresRole(b *testing.B) {
	if *benchPgbench {
		b.Run("pgbench=before", benchYardstick)
	}
	for _, verify := range []string{pgrole.VerifyVerifier, pgrole.VerifyLogin} {
		b.Run("verify="+verify, func(b *testing.B) {
			b.Run("scheduled", func(b *testing.B) { benchPGScheduled(b, verify) })
			b.Run("emergency", func(b *testing.B) { benchPGEmergency(b, verify) })
		})
	}
	if *benchPgbench {
		b.Run("pgbench=after", benchYardstick)
	}
}

func benchPGScheduled(b *testing.B, verify string) {
	n := *benchPGRoles
	h := newPGRoleHarness(b, verify)
	sched, err := rotation.ParseSchedule(*benchPGSchedule)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	period := sched.Next(now).Sub(now)
	// First due times spread evenly over one period from shortly after
	// seeding, as a service that has run for a while has them.
	start := h.seedPGRoles(n, *benchPGSchedule, period)
	for b.Loop() {
		ropts := rotation.RunnerOptions{Workers: *benchWorkers, Scheduler: true}
		ropts.LeaderTasks = append(ropts.LeaderTasks, audit.NewSealer(h.s, audit.SealerOptions{}).Task(benchSealerBatches))
		r := h.startRunner(ropts)
		from := time.Now().Add(*benchPGWarmup)
		to := from.Add(*benchPGSpan)
		time.Sleep(time.Until(from))
		b.Logf("verify=%s: load average at the start of the measured span %s", verify, benchLoad())
		cost := h.startCost()
		time.Sleep(time.Until(to))
		b.Logf("verify=%s: load average at the end of the measured span %s", verify, benchLoad())
		h.stop(r)
		runs, err := h.s.ListRuns(b.Context(), store.RunFilter{Since: start.Add(-time.Minute)})
		if err != nil {
			b.Fatal(err)
		}
		var done, failed, other int
		var lags, took []time.Duration
		for _, run := range runs {
			if run.FinishedAt.Before(from) || !run.FinishedAt.Before(to) {
				continue
			}
			switch rotation.State(run.State) {
			case rotation.StateSucceeded:
				done++
			case rotation.StateFailed, rotation.StateRolledBack:
				failed++
				if failed <= 3 {
					b.Logf("run %s of %s ended %s: %s", run.ID, run.CredentialID, run.State, run.Error)
				}
			default:
				other++
			}
			if due := rotation.OptionsOf(run).DueAt; !due.IsZero() {
				lags = append(lags, run.StartedAt.Sub(due))
			}
			took = append(took, run.FinishedAt.Sub(run.StartedAt))
		}
		if done == 0 {
			b.Fatalf("no run finished during the measured span (%d runs in all)", len(runs))
		}
		cost.report(done + failed)
		rate := float64(done) / to.Sub(from).Seconds()
		b.Logf("verify=%s: %d credentials on %q: %d runs succeeded in the %s span (%.1f/s), %d failed, %d other; lag p50 %s p99 %s; run p50 %s p99 %s; %d workers, max_admin_connections %s",
			verify, n, *benchPGSchedule, done, to.Sub(from), rate, failed, other, pct(lags, 0.5), pct(lags, 0.99), pct(took, 0.5), pct(took, 0.99), *benchWorkers, benchPGConnsString())
		b.ReportMetric(rate, "rotations/s")
		b.ReportMetric(float64(failed), "failed")
		b.ReportMetric(ms(pct(lags, 0.5)), "lag-p50-ms")
		b.ReportMetric(ms(pct(lags, 0.99)), "lag-p99-ms")
		b.ReportMetric(ms(pct(took, 0.5)), "run-p50-ms")
		b.ReportMetric(ms(pct(took, 0.99)), "run-p99-ms")
		if failed > 0 {
			b.Errorf("%d runs failed during the measured span", failed)
		}
	}
}

func benchPGEmergency(b *testing.B, verify string) {
	n := *benchPGRoles
	h := newPGRoleHarness(b, verify)
	h.seedPGRoles(n, "", 0)
	r := h.startRunner(rotation.RunnerOptions{Workers: *benchWorkers})
	var total time.Duration
	iters := 0
	cost := h.startCost()
	for b.Loop() {
		if *benchPGGrace > 0 {
			h.rotateIntoGrace(n)
		}
		b.Logf("verify=%s: load average before the emergency rotation %s", verify, benchLoad())
		t0 := time.Now()
		started, err := h.e.Rotate(b.Context(), rotation.Request{
			Selection: rotation.Selection{All: true}, Actor: "bench", Reason: "benchmark: leaked", Emergency: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		enqueued := time.Since(t0)
		ids := benchRunIDs(b, started, n)
		h.logFailures(ids, t0.Add(10*time.Minute))
		last, _ := h.waitTerminal(ids, t0, 10*time.Minute)
		total += last.Sub(t0)
		iters++
		b.Logf("verify=%s: emergency rotation of %d postgres roles (grace %s) took %s (Rotate returned after %s) with %d workers, max_admin_connections %s; load average after %s",
			verify, n, *benchPGGrace, last.Sub(t0).Round(time.Millisecond), enqueued.Round(time.Millisecond), *benchWorkers, benchPGConnsString(), benchLoad())
	}
	h.stop(r)
	cost.report(n * iters)
	b.ReportMetric(total.Seconds()/float64(iters), "s/emergency")
	b.ReportMetric(float64(n*iters)/total.Seconds(), "rotations/s")
}

// rotateIntoGrace rotates every credential (not an emergency) and waits
// until each run has cut over and waits out its grace period.
func (h *pgRoleHarness) rotateIntoGrace(n int) {
	b := h.b
	started, err := h.e.Rotate(b.Context(), rotation.Request{Selection: rotation.Selection{All: true}, Actor: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ids := benchRunIDs(b, started, n)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		inGrace := 0
		for _, r := range h.runs(ids) {
			switch rotation.State(r.State) {
			case rotation.StateCutOver:
				inGrace++
			case rotation.StateSucceeded, rotation.StateRolledBack, rotation.StateFailed:
				b.Fatalf("run %s of %s ended %s before the emergency: %s", r.ID, r.CredentialID, r.State, r.Error)
			}
		}
		if inGrace == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d runs in their grace period after 10 minutes", inGrace, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logFailures waits until no run is active (or the deadline) and logs the
// errors of the first three runs of ids that did not succeed.
func (h *pgRoleHarness) logFailures(ids []string, deadline time.Time) {
	for h.countActive() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	logged := 0
	for _, r := range h.runs(ids) {
		if rotation.State(r.State) != rotation.StateSucceeded && logged < 3 {
			h.b.Logf("run %s of %s ended %s: %s", r.ID, r.CredentialID, r.State, r.Error)
			logged++
		}
	}
}

// pgRoleHarness is a benchHarness whose credentials are postgres-role
// credentials of real roles.
type pgRoleHarness struct {
	*benchHarness
	verify string
	prefix string // of every role this harness creates
}

func newPGRoleHarness(b *testing.B, verify string) *pgRoleHarness {
	b.Helper()
	// newBenchHarness logs the provider type from this flag.
	prev := *benchProvType
	*benchProvType = pgrole.Type + " (verify: " + verify + ")"
	h := newBenchHarness(b, "postgres")
	*benchProvType = prev
	// The provider's admin pool is the engine's to close (after the
	// benchmark has stopped its runner, before the store closes).
	b.Cleanup(h.e.Close)
	raw := make([]byte, 4)
	_, _ = rand.Read(raw)
	return &pgRoleHarness{benchHarness: h, verify: verify, prefix: "rtr_bench_" + hex.EncodeToString(raw)}
}

// benchPGConnsString describes the provider's pool size and iteration
// count for the log.
func benchPGConnsString() string {
	s := strconv.Itoa(pgrole.DefaultMaxAdminConnections) + " (default)"
	if *benchPGConns > 0 {
		s = strconv.Itoa(*benchPGConns)
	}
	if *benchPGIters > 0 {
		s += ", scram_iterations " + strconv.Itoa(*benchPGIters)
	}
	return s
}

// seedPGRoles creates n group roles <prefix>_NNNN (members of the password
// group), each with login roles _a (LOGIN, a password) and _b (NOLOGIN),
// and n credentials whose current version is _a's password, on schedule
// (none when empty). With spread, credential i is first due at start +
// spread×i/n, where start is 3 s after the roles exist; without, in 30 days.
// It returns start.
func (h *pgRoleHarness) seedPGRoles(n int, schedule string, spread time.Duration) (start time.Time) {
	b, ctx := h.b, h.b.Context()
	b.Helper()
	t0 := time.Now()
	admin, err := pgx.Connect(ctx, h.url)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, `DO $$BEGIN CREATE ROLE `+benchPasswordGroup+` NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END$$`); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.dropRoles() })
	u, err := url.Parse(h.url)
	if err != nil {
		b.Fatal(err)
	}
	passwords := make([]string, n)
	const batch = 100
	for from := 0; from < n; from += batch {
		var sql strings.Builder
		sql.WriteString("SET password_encryption = 'scram-sha-256';")
		for i := from; i < min(from+batch, n); i++ {
			pw, err := secret.Random("", 32, secret.Alphanumeric)
			if err != nil {
				b.Fatal(err)
			}
			passwords[i] = pw.RevealString()
			g := h.group(i)
			fmt.Fprintf(&sql, "CREATE ROLE %s NOLOGIN IN ROLE %s; CREATE ROLE %s LOGIN PASSWORD '%s' IN ROLE %s; CREATE ROLE %s NOLOGIN IN ROLE %s;",
				g, benchPasswordGroup, g+"_a", passwords[i], g, g+"_b", g)
		}
		if _, err := admin.Exec(ctx, sql.String()); err != nil {
			b.Fatal(err)
		}
	}
	// The server must check these passwords, or login verification costs
	// less here than anywhere it matters.
	cfg, _ := pgx.ParseConfig(h.url)
	cfg.User, cfg.Password = h.group(0)+"_a", "wrong-"+passwords[0]
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		_ = c.Close(ctx)
		b.Fatalf("the server let %s log in with a wrong password: add\n  host all +%s 127.0.0.1/32 scram-sha-256\nto pg_hba.conf before any trust line, then SELECT pg_reload_conf()", cfg.User, benchPasswordGroup)
	} else if pgErr := new(pgconn.PgError); !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		b.Fatalf("probing password authentication: %v", err)
	}

	b.Setenv(benchPGDSNEnv, h.url)
	ps := settings.Map{"admin_dsn": "${env:" + benchPGDSNEnv + "}", "strategy": pgrole.StrategyAlternating, "verify": h.verify}
	if *benchPGConns > 0 {
		ps["max_admin_connections"] = *benchPGConns
	}
	if *benchPGIters > 0 {
		ps["scram_iterations"] = *benchPGIters
	}
	err = h.s.InTx(ctx, func(tx store.Tx) error {
		return tx.UpsertProvider(ctx, store.Provider{Name: benchPGProvider, Type: pgrole.Type, SpecHash: "bench-" + h.verify, Settings: ps})
	})
	if err != nil {
		b.Fatal(err)
	}
	issued := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	start = time.Now().Add(3 * time.Second)
	due := func(i int) time.Time {
		if spread <= 0 {
			return start.Add(30 * 24 * time.Hour)
		}
		return start.Add(spread * time.Duration(i) / time.Duration(n))
	}
	policy := store.Policy{MaxAge: 30 * 24 * time.Hour, Schedule: schedule, Grace: *benchPGGrace}
	for from := 0; from < n; from += 1000 {
		err := h.s.InTx(ctx, func(tx store.Tx) error {
			for i := from; i < min(from+1000, n); i++ {
				id := fmt.Sprintf("bench-pg-%05d", i)
				vid := rotation.NewID(issued)
				login := h.group(i) + "_a"
				val := secret.NewString((&url.URL{Scheme: "postgres", User: url.UserPassword(login, passwords[i]), Host: u.Host, Path: u.Path, RawQuery: "sslmode=disable"}).String())
				keyID, sealed, err := h.kr.Seal(id, vid, val)
				if err != nil {
					return err
				}
				c := store.Credential{
					ID: id, Consumer: fmt.Sprintf("mcp-server-%03d", i%500), Provider: benchPGProvider,
					Settings: settings.Map{"role": h.group(i)}, Scope: []string{"SELECT on bench.*"}, Owner: "bench",
					Policy: policy, Runbook: benchPGRunbook, SpecHash: "bench",
					State: store.CredentialState{Status: store.StatusHealthy, NextRotationAt: due(i).UTC().Truncate(time.Microsecond), LastRotatedAt: issued},
				}
				if err := tx.UpsertCredentialSpec(ctx, c); err != nil {
					return err
				}
				err = tx.InsertVersion(ctx, store.Version{ID: vid, CredentialID: id, Stage: store.StageCurrent, Sealed: sealed, KeyID: keyID,
					Fingerprint: h.kr.Fingerprint(val), CreatedAt: issued, ActivatedAt: issued,
					Metadata: map[string]string{pgrole.MetaLoginRole: login, pgrole.MetaStrategy: pgrole.StrategyAlternating, pgrole.MetaFormat: pgrole.FormatURL}})
				if err != nil {
					return err
				}
				c.State.CurrentVersionID = vid
				if err := tx.UpdateCredentialState(ctx, id, c.State); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d postgres-role credentials (%d roles) in %s", n, 3*n, time.Since(t0).Round(time.Millisecond))
	return start
}

func (h *pgRoleHarness) group(i int) string { return fmt.Sprintf("%s_%05d", h.prefix, i) }

// dropRoles drops every role of the harness (login roles first).
func (h *pgRoleHarness) dropRoles() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.url)
	if err != nil {
		h.b.Errorf("dropping the benchmark's roles: %v", err)
		return
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `DO $$DECLARE r record; BEGIN
		FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE '`+h.prefix+`\_%' ORDER BY length(rolname) DESC LOOP
			EXECUTE format('DROP ROLE %I', r.rolname);
		END LOOP; END$$`)
	if err != nil {
		h.b.Errorf("dropping the benchmark's roles: %v", err)
	}
}

func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pgbenchTPS matches the tps line of pgbench: "(without initial connection
// time)", or with -C "(including reconnection times)".
var pgbenchTPS = regexp.MustCompile(`tps = ([0-9.]+) \((?:without initial connection time|including reconnection times)\)`)

// benchYardstick runs pgbench -N and pgbench -C -N (8 clients, 2 threads,
// scale 10, -bench.pgbench.time each) on the test server, as the machine's
// yardstick for the figures beside it, and reports their tps (N-tps,
// C-N-tps) with the load average. The pgbench database
// (rotator_bench_pgbench) is created and initialised at the first run and
// kept for the next.
func benchYardstick(b *testing.B) {
	for b.Loop() {
		tps := benchPgbenchOnce(b, "-N", "-C -N")
		b.ReportMetric(tps[0], "N-tps")
		b.ReportMetric(tps[1], "CN-tps")
	}
}

// benchPgbenchOnce runs pgbench in each mode ("-N", "-C -N") and returns
// their tps, in order.
func benchPgbenchOnce(b *testing.B, modes ...string) []float64 {
	b.Helper()
	bin, err := exec.LookPath("pgbench")
	if err != nil {
		b.Fatalf("pgbench not found (%v); install it (postgresql-client) or pass -bench.pgbench=false", err)
	}
	const db = "rotator_bench_pgbench"
	server := testpg.ServerURL()
	su, err := url.Parse(server)
	if err != nil {
		b.Fatal(err)
	}
	su.Path = "/" + db
	target := su.String()
	ctx := b.Context()
	pool, err := pgxpool.New(ctx, server)
	if err != nil {
		b.Fatal(err)
	}
	var exists bool
	err = pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists)
	if err == nil && !exists {
		_, err = pool.Exec(ctx, "CREATE DATABASE "+db)
	}
	pool.Close()
	if err != nil {
		b.Fatal(err)
	}
	if !exists {
		out, err := exec.CommandContext(ctx, bin, "-i", "-q", "-s", "10", target).CombinedOutput()
		if err != nil {
			b.Fatalf("pgbench -i: %v\n%s", err, out)
		}
	}
	secs := strconv.Itoa(int(benchPgbenchT.Seconds()))
	var all []float64
	for _, m := range modes {
		mode := strings.Fields(m)
		load := benchLoad()
		args := append(slices.Clone(mode), "-c", "8", "-j", "2", "-T", secs, target)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			b.Fatalf("pgbench %s: %v\n%s", strings.Join(mode, " "), err, out)
		}
		m := pgbenchTPS.FindSubmatch(out)
		if m == nil {
			b.Fatalf("pgbench %s printed no tps:\n%s", strings.Join(mode, " "), out)
		}
		b.Logf("pgbench %s -c 8 -j 2 -T %s (scale 10): %s tps; load average before %s, after %s",
			strings.Join(mode, " "), secs, m[1], load, benchLoad())
		tps, _ := strconv.ParseFloat(string(m[1]), 64)
		all = append(all, tps)
	}
	return all
}
