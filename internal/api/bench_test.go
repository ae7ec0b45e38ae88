package api_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/cpustat"
	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
)

// BenchmarkSocketRead measures consume API reads over the Unix socket:
// each is an HTTP request, a credential read, a decryption and a
// value.read audit event committed (group commit) before the answer.
// Reads/s is b.N over the elapsed time (reported as reads/s); tx/read and
// queries/read are the audit transactions and the credential queries that
// confirm cached versions, per read.
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
			tx0, _, q0 := api.RecorderStats(bd.srv)
			cpu0 := cpustat.Self()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := src.Read(b.Context(), delivery.ReadRequest{CredentialID: deliverytest.CredA}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportRate(b, cpustat.Self()-cpu0)
			// Transactions and credential queries per read: the recorder's
			// batching and how often a cached read had to be confirmed.
			tx1, _, q1 := api.RecorderStats(bd.srv)
			b.ReportMetric(float64(tx1-tx0)/float64(b.N), "tx/read")
			b.ReportMetric(float64(q1-q0)/float64(b.N), "queries/read")
		})
	}
}

func newBenchBundle(b *testing.B, dialect string) *bundle {
	return newBundleTB(b, dialect, []api.Rule{uidRule(b, os.Getuid(), "*")}, "")
}

// BenchmarkSocketBaseline is the yardstick of BenchmarkSocketRead: the same
// HTTP client and server over a Unix socket, with a handler that writes a
// fixed body of the same size and touches no store.
func BenchmarkSocketBaseline(b *testing.B) {
	dir := b.TempDir()
	sock := dir + "/b.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"credential":"dt-a","version":"01M92743Q57TSKE4ZKR9FE7FQB","fingerprint":"8f3c23789389da27","expires_at":null,"next_cutover_at":"2026-12-29T04:25:10.99298Z","value":"dtcanary_0123456789012345678901234567890"}` + "\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	client := dialSocket(sock)
	defer client.CloseIdleConnections()
	b.SetParallelism(8)
	cpu0 := cpustat.Self()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get("http://rotator-socket/v1/credentials/dt-a/value")
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.StopTimer()
	reportRate(b, cpustat.Self()-cpu0)
}

// reportRate reports reads/s (wall clock) and the CPU time this process
// (client, server and, on SQLite, the database) spent per read, which
// depends far less on what else runs on the machine; a Postgres server's
// own CPU is not counted.
func reportRate(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/read")
}
