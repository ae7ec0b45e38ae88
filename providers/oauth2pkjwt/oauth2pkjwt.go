// Package oauth2pkjwt is the oauth2-private-key-jwt provider: it rotates
// the key pair an OAuth 2.0 client authenticates with by private_key_jwt
// (RFC 7523 §2.2, OpenID Connect Core §9): the client proves who it is with
// a short JWT signed by its private key, and the authorization server checks
// it against the public keys of the client's JSON Web Key Set.
//
// The credential's value is the private key (PEM or a private JWK). Mint
// generates a key pair (ES256 by default, RS256 as an option) whose kid is
// the RFC 7638 thumbprint of the public key. Activate publishes the public
// key beside the current one: in the provider's jwks_file (written
// atomically), and in the set `rotator serve` answers at
// /.well-known/jwks/{provider}.json, which lists the public keys of the
// provider's pending, current and previous versions. Verify waits
// stage_wait (the authorization server's JWKS cache) after publication and
// then gets a token with grant client_credentials and a client assertion
// signed by the new key. Keys overlap: the old key stays in the set during
// grace. Revoke removes the key from the set.
package oauth2pkjwt

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
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
const Type = "oauth2-private-key-jwt"

var capabilities = providers.Capabilities{Overlap: true, Revocable: true}

// Metadata keys recorded with each version (public, never secret).
const (
	// MetaKid is the key id, the RFC 7638 thumbprint of the public key.
	MetaKid = "kid"
	// MetaAlg is the signature algorithm.
	MetaAlg = "alg"
	// MetaJWK is the public key as a JWK (JSON); `rotator serve` publishes
	// it at /.well-known/jwks/{provider}.json.
	MetaJWK = "jwk"
	// MetaPublishedAt is when Activate published the key (RFC 3339).
	MetaPublishedAt = "published_at"
)

// Errors that callers can test with errors.Is.
var (
	// ErrKeyRejected marks a token request that the authorization server
	// refused with the new key.
	ErrKeyRejected = errors.New("authorization server refused the key")
	// ErrNotPublished marks a key that is not in the jwks_file.
	ErrNotPublished = errors.New("key not published")
)

// Factory returns the registry entry of the oauth2-private-key-jwt provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:        "OAuth 2.0 client key pairs for private_key_jwt client authentication (RFC 7523), published in a JWKS",
		Capabilities:       capabilities,
		ValidateProvider:   ValidateProvider,
		ValidateCredential: ValidateCredential,
		New: func(_ context.Context, env providers.Env) (providers.Provider, error) {
			return New(env)
		},
	}
}

// Provider rotates client key pairs. It is safe for concurrent use.
type Provider struct {
	name   string
	cfg    Config
	log    *slog.Logger
	client *http.Client
	now    func() time.Time
}

