package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/view"
)

// response is an answer of the API.
type response struct {
	code int
	h    http.Header
	body string
}

// do sends a request to the TCP API with a bearer token (none when
// token is "") and a JSON body (none when body is "").
func do(t *testing.T, b *bundle, method, path, token, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, b.tcp.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(raw)}
}

// token creates a token with scopes and returns it.
func token(t testing.TB, b *bundle, name string, scopes ...string) string {
	t.Helper()
	c, err := b.tokens.Create(context.Background(), apitoken.CreateRequest{Name: name, Scopes: scopes, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Token
}

// decode unmarshals a JSON body or fails.
func decode(t *testing.T, r response, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("body is not JSON (%v): %d %s", err, r.code, r.body)
	}
}

// reloadConfig is a configuration the reload tests apply: the fixture's
// credentials and extra.
func reloadConfig(extra string) string {
	var b strings.Builder
	b.WriteString("providers:\n  gen:\n    type: generated\n    length: 40\n    prefix: \"" + deliverytest.ValuePrefix + "\"\ncredentials:\n")
	for _, id := range []string{deliverytest.CredA, deliverytest.CredB, deliverytest.CredNoValue} {
		b.WriteString("  - id: " + id + "\n    consumer: mcp-server-" + id + "\n    provider: gen\n    labels: {team: dt, name: " + id + "}\n    max_age: 720h\n    grace: 0s\n    runbook: runbooks/generated.md#rotation\n")
	}
	b.WriteString(extraCred)
	b.WriteString(extra)
	return b.String()
}

// fileReload reloads file into st as serve's SIGHUP path does (load with
// apply's validation, then one inventory.Apply): it is what
// cmd/rotator passes as Options.Reload, exercised end to end by
// internal/e2e.
func fileReload(file string, st store.Store) func(ctx context.Context, actor string) api.ReloadResult {
	return func(ctx context.Context, actor string) api.ReloadResult {
		res := api.ReloadResult{File: file}
		cfg, err := config.LoadLimit(file, 0)
		var ce *config.Errors
		switch {
		case errors.As(err, &ce):
			for _, e := range ce.List {
				res.Problems = append(res.Problems, e.Error())
			}
			return res
		case err != nil:
			res.Problems = []string{err.Error()}
			return res
		}
		diff, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: actor})
		if err != nil {
			res.Problems = []string{err.Error()}
			return res
		}
		res.Applied, res.Warnings = true, diff.Warnings
		res.Created, res.Updated = diff.Count(inventory.Created), diff.Count(inventory.Updated)
		res.Unchanged, res.Removed = diff.Count(inventory.Unchanged), diff.Count(inventory.Removed)
		return res
	}
}

