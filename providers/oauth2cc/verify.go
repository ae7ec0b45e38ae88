package oauth2cc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/rotatorhq/rotator/internal/netx"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/internal/remote"
)

// clockSkew is the tolerance for nbf and iat against the local clock.
const clockSkew = time.Minute

// Verify implements providers.Provider: it runs every configured check
// (introspection, jwks, mcp_probe, http_probe, in that order) and then holds
// the granted scope against the declared one under scope_policy. The granted
// scope is the one introspection or the JWT reports, else the one the token
// response reported at mint; when none reported it, ScopeNotReported is set
// and the scope policy is not applied (evidence says so). Evidence names the
// checks and what they saw, never the token.
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %w", req.VersionID, err)
	}
	if req.Value.IsZero() {
		return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: the value is empty: %w", req.VersionID, providers.ErrPermanent)
	}
	cfg, err := p.config(req.Common)
	if err != nil {
		return providers.VerifyResponse{}, err
	}
	var (
		checks   []string
		evidence = map[string]string{}
		granted  []string
		observed bool
	)
	if in := cfg.Verify.Introspection; in != nil {
		scope, ok, err := p.introspect(ctx, cfg, in, req.Value, evidence)
		if err != nil {
			return providers.VerifyResponse{}, p.clean(fmt.Errorf("verifying version %s: %w", req.VersionID, err), req.Value)
		}
		checks = append(checks, "introspection")
		if ok {
			granted, observed = scope, true
		}
	}
	if j := cfg.Verify.JWKS; j != nil {
		scope, ok, err := p.checkJWT(ctx, cfg, j, req.Value, evidence)
		if err != nil {
			return providers.VerifyResponse{}, p.clean(fmt.Errorf("verifying version %s: %w", req.VersionID, err), req.Value)
		}
		checks = append(checks, "jwks")
		if ok && !observed {
			granted, observed = scope, true
		}
	}
	if m := cfg.Verify.MCPProbe; m != nil {
		if err := p.probeMCP(ctx, cfg, m, req.Value, evidence); err != nil {
			return providers.VerifyResponse{}, p.clean(fmt.Errorf("verifying version %s: %w", req.VersionID, err), req.Value)
		}
		checks = append(checks, "mcp_probe")
	}
	if h := cfg.Verify.HTTPProbe; h != nil {
		if err := p.probeHTTP(ctx, cfg, h, req.Value, evidence); err != nil {
			return providers.VerifyResponse{}, p.clean(fmt.Errorf("verifying version %s: %w", req.VersionID, err), req.Value)
		}
		checks = append(checks, "http_probe")
	}
	if !observed {
		if s, ok := req.Metadata["scope"]; ok {
			granted, observed = strings.Fields(s), true
		}
	}
	declared := cfg.declared(req.Scope)
	if !observed {
		// Neither the token response nor a check reported the scope: it
		// cannot be held against the declared one.
		evidence["checks"] = strings.Join(checks, ",")
		evidence["scope"] = "not reported"
		evidence["scope_policy"] = cfg.ScopePolicy + " (not checked: the granted scope was not reported; configure verify.introspection to learn it)"
		p.log.Debug("verified a token; the granted scope was not reported",
			slog.String("credential", req.CredentialID), slog.String("version", req.VersionID), slog.String("checks", evidence["checks"]))
		return providers.VerifyResponse{ScopeNotReported: true, Evidence: evidence}, nil
	}
	if granted == nil {
		granted = []string{}
	}
	if err := checkScope(cfg.ScopePolicy, declared, granted); err != nil {
		return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %w", req.VersionID, err)
	}
	checks = append(checks, "scope_policy")
	evidence["checks"] = strings.Join(checks, ",")
	evidence["scope"] = strings.Join(granted, " ")
	evidence["scope_policy"] = cfg.ScopePolicy
	if len(declared) == 0 {
		evidence["scope_policy"] = cfg.ScopePolicy + " (nothing declared)"
	}
	p.log.Debug("verified a token",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID), slog.String("checks", evidence["checks"]))
	return providers.VerifyResponse{GrantedScope: granted, Evidence: evidence}, nil
}