// New returns a provider configured by env.Settings.
func New(env providers.Env) (*Provider, error) {
	cfg, errs := parse(env.Settings, defaults)
	if len(errs) > 0 {
		return nil, fmt.Errorf("settings: %w: %w", providers.ErrPermanent, errs[0])
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.JWKSFile == "" {
		log.Info("no jwks_file configured; the client's keys are published only by rotator serve",
			slog.String("path", "/.well-known/jwks/"+env.Name+".json"))
	}
	return &Provider{
		name: env.Name, cfg: cfg, log: log, now: time.Now,
		client: &http.Client{
			Timeout: cfg.Timeout,
			// Never re-send an assertion to another location.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider.
func (p *Provider) Capabilities() providers.Capabilities { return capabilities }

// Close closes idle connections to the authorization server.
func (p *Provider) Close() error {
	p.client.CloseIdleConnections()
	return nil
}

// Mint implements providers.Provider: it generates a key pair. The private
// key is the value; the metadata holds the kid, the algorithm and the
// public JWK. Nothing is published yet.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.MintResponse{}, fmt.Errorf("minting a key for credential %s: %w", req.CredentialID, err)
	}
	key, err := jose.GenerateKey(p.cfg.Algorithm)
	if err != nil {
		return providers.MintResponse{}, fmt.Errorf("minting a key for credential %s: %w", req.CredentialID, err)
	}
	if err := ctx.Err(); err != nil {
		// RSA key generation takes a while; a run given up meanwhile
		// does not want the key.
		return providers.MintResponse{}, fmt.Errorf("minting a key for credential %s: %w", req.CredentialID, err)
	}
	pub, err := jose.PublicJWK(key)
	if err != nil {
		return providers.MintResponse{}, fmt.Errorf("minting a key for credential %s: %w", req.CredentialID, err)
	}
	var value secret.Value
	if p.cfg.Format == FormatJWK {
		value, err = jose.PrivateJWK(key)
	} else {
		value, err = jose.EncodePEM(key)
	}
	if err != nil {
		return providers.MintResponse{}, fmt.Errorf("minting a key for credential %s: %w", req.CredentialID, err)
	}
	jwk, err := json.Marshal(pub)
	if err != nil {
		return providers.MintResponse{}, err
	}
	p.log.Debug("minted a client key",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID),
		slog.String("kid", pub.Kid), slog.String("alg", pub.Alg))
	return providers.MintResponse{
		Value:    value,
		Metadata: map[string]string{MetaKid: pub.Kid, MetaAlg: pub.Alg, MetaJWK: string(jwk), "format": p.cfg.Format},
	}, nil
}

// keyOf parses a version's value into its key and public JWK. Errors never
// hold the value.
func keyOf(versionID string, v secret.Value) (crypto.Signer, jose.JWK, error) {
	key, err := jose.ParsePrivateKey(v)
	if err != nil {
		return nil, jose.JWK{}, fmt.Errorf("version %s: the value is %w", versionID, err)
	}
	pub, err := jose.PublicJWK(key)
	if err != nil {
		return nil, jose.JWK{}, fmt.Errorf("version %s: %w", versionID, err)
	}
	return key, pub, nil
}

// Activate implements providers.Provider: it adds the public key to the
// jwks_file beside the keys already there (the current one), and records
// when it was published. The served JWKS shows the key from the moment the
// version is stored; there is nothing to do for it.
func (p *Provider) Activate(ctx context.Context, req providers.ActivateRequest) (providers.ActivateResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.ActivateResponse{}, fmt.Errorf("activating version %s: %w", req.VersionID, err)
	}
	_, pub, err := keyOf(req.VersionID, req.Value)
	if err != nil {
		return providers.ActivateResponse{}, fmt.Errorf("activating %w: %w", err, providers.ErrPermanent)
	}
	published := p.now().UTC()
	if p.cfg.JWKSFile != "" {
		added, err := addKey(p.cfg.JWKSFile, pub)
		if err != nil {
			return providers.ActivateResponse{}, fmt.Errorf("activating version %s: %w", req.VersionID, err)
		}
		if !added {
			// A re-run: keep the first publication time if it is known.
			if t, err := time.Parse(time.RFC3339Nano, req.Metadata[MetaPublishedAt]); err == nil {
				published = t
			}
		}
	}
	p.log.Debug("published a client key",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID),
		slog.String("kid", pub.Kid), slog.String("jwks_file", p.cfg.JWKSFile))
	return providers.ActivateResponse{Metadata: map[string]string{MetaPublishedAt: published.Format(time.RFC3339Nano)}}, nil
}

// Verify implements providers.Provider: it checks that the key is
// published (in the jwks_file, when configured), waits until stage_wait has
// passed since publication, and gets a token from token_url with a client
// assertion signed by the key. The token itself is dropped.
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %w", req.VersionID, err)
	}
	key, pub, err := keyOf(req.VersionID, req.Value)
	if err != nil {
		return providers.VerifyResponse{}, fmt.Errorf("verifying %w: %w", err, providers.ErrPermanent)
	}
	if p.cfg.JWKSFile != "" {
		ok, err := hasKey(p.cfg.JWKSFile, pub.Kid)
		if err != nil {
			return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %w", req.VersionID, err)
		}
		if !ok {
			return providers.VerifyResponse{}, fmt.Errorf("verifying version %s: %w: kid %s is not in jwks_file %s (activate it first; a revoked key stays out)",
				req.VersionID, ErrNotPublished, pub.Kid, p.cfg.JWKSFile)
		}
	}
	if err := p.stageWait(ctx, req); err != nil {
		return providers.VerifyResponse{}, err
	}
	status, err := p.token(ctx, key, pub.Kid)
	if err != nil {
		return providers.VerifyResponse{}, fmt.Errorf("verifying version %s (kid %s): %w", req.VersionID, pub.Kid, err)
	}
	p.log.Debug("verified a client key",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID), slog.String("kid", pub.Kid))
	return providers.VerifyResponse{
		ScopeNotReported: true,
		Evidence: map[string]string{
			"check":  "client_credentials token request with private_key_jwt",
			"url":    p.cfg.TokenURL,
			"kid":    pub.Kid,
			"alg":    pub.Alg,
			"status": strconv.Itoa(status),
		},
	}, nil
}

