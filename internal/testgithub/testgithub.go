// Package testgithub is a fake of the GitHub REST API for installation
// tokens, at the protocol level, for the tests of the github-app provider
// and the end-to-end tests.
package testgithub

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/providers"
)

// Fake speaks the part of the GitHub REST API that installation
// tokens use, as GitHub answers it: the app's JWT is checked (RS256
// signature against the app's public key, iss, iat in the past, exp at
// most 10 minutes ahead), tokens get at most the installation's
// permissions and repositories (422 otherwise), `metadata: read` comes
// with every token, and a revoked, expired or unknown token gets 401 "Bad
// credentials".
type Fake struct {
	*httptest.Server
	prefix string // "" for api.github.com, "/api/v3" for GitHub Enterprise Server
	// AppID and InstallationID are the app and installation the fake
	// knows (set by New, never changed).
	AppID, InstallationID string

	mu           sync.Mutex
	pub          *rsa.PublicKey
	installPerms map[string]string
	installRepos []string
	tokens       map[string]*Token
	claims       []map[string]any // claims of every accepted JWT
	stall        chan struct{}
	// ExtraGrant, RateLimited and Now are changed through Set only.
	ExtraGrant  map[string]string // granted beyond what was asked (a misbehaving server)
	RateLimited bool
	Now         func() time.Time
}

// Token is an installation token as the fake recorded it.
type Token struct {
	Perms   map[string]string
	Repos   []string
	Expires time.Time
	Revoked bool
}

// New starts the fake for an app whose JWTs verify with pub, its API under
// prefix ("" or "/api/v3"); it stops when the test ends.
func New(t testing.TB, pub *rsa.PublicKey, prefix string) *Fake {
	t.Helper()
	g := &Fake{
		prefix: prefix, AppID: "424242", InstallationID: "98765", pub: pub,
		installPerms: map[string]string{"metadata": "read", "contents": "write", "issues": "write", "pull_requests": "read"},
		installRepos: []string{"rotator", "docs", "infra"},
		tokens:       map[string]*Token{},
		Now:          time.Now,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+prefix+"/app/installations/{id}/access_tokens", g.createToken)
	mux.HandleFunc("GET "+prefix+"/installation/repositories", g.listRepos)
	mux.HandleFunc("DELETE "+prefix+"/installation/token", g.revokeToken)
	g.Server = httptest.NewServer(g.stalling(mux))
	t.Cleanup(g.Close)
	return g
}

// BaseURL is what base_url names.
func (g *Fake) BaseURL() string { return g.URL + g.prefix }

