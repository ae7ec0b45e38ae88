package dashboard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/dashboard"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/rotation"
)

// benchCredentials is how many credentials BenchmarkCredentialsPage seeds.
const benchCredentials = 100_000

// BenchmarkCredentialsPage measures the dashboard's first page (100
// credentials, failing ones first, with their current versions, and the
// totals) over 100,000 credentials on Postgres, 100 of them failing: one
// GET / with a session cookie, from the request to the rendered HTML. The
// target is 200 ms.
//
//	ROTATOR_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go test -run '^$' -bench BenchmarkCredentialsPage -benchtime 200x ./internal/dashboard/
func BenchmarkCredentialsPage(b *testing.B) {
	ctx := b.Context()
	st, err := postgres.Open(ctx, testpg.New(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := rotation.Migrate(ctx, st); err != nil {
		b.Fatal(err)
	}
	seedMany(b, st)
	tokens := apitoken.NewService(st, nil, nil)
	h, err := dashboard.New(dashboard.Options{Store: st, Tokens: tokens})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tokens.Create(ctx, apitoken.CreateRequest{Name: "bench", Scopes: []string{"read"}, Actor: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/login", strings.NewReader(url.Values{"token": {tok.Token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cookies) != 1 {
		b.Fatalf("login: %d %v", rec.Code, cookies)
	}
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		req.RemoteAddr = "127.0.0.1:40000"
		req.AddCookie(cookies[0])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	first := get()
	ids, _ := rowsOf(first.Body.String())
	if first.Code != http.StatusOK || len(ids) != dashboard.DefaultPageSize || !strings.HasPrefix(ids[0], "failing-") {
		b.Fatalf("first page: %d, %d rows, first %v", first.Code, len(ids), ids[:min(1, len(ids))])
	}
	var worst time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if rec := get(); rec.Code != http.StatusOK {
			b.Fatalf("GET /: %d", rec.Code)
		}
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
}

// seedMany writes benchCredentials credentials with current versions in a
// few statements (the engine's writes would take minutes): every 1000th is
// failing, next rotations spread over a day.
func seedMany(b *testing.B, st store.Store) {
	b.Helper()
	ctx := context.Background()
	pool := st.Handle().(*pgxpool.Pool)
	for _, q := range []string{
		`INSERT INTO providers (name, type, created_at, updated_at) VALUES ('gen', 'generated', now(), now())`,
		`INSERT INTO credentials (id, consumer, provider, scope, owner, labels, max_age_seconds, runbook, status,
    next_rotation_at, expires_at, created_at, updated_at)
SELECT CASE WHEN i % 1000 = 0 THEN 'failing-' ELSE 'cred-' END || lpad(i::text, 6, '0'),
    'mcp-server-' || (i % 50), 'gen', '["repo:read"]', 'team-' || (i % 20), jsonb_build_object('team', 'team-' || (i % 20)),
    86400, 'runbooks/generated.md#rotation', CASE WHEN i % 1000 = 0 THEN 'failing' ELSE 'healthy' END,
    now() + (i % 86400) * interval '1 second', now() + interval '2 days', now(), now()
FROM generate_series(1, ` + strconv.Itoa(benchCredentials) + `) AS i`,
		`INSERT INTO versions (id, credential_id, stage, sealed, key_id, fingerprint, created_at, activated_at, expires_at)
SELECT 'v-' || id, id, 'current', '\x00'::bytea, 'k1', substr(md5(id), 1, 16), now() - interval '3 hours', now() - interval '3 hours', now() + interval '2 days'
FROM credentials`,
		`UPDATE credentials SET current_version_id = 'v-' || id`,
		// What autovacuum does soon after such a load.
		`VACUUM ANALYZE credentials`, `VACUUM ANALYZE versions`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			b.Fatalf("seeding: %v\n%s", err, q)
		}
	}
}