// introspect asks the RFC 7662 endpoint about the token and checks that it
// is active, unexpired, issued to this client and, when a resource is
// configured, for that audience. It returns the scope the endpoint reports
// and whether it reported one.
func (p *Provider) introspect(ctx context.Context, cfg Config, in *IntrospectionConfig, token secret.Value, ev map[string]string) ([]string, bool, error) {
	clientID, clientSecret := cfg.ClientID, cfg.ClientSecret
	if in.ClientID != "" {
		clientID, clientSecret = in.ClientID, in.ClientSecret
	}
	form := url.Values{"token": {token.RevealString()}, "token_type_hint": {"access_token"}}
	resp, body, err := p.post(ctx, cfg, "introspection", in.URL, form, clientID, clientSecret)
	if err != nil {
		return nil, false, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, remote.EndpointError("introspection", in.URL, resp, body, errorHints)
	}
	var info struct {
		Active   bool            `json:"active"`
		Scope    *string         `json:"scope"`
		ClientID string          `json:"client_id"`
		Aud      json.RawMessage `json:"aud"`
		Exp      json.Number     `json:"exp"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&info); err != nil {
		return nil, false, fmt.Errorf("introspection endpoint %s answered with a body that is not an introspection response: %w", in.URL, err)
	}
	if !info.Active {
		return nil, false, fmt.Errorf("introspection endpoint %s reports the token inactive (revoked, expired or unknown): %w", in.URL, ErrTokenRejected)
	}
	if info.Exp != "" {
		exp, err := numericDate(info.Exp)
		if err != nil {
			return nil, false, fmt.Errorf("introspection endpoint %s: exp: %w", in.URL, err)
		}
		if !time.Now().Before(exp) {
			return nil, false, fmt.Errorf("introspection endpoint %s reports the token expired at %s: %w", in.URL, exp.UTC().Format(time.RFC3339), ErrTokenRejected)
		}
		ev["introspection_exp"] = exp.UTC().Format(time.RFC3339)
	}
	if info.ClientID != "" && info.ClientID != cfg.ClientID {
		return nil, false, fmt.Errorf("introspection endpoint %s reports the token issued to client %q, not %q: %w", in.URL, remote.Printable(info.ClientID, 128), cfg.ClientID, ErrTokenRejected)
	}
	if cfg.Resource != "" {
		aud, err := audience(info.Aud)
		if err != nil {
			return nil, false, fmt.Errorf("introspection endpoint %s: aud: %w", in.URL, err)
		}
		if !slices.Contains(aud, cfg.Resource) {
			return nil, false, fmt.Errorf("introspection endpoint %s reports audience %q, which does not contain resource %s: %w", in.URL, remote.Printable(strings.Join(aud, " "), 256), cfg.Resource, ErrTokenRejected)
		}
	}
	ev["introspection"] = "active"
	if info.Scope == nil {
		return nil, false, nil
	}
	return strings.Fields(*info.Scope), true, nil
}

// numericDate reads a JWT NumericDate (seconds since the epoch, possibly
// with a fraction).
func numericDate(n json.Number) (time.Time, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a number of seconds", remote.Printable(string(n), 32))
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
}

// audience reads an aud claim: a string or a list of strings; absent is
// the empty list.
func audience(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("is neither a string nor a list of strings")
	}
	return many, nil
}

// jwk is one key of a JSON Web Key Set (RFC 7517); only the fields of RSA
// and EC public keys are read.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// checkJWT checks the token as a JWT: an RS256 or ES256 signature by a key
// of the JWKS, an unexpired exp, nbf, the issuer and the audience. It
// returns the scope claim (`scope`, else `scp`) and whether there was one.
// A JWT check cannot see revocation; pair it with introspection or a probe
// when revocation matters.
func (p *Provider) checkJWT(ctx context.Context, cfg Config, j *JWKSConfig, token secret.Value, ev map[string]string) ([]string, bool, error) {
	parts := strings.Split(token.RevealString(), ".")
	if len(parts) != 3 {
		return nil, false, fmt.Errorf("jwks check: the token is not a JWT (it has %d dot-separated parts, want 3): %w", len(parts), ErrTokenRejected)
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return nil, false, fmt.Errorf("jwks check: JWT header: %w: %w", err, ErrTokenRejected)
	}
	if header.Alg != "RS256" && header.Alg != "ES256" {
		return nil, false, fmt.Errorf("jwks check: JWT algorithm %q is not accepted (want RS256 or ES256): %w", remote.Printable(header.Alg, 32), ErrTokenRejected)
	}
	keys, err := p.fetchJWKS(ctx, j.URL)
	if err != nil {
		return nil, false, err
	}
	key, err := pickKey(keys, header.Alg, header.Kid)
	if err != nil {
		return nil, false, fmt.Errorf("jwks check against %s: %w", j.URL, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, false, fmt.Errorf("jwks check: JWT signature is not base64url: %w", ErrTokenRejected)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := verifySignature(key, header.Alg, digest[:], sig); err != nil {
		return nil, false, fmt.Errorf("jwks check: JWT signature does not verify with key %q of %s: %w", remote.Printable(key.Kid, 64), j.URL, ErrTokenRejected)
	}
	var claims struct {
		Iss   string          `json:"iss"`
		Aud   json.RawMessage `json:"aud"`
		Exp   json.Number     `json:"exp"`
		Nbf   json.Number     `json:"nbf"`
		Scope *string         `json:"scope"`
		Scp   json.RawMessage `json:"scp"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, false, fmt.Errorf("jwks check: JWT claims: %w: %w", err, ErrTokenRejected)
	}
	now := time.Now()
	if claims.Exp == "" {
		return nil, false, fmt.Errorf("jwks check: the JWT has no exp claim: %w", ErrTokenRejected)
	}
	exp, err := numericDate(claims.Exp)
	if err != nil {
		return nil, false, fmt.Errorf("jwks check: exp: %w: %w", err, ErrTokenRejected)
	}
	if !now.Before(exp) {
		return nil, false, fmt.Errorf("jwks check: the JWT expired at %s: %w", exp.UTC().Format(time.RFC3339), ErrTokenRejected)
	}
	if claims.Nbf != "" {
		nbf, err := numericDate(claims.Nbf)
		if err != nil {
			return nil, false, fmt.Errorf("jwks check: nbf: %w: %w", err, ErrTokenRejected)
		}
		if now.Add(clockSkew).Before(nbf) {
			return nil, false, fmt.Errorf("jwks check: the JWT is not valid before %s: %w", nbf.UTC().Format(time.RFC3339), ErrTokenRejected)
		}
	}
	if j.Issuer != "" && claims.Iss != j.Issuer {
		return nil, false, fmt.Errorf("jwks check: the JWT's issuer is %q, want %q: %w", remote.Printable(claims.Iss, 256), j.Issuer, ErrTokenRejected)
	}
	want := j.Audience
	if want == "" {
		want = cfg.Resource
	}
	if want != "" {
		aud, err := audience(claims.Aud)
		if err != nil {
			return nil, false, fmt.Errorf("jwks check: aud %w: %w", err, ErrTokenRejected)
		}
		if !slices.Contains(aud, want) {
			return nil, false, fmt.Errorf("jwks check: the JWT's audience %q does not contain %s: %w", remote.Printable(strings.Join(aud, " "), 256), want, ErrTokenRejected)
		}
	}
	ev["jwt_kid"] = remote.Printable(key.Kid, 64)
	ev["jwt_exp"] = exp.UTC().Format(time.RFC3339)
	switch {
	case claims.Scope != nil:
		return strings.Fields(*claims.Scope), true, nil
	case len(claims.Scp) > 0 && string(claims.Scp) != "null":
		scp, err := audience(claims.Scp) // the same shape: a string or a list
		if err != nil {
			return nil, false, fmt.Errorf("jwks check: scp %w: %w", err, ErrTokenRejected)
		}
		if len(scp) == 1 {
			scp = strings.Fields(scp[0])
		}
		return scp, true, nil
	}
	return nil, false, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// fetchJWKS reads the key set. It is fetched at every verification, so a
// key the server rotated in is seen at once; verifications are rare.
func (p *Provider) fetchJWKS(ctx context.Context, jwksURL string) ([]jwk, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request to %s: %w", jwksURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.oauth.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks request to %s: %w", jwksURL, netx.TransportCause(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks endpoint %s answered HTTP %d", jwksURL, resp.StatusCode)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("reading the jwks of %s: %w", jwksURL, ctxErr)
		}
		return nil, fmt.Errorf("jwks endpoint %s answered with a body that is not a JSON Web Key Set: %w", jwksURL, err)
	}
	return set.Keys, nil
}

