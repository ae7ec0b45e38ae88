// Package oauth2cc is the oauth2-client-credentials provider: it obtains
// access tokens from an OAuth 2.0 authorization server with the client
// credentials grant (RFC 6749 §4.4), for the resource named by RFC 8707's
// `resource` parameter (the MCP server the token is for, as the MCP
// authorization spec requires).
//
// A token is the credential's value. Minting fetches a fresh token, which is
// valid at once and does not invalidate earlier ones (overlap); activation
// is a no-op; verification runs the configured checks (RFC 7662
// introspection, a JWT check against the server's JWKS, an MCP probe that
// initializes a session and lists the tools with the token, an HTTP probe)
// and holds the granted scope against the declared one; revocation calls the
// RFC 7009 revocation endpoint when one is configured.
package oauth2cc

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/rotatorhq/rotator/internal/jose"
	"github.com/rotatorhq/rotator/internal/netx"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/internal/remote"
)

// Type is the provider type name.
const Type = "oauth2-client-credentials"

// factoryCapabilities are the capabilities of the type. A token does not
// invalidate earlier ones (overlap), and the grant reports the scope it
// gave. Revocable is what an instance with a revocation_url can do; an
// instance without one reports Revocable false (see Provider.Capabilities).
var factoryCapabilities = providers.Capabilities{Overlap: true, Revocable: true, ScopeAware: true}

// Errors that callers can test with errors.Is.
var (
	// ErrScopePolicy marks a granted scope that the scope policy refuses.
	// It wraps providers.ErrPermanent: a new token would get the same scope.
	ErrScopePolicy = fmt.Errorf("scope policy violated: %w", providers.ErrPermanent)
	// ErrTokenRejected marks a verification that found the token not
	// accepted: inactive at introspection, expired, refused by a probe, for
	// another audience.
	ErrTokenRejected = errors.New("token rejected")
)

// Factory returns the registry entry of the oauth2-client-credentials provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:  "OAuth 2.0 access tokens from the client credentials grant, verified by introspection, JWKS or an MCP probe",
		Capabilities: factoryCapabilities,
		CapabilitiesOf: func(s settings.Map) providers.Capabilities {
			c := factoryCapabilities
			_, revocable := s["revocation_url"]
			c.Revocable = revocable
			return c
		},
		ValidateProvider:   ValidateProvider,
		ValidateCredential: ValidateCredential,
		New: func(_ context.Context, env providers.Env) (providers.Provider, error) {
			return New(env)
		},
	}
}

// Provider mints OAuth 2.0 access tokens. It is safe for concurrent use.
type Provider struct {
	name      string
	cfg       Config
	log       *slog.Logger
	transport *http.Transport
	// oauth is the client for the authorization server's endpoints: it does
	// not follow redirects, so neither a form-encoded client secret nor a
	// token is ever re-sent to another location.
	oauth *http.Client

	mu sync.Mutex
	// clients caches a clientcredentials.Config per requested scope and
	// resource, so the auth style detected by AuthStyleAuto is kept.
	clients map[string]*clientcredentials.Config
	// signer signs client assertions under client_auth private_key_jwt;
	// nil for a client secret.
	signer *assertionSigner
	now    func() time.Time
}

// assertionSigner is the client's private key and its kid.
type assertionSigner struct {
	key crypto.Signer
	kid string
}

// assertion returns a fresh client assertion (unique jti, exp one minute
// ahead) for the authorization server.
func (p *Provider) assertion(cfg Config) (string, error) {
	aud := cfg.AssertionAudience
	if aud == "" {
		aud = cfg.TokenURL
	}
	a, err := jose.ClientAssertion(p.signer.key, p.signer.kid, cfg.ClientID, aud, p.now(), AssertionLifetime)
	if err != nil {
		return "", fmt.Errorf("signing a client assertion: %w", err)
	}
	return a, nil
}

