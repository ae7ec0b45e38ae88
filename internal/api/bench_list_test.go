package api_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/cpustat"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/gctune"
)

// benchCredentials is how many credentials BenchmarkListCredentials lists.
const benchCredentials = 100_000

// BenchmarkListCredentials measures GET /v1/credentials?limit=100 over
// 100,000 credentials on Postgres, each with a current version, through
// the real TCP handler (token check, request log, JSON): each request
// starts at a random page (a cursor anywhere in the list), so deep pages
// count as much as the first. The garbage collector is set as serve sets
// it (gctune). It reports requests/s (wall clock), the 50th and 99th
// percentile latencies, and this process's CPU time per request (server
// and client; Postgres's own CPU is not counted), which depends far less
// on what else runs on the machine.
//
//	ROTATOR_TEST_DATABASE_URL=postgres://... go test -run '^$' -bench BenchmarkListCredentials -benchtime 20000x ./internal/api/
func BenchmarkListCredentials(b *testing.B) {
	bd := newBundleTB(b, "postgres", nil, "")
	seedCredentials(b, bd)
	tok := token(b, bd, "bench", "read")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	cursors := make([]string, 1000)
	for i := range cursors {
		cursors[i] = api.CredentialCursor(fmt.Sprintf("bench-%06d", rand.IntN(benchCredentials-100)))
	}
	get := func(path string) error {
		req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, bd.tcp.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK || n < 100*500 {
			return fmt.Errorf("GET %s: %d, %d bytes", path, resp.StatusCode, n)
		}
		return nil
	}
	if err := get("/v1/credentials?limit=100"); err != nil {
		b.Fatal(err)
	}
	if gctune.Apply() {
		defer debug.SetGCPercent(100)
	}
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(4)
	cpu0 := cpustat.Self()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			path := "/v1/credentials?limit=100&cursor=" + cursors[rand.IntN(len(cursors))]
			start := time.Now()
			if err := get(path); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	cpu := cpustat.Self() - cpu0
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
}

// seedCredentials adds benchCredentials credentials (bench-000000 ...),
// copies of the fixture's dt-a with their own ids, consumers, labels and
// current versions, in one transaction of two INSERT ... SELECTs.
func seedCredentials(b *testing.B, bd *bundle) {
	b.Helper()
	pool, ok := bd.f.Store.Handle().(*pgxpool.Pool)
	if !ok {
		b.Fatal("not a Postgres store")
	}
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	stmts := []string{
		`INSERT INTO credentials SELECT (jsonb_populate_record(c, jsonb_build_object(
		    'id', 'bench-' || lpad(g::text, 6, '0'), 'consumer', 'mcp-server-bench-' || (g % 100),
		    'labels', jsonb_build_object('team', 'bench', 'shard', (g % 10)::text),
		    'current_version_id', 'VBENCH' || lpad(g::text, 6, '0'), 'pending_version_id', null))).*
		FROM credentials c CROSS JOIN generate_series(0, $1 - 1) g WHERE c.id = $2`,
		`INSERT INTO versions SELECT (jsonb_populate_record(v, jsonb_build_object(
		    'id', 'VBENCH' || lpad(g::text, 6, '0'), 'credential_id', 'bench-' || lpad(g::text, 6, '0')))).*
		FROM versions v JOIN credentials c ON v.id = c.current_version_id CROSS JOIN generate_series(0, $1 - 1) g WHERE c.id = $2`,
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s, benchCredentials, deliverytest.CredA); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE credentials; ANALYZE versions"); err != nil {
		b.Fatal(err)
	}
}
