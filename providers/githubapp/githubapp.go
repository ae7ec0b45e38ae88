// Package githubapp is the github-app provider: it mints GitHub App
// installation access tokens (valid one hour) from the app's private key,
// scoped to the permissions the credential declares (`contents:read`,
// `issues:write`) and, optionally, to named repositories.
//
// Minting signs a short JWT with the app's key (RS256; iss = the app's id,
// iat 60 seconds in the past against clock drift, exp 9 minutes ahead, under
// GitHub's 10-minute limit) and exchanges it at
// POST /app/installations/{id}/access_tokens. Tokens overlap (a new one
// does not invalidate the others); activation is a no-op; verification lists
// the token's repositories with GET /installation/repositories and holds the
// granted permissions against the declared ones; revocation is
// DELETE /installation/token with the token itself.
package githubapp

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/jose"
	"github.com/rotatorhq/rotator/internal/netx"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/internal/remote"
)

// Type is the provider type name.
const Type = "github-app"

var capabilities = providers.Capabilities{Overlap: true, Revocable: true, MaxTTL: TokenLifetime, ScopeAware: true}

// Errors that callers can test with errors.Is.
var (
	// ErrScopePolicy marks a token granted more than the credential
	// declares. It wraps providers.ErrPermanent.
	ErrScopePolicy = fmt.Errorf("scope policy violated: %w", providers.ErrPermanent)
	// ErrTokenRejected marks a verification that found the token refused.
	ErrTokenRejected = errors.New("token rejected")
)

// Factory returns the registry entry of the github-app provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:        "GitHub App installation access tokens (1 hour), scoped to permissions and repositories, from the app's private key",
		Capabilities:       capabilities,
		ValidateProvider:   ValidateProvider,
		ValidateCredential: ValidateCredential,
		ValidateScope:      ValidateScope,
		New: func(_ context.Context, env providers.Env) (providers.Provider, error) {
			return New(env)
		},
	}
}

// Provider mints installation access tokens. It is safe for concurrent use.
type Provider struct {
	name   string
	cfg    Config
	key    *rsa.PrivateKey
	log    *slog.Logger
	client *http.Client
	now    func() time.Time
}