// Set changes the fake under its lock: f may set Now, ExtraGrant and
// RateLimited.
func (g *Fake) Set(f func(g *Fake)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

func (g *Fake) stalling(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		stall := g.stall
		g.mu.Unlock()
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
func (g *Fake) Stall(t *testing.T) func() {
	ch := make(chan struct{})
	g.Set(func(g *Fake) { g.stall = ch })
	var once sync.Once
	resume := func() {
		once.Do(func() {
			g.Set(func(g *Fake) { g.stall = nil })
			close(ch)
		})
	}
	t.Cleanup(resume)
	return resume
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func ghError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest", "status": fmt.Sprint(status)})
}

// checkJWT checks an app JWT as GitHub does and returns its claims.
func (g *Fake) checkJWT(r *http.Request) (map[string]any, string) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return nil, "A JSON web token could not be decoded"
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, "A JSON web token could not be decoded"
	}
	var header struct {
		Alg string `json:"alg"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &header) != nil || header.Alg != "RS256" {
		return nil, "A JSON web token could not be decoded"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(g.pub, crypto.SHA256, sum[:], sig) != nil {
		return nil, "A JSON web token could not be decoded"
	}
	var claims map[string]any
	if json.Unmarshal(cb, &claims) != nil {
		return nil, "A JSON web token could not be decoded"
	}
	now := g.Now().Unix()
	iat, okI := claims["iat"].(float64)
	exp, okE := claims["exp"].(float64)
	switch {
	case fmt.Sprint(claims["iss"]) != g.AppID:
		return nil, "Integration not found"
	case !okI || int64(iat) > now+1:
		return nil, "'Issued at' claim ('iat') must be an Integer representing a time in the past."
	case !okE || int64(exp) <= now:
		return nil, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires."
	case int64(exp) > now+600 || exp-iat > 660:
		return nil, "'Expiration time' claim ('exp') is too far in the future."
	}
	return claims, ""
}

func (g *Fake) createToken(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.RateLimited {
		w.Header().Set("X-RateLimit-Remaining", "0")
		ghError(w, http.StatusForbidden, "API rate limit exceeded for installation.")
		return
	}
	claims, problem := g.checkJWT(r)
	if problem != "" {
		ghError(w, http.StatusUnauthorized, problem)
		return
	}
	g.claims = append(g.claims, claims)
	if r.PathValue("id") != g.InstallationID {
		ghError(w, http.StatusNotFound, "Not Found")
		return
	}
	var body struct {
		Repositories []string          `json:"repositories"`
		Permissions  map[string]string `json:"permissions"`
	}
	if r.Body != nil && json.NewDecoder(r.Body).Decode(&body) != nil {
		ghError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	rank := map[string]int{"read": 1, "write": 2, "admin": 3}
	perms := map[string]string{}
	if len(body.Permissions) == 0 {
		for k, v := range g.installPerms {
			perms[k] = v
		}
	}
	for name, lvl := range body.Permissions {
		have, ok := g.installPerms[name]
		if !ok || rank[lvl] == 0 || rank[lvl] > rank[have] {
			ghError(w, http.StatusUnprocessableEntity, "The permissions requested are not granted to this installation.")
			return
		}
		perms[name] = lvl
	}
	perms["metadata"] = "read"
	for k, v := range g.ExtraGrant {
		perms[k] = v
	}
	for _, repo := range body.Repositories {
		if !slices.Contains(g.installRepos, repo) {
			ghError(w, http.StatusUnprocessableEntity, "There is at least one repository that does not exist or is not accessible to the parent installation.")
			return
		}
	}
	b := make([]byte, 27)
	_, _ = rand.Read(b)
	token := "ghs_" + base64.RawURLEncoding.EncodeToString(b)[:36]
	expires := g.Now().Add(time.Hour).UTC().Truncate(time.Second)
	g.tokens[token] = &Token{Perms: perms, Repos: slices.Clone(body.Repositories), Expires: expires}
	resp := map[string]any{
		"token": token, "expires_at": expires.Format(time.RFC3339), "permissions": perms,
		"repository_selection": "all",
	}
	if len(body.Repositories) > 0 {
		resp["repository_selection"] = "selected"
		var repos []map[string]any
		for i, name := range body.Repositories {
			repos = append(repos, map[string]any{"id": 1000 + i, "name": name, "full_name": "acme/" + name, "private": true})
		}
		resp["repositories"] = repos
	}
	writeJSON(w, http.StatusCreated, resp)
}

// token returns the live token the request authenticates with.
func (g *Fake) token(r *http.Request) (string, *Token) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(auth, "token ")
	}
	if !ok {
		return "", nil
	}
	t := g.tokens[tok]
	if t == nil || t.Revoked || !g.Now().Before(t.Expires) {
		return "", nil
	}
	return tok, t
}

func (g *Fake) listRepos(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, t := g.token(r)
	if t == nil {
		ghError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	names := t.Repos
	selection := "selected"
	if len(names) == 0 {
		names, selection = g.installRepos, "all"
	}
	var repos []map[string]any
	for i, name := range names {
		repos = append(repos, map[string]any{"id": 1000 + i, "name": name, "full_name": "acme/" + name, "private": true})
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(names), "repository_selection": selection, "repositories": repos})
}

func (g *Fake) revokeToken(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, t := g.token(r)
	if t == nil {
		ghError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	t.Revoked = true
	w.WriteHeader(http.StatusNoContent)
}

// live reports whether the token exists and is neither revoked nor expired.
// LastClaims are the claims of the last JWT the fake accepted.
func (g *Fake) LastClaims() map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.claims) == 0 {
		return nil
	}
	return g.claims[len(g.claims)-1]
}

// Tokens returns a copy of every token issued, by value.
func (g *Fake) Tokens() map[string]Token {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]Token{}
	for k, t := range g.tokens {
		out[k] = *t
	}
	return out
}

// Live reports whether GitHub accepts the token.
func (g *Fake) Live(token string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.tokens[token]
	return t != nil && !t.Revoked && g.Now().Before(t.Expires)
}

// Accepts implements providertest.Resource: it calls the API with the
// token as a consumer (the GitHub MCP server) would.
func (g *Fake) Accepts(ctx context.Context, v providers.VersionRef) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.BaseURL()+"/installation/repositories", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "token "+v.Value.RevealString())
	resp, err := g.Client().Do(req)
	if err != nil {
		return false, fmt.Errorf("asking the fake GitHub: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusUnauthorized:
		return false, nil
	}
	return false, fmt.Errorf("the fake GitHub answered HTTP %d", resp.StatusCode)
}
