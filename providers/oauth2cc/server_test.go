package oauth2cc_test

// The protocol servers the tests run against: an OAuth 2.0 authorization
// server written on net/http (token endpoint with the client credentials
// grant, JWKS, RFC 7662 introspection, RFC 7009 revocation, a protected
// API), and a real MCP server from the go-sdk behind the sdk's bearer-token
// middleware, which accepts only valid, unrevoked tokens issued for it.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
)

var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
)

// signingKeys returns the test keys, generated once per test binary.
func signingKeys() (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return rsaKey, ecKey
}

// mcpScope is the scope the MCP server requires of every token.
const mcpScope = "mcp:read"

// client is a client registered at the authorization server.
type client struct {
	secret string
	scopes []string // what it may request; granted when it requests nothing
}

// issued is what the authorization server remembers of a token.
type issued struct {
	clientID string
	scope    []string
	aud      []string
	exp      time.Time
	revoked  bool
}

// authServer is the OAuth 2.0 authorization server of the tests.
type authServer struct {
	t   *testing.T
	srv *httptest.Server
	// URL is the issuer, and the base of every endpoint.
	URL string

	mu          sync.Mutex
	clients     map[string]client
	tokens      map[string]*issued // by jti
	alg         string             // RS256 or ES256
	ttl         time.Duration
	clock       time.Duration // added to time.Now for iat/exp, to issue expired tokens
	widen       []string      // granted on top of what was asked
	narrow      []string      // withheld from what was asked
	omitScope   bool          // leave scope out of the token response
	requireAuth string        // "header" or "params": refuse the other
	echoSecret  bool          // put the presented secret in error_description
	resources   []string      // accepted resource parameters; any when empty
	revokeFail  int           // when set, the revocation endpoint answers this status
	authUsed    []string      // client authentication methods seen at the token endpoint
	resSeen     []string      // resource parameters seen at the token endpoint
	gate        chan struct{} // closed when not stalled

	conns atomic.Int64 // TCP connections accepted
}

func newAuthServer(t *testing.T) *authServer {
	t.Helper()
	signingKeys()
	as := &authServer{t: t, clients: map[string]client{}, tokens: map[string]*issued{}, alg: "RS256", ttl: time.Hour, gate: closedGate()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", as.token)
	mux.HandleFunc("GET /jwks", as.jwks)
	mux.HandleFunc("POST /introspect", as.introspect)
	mux.HandleFunc("POST /revoke", as.revoke)
	mux.HandleFunc("GET /api/whoami", as.whoami)
	as.srv = httptest.NewUnstartedServer(as.gated(mux))
	as.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			as.conns.Add(1)
		}
	}
	as.srv.Start()
	as.URL = as.srv.URL
	t.Cleanup(as.srv.Close)
	return as
}

func closedGate() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func (as *authServer) register(id, secret string, scopes ...string) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.clients[id] = client{secret: secret, scopes: scopes}
}

func (as *authServer) set(fn func(as *authServer)) {
	as.mu.Lock()
	defer as.mu.Unlock()
	fn(as)
}

// gated holds every request while the server is stalled, until it resumes
// or the client goes away.
func (as *authServer) gated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as.mu.Lock()
		gate := as.gate
		as.mu.Unlock()
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Stall implements providertest.Staller for the authorization server and
// every server gated by it.
func (as *authServer) Stall(t *testing.T) (resume func()) {
	gate := make(chan struct{})
	as.set(func(as *authServer) { as.gate = gate })
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// authenticate checks the client credentials of a request, by HTTP Basic
// (form-urlencoded id and secret, RFC 6749 §2.3.1) or form parameters.
func (as *authServer) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, sec, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		sec, err2 = url.QueryUnescape(sec)
		if err1 != nil || err2 != nil {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "malformed basic credentials")
			return "", false
		}
		if r.PostForm.Get("client_secret") != "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "more than one client authentication method")
			return "", false
		}
	} else {
		id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	method := map[bool]string{true: "header", false: "params"}[basic]
	as.mu.Lock()
	c, known := as.clients[id]
	require, echo := as.requireAuth, as.echoSecret
	if r.URL.Path == "/token" {
		as.authUsed = append(as.authUsed, method)
	}
	as.mu.Unlock()
	switch {
	case id == "":
		oauthError(w, http.StatusUnauthorized, "invalid_client", "no client authentication")
	case require != "" && require != method:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "this server accepts client authentication by "+require+" only")
	case !known || c.secret != sec:
		desc := "client authentication failed"
		if echo {
			desc = fmt.Sprintf("client %s presented the wrong secret %q", id, sec)
		}
		oauthError(w, http.StatusUnauthorized, "invalid_client", desc)
	default:
		return id, true
	}
	return "", false
}