// New returns a provider configured by env.Settings, with references
// already resolved.
func New(env providers.Env) (*Provider, error) {
	cfg, errs := parse(env.Settings, defaults, providerLevel)
	if len(errs) > 0 {
		return nil, fmt.Errorf("settings: %w: %w", providers.ErrPermanent, errs[0])
	}
	var signer *assertionSigner
	if cfg.ClientAuth == ClientAuthPrivateKeyJWT {
		key, err := jose.ParsePrivateKey(cfg.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("private_key %w: %w", err, providers.ErrPermanent)
		}
		pub, err := jose.PublicJWK(key)
		if err != nil {
			return nil, fmt.Errorf("private_key: %w: %w", err, providers.ErrPermanent)
		}
		signer = &assertionSigner{key: key, kid: pub.Kid}
	} else if cfg.ClientSecret.IsZero() {
		return nil, fmt.Errorf("client_secret resolved to an empty value: %w", providers.ErrPermanent)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	transport := &http.Transport{Proxy: http.ProxyFromEnvironment}
	if def, ok := http.DefaultTransport.(*http.Transport); ok {
		transport = def.Clone()
	}
	// The engine calls a provider from many workers at once, mostly on one
	// or two hosts (the authorization server, the MCP server). Go keeps 2
	// idle connections per host by default, so every burst of calls beyond
	// 2 opened (and TLS-handshook) new connections and closed them again.
	transport.MaxIdleConnsPerHost = maxIdlePerHost
	transport.MaxIdleConns = 4 * maxIdlePerHost
	p := &Provider{
		name:      env.Name,
		cfg:       cfg,
		log:       log,
		transport: transport,
		oauth: &http.Client{
			Transport:     transport,
			Timeout:       cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		clients: map[string]*clientcredentials.Config{},
		signer:  signer,
		now:     time.Now,
	}
	if signer != nil {
		log.Debug("client authenticates with private_key_jwt", slog.String("kid", signer.kid))
	}
	if cfg.Verify.empty() {
		log.Warn("no verify checks configured; Verify only holds the granted scope against the declared one and cannot prove the token works")
	}
	if cfg.RevocationURL == "" {
		log.Info("no revocation_url configured; a retired token stays valid until it expires")
	}
	return p, nil
}

// maxIdlePerHost is how many idle connections the provider keeps per host.
const maxIdlePerHost = 64

// Close closes the provider's idle connections. The provider stays usable
// (a later call opens a new connection); the engine calls Close when it
// drops the provider.
func (p *Provider) Close() error {
	p.transport.CloseIdleConnections()
	return nil
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider. Revocable is true only when a
// revocation_url is configured; without one, Revoke is a no-op and a retired
// token simply expires.
func (p *Provider) Capabilities() providers.Capabilities {
	c := factoryCapabilities
	c.Revocable = p.cfg.RevocationURL != ""
	return c
}

// config returns the provider's configuration with the credential's
// overrides applied.
func (p *Provider) config(c providers.Common) (Config, error) {
	if len(c.Settings) == 0 {
		return p.cfg, nil
	}
	cfg, errs := parse(c.Settings, p.cfg, credentialLevel)
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("credential %s settings: %w: %w", c.CredentialID, providers.ErrPermanent, errs[0])
	}
	return cfg, nil
}

// clientConfig returns the clientcredentials configuration for a token
// request with the given scope and resource.
func (p *Provider) clientConfig(cfg Config, scopes []string) (*clientcredentials.Config, error) {
	if p.signer != nil {
		// A client assertion is single-use: a new configuration for every
		// request, with the assertion as endpoint parameters.
		a, err := p.assertion(cfg)
		if err != nil {
			return nil, err
		}
		params := url.Values{"client_assertion_type": {jose.AssertionType}, "client_assertion": {a}}
		if cfg.Resource != "" {
			params.Set("resource", cfg.Resource)
		}
		return &clientcredentials.Config{
			ClientID: cfg.ClientID, TokenURL: cfg.TokenURL, Scopes: scopes,
			AuthStyle: oauth2.AuthStyleInParams, EndpointParams: params,
		}, nil
	}
	key := cfg.Resource + "\x00" + strings.Join(scopes, " ")
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.clients[key]; ok {
		return cc, nil
	}
	cc := &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret.RevealString(),
		TokenURL:     cfg.TokenURL,
		Scopes:       scopes,
		AuthStyle:    oauthAuthStyle(cfg.AuthStyle),
	}
	if cfg.Resource != "" {
		cc.EndpointParams = url.Values{"resource": {cfg.Resource}}
	}
	p.clients[key] = cc
	return cc, nil
}

func oauthAuthStyle(s string) oauth2.AuthStyle {
	switch s {
	case AuthStyleHeader:
		return oauth2.AuthStyleInHeader
	case AuthStyleParams:
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleAutoDetect
}

// Mint implements providers.Provider: it requests a token with the client
// credentials grant. The token is the value; ExpiresAt comes from
// expires_in; GrantedScope is the response's scope. When the response omits
// scope, ScopeNotReported is set instead: the grant is not inferred from
// the request, and Verify takes it from introspection or the JWT when those
// are configured. Metadata holds the token type, a hash of the token, the
// reported scope and, for a JWT, its jti; never the token.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.MintResponse{}, fmt.Errorf("minting a token for credential %s: %w", req.CredentialID, err)
	}
	cfg, err := p.config(req.Common)
	if err != nil {
		return providers.MintResponse{}, err
	}
	requested := cfg.requested(req.Scope)
	cc, err := p.clientConfig(cfg, requested)
	if err != nil {
		return providers.MintResponse{}, err
	}
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, p.oauth))
	if err != nil {
		return providers.MintResponse{}, p.clean(p.tokenError(cfg, err))
	}
	if tok.TokenType != "" && !strings.EqualFold(tok.TokenType, "bearer") {
		return providers.MintResponse{}, fmt.Errorf("token endpoint %s issued a token of type %q; only bearer tokens are supported: %w",
			cfg.TokenURL, tok.TokenType, providers.ErrPermanent)
	}
	// A response without scope does not say what was granted. RFC 6749
	// §5.1 lets a server omit it when it granted what was requested, but
	// servers also omit it when they granted something else; the version
	// records the scope as not reported rather than infer it from the
	// request. Verify takes it from introspection or the JWT, if configured.
	var granted []string
	s, reported := tok.Extra("scope").(string)
	if reported {
		granted = append([]string{}, strings.Fields(s)...)
	}
	value := secret.NewString(tok.AccessToken)
	meta := map[string]string{
		"token_type": tok.TokenType,
		"hash":       tokenHash(value),
	}
	if reported {
		meta["scope"] = strings.Join(granted, " ")
	}
	if jti := jwtID(value); jti != "" {
		meta["jti"] = jti
	}
	if cfg.Resource != "" {
		meta["resource"] = cfg.Resource
	}
	p.log.Debug("minted a token",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID),
		slog.String("hash", meta["hash"]), slog.String("scope", scopeText(meta)), slog.Time("expires_at", tok.Expiry))
	return providers.MintResponse{
		Value:            value,
		ExpiresAt:        tok.Expiry.UTC(),
		GrantedScope:     granted,
		ScopeNotReported: !reported,
		Metadata:         meta,
	}, nil
}

