package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/credsel"
	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childRead())
	}
	goleak.VerifyTestMain(testpg.M(m))
}

// credSecret is a credential the test readers may not read.
const credSecret = "dt-secret"

const extraCred = "  - id: " + credSecret + "\n    consumer: mcp-server-secret\n    provider: gen\n    labels: {team: other}\n    max_age: 720h\n    runbook: runbooks/generated.md#rotation\n"

// bundle is a running consume API over a fixture.
type bundle struct {
	f      *deliverytest.Fixture
	srv    *api.Server
	socket string
	tcp    *httptest.Server
	tokens *apitoken.Service
	logs   *testlog.Buffer
	// now is the clock of the server and the tokens.
	now atomic.Int64
}

func (b *bundle) clock() time.Time {
	if n := b.now.Load(); n != 0 {
		return time.UnixMicro(n)
	}
	return time.Now()
}

// newBundle starts the API on a socket (rules given) and on loopback TCP.
func newBundle(t *testing.T, dialect string, rules []api.Rule) *bundle {
	t.Helper()
	return newBundleGroup(t, dialect, rules, "")
}

// newBundleGroup is newBundle with the socket given to a group, in a
// directory anyone may traverse.
func newBundleGroup(t *testing.T, dialect string, rules []api.Rule, group string) *bundle {
	t.Helper()
	return newBundleTB(t, dialect, rules, group)
}

func newBundleTB(t testing.TB, dialect string, rules []api.Rule, group string) *bundle {
	t.Helper()
	return newBundleOpts(t, dialect, rules, group, nil)
}

// newBundleOpts is newBundleTB with the server's options adjusted by opt:
// by default the server has the fixture's engine and a failed-auth limit
// that the tests' own failures never reach.
func newBundleOpts(t testing.TB, dialect string, rules []api.Rule, group string, opt func(*api.Options)) *bundle {
	t.Helper()
	st := deliverytest.OpenStore(t, dialect)
	b := &bundle{f: deliverytest.NewFixture(t, st, extraCred), logs: &testlog.Buffer{}}
	b.f.Rotate(t, credSecret)
	red := &secret.Redactor{}
	logger := slog.New(secret.NewHandler(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}), red))
	b.tokens = apitoken.NewService(st, b.clock, logger)
	opts := api.Options{Store: st, Keyring: b.f.Keyring, Tokens: b.tokens, Rules: rules,
		Poll: 100 * time.Millisecond, Now: b.clock, Logger: logger, Engine: b.f.Engine,
		AuthLimit: api.AuthLimit{Burst: 100000, Every: time.Millisecond}}
	if opt != nil {
		opt(&opts)
	}
	srv, err := api.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	b.srv = srv
	dir, err := os.MkdirTemp("", "rtr")
	if err != nil {
		t.Fatal(err)
	}
	b.socket = filepath.Join(dir, "api.sock")
	if group != "" {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := api.ListenSocket(b.socket, group)
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.NewSocketServer()
	go func() { _ = hs.Serve(ln) }()
	b.tcp = httptest.NewServer(srv.TCPHandler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		b.tcp.Close()
		_ = srv.Close()
		_ = os.RemoveAll(dir)
	})
	return b
}

// selectors parses credential selectors.
func selectors(t testing.TB, ss ...string) []credsel.Selector {
	var out []credsel.Selector
	for _, s := range ss {
		sel, err := credsel.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sel)
	}
	return out
}

func uidRule(t testing.TB, uid int, ss ...string) api.Rule {
	u := uint32(uid)
	return api.Rule{UID: &u, Selectors: selectors(t, ss...)}
}

func selfIdentity() string {
	id := fmt.Sprintf("uid:%d", os.Getuid())
	if u, err := user.Current(); err == nil {
		id += " (" + u.Username + ")"
	}
	return id
}

// The readers may read the fixture's credentials (by label), and the
// missing dt-no-such by id, so that it is a 404 to them; never dt-secret.
var readable = []string{"team=dt", "dt-no-such"}

func TestSocketSource(t *testing.T) {
	t.Parallel()
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		setup := func(t *testing.T) deliverytest.Bundle {
			b := newBundle(t, dialect, []api.Rule{uidRule(t, os.Getuid(), readable...)})
			src, err := delivery.NewAPI(delivery.APIOptions{Socket: b.socket, WatchWait: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = src.Close() })
			return deliverytest.Bundle{Source: src, Fixture: b.f, Reader: selfIdentity(), Via: "socket", Forbidden: credSecret}
		}
		deliverytest.Exercise(t, setup)
		deliverytest.ExerciseForbidden(t, setup)
	})
}

