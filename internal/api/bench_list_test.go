package api_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/cpustat"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/gctune"
	"github.com/rotatorhq/rotator/internal/store"
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
// on what else runs on the machine. Before the timing every page is
// listed once through the API, as on a service that has been listing:
// the service's list cache then holds every credential, and the heap it
// added is reported per credential. -bench.list.cold measures the first
// pass instead (the cache empty, so about every page is read whole).
//
//	ROTATOR_TEST_DATABASE_URL=postgres://... go test -run '^$' -bench BenchmarkListCredentials -benchtime 20000x ./internal/api/
func BenchmarkListCredentials(b *testing.B) {
	bd := newBundleTB(b, "postgres", nil, "")
	seedCredentials(b, bd)
	warmCredentials(b, bd)
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
	var cacheBytes float64
	if !*benchListCold {
		heap := func() uint64 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms.HeapAlloc
		}
		h0 := heap()
		walkList(b, client, bd.tcp.URL, tok)
		cacheBytes = float64(heap()) - float64(h0)
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
	if cacheBytes > 0 {
		// What listing every page once added to the heap: the list cache.
		b.ReportMetric(cacheBytes/benchCredentials, "cache-B/credential")
	}
}

var benchListCold = flag.Bool("bench.list.cold", false,
	"BenchmarkListCredentials: start with the service's summary cache empty (by default every page is listed once through the API before the timing, as on a service that has been listing)")

// walkList lists every page of GET /v1/credentials?limit=100 once, which
// fills the service's summary cache.
func walkList(b *testing.B, client *http.Client, base, tok string) {
	b.Helper()
	path := "/v1/credentials?limit=100"
	for pages := 0; ; pages++ {
		req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var page struct {
			Credentials []struct{ ID string } `json:"credentials"`
			NextCursor  *string               `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
		}
		if page.NextCursor == nil {
			if pages < benchCredentials/100-1 {
				b.Fatalf("the list ended after %d pages", pages+1)
			}
			return
		}
		path = "/v1/credentials?limit=100&cursor=" + url.QueryEscape(*page.NextCursor)
	}
}

// warmCredentials reads every page of the list once, so that the tables'
// and indexes' pages are in Postgres's shared buffers before the timing
// starts, as on a server that has been listing: without it, whichever
// measurement runs first pays for reading them in.
func warmCredentials(b *testing.B, bd *bundle) {
	b.Helper()
	after := ""
	for {
		cs, err := bd.f.Store.ListCredentials(b.Context(), store.CredentialFilter{AfterID: after, Limit: 1000, Summary: true})
		if err != nil {
			b.Fatal(err)
		}
		if len(cs) == 0 {
			return
		}
		after = cs[len(cs)-1].ID
	}
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
	// Every column but the generated ones, which take no value.
	var cols string
	if err := tx.QueryRow(ctx, `SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = 'credentials' AND is_generated = 'NEVER'`).Scan(&cols); err != nil {
		b.Fatal(err)
	}
	stmts := []string{
		`INSERT INTO credentials (` + cols + `) SELECT ` + cols + ` FROM (SELECT (jsonb_populate_record(c, jsonb_build_object(
		    'id', 'bench-' || lpad(g::text, 6, '0'), 'consumer', 'mcp-server-bench-' || (g % 100),
		    'labels', jsonb_build_object('team', 'bench', 'shard', (g % 10)::text),
		    'current_version_id', 'VBENCH' || lpad(g::text, 6, '0'), 'pending_version_id', null))).*
		FROM credentials c CROSS JOIN generate_series(0, $1 - 1) g WHERE c.id = $2) AS copied`,
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

// BenchmarkListQuery splits the database's share of a list page: the query
// of GET /v1/credentials?limit=100 (the store's summary list, from a random
// cursor) against the same page without the join to the current version
// (the credential's columns only), with only the ids, and the page's
// stamps (store.Reader.CredentialStamps, which the service's list cache
// reads for each page: ids and row versions). It reports
// Postgres's CPU per query (the backends of this test's database, read
// from /proc), this process's CPU per query (pgx and, for "store", the
// scan into credentials; the garbage collector set as serve sets it) and
// queries/s with four at a time.
//
//	ROTATOR_TEST_DATABASE_URL=postgres://... go test -run '^$' -bench BenchmarkListQuery -benchtime 5000x ./internal/api/
func BenchmarkListQuery(b *testing.B) {
	bd := newBundleTB(b, "postgres", nil, "")
	seedCredentials(b, bd)
	warmCredentials(b, bd)
	pool := bd.f.Store.Handle().(*pgxpool.Pool)
	ctx := b.Context()
	const credCols = `c.id, c.consumer, c.provider, c.scope, c.owner, c.labels, c.max_age_seconds, c.renew_before_seconds,
    c.renew_at, c.schedule, c.grace_seconds, c.runbook, c.runbook_file, c.spec_hash, c.status, c.current_version_id,
    c.pending_version_id, c.next_rotation_at, c.last_rotated_at, c.expires_at, c.failure_count, c.created_at, c.updated_at`
	raw := func(cols string) func(after string) error {
		sql := `SELECT ` + cols + ` FROM credentials AS c WHERE c.deleted_at IS NULL AND c.id > $1 ORDER BY c.id LIMIT 100`
		return func(after string) error {
			rows, err := pool.Query(ctx, sql, after)
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				n += len(rows.RawValues())
			}
			rows.Close()
			if n == 0 {
				return fmt.Errorf("no rows after %s", after)
			}
			return rows.Err()
		}
	}
	for _, v := range []struct {
		name  string
		query func(after string) error
	}{
		{"store", func(after string) error {
			cs, err := bd.f.Store.ListCredentials(ctx, store.CredentialFilter{AfterID: after, Limit: 100, Summary: true})
			if err == nil && len(cs) != 100 {
				err = fmt.Errorf("%d credentials after %s", len(cs), after)
			}
			return err
		}},
		{"no-join", raw(credCols)},
		{"ids", raw("c.id")},
		{"stamps", func(after string) error {
			st, _, err := bd.f.Store.CredentialStamps(ctx, store.CredentialFilter{AfterID: after, Limit: 100})
			if err == nil && len(st) != 100 {
				err = fmt.Errorf("%d stamps after %s", len(st), after)
			}
			return err
		}},
	} {
		b.Run(v.name, func(b *testing.B) {
			backends := func() map[int]time.Duration {
				rows, err := pool.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
				if err != nil {
					b.Fatal(err)
				}
				pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
				if err != nil {
					b.Fatal(err)
				}
				m := map[int]time.Duration{}
				for _, pid := range pids {
					m[int(pid)] = cpustat.Process(int(pid))
				}
				return m
			}
			for range 20 { // warm the pool's connections and statement caches
				if err := v.query(fmt.Sprintf("bench-%06d", rand.IntN(benchCredentials-100))); err != nil {
					b.Fatal(err)
				}
			}
			if gctune.Apply() {
				defer debug.SetGCPercent(100)
			}
			pg0, cpu0 := backends(), cpustat.Self()
			b.SetParallelism(2) // 4 at a time on 2 vCPUs
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := v.query(fmt.Sprintf("bench-%06d", rand.IntN(benchCredentials-100))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cpu := cpustat.Self() - cpu0
			var pg time.Duration
			for pid, t := range backends() {
				pg += t - pg0[pid] // a backend started since counts whole
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
			b.ReportMetric(float64(pg.Microseconds())/float64(b.N), "pg-cpu-µs/query")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/query")
		})
	}
}
