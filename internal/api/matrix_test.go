package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/store"
)

// openAPI is the part of the OpenAPI document the tests read.
type openAPI struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Scope     string                     `json:"x-rotator-scope"`
		Responses map[string]json.RawMessage `json:"responses"`
	} `json:"paths"`
}

func loadOpenAPI(t *testing.T) openAPI {
	t.Helper()
	var doc openAPI
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.json says openapi %q; want 3.1.0", doc.OpenAPI)
	}
	return doc
}

// documented returns the documented routes ("METHOD /pattern") with
// their documented statuses.
func (d openAPI) documented() map[string][]int {
	out := map[string][]int{}
	for path, ops := range d.Paths {
		for method, op := range ops {
			var codes []int
			for c := range op.Responses {
				n, _ := strconv.Atoi(c)
				codes = append(codes, n)
			}
			sort.Ints(codes)
			out[strings.ToUpper(method)+" "+path] = codes
		}
	}
	return out
}

// concrete fills a route's path parameters with things that exist.
func concrete(route, runID string) (method, path string) {
	method, path, _ = strings.Cut(route, " ")
	path = strings.ReplaceAll(path, "/v1/runs/{id}", "/v1/runs/"+runID)
	path = strings.ReplaceAll(path, "{id}", deliverytest.CredA)
	return method, path
}

// rightStatus is what each route answers a token with the right scope in
// the matrix's requests.
var rightStatus = map[string]int{
	"GET /v1/credentials":              http.StatusOK,
	"GET /v1/credentials/{id}":         http.StatusOK,
	"GET /v1/credentials/{id}/value":   http.StatusOK,
	"POST /v1/credentials/{id}/rotate": http.StatusAccepted,
	"POST /v1/rotate":                  http.StatusAccepted,
	"GET /v1/runs":                     http.StatusOK,
	"GET /v1/runs/{id}":                http.StatusOK,
	"GET /v1/report":                   http.StatusOK,
	"GET /v1/audit/verify":             http.StatusOK,
	"POST /v1/config/reload":           http.StatusOK,
	"GET /v1/openapi.json":             http.StatusOK,
}

// bodyOf is the body the matrix sends to a route.
func bodyOf(route string) string {
	if route == "POST /v1/rotate" {
		return `{"selector":"name=` + deliverytest.CredB + `"}`
	}
	return ""
}

// TestOpenAPIDescribesTheRoutes walks the server's routes and the
// document: every route is documented with its scope, every documented
// route answers (not 404 or 405) with a status the document lists, and
// every route documents 401, 403 and 429.
func TestOpenAPIDescribesTheRoutes(t *testing.T) {
	t.Parallel()
	b, _ := newManageBundle(t, "sqlite")
	doc := loadOpenAPI(t)
	docRoutes := doc.documented()
	var listed []string
	for r := range docRoutes {
		listed = append(listed, r)
	}
	sort.Strings(listed)
	if !slices.Equal(listed, b.srv.RouteList()) {
		t.Fatalf("documented routes:\n%v\nserved routes:\n%v", listed, b.srv.RouteList())
	}
	if len(rightStatus) != len(listed) {
		t.Fatalf("the test knows %d routes; the server has %d", len(rightStatus), len(listed))
	}
	all := token(t, b, "all", "admin", "consume:*")
	runs, err := b.f.Store.ListRuns(t.Context(), store.RunFilter{})
	if err != nil || len(runs) == 0 {
		t.Fatalf("runs: %v", err)
	}
	runID := runs[0].ID
	for _, route := range listed {
		path, method := splitRoute(route)
		op := doc.Paths[path][strings.ToLower(method)]
		scope := b.srv.RouteScope(route)
		if scope == string(apitoken.KindConsume) {
			scope = "consume:SELECTOR"
		}
		if op.Scope != scope {
			t.Errorf("%s: documented scope %q; the server checks %q", route, op.Scope, scope)
		}
		for _, c := range []int{401, 403, 429} {
			if !slices.Contains(docRoutes[route], c) {
				t.Errorf("%s does not document %d", route, c)
			}
		}
		m, p := concrete(route, runID)
		r := do(t, b, m, p, all, bodyOf(route))
		if r.code == http.StatusNotFound || r.code == http.StatusMethodNotAllowed || !slices.Contains(docRoutes[route], r.code) {
			t.Errorf("%s %s answers %d (%.200s); documented: %v", m, p, r.code, r.body, docRoutes[route])
		}
	}
}

func splitRoute(route string) (path, method string) {
	method, path, _ = strings.Cut(route, " ")
	return path, method
}

