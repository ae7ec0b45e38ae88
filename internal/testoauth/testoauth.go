// Package testoauth is an in-process OAuth 2.0 authorization server for
// the tests of the oauth2-refresh-token provider and the end-to-end tests:
// the device authorization grant, the refresh_token grant with
// refresh-token rotation and reuse detection, resource indicators,
// introspection and revocation, at the protocol level.
package testoauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/providers"
)

// Server is an OAuth 2.0 authorization server speaking the protocol the
// oauth2-refresh-token provider uses: the device authorization grant (RFC 8628) to start a
// grant, the refresh_token grant with refresh-token rotation and reuse
// detection (every refresh answers a new refresh token and invalidates the
// old; presenting an invalidated one revokes the whole grant, its refresh
// and access tokens: OAuth 2.0 Security BCP §4.14), RFC 8707 resource
// indicators, RFC 7662 introspection and RFC 7009 revocation. A resource
// endpoint (/api/whoami) accepts live access tokens as a bearer token.
type Server struct {
	*httptest.Server

	mu        sync.Mutex
	clients   map[string]string // client id -> secret ("" for a public client)
	resources []string          // resources it issues tokens for
	scopes    []string          // scope a grant gets
	ttl       time.Duration
	rotate    bool // rotate refresh tokens (off: a server that keeps them)
	grants    map[string]*grant
	refresh   map[string]*refreshToken
	access    map[string]*accessToken
	issued    []string               // every refresh and access token, in order
	devices   map[string]*deviceCode // by device code
	reuses    int                    // reuse detections
	seen      []string               // resource parameters of refresh requests
	stall     chan struct{}
}

type grant struct {
	id, client string
	scope      []string
	resource   string
	revoked    bool
}

type refreshToken struct {
	grant *grant
	used  bool
}

type accessToken struct {
	grant   *grant
	exp     time.Time
	revoked bool
}

type deviceCode struct {
	userCode, client, resource string
	approved, done             bool
}

// New starts a server that issues tokens for the resource URL+"/api"
// with the scope "mcp:read mcp:write", rotating refresh tokens; it stops
// when the test ends. It knows no client until AddClient.
func New(t testing.TB) *Server {
	t.Helper()
	as := &Server{
		clients: map[string]string{}, ttl: time.Hour, rotate: true, scopes: []string{"mcp:read", "mcp:write"},
		grants: map[string]*grant{}, refresh: map[string]*refreshToken{}, access: map[string]*accessToken{}, devices: map[string]*deviceCode{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /device", as.deviceAuthorization)
	mux.HandleFunc("POST /token", as.token)
	mux.HandleFunc("POST /introspect", as.introspect)
	mux.HandleFunc("POST /revoke", as.revoke)
	mux.HandleFunc("GET /api/whoami", as.whoami)
	as.Server = httptest.NewServer(as.stalling(mux))
	as.resources = []string{as.URL + "/api"}
	t.Cleanup(as.Close)
	return as
}

// AddClient registers a client; a public client has the secret "".
func (as *Server) AddClient(id, secret string) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.clients[id] = secret
}

// SetRotate sets whether a refresh answers a new refresh token and
// invalidates the one presented (the default), or keeps it (a server
// that does not rotate refresh tokens).
func (as *Server) SetRotate(rotate bool) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.rotate = rotate
}

// Resource is the resource the server issues tokens for, to send as the
// resource parameter.
func (as *Server) Resource() string { return as.URL + "/api" }

// Grant starts a grant for a registered client and resource as an
// approved authorization would, and returns its refresh token: a
// bootstrap refresh token without the device grant.
func (as *Server) Grant(clientID, resource string) string {
	as.mu.Lock()
	defer as.mu.Unlock()
	g := &grant{id: random("g_"), client: clientID, scope: as.scopes, resource: resource}
	as.grants[g.id] = g
	rt := random("rt_")
	as.refresh[rt] = &refreshToken{grant: g}
	as.issued = append(as.issued, rt)
	return rt
}

// Issued returns every refresh and access token the server issued, in
// order: what a leak test searches for.
func (as *Server) Issued() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.issued)
}

func (as *Server) set(f func(as *Server)) {
	as.mu.Lock()
	defer as.mu.Unlock()
	f(as)
}

