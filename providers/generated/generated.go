// Package generated is the provider of random secrets: API keys and shared
// secrets that rotator itself creates and that consumers and resources read
// from a target. It needs nothing external, so it is what the quickstart uses.
package generated

import (
	"context"
	"fmt"
	"time"

	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
)

// Type is the provider type name.
const Type = "generated"

// Factory returns the registry entry of the generated provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:        "random secrets of a given length, alphabet and prefix",
		Capabilities:       capabilities,
		ValidateProvider:   ValidateProvider,
		ValidateCredential: ValidateCredential,
		New: func(_ context.Context, env providers.Env) (providers.Provider, error) {
			return New(env.Settings)
		},
	}
}

// Generated values exist only where rotator publishes them, so old and new
// are valid together, there is nothing to revoke at a resource, and a
// minted value is known to no one until it is published (Local).
var capabilities = providers.Capabilities{Overlap: true, Revocable: false, Local: true}

// Provider mints random values.
type Provider struct {
	cfg Config
}

// New returns a generated provider configured by s.
func New(s settings.Map) (*Provider, error) {
	cfg, errs := parse(s, defaults)
	if len(errs) > 0 {
		return nil, fmt.Errorf("generated provider: %w: %w", providers.ErrPermanent, errs[0])
	}
	return &Provider{cfg: cfg}, nil
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider.
func (p *Provider) Capabilities() providers.Capabilities { return capabilities }

// Mint implements providers.Provider: it draws Length characters uniformly
// from the alphabet with crypto/rand.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.MintResponse{}, err
	}
	cfg, errs := parse(req.Settings, p.cfg)
	if len(errs) > 0 {
		return providers.MintResponse{}, fmt.Errorf("credential %s settings: %w: %w", req.CredentialID, providers.ErrPermanent, errs[0])
	}
	val, err := secret.Random(cfg.Prefix, cfg.Length, cfg.Alphabet)
	if err != nil {
		return providers.MintResponse{}, err
	}
	resp := providers.MintResponse{
		Value:        val,
		GrantedScope: req.Scope,
		Metadata:     map[string]string{"length": fmt.Sprint(cfg.Length)},
	}
	if cfg.TTL != "" {
		ttl, err := duration.Parse(cfg.TTL)
		if err == nil && ttl > 0 {
			resp.ExpiresAt = time.Now().Add(ttl).UTC()
		}
	}
	return resp, nil
}

// Activate implements providers.Provider; a generated value is valid as soon
// as it exists.
func (p *Provider) Activate(ctx context.Context, _ providers.ActivateRequest) (providers.ActivateResponse, error) {
	return providers.ActivateResponse{}, ctx.Err()
}

// Verify implements providers.Provider: it checks the value has the
// configured shape.
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, err
	}
	cfg, errs := parse(req.Settings, p.cfg)
	if len(errs) > 0 {
		return providers.VerifyResponse{}, fmt.Errorf("credential %s settings: %w: %w", req.CredentialID, providers.ErrPermanent, errs[0])
	}
	if want := len(cfg.Prefix) + cfg.Length; req.Value.Len() != want {
		return providers.VerifyResponse{}, fmt.Errorf("value of version %s has length %d, want %d", req.VersionID, req.Value.Len(), want)
	}
	return providers.VerifyResponse{GrantedScope: req.Scope, Evidence: map[string]string{"check": "length and prefix"}}, nil
}

// Revoke implements providers.Provider; there is nothing to revoke.
func (p *Provider) Revoke(ctx context.Context, _ providers.RevokeRequest) error { return ctx.Err() }

var _ providers.Provider = (*Provider)(nil)
