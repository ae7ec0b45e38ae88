// Package testauthz is an in-process OAuth 2.0 authorization server for
// tests: a token endpoint for the client credentials grant that
// authenticates clients with a client secret (client_secret_basic or
// client_secret_post) or with a JWT assertion (private_key_jwt, RFC 7523
// and OpenID Connect Core §9).
//
// For private_key_jwt it does what a real server does: it fetches the
// client's JSON Web Key Set from the client's jwks_uri (or reads it from a
// file, standing in for a JWKS that an operator uploads), keeps it for a
// cache TTL without refetching on an unknown kid (the least forgiving
// behaviour, which a client must wait out), checks the assertion's
// signature with the key its kid names, iss = sub = client_id, aud = the
// token endpoint or the issuer, exp in the future and at most MaxLifetime
// ahead, and refuses a jti it has seen before. Signature checks use the
// standard library only, independently of the code under test.
package testauthz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// AssertionType is the client_assertion_type of a JWT client assertion.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Client is a registered client.
type Client struct {
	ID string
	// Secret, when set, authenticates the client with client_secret_basic
	// or client_secret_post.
	Secret string
	// JWKSURL or JWKSFile, when set, is where the client's public keys are
	// for private_key_jwt.
	JWKSURL  string
	JWKSFile string
}

// Server is the authorization server.
type Server struct {
	*httptest.Server
	// CacheTTL is how long a fetched JWKS is used before it is fetched
	// again.
	CacheTTL time.Duration
	// MaxLifetime is the longest exp - now accepted in an assertion.
	MaxLifetime time.Duration

	mu       sync.Mutex
	clients  map[string]Client
	cache    map[string]cachedSet
	jtis     map[string]bool
	tokens   map[string]string // access token -> client id
	rejected []string          // reasons, in order
	fetches  int
	stall    chan struct{}
	fetcher  *http.Client
}

type cachedSet struct {
	keys    map[string]crypto.PublicKey
	fetched time.Time
}

// New starts a server; it is closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{CacheTTL: time.Minute, MaxLifetime: 5 * time.Minute,
		fetcher: &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second},
		clients: map[string]Client{}, cache: map[string]cachedSet{}, jtis: map[string]bool{}, tokens: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	s.Server = httptest.NewServer(s.stalling(mux))
	t.Cleanup(func() {
		s.resume()
		s.Close()
		s.fetcher.CloseIdleConnections()
	})
	return s
}

// TokenURL is the token endpoint.
func (s *Server) TokenURL() string { return s.URL + "/token" }

// Register adds or replaces a client.
func (s *Server) Register(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = c
	delete(s.cache, c.ID)
}

// Rejections returns the reasons of every refused token request so far.
func (s *Server) Rejections() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}

// Fetches returns how many times a JWKS was fetched or read.
func (s *Server) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// Issued reports whether token is an access token this server issued.
func (s *Server) Issued(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.tokens[token]
	return ok
}

// Tokens returns every access token this server issued: what a leak test
// searches for.
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.tokens))
	for t := range s.tokens {
		out = append(out, t)
	}
	return out
}

// Stall holds every request until the returned function is called.
func (s *Server) Stall(testing.TB) (resume func()) {
	s.mu.Lock()
	if s.stall == nil {
		s.stall = make(chan struct{})
	}
	s.mu.Unlock()
	return s.resume
}

func (s *Server) resume() {
	s.mu.Lock()
	if s.stall != nil {
		close(s.stall)
		s.stall = nil
	}
	s.mu.Unlock()
}

func (s *Server) stalling(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		ch := s.stall
		s.mu.Unlock()
		if ch != nil {
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) fail(w http.ResponseWriter, status int, code, reason string) {
	s.mu.Lock()
	s.rejected = append(s.rejected, code+": "+reason)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": reason})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		s.fail(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type "+gt)
		return
	}
	clientID, err := s.authenticate(r)
	if err != nil {
		s.fail(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "at-" + base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = clientID
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "scope": r.PostForm.Get("scope"),
	})
}

// authenticate returns the authenticated client's id.
func (s *Server) authenticate(r *http.Request) (string, error) {
	form := r.PostForm
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		if form.Get("client_secret") != "" || r.Header.Get("Authorization") != "" {
			return "", errors.New("more than one client authentication method")
		}
		if form.Get("client_assertion_type") != AssertionType {
			return "", errors.New("client_assertion_type is not " + AssertionType)
		}
		return s.checkAssertion(r.Context(), form.Get("client_assertion"), form.Get("client_id"))
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	s.mu.Lock()
	c, ok := s.clients[id]
	s.mu.Unlock()
	if !ok || c.Secret == "" || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		return "", errors.New("unknown client or wrong secret")
	}
	return id, nil
}