func (as *authServer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	clientID, ok := as.authenticate(w, r)
	if !ok {
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials")
		return
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	c := as.clients[clientID]
	requested := strings.Fields(r.PostForm.Get("scope"))
	for _, s := range requested {
		if !slices.Contains(c.scopes, s) {
			oauthError(w, http.StatusBadRequest, "invalid_scope", fmt.Sprintf("scope %s is not allowed for this client", s))
			return
		}
	}
	if len(requested) == 0 {
		requested = slices.Clone(c.scopes)
	}
	var aud []string
	for _, res := range r.PostForm["resource"] {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || u.Fragment != "" || (len(as.resources) > 0 && !slices.Contains(as.resources, res)) {
			oauthError(w, http.StatusBadRequest, "invalid_target", "resource "+res+" is not served here")
			return
		}
		aud = append(aud, res)
		as.resSeen = append(as.resSeen, res)
	}
	granted := slices.DeleteFunc(slices.Clone(requested), func(s string) bool { return slices.Contains(as.narrow, s) })
	for _, s := range as.widen {
		if !slices.Contains(granted, s) {
			granted = append(granted, s)
		}
	}
	now := time.Now().Add(as.clock)
	jti := randomID()
	rec := &issued{clientID: clientID, scope: granted, aud: aud, exp: now.Add(as.ttl).Truncate(time.Second)}
	as.tokens[jti] = rec
	claims := map[string]any{
		"iss": as.URL, "sub": clientID, "client_id": clientID, "jti": jti,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": rec.exp.Unix(), "scope": strings.Join(granted, " "),
	}
	switch len(aud) {
	case 0:
	case 1:
		claims["aud"] = aud[0]
	default:
		claims["aud"] = aud
	}
	resp := map[string]any{
		"access_token": as.sign(claims),
		"token_type":   "Bearer",
		"expires_in":   int(as.ttl / time.Second),
	}
	if !as.omitScope {
		resp["scope"] = strings.Join(granted, " ")
	}
	writeJSON(w, http.StatusOK, resp)
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sign makes a JWT; as.mu must be held.
func (as *authServer) sign(claims map[string]any) string {
	rk, ek := signingKeys()
	header := map[string]string{"alg": as.alg, "typ": "at+jwt", "kid": strings.ToLower(as.alg) + "-1"}
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch as.alg {
	case "RS256":
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, digest[:]); err != nil {
			panic(err)
		}
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, ek, digest[:])
		if err != nil {
			panic(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (as *authServer) jwks(w http.ResponseWriter, _ *http.Request) {
	rk, ek := signingKeys()
	b64 := base64.RawURLEncoding.EncodeToString
	ecPub, _ := ek.PublicKey.Bytes() // 0x04 || X || Y
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "rs256-1", "use": "sig", "alg": "RS256", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "es256-1", "use": "sig", "alg": "ES256", "crv": "P-256", "x": b64(ecPub[1:33]), "y": b64(ecPub[33:])},
	}})
}

// lookup checks a token's signature and finds its record; it returns the
// record and whether the token is active now. as.mu must be held.
func (as *authServer) lookup(token string) (*issued, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	rk, ek := signingKeys()
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, false
	}
	if rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, digest[:], sig) != nil &&
		(len(sig) != 64 || !ecdsa.Verify(&ek.PublicKey, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))) {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return nil, false
	}
	rec := as.tokens[claims.JTI]
	if rec == nil {
		return nil, false
	}
	return rec, !rec.revoked && time.Now().Before(rec.exp)
}