// Activate implements providers.Provider; a token is valid from the moment
// it is issued.
func (p *Provider) Activate(ctx context.Context, req providers.ActivateRequest) (providers.ActivateResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.ActivateResponse{}, fmt.Errorf("activating version %s: %w", req.VersionID, err)
	}
	return providers.ActivateResponse{}, nil
}

// Revoke implements providers.Provider: it asks the RFC 7009 revocation
// endpoint to revoke the token. The endpoint answers 200 for a token it does
// not know, so revoking twice succeeds. Without a revocation_url Revoke does
// nothing: the token stays valid until it expires.
func (p *Provider) Revoke(ctx context.Context, req providers.RevokeRequest) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("revoking version %s: %w", req.VersionID, err)
	}
	if req.Value.IsZero() {
		return nil
	}
	cfg, err := p.config(req.Common)
	if err != nil {
		return err
	}
	if cfg.RevocationURL == "" {
		p.log.Debug("no revocation_url; the token stays valid until it expires",
			slog.String("credential", req.CredentialID), slog.String("version", req.VersionID))
		return nil
	}
	form := url.Values{"token": {req.Value.RevealString()}, "token_type_hint": {"access_token"}}
	resp, body, err := p.post(ctx, cfg, "revocation", cfg.RevocationURL, form, cfg.ClientID, cfg.ClientSecret)
	if err != nil {
		return p.clean(err, req.Value)
	}
	if resp.StatusCode != http.StatusOK {
		return p.clean(remote.EndpointError("revocation", cfg.RevocationURL, resp, body, errorHints), req.Value)
	}
	p.log.Debug("revoked a token",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID), slog.String("hash", tokenHash(req.Value)))
	return nil
}