func (s *Server) checkAssertion(ctx context.Context, assertion, formClientID string) (string, error) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "", errors.New("client_assertion is not a compact JWS")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Exp int64           `json:"exp"`
		Iat int64           `json:"iat"`
		JTI string          `json:"jti"`
	}
	if err := decode(parts[0], &header); err != nil {
		return "", errors.New("assertion header does not decode")
	}
	if err := decode(parts[1], &claims); err != nil {
		return "", errors.New("assertion claims do not decode")
	}
	if claims.Iss == "" || claims.Iss != claims.Sub {
		return "", errors.New("iss and sub must both be the client_id")
	}
	if formClientID != "" && formClientID != claims.Iss {
		return "", errors.New("client_id differs from the assertion's iss")
	}
	s.mu.Lock()
	c, ok := s.clients[claims.Iss]
	s.mu.Unlock()
	if !ok || (c.JWKSURL == "" && c.JWKSFile == "") {
		return "", errors.New("unknown client " + claims.Iss + " or no JWKS registered")
	}
	keys, err := s.keys(ctx, c)
	if err != nil {
		return "", err
	}
	pub, ok := keys[header.Kid]
	if !ok {
		return "", fmt.Errorf("kid %q is not in the client's JWKS", header.Kid)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", errors.New("signature does not decode")
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if header.Alg != "ES256" || len(sig) != 64 || !ecdsa.Verify(k, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return "", errors.New("bad ES256 signature")
		}
	case *rsa.PublicKey:
		if header.Alg != "RS256" || rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) != nil {
			return "", errors.New("bad RS256 signature")
		}
	}
	var aud []string
	if json.Unmarshal(claims.Aud, &aud) != nil {
		var one string
		if json.Unmarshal(claims.Aud, &one) != nil {
			return "", errors.New("aud is neither a string nor a list")
		}
		aud = []string{one}
	}
	audOK := false
	for _, a := range aud {
		audOK = audOK || a == s.TokenURL() || a == s.URL
	}
	if !audOK {
		return "", fmt.Errorf("aud %v names neither the token endpoint nor the issuer", aud)
	}
	now := time.Now()
	exp := time.Unix(claims.Exp, 0)
	if claims.Exp == 0 || !exp.After(now) {
		return "", errors.New("assertion expired")
	}
	if exp.Sub(now) > s.MaxLifetime {
		return "", errors.New("assertion lives too long")
	}
	if claims.JTI == "" {
		return "", errors.New("jti is missing")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jtis[claims.Iss+"\x00"+claims.JTI] {
		return "", errors.New("jti replayed")
	}
	s.jtis[claims.Iss+"\x00"+claims.JTI] = true
	return claims.Iss, nil
}

// keys returns the client's public keys by kid, from the cache while it is
// fresh.
func (s *Server) keys(ctx context.Context, c Client) (map[string]crypto.PublicKey, error) {
	s.mu.Lock()
	cs, ok := s.cache[c.ID]
	s.mu.Unlock()
	if ok && time.Since(cs.fetched) < s.CacheTTL {
		return cs.keys, nil
	}
	var raw []byte
	var err error
	if c.JWKSFile != "" {
		raw, err = os.ReadFile(c.JWKSFile)
	} else {
		raw, err = s.fetch(ctx, c.JWKSURL)
	}
	if err != nil {
		return nil, fmt.Errorf("client JWKS unavailable: %w", err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, errors.New("client JWKS is not a key set")
	}
	keys := map[string]crypto.PublicKey{}
	for _, k := range set.Keys {
		if _, private := k["d"]; private {
			return nil, errors.New("client JWKS holds a private key")
		}
		pub, err := publicKey(k)
		if err != nil {
			return nil, err
		}
		kid, _ := k["kid"].(string)
		keys[kid] = pub
	}
	s.mu.Lock()
	s.cache[c.ID] = cachedSet{keys: keys, fetched: time.Now()}
	s.fetches++
	s.mu.Unlock()
	return keys, nil
}

func (s *Server) fetch(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.fetcher.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

func publicKey(k map[string]any) (crypto.PublicKey, error) {
	str := func(n string) []byte {
		s, _ := k[n].(string)
		b, _ := base64.RawURLEncoding.DecodeString(s)
		return b
	}
	switch k["kty"] {
	case "EC":
		x, y := str("x"), str("y")
		if k["crv"] != "P-256" || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("client JWKS holds a bad EC key")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, errors.New("client JWKS holds an EC point off the curve")
		}
		return pub, nil
	case "RSA":
		n, e := str("n"), str("e")
		if len(n) < 256 || len(e) == 0 {
			return nil, errors.New("client JWKS holds a bad RSA key")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	}
	return nil, errors.New("client JWKS holds a key of unknown kty")
}

func decode(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
