// Package oauth2refresh is the oauth2-refresh-token provider: it holds an
// OAuth 2.0 refresh token and mints access tokens with it (RFC 6749 §6),
// for the resource named by RFC 8707's `resource` parameter, which it sends
// on every refresh.
//
// The access token is the credential's value. The refresh token is the
// provider's state (providers.Capabilities.Stateful): authorization servers
// that rotate refresh tokens (OAuth 2.1, the MCP authorization spec for
// public clients) answer every refresh with a new one and invalidate the
// old, and a reused old one makes them revoke the whole grant. Mint returns
// the new refresh token as MintResponse.State, which the engine seals and
// stores with the pending version in one transaction, before anything uses
// the new access token (write-ahead); the next Mint gets it back as
// MintRequest.State. The first refresh token comes from a reference
// (`refresh_token`) or from `rotator login` (the device authorization
// grant, RFC 8628). A refused refresh (`invalid_grant`: revoked, expired,
// reused) is permanent and says how to obtain a new refresh token.
package oauth2refresh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/netx"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/internal/remote"
)

// Type is the provider type name.
const Type = "oauth2-refresh-token"

var factoryCapabilities = providers.Capabilities{Overlap: true, Revocable: true, ScopeAware: true, Stateful: true}

// Errors that callers can test with errors.Is.
var (
	// ErrGrantRefused marks a refresh the authorization server refused
	// with invalid_grant: the refresh token is revoked, expired, or was
	// used twice. It wraps providers.ErrPermanent: only a new refresh token
	// helps.
	ErrGrantRefused = fmt.Errorf("refresh token refused: %w", providers.ErrPermanent)
	// ErrNoRefreshToken marks a credential with no refresh token yet.
	ErrNoRefreshToken = fmt.Errorf("no refresh token: %w", providers.ErrPermanent)
	// ErrTokenRejected marks a verification that found the access token
	// not accepted.
	ErrTokenRejected = errors.New("token rejected")
)

// Factory returns the registry entry of the oauth2-refresh-token provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:  "OAuth 2.0 access tokens from a refresh token, with refresh-token rotation persisted write-ahead and reuse detection",
		Capabilities: factoryCapabilities,
		CapabilitiesOf: func(s settings.Map) providers.Capabilities {
			c := factoryCapabilities
			_, c.Revocable = s["revocation_url"]
			return c
		},
		ValidateProvider:   ValidateProvider,
		ValidateCredential: ValidateCredential,
		New: func(_ context.Context, env providers.Env) (providers.Provider, error) {
			return New(env)
		},
	}
}

// Provider mints access tokens from a refresh token. It is safe for
// concurrent use; refreshes of one credential run one at a time.
type Provider struct {
	name   string
	cfg    Config
	log    *slog.Logger
	client *http.Client

	mu     sync.Mutex
	chains map[string]*chain // by credential id
}

// chain is what this process knows of one credential's refresh token
// lineage: the refresh tokens it consumed and the newest one. It serializes
// refreshes (sem), and lets a Mint that was handed an already consumed
// refresh token (its successor was minted but never stored: the store's
// commit failed, the step is re-run) continue from the newest one instead
// of reusing it, which would make the server revoke the grant.
type chain struct {
	sem      chan struct{}
	consumed []string // hashes of consumed refresh tokens, newest last, at most maxConsumed
	latest   secret.Value
}

const maxConsumed = 64