// post sends a form to an endpoint of the authorization server,
// authenticating the client as auth_style says. With AuthStyleAuto it uses
// the Authorization header and retries with form parameters on HTTP 401.
// It returns the response (body already read and closed) and its body.
func (p *Provider) post(ctx context.Context, cfg Config, op, endpoint string, form url.Values, clientID string, clientSecret secret.Value) (*http.Response, []byte, error) {
	if p.signer != nil && clientSecret.IsZero() {
		return p.postAssertion(ctx, cfg, op, endpoint, form)
	}
	styles := []string{cfg.AuthStyle}
	if cfg.AuthStyle == AuthStyleAuto {
		styles = []string{AuthStyleHeader, AuthStyleParams}
	}
	var (
		resp *http.Response
		body []byte
	)
	for _, style := range styles {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if style == AuthStyleParams {
			f.Set("client_id", clientID)
			f.Set("client_secret", clientSecret.RevealString())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(f.Encode()))
		if err != nil {
			return nil, nil, fmt.Errorf("%s request to %s: %w", op, endpoint, err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		if style == AuthStyleHeader {
			req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret.RevealString()))
		}
		resp, err = p.oauth.Do(req)
		if err != nil {
			return nil, nil, fmt.Errorf("%s request to %s: %w", op, endpoint, netx.TransportCause(err))
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("reading the %s response of %s: %w", op, endpoint, netx.TransportCause(err))
		}
		if resp.StatusCode != http.StatusUnauthorized {
			break
		}
	}
	return resp, body, nil
}

// postAssertion sends a form authenticated by a client assertion
// (client_auth private_key_jwt).
func (p *Provider) postAssertion(ctx context.Context, cfg Config, op, endpoint string, form url.Values) (*http.Response, []byte, error) {
	a, err := p.assertion(cfg)
	if err != nil {
		return nil, nil, err
	}
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("client_id", cfg.ClientID)
	f.Set("client_assertion_type", jose.AssertionType)
	f.Set("client_assertion", a)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(f.Encode()))
	if err != nil {
		return nil, nil, fmt.Errorf("%s request to %s: %w", op, endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.oauth.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s request to %s: %w", op, endpoint, netx.TransportCause(err))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the %s response of %s: %w", op, endpoint, netx.TransportCause(err))
	}
	return resp, body, nil
}

// OAuthError is an error response of an endpoint of the authorization
// server; it wraps providers.ErrPermanent when retrying cannot help.
type OAuthError = remote.OAuthError

// errorHints says what to check for each OAuth error code.
var errorHints = map[string]string{
	"invalid_client":         "client authentication failed; check client_id, client_secret and auth_style",
	"unauthorized_client":    "the client may not use the client_credentials grant",
	"invalid_scope":          "the client may not request this scope; check scopes or the credential's declared scope",
	"invalid_target":         "the authorization server does not issue tokens for this resource; check resource",
	"unsupported_grant_type": "the authorization server does not support the client_credentials grant",
	"unsupported_token_type": "the server does not revoke access tokens",
}

// tokenError describes a failed token request without the response body.
func (p *Provider) tokenError(cfg Config, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return remote.NewOAuthError("token", cfg.TokenURL, status, re.ErrorCode, re.ErrorDescription, errorHints)
	}
	return fmt.Errorf("requesting a token from %s: %w", cfg.TokenURL, netx.TransportCause(err))
}

// clean returns err, or when its text contains the client secret or one of
// vals (a server echoed it), an error with those scrubbed that still
// matches the original under errors.Is.
func (p *Provider) clean(err error, vals ...secret.Value) error {
	return secret.ScrubError(err, append([]secret.Value{p.cfg.ClientSecret, p.cfg.PrivateKey, p.introspectionSecret()}, vals...)...)
}

func (p *Provider) introspectionSecret() secret.Value {
	if in := p.cfg.Verify.Introspection; in != nil {
		return in.ClientSecret
	}
	return secret.Value{}
}

// tokenHash identifies a token without revealing it: the first 16 hex
// digits of its SHA-256, prefixed with the algorithm.
func tokenHash(v secret.Value) string {
	h := sha256.Sum256(v.Reveal())
	return "sha256:" + hex.EncodeToString(h[:8])
}

// jwtID returns the jti claim of a JWT access token, or "" for an opaque
// token. The claim is read without checking the signature; it only labels
// the version.
func jwtID(v secret.Value) string {
	parts := strings.Split(v.RevealString(), ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return remote.Printable(claims.JTI, 128)
}

var _ providers.Provider = (*Provider)(nil)

// scopeText is the scope a token's metadata records, for logs.
func scopeText(meta map[string]string) string {
	if s, ok := meta["scope"]; ok {
		return s
	}
	return "not reported"
}