// New returns a provider configured by env.Settings, with references
// already resolved.
func New(env providers.Env) (*Provider, error) {
	cfg, errs := parse(env.Settings, defaults, providerLevel)
	if len(errs) > 0 {
		return nil, fmt.Errorf("settings: %w: %w", providers.ErrPermanent, errs[0])
	}
	key, err := parsePrivateKey(cfg.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("private_key %w: %w", err, providers.ErrPermanent)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{
		name: env.Name, cfg: cfg, key: key, log: log, now: time.Now,
		client: &http.Client{
			Timeout: cfg.Timeout,
			// Never re-send a JWT or a token to another location.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider.
func (p *Provider) Capabilities() providers.Capabilities { return capabilities }

// Close closes idle connections to the GitHub API.
func (p *Provider) Close() error {
	p.client.CloseIdleConnections()
	return nil
}

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

// appJWT returns a JWT that authenticates as the app: RS256, iss = app id,
// iat 60 s in the past (GitHub's advice against clock drift), exp 9 minutes
// ahead (GitHub refuses more than 10).
func (p *Provider) appJWT() (string, error) {
	now := p.now()
	jwt, err := jose.Sign(p.key, "", map[string]any{
		"iat": now.Add(-60 * time.Second).Unix(),
		"exp": now.Add(9 * time.Minute).Unix(),
		"iss": p.cfg.AppID,
	})
	if err != nil {
		return "", fmt.Errorf("signing the app JWT: %w", err)
	}
	return jwt, nil
}

// tokenResponse is GitHub's answer to POST …/access_tokens.
type tokenResponse struct {
	Token               string            `json:"token"`
	ExpiresAt           time.Time         `json:"expires_at"`
	Permissions         map[string]string `json:"permissions"`
	RepositorySelection string            `json:"repository_selection"`
	Repositories        []struct {
		Name string `json:"name"`
	} `json:"repositories"`
}

// Mint implements providers.Provider: it creates an installation access
// token with the declared permissions and the configured repositories. The
// token is the value; ExpiresAt is GitHub's expires_at; GrantedScope is the
// permissions GitHub granted. A grant wider than declared is revoked at once
// and fails with ErrScopePolicy. Metadata holds a hash of the token, the
// installation, the granted permissions and repositories; never the token.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.MintResponse{}, fmt.Errorf("minting a token for credential %s: %w", req.CredentialID, err)
	}
	cfg, err := p.config(req.Common)
	if err != nil {
		return providers.MintResponse{}, err
	}
	perms, errs := ParseScope(req.Scope)
	if len(errs) > 0 {
		return providers.MintResponse{}, fmt.Errorf("credential %s scope%s: %w", req.CredentialID, errs[0].Error(), providers.ErrPermanent)
	}
	body := map[string]any{"permissions": perms}
	if len(cfg.Repositories) > 0 {
		body["repositories"] = cfg.Repositories
	}
	jwt, err := p.appJWT()
	if err != nil {
		return providers.MintResponse{}, err
	}
	endpoint := cfg.BaseURL + "/app/installations/" + cfg.InstallationID + "/access_tokens"
	status, raw, hdr, err := p.call(ctx, http.MethodPost, endpoint, jwt, body)
	if err != nil {
		return providers.MintResponse{}, p.clean(fmt.Errorf("creating an installation token at %s: %w", endpoint, err))
	}
	if status != http.StatusCreated {
		return providers.MintResponse{}, p.clean(apiError("creating an installation token", endpoint, status, hdr, raw))
	}
	var tr tokenResponse
	if err := json.Unmarshal(raw, &tr); err != nil || tr.Token == "" {
		return providers.MintResponse{}, fmt.Errorf("creating an installation token at %s: the response is not an installation token (HTTP %d)", endpoint, status)
	}
	value := secret.NewString(tr.Token)
	granted := scopeOf(tr.Permissions)
	repos := make([]string, 0, len(tr.Repositories))
	for _, r := range tr.Repositories {
		repos = append(repos, r.Name)
	}
	slices.Sort(repos)
	meta := map[string]string{
		"hash":                 tokenHash(value),
		"installation_id":      cfg.InstallationID,
		"permissions":          strings.Join(granted, " "),
		"repository_selection": remote.Printable(tr.RepositorySelection, 32),
	}
	if len(repos) > 0 {
		meta["repositories"] = remote.Printable(strings.Join(repos, ","), 2000)
	}
	if extra := wider(perms, tr.Permissions); len(extra) > 0 {
		p.revokeQuietly(ctx, cfg, value)
		return providers.MintResponse{}, fmt.Errorf("%w: GitHub granted %s, wider than the declared %s (not declared: %s); the token was revoked",
			ErrScopePolicy, strings.Join(granted, " "), strings.Join(req.Scope, " "), strings.Join(extra, " "))
	}
	if extra := outside(repos, cfg.Repositories); len(extra) > 0 {
		p.revokeQuietly(ctx, cfg, value)
		return providers.MintResponse{}, fmt.Errorf("%w: GitHub granted repositories %s that are not configured; the token was revoked", ErrScopePolicy, strings.Join(extra, ", "))
	}
	expires := tr.ExpiresAt.UTC()
	if expires.IsZero() {
		expires = p.now().Add(TokenLifetime).UTC()
	}
	p.log.Debug("minted an installation token",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID),
		slog.String("hash", meta["hash"]), slog.String("installation_id", cfg.InstallationID),
		slog.String("permissions", meta["permissions"]), slog.Time("expires_at", expires))
	return providers.MintResponse{Value: value, ExpiresAt: expires, GrantedScope: granted, Metadata: meta}, nil
}

// Activate implements providers.Provider; a token is valid when created.
func (p *Provider) Activate(ctx context.Context, req providers.ActivateRequest) (providers.ActivateResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.ActivateResponse{}, fmt.Errorf("activating version %s: %w", req.VersionID, err)
	}
	return providers.ActivateResponse{}, nil
}

