package api_test

import (
	"os"
	"testing"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
)

// BenchmarkSocketRead measures consume API reads over the Unix socket:
// each is an HTTP request, a credential read, a decryption and a
// value.read audit event committed (group commit) before the answer.
// Reads/s is b.N over the elapsed time (reported as reads/s).
//
//	go test -run '^$' -bench BenchmarkSocketRead -benchtime 20000x ./internal/api/
func BenchmarkSocketRead(b *testing.B) {
	for _, dialect := range deliverytest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			bd := newBenchBundle(b, dialect)
			src, err := delivery.NewAPI(delivery.APIOptions{Socket: bd.socket})
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := src.Read(b.Context(), delivery.ReadRequest{CredentialID: deliverytest.CredA}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
		})
	}
}

func newBenchBundle(b *testing.B, dialect string) *bundle {
	return newBundleTB(b, dialect, []api.Rule{uidRule(b, os.Getuid(), "*")}, "")
}