// stageWait waits until stage_wait has passed since the key was published.
func (p *Provider) stageWait(ctx context.Context, req providers.VerifyRequest) error {
	if p.cfg.StageWait <= 0 {
		return nil
	}
	published, err := time.Parse(time.RFC3339Nano, req.Metadata[MetaPublishedAt])
	if err != nil {
		// Unknown publication time (a version activated before this
		// provider recorded it): wait the whole stage_wait.
		published = p.now()
	}
	wait := time.Until(published.Add(p.cfg.StageWait))
	if wait <= 0 {
		return nil
	}
	p.log.Debug("waiting for the authorization server's JWKS cache",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID), slog.Duration("wait", wait))
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("verifying version %s: waiting stage_wait %s for the authorization server's JWKS cache: %w", req.VersionID, p.cfg.StageWait, context.Cause(ctx))
	}
}

// token requests a token with a client assertion signed by key and
// returns the HTTP status of the success.
func (p *Provider) token(ctx context.Context, key crypto.Signer, kid string) (int, error) {
	assertion, err := jose.ClientAssertion(key, kid, p.cfg.ClientID, p.cfg.audience(), p.now(), p.cfg.AssertionLifetime)
	if err != nil {
		return 0, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {p.cfg.ClientID},
		"client_assertion_type": {jose.AssertionType},
		"client_assertion":      {assertion},
	}
	if len(p.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(p.cfg.Scopes, " "))
	}
	if p.cfg.Resource != "" {
		form.Set("resource", p.cfg.Resource)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, fmt.Errorf("token request to %s: %w", p.cfg.TokenURL, err)
	}
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(hreq)
	if err != nil {
		return 0, fmt.Errorf("token request to %s: %w", p.cfg.TokenURL, netx.TransportCause(err))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("reading the token response of %s: %w", p.cfg.TokenURL, err)
	}
	var fields struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &fields)
	if resp.StatusCode == http.StatusOK && fields.AccessToken != "" {
		return resp.StatusCode, nil
	}
	msg := fmt.Sprintf("token endpoint %s refused the assertion [HTTP %d]", p.cfg.TokenURL, resp.StatusCode)
	if fields.Error != "" {
		msg += ": " + remote.Printable(fields.Error, 64)
	}
	if fields.Description != "" {
		msg += fmt.Sprintf(" (%q)", remote.Printable(fields.Description, 200))
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return 0, fmt.Errorf("token endpoint %s answered HTTP 200 without an access_token", p.cfg.TokenURL)
	case fields.Error == "invalid_client" || resp.StatusCode == http.StatusUnauthorized:
		return 0, fmt.Errorf("%w: %s: check that the server takes the client's keys from this provider's JWKS, and that stage_wait (%s) is at least the server's JWKS cache lifetime",
			ErrKeyRejected, msg, p.cfg.StageWait)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return 0, errors.New(msg)
	}
	return 0, fmt.Errorf("%w: %s", ErrKeyRejected, msg)
}

// Revoke implements providers.Provider: it removes the key from the
// jwks_file. The served JWKS drops it when the engine retires or discards
// the version. A key that is not there is success.
func (p *Provider) Revoke(ctx context.Context, req providers.RevokeRequest) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("revoking version %s: %w", req.VersionID, err)
	}
	if req.Value.IsZero() {
		return nil
	}
	_, pub, err := keyOf(req.VersionID, req.Value)
	if err != nil {
		return fmt.Errorf("revoking %w: %w", err, providers.ErrPermanent)
	}
	if p.cfg.JWKSFile != "" {
		if err := removeKey(p.cfg.JWKSFile, pub.Kid); err != nil {
			return fmt.Errorf("revoking version %s: %w", req.VersionID, err)
		}
	}
	p.log.Debug("withdrew a client key",
		slog.String("credential", req.CredentialID), slog.String("version", req.VersionID), slog.String("kid", pub.Kid))
	return nil
}

var _ providers.Provider = (*Provider)(nil)
