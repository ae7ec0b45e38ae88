package audit_test

import (
	"context"
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

// BenchmarkVerify verifies a sealed log of 100,000 events (goal: at least
// 100,000 events/s on each store).
func BenchmarkVerify(b *testing.B) {
	for _, name := range slices.Sorted(maps.Keys(dialects)) {
		b.Run(name, func(b *testing.B) {
			bd := dialects[name](b)
			fill(b, bd, benchEvents)
			seal(b, bd.st)
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				rep, err := audit.Verify(context.Background(), bd.st, audit.VerifyOptions{})
				if err != nil || !rep.OK || rep.Checked != benchEvents {
					b.Fatalf("verify: %+v, %v", rep, err)
				}
			}
			b.ReportMetric(float64(benchEvents)*float64(b.N)/time.Since(start).Seconds(), "events/s")
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