func (as *Server) stalling(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as.mu.Lock()
		stall := as.stall
		as.mu.Unlock()
		if stall != nil {
			select {
			case <-stall:
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Stall implements providertest.Staller.
func (as *Server) Stall(t *testing.T) func() {
	ch := make(chan struct{})
	as.set(func(as *Server) { as.stall = ch })
	var once sync.Once
	resume := func() {
		once.Do(func() {
			as.set(func(as *Server) { as.stall = nil })
			close(ch)
		})
	}
	t.Cleanup(resume)
	return resume
}

func random(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	reply(w, status, map[string]string{"error": code, "error_description": desc})
}

// client authenticates the request's client (HTTP Basic or form fields; a
// public client sends only its client_id). Caller holds as.mu.
func (as *Server) client(r *http.Request) (string, bool) {
	id, sec, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		sec, _ = url.QueryUnescape(sec)
	} else {
		id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	want, ok := as.clients[id]
	return id, ok && sec == want && (want != "" || !basic)
}

func (as *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	as.mu.Lock()
	defer as.mu.Unlock()
	// golang.org/x/oauth2 identifies the client here by client_id alone
	// (as most servers accept); the token request authenticates it.
	id, ok := as.client(r)
	if _, known := as.clients[r.PostForm.Get("client_id")]; !ok && known {
		id, ok = r.PostForm.Get("client_id"), true
	}
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	dc := &deviceCode{userCode: random("")[:8], client: id, resource: r.PostForm.Get("resource")}
	code := random("dc_")
	as.devices[code] = dc
	reply(w, http.StatusOK, map[string]any{
		"device_code": code, "user_code": dc.userCode, "verification_uri": as.URL + "/activate",
		"verification_uri_complete": as.URL + "/activate?user_code=" + dc.userCode, "expires_in": 600, "interval": 1,
	})
}

// Approve approves the pending device code with the given user code, as a
// user at the verification URI would.
func (as *Server) Approve(userCode string) bool {
	as.mu.Lock()
	defer as.mu.Unlock()
	for _, dc := range as.devices {
		if dc.userCode == userCode {
			dc.approved = true
			return true
		}
	}
	return false
}

// issue answers a token response for g. Caller holds as.mu.
func (as *Server) issue(w http.ResponseWriter, g *grant, withRefresh bool) {
	at := random("at_")
	as.access[at] = &accessToken{grant: g, exp: time.Now().Add(as.ttl)}
	as.issued = append(as.issued, at)
	resp := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(as.ttl.Seconds()), "scope": strings.Join(g.scope, " ")}
	if withRefresh {
		rt := random("rt_")
		as.refresh[rt] = &refreshToken{grant: g}
		as.issued = append(as.issued, rt)
		resp["refresh_token"] = rt
	}
	reply(w, http.StatusOK, resp)
}

func (as *Server) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	as.mu.Lock()
	defer as.mu.Unlock()
	id, ok := as.client(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "urn:ietf:params:oauth:grant-type:device_code":
		dc := as.devices[r.PostForm.Get("device_code")]
		switch {
		case dc == nil || dc.client != id || dc.done:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown device code")
		case !dc.approved:
			oauthError(w, http.StatusBadRequest, "authorization_pending", "")
		default:
			dc.done = true
			g := &grant{id: random("g_"), client: id, scope: as.scopes, resource: dc.resource}
			as.grants[g.id] = g
			as.issue(w, g, true)
		}
	case "refresh_token":
		rt := as.refresh[r.PostForm.Get("refresh_token")]
		switch {
		case rt == nil || rt.grant.client != id:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
			return
		case rt.grant.revoked:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the grant was revoked")
			return
		case rt.used:
			// Reuse: someone holds a copy. Revoke the whole grant.
			as.reuses++
			as.revokeGrant(rt.grant)
			oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token reuse detected; the grant is revoked")
			return
		}
		res := r.PostForm.Get("resource")
		as.seen = append(as.seen, res)
		if res != "" && !slices.Contains(as.resources, res) {
			oauthError(w, http.StatusBadRequest, "invalid_target", "unknown resource")
			return
		}
		if sc := r.PostForm.Get("scope"); sc != "" {
			for _, s := range strings.Fields(sc) {
				if !slices.Contains(rt.grant.scope, s) {
					oauthError(w, http.StatusBadRequest, "invalid_scope", "scope beyond the grant")
					return
				}
			}
		}
		if res != "" {
			rt.grant.resource = res
		}
		if as.rotate {
			rt.used = true
		}
		as.issue(w, rt.grant, as.rotate)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// revokeGrant revokes a grant with its refresh and access tokens. Caller
// holds as.mu.
func (as *Server) revokeGrant(g *grant) {
	g.revoked = true
	for _, a := range as.access {
		if a.grant == g {
			a.revoked = true
		}
	}
}

// live returns the live access token at, or nil. Caller holds as.mu.
func (as *Server) live(at string) *accessToken {
	a := as.access[at]
	if a == nil || a.revoked || a.grant.revoked || !time.Now().Before(a.exp) {
		return nil
	}
	return a
}

func (as *Server) introspect(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	as.mu.Lock()
	defer as.mu.Unlock()
	if _, ok := as.client(r); !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	a := as.live(r.PostForm.Get("token"))
	if a == nil {
		reply(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	reply(w, http.StatusOK, map[string]any{
		"active": true, "scope": strings.Join(a.grant.scope, " "), "client_id": a.grant.client,
		"exp": a.exp.Unix(), "aud": a.grant.resource, "token_type": "Bearer",
	})
}

func (as *Server) revoke(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	as.mu.Lock()
	defer as.mu.Unlock()
	if _, ok := as.client(r); !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	tok := r.PostForm.Get("token")
	if a := as.access[tok]; a != nil {
		a.revoked = true
	}
	if rt := as.refresh[tok]; rt != nil {
		as.revokeGrant(rt.grant)
	}
	w.WriteHeader(http.StatusOK)
}

func (as *Server) whoami(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	as.mu.Lock()
	defer as.mu.Unlock()
	if !ok || as.live(at) == nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	reply(w, http.StatusOK, map[string]string{"sub": "rotator"})
}

// Accepts implements providertest.Resource: it calls the resource endpoint
// with the access token.
func (as *Server) Accepts(ctx context.Context, v providers.VersionRef) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, as.URL+"/api/whoami", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+v.Value.RevealString())
	resp, err := as.Client().Do(req)
	if err != nil {
		return false, fmt.Errorf("asking the resource: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusUnauthorized:
		return false, nil
	}
	return false, fmt.Errorf("the resource answered HTTP %d", resp.StatusCode)
}

// Reuses returns how many times a used refresh token was presented
// again (each revoked its grant).
func (as *Server) Reuses() int {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.reuses
}

// ResourcesSeen returns the resource parameter of every refresh request.
func (as *Server) ResourcesSeen() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.seen)
}