// New returns a provider configured by env.Settings, with references
// already resolved.
func New(env providers.Env) (*Provider, error) {
	cfg, errs := parse(env.Settings)
	if len(errs) > 0 {
		return nil, fmt.Errorf("settings: %w: %w", providers.ErrPermanent, errs[0])
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{
		name: env.Name, cfg: cfg, log: log, chains: map[string]*chain{},
		client: &http.Client{
			Timeout: cfg.Timeout,
			// Never re-send a token or the client secret elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider. Revocable only with a
// revocation_url.
func (p *Provider) Capabilities() providers.Capabilities {
	c := factoryCapabilities
	c.Revocable = p.cfg.RevocationURL != ""
	return c
}

// Close closes idle connections.
func (p *Provider) Close() error {
	p.client.CloseIdleConnections()
	return nil
}

// state is the provider state: the refresh token to use next, and the hash
// of the configured bootstrap refresh token the lineage started from (or
// that was configured when `rotator login` started it), so that a new
// token put where the reference points is noticed and used.
type state struct {
	Version      int    `json:"v"`
	RefreshToken string `json:"refresh_token"`
	Bootstrap    string `json:"bootstrap,omitempty"`
}

func encodeState(rt secret.Value, bootstrap string) secret.Value {
	b, _ := json.Marshal(state{Version: 1, RefreshToken: rt.RevealString(), Bootstrap: bootstrap})
	return secret.New(b)
}

// decodeState reads a state; errors never contain it.
func decodeState(v secret.Value) (state, error) {
	var st state
	if err := json.Unmarshal(v.Reveal(), &st); err != nil || st.Version != 1 || st.RefreshToken == "" {
		return state{}, errors.New("the stored provider state is not an oauth2-refresh-token state")
	}
	return st, nil
}

// hash identifies a token without revealing it.
func hash(v secret.Value) string {
	if v.IsZero() {
		return ""
	}
	h := sha256.Sum256(v.Reveal())
	return "sha256:" + hex.EncodeToString(h[:8])
}

// refreshToken picks the refresh token a Mint uses: the stored state's,
// unless a different bootstrap token was configured since the lineage
// started (the operator replaced it), and then the newest one this process
// knows descends from it.
func (p *Provider) refreshToken(req providers.MintRequest, c *chain) (rt secret.Value, bootstrap string, err error) {
	configured := hash(p.cfg.RefreshToken)
	switch {
	case !req.State.IsZero():
		st, err := decodeState(req.State)
		if err != nil {
			return secret.Value{}, "", fmt.Errorf("credential %s: %w: %w", req.CredentialID, err, providers.ErrPermanent)
		}
		if configured != "" && st.Bootstrap != configured {
			p.log.Info("a new bootstrap refresh token is configured; starting from it",
				slog.String("credential", req.CredentialID), slog.String("refresh_token_hash", configured))
			rt, bootstrap = p.cfg.RefreshToken, configured
		} else {
			rt, bootstrap = secret.NewString(st.RefreshToken), st.Bootstrap
		}
	case configured != "":
		rt, bootstrap = p.cfg.RefreshToken, configured
	default:
		return secret.Value{}, "", fmt.Errorf("credential %s: %w: run `rotator login %s` (device authorization), or set refresh_token to a reference to a refresh token",
			req.CredentialID, ErrNoRefreshToken, req.CredentialID)
	}
	// A refresh token this process already consumed: its successor was
	// minted but not stored (or stored by a Mint whose step is re-run), so
	// continue from the newest one rather than reuse it.
	if h := hash(rt); slices.Contains(c.consumed, h) && !c.latest.IsZero() {
		p.log.Info("the refresh token handed in was already used; continuing from the newest one",
			slog.String("credential", req.CredentialID), slog.String("refresh_token_hash", h))
		return c.latest, bootstrap, nil
	}
	return rt, bootstrap, nil
}

// lock takes the credential's refresh lock, or gives up with ctx.
func (p *Provider) lock(ctx context.Context, credentialID string) (*chain, func(), error) {
	p.mu.Lock()
	c := p.chains[credentialID]
	if c == nil {
		c = &chain{sem: make(chan struct{}, 1)}
		p.chains[credentialID] = c
	}
	p.mu.Unlock()
	select {
	case c.sem <- struct{}{}:
		return c, func() { <-c.sem }, nil
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("waiting for another refresh of credential %s: %w", credentialID, context.Cause(ctx))
	}
}

// Mint implements providers.Provider: it refreshes (grant_type
// refresh_token, with resource and scopes) and returns the access token as
// the value and the refresh token that replaces the one it used as State.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.MintResponse{}, fmt.Errorf("minting a token for credential %s: %w", req.CredentialID, err)
	}
	c, unlock, err := p.lock(ctx, req.CredentialID)
	if err != nil {
		return providers.MintResponse{}, err
	}
	defer unlock()
	rt, bootstrap, err := p.refreshToken(req, c)
	if err != nil {
		return providers.MintResponse{}, err
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt.RevealString()}}
	if p.cfg.Resource != "" {
		form.Set("resource", p.cfg.Resource)
	}
	if len(p.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(p.cfg.Scopes, " "))
	}
	resp, body, err := p.post(ctx, "token", p.cfg.TokenURL, form)
	if err != nil {
		return providers.MintResponse{}, p.clean(err, rt)
	}
	if resp.StatusCode != http.StatusOK {
		e := remote.EndpointError("token", p.cfg.TokenURL, resp, body, errorHints)
		var oe *OAuthError
		if errors.As(e, &oe) && oe.Code == "invalid_grant" {
			p.log.Warn("the authorization server refused the refresh token",
				slog.String("credential", req.CredentialID), slog.String("refresh_token_hash", hash(rt)))
			return providers.MintResponse{}, p.clean(fmt.Errorf("credential %s: %w: %w; the grant is dead: obtain a new refresh token with `rotator login %s` or put one where refresh_token's reference points, then rotate again (runbooks/oauth2-refresh-token.md#emergency if the refresh token may have leaked)",
				req.CredentialID, ErrGrantRefused, e, req.CredentialID), rt)
		}
		return providers.MintResponse{}, p.clean(e, rt)
	}
	var tok struct {
		AccessToken  string          `json:"access_token"`
		TokenType    string          `json:"token_type"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
		RefreshToken string          `json:"refresh_token"`
		Scope        *string         `json:"scope"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return providers.MintResponse{}, fmt.Errorf("token endpoint %s answered HTTP 200 without an access token", p.cfg.TokenURL)
	}
	if tok.TokenType != "" && !strings.EqualFold(tok.TokenType, "bearer") {
		return providers.MintResponse{}, fmt.Errorf("token endpoint %s issued a token of type %q; only bearer tokens are supported: %w", p.cfg.TokenURL, remote.Printable(tok.TokenType, 32), providers.ErrPermanent)
	}
	next := rt // a server that does not rotate refresh tokens keeps the old one valid
	if tok.RefreshToken != "" {
		next = secret.NewString(tok.RefreshToken)
	}
	rotated := !next.Equal(rt)
	if rotated {
		c.consumed = append(c.consumed, hash(rt))
		if len(c.consumed) > maxConsumed {
			c.consumed = c.consumed[len(c.consumed)-maxConsumed:]
		}
		c.latest = next
	}
	value := secret.NewString(tok.AccessToken)
	meta := map[string]string{
		"token_type":         tok.TokenType,
		"hash":               hash(value),
		"refresh_token_hash": hash(next),
		"refresh_rotated":    strconv.FormatBool(rotated),
	}
	var granted []string
	if tok.Scope != nil {
		granted = append([]string{}, strings.Fields(*tok.Scope)...)
		meta["scope"] = strings.Join(granted, " ")
	}
	if p.cfg.Resource != "" {
		meta["resource"] = p.cfg.Resource
	}
	var expires time.Time
	if secs, err := strconv.ParseInt(strings.Trim(string(tok.ExpiresIn), `"`), 10, 64); err == nil && secs > 0 {
		expires = time.Now().Add(time.Duration(secs) * time.Second).UTC()
		meta["expires_in"] = strconv.FormatInt(secs, 10)
	}
	p.log.Debug("refreshed an access token",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID),
		slog.String("hash", meta["hash"]), slog.String("refresh_token_hash", meta["refresh_token_hash"]),
		slog.Bool("refresh_rotated", rotated), slog.Time("expires_at", expires))
	return providers.MintResponse{
		Value: value, ExpiresAt: expires, GrantedScope: granted, ScopeNotReported: tok.Scope == nil,
		Metadata: meta, State: encodeState(next, bootstrap),
	}, nil
}