// pickKey finds the signing key for alg: the key with kid when the JWT
// names one, else the only key of the right type.
func pickKey(keys []jwk, alg, kid string) (jwk, error) {
	kty := map[string]string{"RS256": "RSA", "ES256": "EC"}[alg]
	var found []jwk
	for _, k := range keys {
		if k.Kty != kty || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != alg) {
			continue
		}
		if kid != "" && k.Kid != kid {
			continue
		}
		found = append(found, k)
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && kid != "":
		return jwk{}, fmt.Errorf("no %s signing key with kid %q in the key set: %w", kty, remote.Printable(kid, 64), ErrTokenRejected)
	case len(found) == 0:
		return jwk{}, fmt.Errorf("no %s signing key in the key set: %w", kty, ErrTokenRejected)
	}
	return jwk{}, fmt.Errorf("the JWT names no kid and the key set has %d %s signing keys: %w", len(found), kty, ErrTokenRejected)
}

// verifySignature checks sig over digest (SHA-256) with the key.
func verifySignature(k jwk, alg string, digest, sig []byte) error {
	switch alg {
	case "RS256":
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		eb, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(eb) == 0 || len(eb) > 4 {
			return errors.New("malformed RSA key")
		}
		e := 0
		for _, b := range eb {
			e = e<<8 | int(b)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: e}
		if pub.N.BitLen() < 2048 {
			return errors.New("RSA key shorter than 2048 bits")
		}
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig)
	case "ES256":
		if k.Crv != "P-256" {
			return errors.New("EC key is not on P-256")
		}
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 || len(sig) != 64 {
			return errors.New("malformed EC key or signature")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return err
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(pub, digest, r, s) {
			return errors.New("bad signature")
		}
		return nil
	}
	return fmt.Errorf("unsupported algorithm %s", alg)
}