// newManageBundle is a bundle whose server reloads a configuration file
// (returned) holding the fixture's credentials.
func newManageBundle(t *testing.T, dialect string) (*bundle, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "runbooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	rb, err := os.ReadFile(filepath.Join("..", "..", "runbooks", "generated.md"))
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "runbooks", "generated.md"), string(rb))
	file := filepath.Join(dir, "rotator.yaml")
	writeTestFile(t, file, reloadConfig(""))
	b := newBundleOpts(t, dialect, nil, "", func(o *api.Options) {
		o.Reload = fileReload(file, o.Store)
		o.RunbookDir = filepath.Join("..", "..")
	})
	return b, file
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestManageAPI exercises every management route with the right scope,
// on both stores: lists page by keyset and filter as the CLI does, JSON
// fields are the CLI's (internal/view), rotations start runs recorded with
// the token as actor, reports come in every format, the reload is all or
// nothing. No response and no log line holds a value.
func TestManageAPI(t *testing.T) {
	t.Parallel()
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		b, file := newManageBundle(t, dialect)
		read := token(t, b, "reader", "read")
		rot := token(t, b, "oncall", "rotate")
		admin := token(t, b, "", "admin")
		var bodies []string
		call := func(method, path, tok, body string) response {
			t.Helper()
			r := do(t, b, method, path, tok, body)
			bodies = append(bodies, r.body)
			return r
		}

		t.Run("credentials list pages and filters", func(t *testing.T) {
			var ids []string
			path := "/v1/credentials?limit=1"
			for range 10 {
				r := call("GET", path, read, "")
				var page struct {
					Credentials []map[string]any `json:"credentials"`
					NextCursor  *string          `json:"next_cursor"`
				}
				decode(t, r, &page)
				if r.code != http.StatusOK || len(page.Credentials) != 1 {
					t.Fatalf("GET %s: %d %s", path, r.code, r.body)
				}
				ids = append(ids, page.Credentials[0]["id"].(string))
				if page.NextCursor == nil {
					break
				}
				path = "/v1/credentials?limit=1&cursor=" + *page.NextCursor
			}
			want := []string{deliverytest.CredA, deliverytest.CredB, deliverytest.CredNoValue, credSecret}
			slices.Sort(want)
			if !slices.Equal(ids, want) {
				t.Errorf("pages of 1 gave %v; want %v", ids, want)
			}
			for query, want := range map[string][]string{
				"selector=team=dt,name=dt-b":        {deliverytest.CredB},
				"selector=team=other":               {credSecret},
				"consumer=mcp-server-dt-a":          {deliverytest.CredA},
				"provider=gen&selector=team%3Ddt":   {deliverytest.CredA, deliverytest.CredB, deliverytest.CredNoValue},
				"status=new":                        {deliverytest.CredNoValue},
				"status=healthy,new&limit=2":        {deliverytest.CredA, deliverytest.CredB},
				"provider=nope":                     {},
				"status=healthy&selector=team=none": {},
			} {
				r := call("GET", "/v1/credentials?"+query, read, "")
				var page struct{ Credentials []view.Credential }
				decode(t, r, &page)
				got := []string{}
				for _, c := range page.Credentials {
					got = append(got, c.ID)
				}
				if r.code != http.StatusOK || !slices.Equal(got, want) {
					t.Errorf("GET /v1/credentials?%s: %d %v; want %v", query, r.code, got, want)
				}
			}
			for _, query := range []string{"limit=0", "limit=1001", "limit=x", "cursor=garbage", "status=fine", "selector=novalue"} {
				r := call("GET", "/v1/credentials?"+query, read, "")
				if r.code != http.StatusBadRequest || r.h.Get("Content-Type") != "application/problem+json" {
					t.Errorf("GET /v1/credentials?%s: %d %s; want a 400 problem", query, r.code, r.body)
				}
			}
		})

		t.Run("credential show has the CLI's fields", func(t *testing.T) {
			r := call("GET", "/v1/credentials/"+deliverytest.CredA, read, "")
			c, err := b.f.Store.GetCredential(t.Context(), deliverytest.CredA)
			if err != nil {
				t.Fatal(err)
			}
			v, err := view.NewCredentialDetail(t.Context(), b.f.Store, c, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(map[string]any{"credential": v})
			var got, exp map[string]map[string]any
			decode(t, r, &got)
			_ = json.Unmarshal(want, &exp)
			if r.code != http.StatusOK || !sameKeys(got["credential"], exp["credential"]) || got["credential"]["current_version"] == nil {
				t.Errorf("GET /v1/credentials/%s: %d %s\nwant the keys of %s", deliverytest.CredA, r.code, r.body, want)
			}
			if r := call("GET", "/v1/credentials/nope", read, ""); r.code != http.StatusNotFound {
				t.Errorf("unknown credential: %d %s", r.code, r.body)
			}
		})

		var runID string
		t.Run("rotate one and a selection", func(t *testing.T) {
			r := call("POST", "/v1/credentials/"+deliverytest.CredNoValue+"/rotate", rot, "")
			var started struct {
				Runs []struct{ Credential, Run, State string }
			}
			decode(t, r, &started)
			if r.code != http.StatusAccepted || len(started.Runs) != 1 || started.Runs[0].Run == "" || started.Runs[0].State != "planned" {
				t.Fatalf("POST rotate: %d %s", r.code, r.body)
			}
			runID = started.Runs[0].Run
			run, err := b.f.Store.GetRun(t.Context(), runID)
			if err != nil || run.Actor != "token:oncall" || run.Trigger != store.TriggerAPI {
				t.Errorf("the run: actor %q trigger %q (%v); want token:oncall and api", run.Actor, run.Trigger, err)
			}
			for body, want := range map[string]int{
				`{"selector":"team=dt","emergency":true}`: http.StatusBadRequest, // no reason
				`{}`: http.StatusBadRequest,
				`{"selector":"team=dt","revoke_first":true,"reason":"x"}`: http.StatusBadRequest,
				`{"ids":["nope"]}`:                      http.StatusNotFound,
				`{"selector":"team=none"}`:              http.StatusNotFound,
				`{"selector":"team=dt","colour":"red"}`: http.StatusBadRequest,
				`not json`:                              http.StatusBadRequest,
				`{"selector":"name=dt-b","emergency":true,"reason":"key leaked"}`: http.StatusAccepted,
			} {
				if r := call("POST", "/v1/rotate", rot, body); r.code != want {
					t.Errorf("POST /v1/rotate %s: %d %s; want %d", body, r.code, r.body, want)
				}
			}
			runs, err := b.f.Store.ListRuns(t.Context(), store.RunFilter{CredentialID: deliverytest.CredB, Trigger: store.TriggerEmergency})
			if err != nil || len(runs) != 1 || runs[0].Reason != "key leaked" || runs[0].Actor != "token:oncall" {
				t.Errorf("the emergency run: %+v %v", runs, err)
			}
			if r := call("POST", "/v1/credentials/"+deliverytest.CredA+"/rotate", rot, `{"ids":["x"]}`); r.code != http.StatusBadRequest {
				t.Errorf("a selection on the one-credential route: %d %s", r.code, r.body)
			}
			// The same credential again: skipped, its active run named.
			r = call("POST", "/v1/credentials/"+deliverytest.CredNoValue+"/rotate", admin, "")
			if r.code != http.StatusAccepted || !strings.Contains(r.body, `"skipped":true`) || !strings.Contains(r.body, runID) {
				t.Errorf("rotating a credential with an active run: %d %s", r.code, r.body)
			}
		})

		t.Run("runs list pages and filters, show has steps", func(t *testing.T) {
			all, err := b.f.Store.ListRuns(t.Context(), store.RunFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			path := "/v1/runs?limit=2"
			for range 20 {
				r := call("GET", path, read, "")
				var page struct {
					Runs       []view.Run
					NextCursor *string `json:"next_cursor"`
				}
				decode(t, r, &page)
				if r.code != http.StatusOK {
					t.Fatalf("GET %s: %d %s", path, r.code, r.body)
				}
				for _, run := range page.Runs {
					ids = append(ids, run.ID)
				}
				if page.NextCursor == nil {
					break
				}
				path = "/v1/runs?limit=2&cursor=" + *page.NextCursor
			}
			var want []string
			for _, r := range all {
				want = append(want, r.ID)
			}
			if len(want) < 5 || !slices.Equal(ids, want) {
				t.Errorf("runs in pages of 2: %v; want %v", ids, want)
			}
			r := call("GET", "/v1/runs?credential="+deliverytest.CredA+"&state=succeeded&since=1h&trigger=manual", read, "")
			var page struct{ Runs []view.Run }
			decode(t, r, &page)
			if r.code != http.StatusOK || len(page.Runs) != 1 || page.Runs[0].Credential != deliverytest.CredA {
				t.Errorf("runs of dt-a, succeeded: %d %s", r.code, r.body)
			}
			for _, q := range []string{"state=bogus", "trigger=cron", "since=yesterday", "cursor=" + "eyJrIjoiY3JlZGVudGlhbHMifQ"} {
				if r := call("GET", "/v1/runs?"+q, read, ""); r.code != http.StatusBadRequest {
					t.Errorf("GET /v1/runs?%s: %d %s; want 400", q, r.code, r.body)
				}
			}
			r = call("GET", "/v1/runs/"+strings.ToLower(page.Runs[0].ID), read, "")
			var shown struct{ Run view.Run }
			decode(t, r, &shown)
			if r.code != http.StatusOK || len(shown.Run.Steps) < 3 || shown.Run.Steps[0].Name == "" {
				t.Errorf("GET /v1/runs/{id}: %d %s", r.code, r.body)
			}
			if r := call("GET", "/v1/runs/01NOSUCHRUN", read, ""); r.code != http.StatusNotFound {
				t.Errorf("unknown run: %d %s", r.code, r.body)
			}
		})

		t.Run("report in every format, audit verify", func(t *testing.T) {
			for format, ctype := range map[string]string{"json": "application/json", "md": "text/markdown", "html": "text/html", "csv": "text/csv"} {
				r := call("GET", "/v1/report?format="+format+"&since=7d", read, "")
				if r.code != http.StatusOK || !strings.HasPrefix(r.h.Get("Content-Type"), ctype) || !strings.Contains(r.body, deliverytest.CredA) {
					t.Errorf("report %s: %d %s %.200s", format, r.code, r.h.Get("Content-Type"), r.body)
				}
			}
			for _, q := range []string{"format=pdf", "since=soon", "until=x", "selector=bad"} {
				if r := call("GET", "/v1/report?"+q, read, ""); r.code != http.StatusBadRequest {
					t.Errorf("report ?%s: %d %s; want 400", q, r.code, r.body)
				}
			}
			r := call("GET", "/v1/audit/verify", read, "")
			var v struct {
				AuditChain struct {
					OK       bool  `json:"ok"`
					Unsealed int64 `json:"unsealed"`
				} `json:"audit_chain"`
			}
			decode(t, r, &v)
			if r.code != http.StatusOK || !v.AuditChain.OK {
				t.Errorf("audit verify: %d %s", r.code, r.body)
			}
			if r := call("GET", "/v1/audit/verify?since=2026-01-01", read, ""); r.code != http.StatusOK {
				t.Errorf("audit verify since: %d %s", r.code, r.body)
			}
		})

		t.Run("reload is all or nothing", func(t *testing.T) {
			writeTestFile(t, file, reloadConfig("  - id: dt-broken\n    consumer: x\n    provider: no-such-provider\n    max_age: soon\n    runbook: runbooks/generated.md#rotation\n"))
			r := call("POST", "/v1/config/reload", admin, "")
			var p struct {
				Code   string
				Errors []string
			}
			decode(t, r, &p)
			if r.code != http.StatusUnprocessableEntity || p.Code != "config-invalid" || len(p.Errors) < 2 ||
				!strings.Contains(strings.Join(p.Errors, "\n"), "no-such-provider") || !strings.Contains(strings.Join(p.Errors, "\n"), "soon") {
				t.Errorf("a broken reload: %d %s; want 422 listing both problems", r.code, r.body)
			}
			if _, err := b.f.Store.GetCredential(t.Context(), "dt-broken"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a broken reload changed the inventory: %v", err)
			}
			writeTestFile(t, file, reloadConfig("  - id: dt-new\n    consumer: x\n    provider: gen\n    max_age: 720h\n    runbook: runbooks/generated.md#rotation\n"))
			r = call("POST", "/v1/config/reload", admin, "")
			if r.code != http.StatusOK || !strings.Contains(r.body, `"created":1`) {
				t.Errorf("a good reload: %d %s", r.code, r.body)
			}
			if _, err := b.f.Store.GetCredential(t.Context(), "dt-new"); err != nil {
				t.Errorf("the reloaded credential: %v", err)
			}
		})

		t.Run("unknown routes and methods are problems", func(t *testing.T) {
			if r := call("DELETE", "/v1/credentials/"+deliverytest.CredA, admin, ""); r.code != http.StatusMethodNotAllowed || r.h.Get("Allow") == "" ||
				r.h.Get("Content-Type") != "application/problem+json" {
				t.Errorf("DELETE a credential: %d %v %s", r.code, r.h, r.body)
			}
			if r := call("GET", "/v1/nothing", admin, ""); r.code != http.StatusNotFound || r.h.Get("Content-Type") != "application/problem+json" {
				t.Errorf("GET /v1/nothing: %d %s", r.code, r.body)
			}
		})

		// Canary: no management response and no log line holds a value,
		// and the log names routes and token ids, never a token.
		values := []string{b.f.Value(t, deliverytest.CredA), b.f.Value(t, deliverytest.CredB), b.f.Value(t, credSecret)}
		for _, body := range bodies {
			for _, v := range append(values, deliverytest.ValuePrefix) {
				if strings.Contains(body, v) {
					t.Errorf("a management response holds a value (%.12s...): %.300s", v, body)
				}
			}
		}
		logs := b.logs.String()
		for _, secret := range append(values, read, rot, admin, "Bearer", "key leaked") {
			if strings.Contains(logs, secret) {
				t.Errorf("the log holds %.12s...", secret)
			}
		}
		for _, want := range []string{`"route":"GET /v1/credentials"`, `"route":"POST /v1/rotate"`, `"status":202`, `"token_id":"tok_`, `"duration_ms":`} {
			if !strings.Contains(logs, want) {
				t.Errorf("no request log line has %s", want)
			}
		}
		assertCanary(t, b, values[0])
	})
}

