package audit_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/cpustat"
	"github.com/rotatorhq/rotator/internal/store"
)

// benchEvents is the size of the log the benchmarks work on.
const benchEvents = 100_000

func fill(b *testing.B, bd bundle, n int) {
	b.Helper()
	for i := 0; i < n; i += 5000 {
		insert(b, bd.st, i, min(5000, n-i))
	}
}

// BenchmarkVerify verifies a sealed log of 100,000 events, sequentially and
// in 4 ranges at once (goal: at least 100,000 events/s on each store). The
// test binary lowers minRange, which changes nothing at this size.
func BenchmarkVerify(b *testing.B) {
	for _, name := range slices.Sorted(maps.Keys(dialects)) {
		b.Run(name, func(b *testing.B) {
			bd := dialects[name](b)
			fill(b, bd, benchEvents)
			seal(b, bd.st)
			for _, par := range []int{1, 4} {
				b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
					start := time.Now()
					for b.Loop() {
						rep, err := audit.Verify(context.Background(), bd.st, audit.VerifyOptions{Parallel: par})
						if err != nil || !rep.OK || rep.Checked != benchEvents {
							b.Fatalf("verify: %+v, %v", rep, err)
						}
					}
					b.ReportMetric(float64(benchEvents)*float64(b.N)/time.Since(start).Seconds(), "events/s")
				})
			}
		})
	}
}

// BenchmarkSeal seals a backlog of 100,000 events in batches of 1,000. It
// also reports CPU per event, which the machine's load disturbs less than
// the rate: this process's while inserting the backlog (cpu-µs/insert, in
// transactions of 5,000: SQLite's work, on SQLite) and while sealing it
// (cpu-µs/seal), and on Postgres the server's (pg-µs/insert, pg-µs/seal).
func BenchmarkSeal(b *testing.B) {
	for _, name := range slices.Sorted(maps.Keys(dialects)) {
		b.Run(name, func(b *testing.B) {
			var total, selfInsert, self, pgInsert, pgSeal time.Duration
			for b.Loop() {
				b.StopTimer()
				bd := dialects[name](b)
				pg0, self0 := serverCPU(b, bd.st), cpustat.Self()
				fill(b, bd, benchEvents)
				pg1 := serverCPU(b, bd.st)
				selfInsert += cpustat.Self() - self0
				b.StartTimer()
				start, self0 := time.Now(), cpustat.Self()
				if n := seal(b, bd.st); n != benchEvents {
					b.Fatalf("sealed %d, want %d", n, benchEvents)
				}
				total += time.Since(start)
				self += cpustat.Self() - self0
				b.StopTimer()
				pg2 := serverCPU(b, bd.st)
				pgInsert += pg1.since(pg0)
				pgSeal += pg2.since(pg1)
				b.StartTimer()
			}
			events := float64(benchEvents) * float64(b.N)
			b.ReportMetric(events/total.Seconds(), "events/s")
			b.ReportMetric(float64(selfInsert.Microseconds())/events, "cpu-µs/insert")
			b.ReportMetric(float64(self.Microseconds())/events, "cpu-µs/seal")
			if name == "postgres" {
				b.ReportMetric(float64(pgInsert.Microseconds())/events, "pg-µs/insert")
				b.ReportMetric(float64(pgSeal.Microseconds())/events, "pg-µs/seal")
			}
		})
	}
}

// pgCPU is the CPU time of each server process serving the store's
// database, by pid.
type pgCPU map[int]time.Duration

// since is the CPU the processes used after before (a process that has
// left is not counted; one that arrived is counted whole).
func (c pgCPU) since(before pgCPU) time.Duration {
	var d time.Duration
	for pid, t := range c {
		d += t - before[pid]
	}
	return d
}

// serverCPU reads the CPU time of the Postgres backends of st's database
// (nil for SQLite). The server must run on this machine.
func serverCPU(b *testing.B, st store.Store) pgCPU {
	b.Helper()
	pool, ok := st.Handle().(*pgxpool.Pool)
	if !ok {
		return nil
	}
	rows, err := pool.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	out := pgCPU{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		out[pid] = cpustat.Process(pid)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}