// TestAuthorizationMatrix: every route × (no token, a malformed one, an
// expired one, a revoked one, one with the wrong scope, one with the right
// scope) gives the documented status, on both stores; admin includes rotate
// includes read; only consume: scopes read values, and consume:a reads only
// a.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		b, _ := newManageBundle(t, dialect)
		doc := loadOpenAPI(t).documented()
		ctx := t.Context()
		mk := func(name string, ttl time.Duration, scopes ...string) apitoken.Created {
			c, err := b.tokens.Create(ctx, apitoken.CreateRequest{Name: name, Scopes: scopes, TTL: ttl, Actor: "test"})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		expired := mk("expired", time.Millisecond, "admin", "consume:*")
		revoked := mk("revoked", 0, "admin", "consume:*")
		if _, err := b.tokens.Revoke(ctx, revoked.Record.ID, "test"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		byScope := map[string]string{
			"read":    mk("read", 0, "read").Token,
			"rotate":  mk("rotate", 0, "rotate").Token,
			"admin":   mk("admin", 0, "admin").Token,
			"consume": mk("consume-a", 0, "consume:"+deliverytest.CredA).Token,
		}
		// wrong is a token without the route's scope (the next one down,
		// or a consume: token); right holds exactly the route's scope.
		wrong := map[string]string{"read": byScope["consume"], "rotate": byScope["read"], "admin": byScope["rotate"], "consume": byScope["admin"]}
		runs, err := b.f.Store.ListRuns(ctx, store.RunFilter{})
		if err != nil || len(runs) == 0 {
			t.Fatalf("runs: %v", err)
		}
		malformed := "rtrtok_" + strings.Repeat("0", 72)
		for _, route := range b.srv.RouteList() {
			scope := b.srv.RouteScope(route)
			m, p := concrete(route, runs[0].ID)
			cases := []struct {
				name, token string
				want        int
				code        string
			}{
				{"no token", "", http.StatusUnauthorized, "unauthorized"},
				{"malformed", malformed, http.StatusUnauthorized, "unauthorized"},
				{"expired", expired.Token, http.StatusUnauthorized, "unauthorized"},
				{"revoked", revoked.Token, http.StatusUnauthorized, "unauthorized"},
				{"wrong scope", wrong[scope], http.StatusForbidden, ""},
				{"right scope", byScope[scope], rightStatus[route], ""},
			}
			for _, c := range cases {
				r := do(t, b, m, p, c.token, bodyOf(route))
				if r.code != c.want || !slices.Contains(doc[route], r.code) {
					t.Errorf("%s, %s: %d %.300s; want %d (documented %v)", route, c.name, r.code, r.body, c.want, doc[route])
					continue
				}
				if r.code == http.StatusUnauthorized && (r.h.Get("WWW-Authenticate") == "" || !strings.Contains(r.body, `"code":"unauthorized"`)) {
					t.Errorf("%s, %s: a 401 without WWW-Authenticate or problem: %v %s", route, c.name, r.h, r.body)
				}
				if r.code == http.StatusForbidden && r.h.Get("Content-Type") != "application/problem+json" {
					t.Errorf("%s, %s: a 403 that is not a problem: %s", route, c.name, r.body)
				}
			}
		}
		// Scopes include the ones below them: admin and rotate read; admin
		// rotates.
		for _, tc := range []struct{ scope, route string }{
			{"rotate", "GET /v1/credentials"}, {"admin", "GET /v1/runs"}, {"admin", "POST /v1/rotate"},
		} {
			m, p := concrete(tc.route, runs[0].ID)
			if r := do(t, b, m, p, byScope[tc.scope], bodyOf(tc.route)); r.code != rightStatus[tc.route] {
				t.Errorf("%s on %s: %d %s", tc.scope, tc.route, r.code, r.body)
			}
		}
		// A management scope never reads a value; consume:a reads a only.
		for _, scope := range []string{"read", "rotate", "admin"} {
			if r := do(t, b, "GET", "/v1/credentials/"+deliverytest.CredA+"/value", byScope[scope], ""); r.code != http.StatusForbidden {
				t.Errorf("a %s token reads a value: %d", scope, r.code)
			}
		}
		for id, want := range map[string]int{deliverytest.CredA: 200, deliverytest.CredB: 403, credSecret: 403, "no-such": 403} {
			if r := do(t, b, "GET", "/v1/credentials/"+id+"/value", byScope["consume"], ""); r.code != want {
				t.Errorf("consume:%s reads %s: %d; want %d", deliverytest.CredA, id, r.code, want)
			}
		}
		// The 403 of a scope names what is missing and how to get it.
		r := do(t, b, "POST", "/v1/config/reload", byScope["rotate"], "")
		if !regexp.MustCompile(`needs a token with the scope admin.*--scope admin`).MatchString(r.body) ||
			!strings.Contains(r.h.Get("WWW-Authenticate"), "insufficient_scope") {
			t.Errorf("the 403 of a missing scope: %v %s", r.h, r.body)
		}
	})
}