// Verify implements providers.Provider: it lists the token's repositories
// with the token (GET /installation/repositories), which fails for a
// revoked, expired or unknown token; with repositories configured, every
// repository listed must be one of them. It then holds the permissions
// GitHub granted at mint (the version's metadata) against the declared
// scope and reports them as the granted scope.
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %w", req.VersionID, err)
	}
	cfg, err := p.config(req.Common)
	if err != nil {
		return providers.VerifyResponse{}, err
	}
	endpoint := cfg.BaseURL + "/installation/repositories?per_page=100"
	status, raw, hdr, err := p.call(ctx, http.MethodGet, endpoint, req.Value.RevealString(), nil)
	if err != nil {
		return providers.VerifyResponse{}, p.clean(fmt.Errorf("verifying version %s at %s: %w", req.VersionID, endpoint, err), req.Value)
	}
	if status == http.StatusUnauthorized {
		return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %w: GitHub answered HTTP 401 at %s (the token is revoked, expired or unknown)", req.VersionID, ErrTokenRejected, endpoint)
	}
	if status != http.StatusOK {
		return providers.VerifyResponse{}, p.clean(apiError("verifying version "+req.VersionID, endpoint, status, hdr, raw), req.Value)
	}
	var list struct {
		TotalCount   int `json:"total_count"`
		Repositories []struct {
			Name string `json:"name"`
		} `json:"repositories"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %s answered HTTP 200 with no repository list", req.VersionID, endpoint)
	}
	seen := make([]string, 0, len(list.Repositories))
	for _, r := range list.Repositories {
		seen = append(seen, r.Name)
	}
	if len(cfg.Repositories) > 0 {
		if extra := outside(seen, cfg.Repositories); len(extra) > 0 || list.TotalCount > len(cfg.Repositories) {
			return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %w: the token reaches %d repositories, more than the %d configured (not configured: %s)",
				req.VersionID, ErrScopePolicy, list.TotalCount, len(cfg.Repositories), strings.Join(extra, ", "))
		}
	}
	granted := strings.Fields(req.Metadata["permissions"])
	grantedPerms := map[string]string{}
	for _, g := range granted {
		name, lvl, _ := strings.Cut(g, ":")
		grantedPerms[name] = lvl
	}
	declared, errs := ParseScope(req.Scope)
	if len(errs) > 0 {
		return providers.VerifyResponse{}, fmt.Errorf("credential %s scope%s: %w", req.CredentialID, errs[0].Error(), providers.ErrPermanent)
	}
	if extra := wider(declared, grantedPerms); len(extra) > 0 {
		return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %w: granted %s is wider than the declared %s (not declared: %s)",
			req.VersionID, ErrScopePolicy, strings.Join(granted, " "), strings.Join(req.Scope, " "), strings.Join(extra, " "))
	}
	p.log.Debug("verified an installation token",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID), slog.Int("repositories", list.TotalCount))
	return providers.VerifyResponse{
		GrantedScope: granted,
		Evidence: map[string]string{
			"check":        "GET /installation/repositories",
			"status":       strconv.Itoa(status),
			"repositories": strconv.Itoa(list.TotalCount),
			"permissions":  strings.Join(granted, " "),
		},
	}, nil
}

// Revoke implements providers.Provider: DELETE /installation/token with the
// token. GitHub answers 204, and 401 for a token that is already revoked,
// expired or unknown, which is success here.
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
	if err := p.revoke(ctx, cfg, req.Value); err != nil {
		return p.clean(fmt.Errorf("revoking version %s: %w", req.VersionID, err), req.Value)
	}
	p.log.Debug("revoked an installation token",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID), slog.String("hash", tokenHash(req.Value)))
	return nil
}

func (p *Provider) revoke(ctx context.Context, cfg Config, token secret.Value) error {
	endpoint := cfg.BaseURL + "/installation/token"
	status, raw, hdr, err := p.call(ctx, http.MethodDelete, endpoint, token.RevealString(), nil)
	if err != nil {
		return fmt.Errorf("DELETE %s: %w", endpoint, err)
	}
	if status == http.StatusNoContent || status == http.StatusUnauthorized {
		return nil
	}
	return apiError("revoking an installation token", endpoint, status, hdr, raw)
}

// revokeQuietly revokes a token that must not be used, logging a failure.
func (p *Provider) revokeQuietly(ctx context.Context, cfg Config, token secret.Value) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout)
	defer cancel()
	if err := p.revoke(ctx, cfg, token); err != nil {
		p.log.Warn("could not revoke an over-scoped token; it expires within an hour",
			slog.String("hash", tokenHash(token)), slog.String("error", p.clean(err, token).Error()))
	}
}

// call sends one request to the GitHub API, authenticated with bearer (a
// JWT or a token), and returns the status, body (at most 1 MiB) and headers.
func (p *Provider) call(ctx context.Context, method, endpoint, bearer string, body any) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "rotator-github-app")
	req.Header.Set("Authorization", "Bearer "+bearer)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, nil, netx.TransportCause(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the response: %w", netx.TransportCause(err))
	}
	return resp.StatusCode, raw, resp.Header, nil
}

// APIError is an error answer of the GitHub API. It wraps
// providers.ErrPermanent unless retrying can help (a server error, a rate
// limit).
type APIError struct {
	// Op says what was attempted.
	Op string
	// URL is the endpoint.
	URL string
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is GitHub's `message`, shortened.
	Message string
	// RateLimited is true for a primary or secondary rate limit.
	RateLimited bool
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: GitHub answered HTTP %d at %s", e.Op, e.StatusCode, e.URL)
	if e.Message != "" {
		fmt.Fprintf(&b, ": %q", e.Message)
	}
	if e.RateLimited {
		b.WriteString(": rate limited; retrying later")
	} else if hint := statusHints[e.StatusCode]; hint != "" {
		b.WriteString(": ")
		b.WriteString(hint)
	}
	return b.String()
}

// Unwrap returns providers.ErrPermanent when retrying cannot help.
func (e *APIError) Unwrap() error {
	if e.RateLimited || e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests {
		return nil
	}
	return providers.ErrPermanent
}

var statusHints = map[int]string{
	http.StatusUnauthorized:        "GitHub refused the app's JWT; check app_id, that private_key is a current key of this app, and this host's clock",
	http.StatusForbidden:           "the app may not do this; check the installation is not suspended and the app has the declared permissions",
	http.StatusNotFound:            "no such installation of this app; check installation_id and base_url (GitHub Enterprise Server: https://HOST/api/v3)",
	http.StatusUnprocessableEntity: "the installation does not have a declared permission or repository; grant it in the app's settings (and have the installation accept it), or narrow the credential's scope or repositories",
}

func apiError(op, endpoint string, status int, hdr http.Header, raw []byte) error {
	e := &APIError{Op: op, URL: endpoint, StatusCode: status}
	var body struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &body) == nil {
		e.Message = remote.Printable(body.Message, 200)
	}
	if (status == http.StatusForbidden || status == http.StatusTooManyRequests) &&
		(hdr.Get("Retry-After") != "" || hdr.Get("X-RateLimit-Remaining") == "0") {
		e.RateLimited = true
	}
	return e
}

// outside returns the names in got that are not in allowed (nil when
// allowed is empty: no restriction).
func outside(got, allowed []string) []string {
	if len(allowed) == 0 {
		return nil
	}
	var out []string
	for _, g := range got {
		if !slices.Contains(allowed, g) {
			out = append(out, g)
		}
	}
	return out
}

func (p *Provider) clean(err error, vals ...secret.Value) error {
	return secret.ScrubError(err, append([]secret.Value{p.cfg.PrivateKey}, vals...)...)
}

// tokenHash identifies a token without revealing it.
func tokenHash(v secret.Value) string {
	h := sha256.Sum256(v.Reveal())
	return "sha256:" + hex.EncodeToString(h[:8])
}

var _ providers.Provider = (*Provider)(nil)