// bearerTransport adds the token to requests for the probed origin only (a
// redirect elsewhere never carries it), ends every request when the probe
// ends, and remembers whether the server refused the token.
type bearerTransport struct {
	base http.RoundTripper
	// probe is the probe's context. The SDK sends some requests (the
	// cancellation notice, the session DELETE) on contexts detached from
	// the caller's, with timeouts of their own; tying every request to the
	// probe keeps a cancelled or timed-out probe from waiting for them.
	probe    context.Context
	token    secret.Value
	origin   string // scheme://host of the probed URL
	rejected atomic.Int64
	reason   atomic.Value // string: the WWW-Authenticate error, if any
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	context.AfterFunc(t.probe, func() { cancel(context.Cause(t.probe)) })
	req = req.Clone(ctx)
	if req.URL.Scheme+"://"+req.URL.Host == t.origin {
		req.Header.Set("Authorization", "Bearer "+t.token.RevealString())
	}
	resp, err := t.base.RoundTrip(req)
	if err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		t.rejected.Store(int64(resp.StatusCode))
		t.reason.Store(bearerError(resp.Header.Get("WWW-Authenticate")))
	}
	return resp, err
}

// rejection describes a 401 or 403 the server answered, or "" if none.
func (t *bearerTransport) rejection() string {
	code := t.rejected.Load()
	if code == 0 {
		return ""
	}
	s := fmt.Sprintf("HTTP %d", code)
	if r, _ := t.reason.Load().(string); r != "" {
		s += ", " + r
	}
	return s
}