func TestTokenSource(t *testing.T) {
	t.Parallel()
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		setup := func(t *testing.T) deliverytest.Bundle {
			b := newBundle(t, dialect, nil)
			scopes := []string{}
			for _, s := range readable {
				scopes = append(scopes, "consume:"+s)
			}
			tok, err := b.tokens.Create(t.Context(), apitoken.CreateRequest{Name: "suite", Scopes: scopes, Actor: "test"})
			if err != nil {
				t.Fatal(err)
			}
			src, err := delivery.NewAPI(delivery.APIOptions{URL: b.tcp.URL, Token: secret.NewString(tok.Token), WatchWait: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = src.Close() })
			return deliverytest.Bundle{Source: src, Fixture: b.f, Reader: "token:" + tok.Record.ID + " (suite)", Via: "api", Forbidden: credSecret}
		}
		deliverytest.Exercise(t, setup)
		deliverytest.ExerciseForbidden(t, setup)
	})
}

// get sends a GET to the TCP API with a bearer token.
func get(t *testing.T, b *bundle, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.tcp.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestTokens(t *testing.T) {
	t.Parallel()
	b := newBundle(t, "sqlite", nil)
	ctx := t.Context()
	a, err := b.tokens.Create(ctx, apitoken.CreateRequest{Name: "a-only", Scopes: []string{"consume:" + deliverytest.CredA}, TTL: time.Hour, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	value := func(id string) string { return "/v1/credentials/" + id + "/value" }

	code, body := get(t, b, value(deliverytest.CredA), a.Token)
	var v map[string]any
	if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || v["value"] != b.f.Value(t, deliverytest.CredA) {
		t.Fatalf("consume:a reads a: %d", code)
	}
	for _, k := range []string{"credential", "version", "fingerprint", "expires_at", "next_cutover_at", "value"} {
		if _, ok := v[k]; !ok {
			t.Errorf("the value body lacks %q", k)
		}
	}
	// The read is recorded as the token's last use (asynchronously).
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := b.f.Store.GetAPIToken(ctx, a.Record.ID)
		if err == nil && !rec.LastUsedAt.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the token's last use was not recorded: %+v, %v", rec.LastUsedAt, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// consume:a cannot read b, and cannot tell whether an id exists.
	for _, id := range []string{deliverytest.CredB, "no-such-credential"} {
		code, body = get(t, b, value(id), a.Token)
		if code != http.StatusForbidden || !strings.Contains(body, `"code":"forbidden"`) || !strings.Contains(body, "consume:"+deliverytest.CredA) {
			t.Errorf("consume:a reads %s: %d %s; want a 403 problem naming its scopes", id, code, body)
		}
	}
	// No token, a forged one, a malformed header: 401 with WWW-Authenticate.
	forged, _ := apitoken.New()
	for _, tok := range []string{"", forged, "not-a-token"} {
		code, body = get(t, b, value(deliverytest.CredA), tok)
		if code != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthorized"`) {
			t.Errorf("token %.10q: %d %s; want 401", tok, code, body)
		}
	}
	// Expired: an hour later.
	b.now.Store(time.Now().Add(time.Hour + time.Minute).UnixMicro())
	code, body = get(t, b, value(deliverytest.CredA), a.Token)
	if code != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Errorf("expired token: %d %s; want 401 saying expired", code, body)
	}
	b.now.Store(0)
	// Revoked.
	if _, err := b.tokens.Revoke(ctx, a.Record.ID, "test"); err != nil {
		t.Fatal(err)
	}
	code, body = get(t, b, value(deliverytest.CredA), a.Token)
	if code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("revoked token: %d %s; want 401 saying revoked", code, body)
	}

	// Plaintext from a non-loopback peer is refused before the token is
	// looked at.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, value(deliverytest.CredA), nil)
	req.RemoteAddr = "192.0.2.7:40000"
	req.Header.Set("Authorization", "Bearer "+forged)
	b.srv.TCPHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "tls-required") {
		t.Errorf("plaintext from a non-loopback peer: %d %s; want 403 tls-required", rec.Code, rec.Body.String())
	}
	// Bad wait, unknown endpoint: problems too.
	b2, _ := b.tokens.Create(ctx, apitoken.CreateRequest{Scopes: []string{"consume:*"}, Actor: "test"})
	if code, body := get(t, b, value(deliverytest.CredA)+"?after=x&wait=soon", b2.Token); code != http.StatusBadRequest || !strings.Contains(body, "wait=") {
		t.Errorf("wait=soon: %d %s", code, body)
	}
	if code, body := get(t, b, "/v1/no-such-route", b2.Token); code != http.StatusNotFound || !strings.Contains(body, "application/problem+json") && !strings.Contains(body, `"status":404`) {
		t.Errorf("unknown endpoint: %d %s", code, body)
	}
	if code, _ := get(t, b, value(deliverytest.CredNoValue), b2.Token); code != http.StatusConflict {
		t.Errorf("no value yet: %d; want 409", code)
	}
	// A long poll that sees no change ends with 304 when wait runs out.
	cur := b.f.CurrentVersion(t, deliverytest.CredA)
	start := time.Now()
	if code, body := get(t, b, value(deliverytest.CredA)+"?after="+cur+"&wait=300ms", b2.Token); code != http.StatusNotModified || body != "" {
		t.Errorf("long poll without a change: %d %q; want 304 and no body", code, body)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("the long poll returned after %v; want about 300ms", d)
	}
	assertCanary(t, b, b.f.Value(t, deliverytest.CredA))
}