// Validate reports whether token is active and issued for audience (any
// audience when empty), as a resource server checks it.
func (as *authServer) Validate(token, audience string) (*issued, error) {
	as.mu.Lock()
	defer as.mu.Unlock()
	rec, active := as.lookup(token)
	switch {
	case rec == nil:
		return nil, errors.New("unknown token")
	case !active:
		return nil, errors.New("token revoked or expired")
	case audience != "" && !slices.Contains(rec.aud, audience):
		return nil, errors.New("token not issued for this resource")
	}
	return rec, nil
}

func (as *authServer) introspect(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	if _, ok := as.authenticate(w, r); !ok {
		return
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	rec, active := as.lookup(r.PostForm.Get("token"))
	if !active {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"active": true, "scope": strings.Join(rec.scope, " "), "client_id": rec.clientID,
		"aud": rec.aud, "exp": rec.exp.Unix(), "token_type": "Bearer", "iss": as.URL, "sub": rec.clientID,
	})
}

func (as *authServer) revoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	clientID, ok := as.authenticate(w, r)
	if !ok {
		return
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	switch as.revokeFail {
	case 0:
	case http.StatusBadRequest:
		oauthError(w, http.StatusBadRequest, "unsupported_token_type", "access tokens cannot be revoked here")
		return
	default:
		w.WriteHeader(as.revokeFail)
		return
	}
	rec, _ := as.lookup(r.PostForm.Get("token"))
	if rec != nil {
		if rec.clientID != clientID {
			oauthError(w, http.StatusBadRequest, "unauthorized_client", "the token was issued to another client")
			return
		}
		rec.revoked = true
	}
	// RFC 7009 §2.2: 200 whether or not the token was known.
	w.WriteHeader(http.StatusOK)
}

// whoami is a protected API endpoint: 200 for an active token, else 401.
func (as *authServer) whoami(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
		http.Error(w, "no bearer token", http.StatusUnauthorized)
		return
	}
	rec, err := as.Validate(token, "")
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api", error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"client_id": rec.clientID})
}

// Accepts implements providertest.Resource: the protected API takes the
// token.
func (as *authServer) Accepts(ctx context.Context, v providers.VersionRef) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, as.URL+"/api/whoami", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+v.Value.RevealString())
	resp, err := as.srv.Client().Do(req)
	if err != nil {
		return false, err
	}
	_ = resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusUnauthorized:
		return false, nil
	}
	return false, fmt.Errorf("whoami answered HTTP %d", resp.StatusCode)
}

func (as *authServer) methods() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.authUsed)
}

func (as *authServer) resourcesSeen() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.resSeen)
}

// mcpServer is a go-sdk MCP server over streamable HTTP at URL, which
// requires a bearer token that the authorization server issued for URL
// with mcpScope, and that is neither revoked nor expired.
type mcpServer struct {
	URL string
}

type echoIn struct {
	Text string `json:"text" jsonschema:"the text to echo"`
}

type echoOut struct {
	Text string `json:"text"`
}

func newMCPServer(t *testing.T, as *authServer) *mcpServer {
	t.Helper()
	server := mcp.NewServer(&mcp.Implementation{Name: "test-mcp", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "echo", Description: "echoes its input"},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, echoOut, error) {
			return nil, echoOut{Text: in.Text}, nil
		})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	m := &mcpServer{}
	verifier := func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		rec, err := as.Validate(token, m.URL)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
		}
		return &auth.TokenInfo{Scopes: rec.scope, Expiration: rec.exp, UserID: rec.clientID}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", auth.RequireBearerToken(verifier, &auth.RequireBearerTokenOptions{Scopes: []string{mcpScope}})(handler))
	srv := httptest.NewServer(as.gated(mux))
	t.Cleanup(srv.Close)
	m.URL = srv.URL + "/mcp"
	return m
}

// canary returns a random secret for a test.
func canary(prefix string) secret.Value {
	return secret.NewString(prefix + randomID())
}