// Activate implements providers.Provider; an access token is valid when
// issued.
func (p *Provider) Activate(ctx context.Context, req providers.ActivateRequest) (providers.ActivateResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.ActivateResponse{}, fmt.Errorf("activating version %s: %w", req.VersionID, err)
	}
	return providers.ActivateResponse{}, nil
}

// Revoke implements providers.Provider: with a revocation_url it revokes
// the access token (RFC 7009, token_type_hint access_token); it never
// revokes the refresh token, which the next rotation needs.
func (p *Provider) Revoke(ctx context.Context, req providers.RevokeRequest) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("revoking version %s: %w", req.VersionID, err)
	}
	if req.Value.IsZero() || p.cfg.RevocationURL == "" {
		return nil
	}
	form := url.Values{"token": {req.Value.RevealString()}, "token_type_hint": {"access_token"}}
	resp, body, err := p.post(ctx, "revocation", p.cfg.RevocationURL, form)
	if err != nil {
		return p.clean(err, req.Value)
	}
	if resp.StatusCode != http.StatusOK {
		return p.clean(remote.EndpointError("revocation", p.cfg.RevocationURL, resp, body, errorHints), req.Value)
	}
	p.log.Debug("revoked an access token", slog.String("credential", req.CredentialID),
		slog.String("version", req.VersionID), slog.String("hash", hash(req.Value)))
	return nil
}

// post sends a form to an endpoint of the authorization server with the
// client's authentication. With AuthStyleAuto and a client secret it uses
// HTTP Basic and retries with form parameters on HTTP 401 (the server
// refused the client before looking at the grant, so a refresh token is
// not consumed by the first attempt).
func (p *Provider) post(ctx context.Context, op, endpoint string, form url.Values) (*http.Response, []byte, error) {
	styles := []string{p.cfg.AuthStyle}
	switch {
	case p.cfg.ClientSecret.IsZero():
		styles = []string{AuthStyleParams}
	case p.cfg.AuthStyle == AuthStyleAuto:
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
			f.Set("client_id", p.cfg.ClientID)
			if !p.cfg.ClientSecret.IsZero() {
				f.Set("client_secret", p.cfg.ClientSecret.RevealString())
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(f.Encode()))
		if err != nil {
			return nil, nil, fmt.Errorf("%s request to %s: %w", op, endpoint, err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		if style == AuthStyleHeader {
			req.SetBasicAuth(url.QueryEscape(p.cfg.ClientID), url.QueryEscape(p.cfg.ClientSecret.RevealString()))
		}
		resp, err = p.client.Do(req)
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

// clean scrubs the configured secrets and vals from err's text.
func (p *Provider) clean(err error, vals ...secret.Value) error {
	return secret.ScrubError(err, append([]secret.Value{p.cfg.ClientSecret, p.cfg.RefreshToken}, vals...)...)
}

var _ providers.Provider = (*Provider)(nil)