// sameKeys reports whether two JSON objects have the same keys.
func sameKeys(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// TestAuthFailureLimit: an address that sends too many bad tokens is
// answered 429 with Retry-After, before its token is looked at; another
// address is not affected, and the allowance comes back with time.
func TestAuthFailureLimit(t *testing.T) {
	t.Parallel()
	b := newBundleOpts(t, "sqlite", nil, "", func(o *api.Options) { o.AuthLimit = api.AuthLimit{Burst: 3, Every: time.Minute} })
	good := token(t, b, "r", "read")
	h := b.srv.TCPHandler()
	send := func(addr, tok string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, "/v1/credentials", nil)
		req.RemoteAddr = addr
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := &recorder{h: http.Header{}}
		h.ServeHTTP(rec, req)
		return &http.Response{StatusCode: rec.code, Header: rec.h, Body: io.NopCloser(&rec.body)}
	}
	forged, _ := apitoken.New()
	for i := range 3 {
		if r := send("127.0.0.1:5000", forged); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d; want 401", i+1, r.StatusCode)
		}
	}
	r := send("127.0.0.1:5001", good) // same address, another port
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Errorf("after 3 failures: %d %v; want 429 with Retry-After", r.StatusCode, r.Header)
	}
	if r := send("127.0.0.2:5000", good); r.StatusCode != http.StatusOK {
		t.Errorf("another address: %d; want 200", r.StatusCode)
	}
	b.now.Store(time.Now().Add(2 * time.Minute).UnixMicro())
	if r := send("127.0.0.1:5000", good); r.StatusCode != http.StatusOK {
		t.Errorf("two minutes later: %d; want 200", r.StatusCode)
	}
}

// recorder is a minimal http.ResponseWriter for calling a handler.
type recorder struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