// assertCanary checks that a credential value appears in no log line and
// no audit event.
func assertCanary(t *testing.T, b *bundle, value string) {
	t.Helper()
	if strings.Contains(b.logs.String(), value) || strings.Contains(b.logs.String(), deliverytest.ValuePrefix) {
		t.Errorf("a value reached the server's log")
	}
	err := b.f.Store.ScanAuditEvents(t.Context(), store.AuditFilter{}, func(e store.AuditEvent) error {
		raw, _ := json.Marshal(e)
		if strings.Contains(string(raw)+string(e.Data), value) || strings.Contains(string(e.Data), deliverytest.ValuePrefix) {
			t.Errorf("audit event %s holds a value", e.Action)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dialSocket returns an HTTP client over the socket.
func dialSocket(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 64,
	}}
}

// TestLongPollsShareOnePoller: however many clients wait, the store is
// polled once per interval (100ms here, a second by default), not once per
// client; and every waiter wakes on the rotation.
func TestLongPollsShareOnePoller(t *testing.T) {
	t.Parallel()
	b := newBundle(t, "sqlite", []api.Rule{uidRule(t, os.Getuid(), "*")})
	cur := b.f.CurrentVersion(t, deliverytest.CredA)
	client := dialSocket(b.socket)
	defer client.CloseIdleConnections()
	const waiters = 40
	type got struct {
		code    int
		version string
	}
	results := make(chan got, waiters)
	for range waiters {
		go func() {
			resp, err := client.Get("http://rotator-socket/v1/credentials/" + deliverytest.CredA + "/value?after=" + cur + "&wait=30s")
			if err != nil {
				results <- got{}
				return
			}
			defer resp.Body.Close()
			var v struct{ Version string }
			_ = json.NewDecoder(resp.Body).Decode(&v)
			results <- got{resp.StatusCode, v.Version}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for api.WatchWaiters(b.srv, deliverytest.CredA) < waiters {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d long polls are waiting after 30s", api.WatchWaiters(b.srv, deliverytest.CredA), waiters)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := api.WatchPolls(b.srv)
	time.Sleep(1500 * time.Millisecond)
	polls := api.WatchPolls(b.srv) - before
	if polls > 17 || polls < 1 {
		t.Errorf("%d waiters for 1.5s made %d store polls; want about 15 (one per 100ms, shared)", waiters, polls)
	}
	v := b.f.Rotate(t, deliverytest.CredA)
	for range waiters {
		select {
		case r := <-results:
			if r.code != http.StatusOK || r.version != v {
				t.Errorf("a waiter got %d version %q; want 200 with %s", r.code, r.version, v)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiter did not wake up on the rotation")
		}
	}
	// Nobody waits: the poller does not query.
	time.Sleep(300 * time.Millisecond)
	idle := api.WatchPolls(b.srv)
	time.Sleep(500 * time.Millisecond)
	if n := api.WatchPolls(b.srv) - idle; n != 0 {
		t.Errorf("%d polls with nobody waiting", n)
	}
}
