package proxy_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/cpustat"
	"github.com/rotatorhq/rotator/internal/mcp/proxy"
)

// benchBody is a typical JSON-RPC tools/call request.
const benchBody = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_issues","arguments":{"repo":"rotatorhq/rotator","query":"is:open label:bug","limit":20}}}`

// benchSetup starts an upstream answering a small JSON-RPC result to
// requests bearing the credential's current value (401 otherwise), and a
// proxy in front of it. It returns the proxy's URL, the upstream's URL and
// the Authorization a direct client sends.
func benchSetup(b *testing.B) (proxyURL, upstreamURL, auth string) {
	w := newWorld(b, "0s", time.Hour)
	auth = "Bearer " + w.current(b, "api")
	var rejected atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Header.Get("Authorization") != auth {
			rejected.Add(1)
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"3 issues"}]}}`))
	}))
	var conns atomic.Int64 // the proxy keeps its connections to the upstream
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	b.Cleanup(func() {
		b.Logf("upstream connections: %d", conns.Load())
		up.Close()
		if n := rejected.Load(); n > 0 {
			b.Errorf("the upstream rejected %d requests", n)
		}
	})
	u, _ := runProxy(b, w.src, w, proxy.Upstream{URL: up.URL + "/mcp", Headers: []proxy.Header{{Name: "Authorization", Template: "Bearer {api}"}}}, proxy.Options{})
	return u, up.URL + "/mcp", auth
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512}}
}

func post(b *testing.B, c *http.Client, url, auth string) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(benchBody))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkProxyLatency measures one request at a time, alternating a
// direct request to the upstream and one through the proxy, and reports
// the latency percentiles of both and what the proxy adds (p50, p99).
//
//	go test -run '^$' -bench ProxyLatency -benchtime 20000x ./internal/mcp/proxy/
func BenchmarkProxyLatency(b *testing.B) {
	proxyURL, upstreamURL, auth := benchSetup(b)
	c := benchClient()
	for range 200 { // warm the connections
		post(b, c, upstreamURL, auth)
		post(b, c, proxyURL, "")
	}
	direct := make([]time.Duration, 0, b.N)
	proxied := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		post(b, c, upstreamURL, auth)
		t1 := time.Now()
		post(b, c, proxyURL, "")
		direct, proxied = append(direct, t1.Sub(t0)), append(proxied, time.Since(t1))
	}
	b.StopTimer()
	slices.Sort(direct)
	slices.Sort(proxied)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(float64(len(d))*p))].Microseconds())
	}
	b.ReportMetric(pct(direct, 0.50), "direct-p50-µs")
	b.ReportMetric(pct(direct, 0.99), "direct-p99-µs")
	b.ReportMetric(pct(proxied, 0.50), "proxy-p50-µs")
	b.ReportMetric(pct(proxied, 0.99), "proxy-p99-µs")
	b.ReportMetric(pct(proxied, 0.50)-pct(direct, 0.50), "added-p50-µs")
	b.ReportMetric(pct(proxied, 0.99)-pct(direct, 0.99), "added-p99-µs")
}

// BenchmarkProxyThroughput sends requests from 32 concurrent clients,
// directly and through the proxy, and reports requests per second and the
// CPU time the process spent per request (client, proxy and upstream all
// run in it: the difference between the two is the proxy's own cost, which
// a loaded machine does not change as much as it changes req/s).
//
//	go test -run '^$' -bench ProxyThroughput -benchtime 5s ./internal/mcp/proxy/
func BenchmarkProxyThroughput(b *testing.B) {
	proxyURL, upstreamURL, auth := benchSetup(b)
	for _, tc := range []struct{ name, url, auth string }{{"direct", upstreamURL, auth}, {"proxy", proxyURL, ""}} {
		b.Run(tc.name, func(b *testing.B) {
			c := benchClient()
			b.SetParallelism(16) // 32 goroutines on 2 CPUs
			cpu0 := cpustat.Self()
			t0 := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					post(b, c, tc.url, tc.auth)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "req/s")
			b.ReportMetric(float64((cpustat.Self()-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
		})
	}
}
