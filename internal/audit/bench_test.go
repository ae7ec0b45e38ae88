package audit_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/audit"
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

// BenchmarkSeal seals a backlog of 100,000 events in batches of 1,000.
func BenchmarkSeal(b *testing.B) {
	for _, name := range slices.Sorted(maps.Keys(dialects)) {
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				bd := dialects[name](b)
				fill(b, bd, benchEvents)
				b.StartTimer()
				start := time.Now()
				if n := seal(b, bd.st); n != benchEvents {
					b.Fatalf("sealed %d, want %d", n, benchEvents)
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(benchEvents)*float64(b.N)/total.Seconds(), "events/s")
		})
	}
}