// bearerError returns the error parameter of a Bearer WWW-Authenticate
// challenge (RFC 6750 §3), such as invalid_token or insufficient_scope.
func bearerError(challenge string) string {
	i := strings.Index(challenge, `error="`)
	if i < 0 {
		return ""
	}
	rest := challenge[i+len(`error="`):]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return remote.Printable(rest[:j], 64)
	}
	return ""
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// probeMCP connects to the MCP server over streamable HTTP with the token
// (initialize), lists the tools, and closes the session, using the official
// MCP Go SDK as any MCP client would.
func (p *Provider) probeMCP(ctx context.Context, cfg Config, m *MCPProbeConfig, token secret.Value, ev map[string]string) error {
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout, fmt.Errorf("timed out after %s: %w", cfg.Timeout, context.DeadlineExceeded))
	defer cancel()
	bt := &bearerTransport{base: p.transport, probe: ctx, token: token, origin: origin(m.URL)}
	client := mcp.NewClient(&mcp.Implementation{Name: "rotator-verify", Version: "1"}, nil)
	transport := &mcp.StreamableClientTransport{
		Endpoint:             m.URL,
		HTTPClient:           &http.Client{Transport: bt},
		MaxRetries:           -1,
		DisableStandaloneSSE: true,
	}
	fail := func(step string, err error) error {
		if r := bt.rejection(); r != "" {
			return fmt.Errorf("mcp probe of %s: the server refused the token at %s (%s): %w", m.URL, step, r, ErrTokenRejected)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("mcp probe of %s: %s: %w", m.URL, step, context.Cause(ctx))
		}
		return fmt.Errorf("mcp probe of %s: %s: %w", m.URL, step, err)
	}
	session, err := client.Connect(ctx, transport, nil)
	if err != nil {
		return fail("initialize", err)
	}
	defer session.Close()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		return fail("tools/list", err)
	}
	if res := session.InitializeResult(); res != nil && res.ServerInfo != nil {
		ev["mcp_server"] = remote.Printable(res.ServerInfo.Name+" "+res.ServerInfo.Version, 128)
		ev["mcp_protocol"] = remote.Printable(res.ProtocolVersion, 32)
	}
	ev["mcp_tools"] = strconv.Itoa(len(tools.Tools))
	return nil
}

// probeHTTP requests the URL with the token and checks the status.
func (p *Provider) probeHTTP(ctx context.Context, cfg Config, h *HTTPProbeConfig, token secret.Value, ev map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return fmt.Errorf("http probe of %s: %w", h.URL, err)
	}
	req.Header.Set("Authorization", "Bearer "+token.RevealString())
	client := &http.Client{Transport: p.transport, Timeout: cfg.Timeout}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http probe of %s: %w", h.URL, netx.TransportCause(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != h.ExpectStatus {
		err := fmt.Errorf("http probe of %s answered HTTP %d, want %d", h.URL, resp.StatusCode, h.ExpectStatus)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			if r := bearerError(resp.Header.Get("WWW-Authenticate")); r != "" {
				err = fmt.Errorf("http probe of %s answered HTTP %d (%s), want %d", h.URL, resp.StatusCode, r, h.ExpectStatus)
			}
			return fmt.Errorf("%w: %w", err, ErrTokenRejected)
		}
		return err
	}
	ev["http_probe"] = strconv.Itoa(resp.StatusCode)
	return nil
}
