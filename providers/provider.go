// Package providers defines the contract between the rotation engine and the
// systems that mint credentials (an OAuth2 authorization server, a Postgres
// server, a random generator, ...), and the registry of provider types.
//
// A provider never imports the engine or the store. Every method takes a
// request struct and returns a response struct, so fields can be added
// without breaking implementations.
package providers

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// Provider mints, activates, verifies and revokes the values of credentials.
//
// Every method must be idempotent for a given IdempotencyKey: the engine
// runs a step again after a crash, and a provider that already did the work
// must report success (and, for Mint, may return the same value again).
// Errors must never contain the secret value. Return an error wrapping
// ErrPermanent when retrying cannot help (bad configuration, permission
// denied); any other error is retried with backoff.
type Provider interface {
	// Type returns the provider type name, as registered.
	Type() string
	// Capabilities describes what the provider can do.
	Capabilities() Capabilities
	// Mint creates a new value. It must not invalidate the current value.
	Mint(ctx context.Context, req MintRequest) (MintResponse, error)
	// Activate makes the minted value valid at the resource. It may be a no-op.
	Activate(ctx context.Context, req ActivateRequest) (ActivateResponse, error)
	// Verify proves that the value works and has the declared scope.
	Verify(ctx context.Context, req VerifyRequest) (VerifyResponse, error)
	// Revoke makes a value invalid. A value that is already gone is success.
	Revoke(ctx context.Context, req RevokeRequest) error
}

// Capabilities describes a provider type.
type Capabilities struct {
	// Overlap is true when the old and the new value can be valid at once,
	// so consumers see no failure at cutover.
	Overlap bool `json:"overlap"`
	// Revocable is true when Revoke actually invalidates a value.
	Revocable bool `json:"revocable"`
	// MaxTTL is the longest lifetime the provider can grant; 0 means no limit.
	MaxTTL time.Duration `json:"max_ttl"`
	// ScopeAware is true when the provider reports the scope it granted.
	ScopeAware bool `json:"scope_aware"`
	// Stateful is true when the provider keeps secret state per credential
	// from one Mint to the next (a rotated OAuth refresh token): the engine
	// then reads the state into MintRequest.State and stores
	// MintResponse.State, sealed, with the pending version.
	Stateful bool `json:"stateful,omitempty"`
	// Local is true when Mint, Activate and Verify touch nothing outside
	// rotator (a value drawn at random): a minted value is known to no one
	// until rotator publishes it. For a credential without targets the
	// engine then records the new version in the cutover commit instead of
	// a write-ahead commit of its own (one commit fewer per rotation). A
	// provider whose Mint creates anything at a resource must not set it.
	Local bool `json:"local,omitempty"`
}

// Common carries the fields every request has.
type Common struct {
	// CredentialID is the id of the credential being rotated.
	CredentialID string
	// VersionID is the id of the version the request is about.
	VersionID string
	// IdempotencyKey is unique per run and step (run id + step name).
	IdempotencyKey string
	// Scope is the scope the credential declares.
	Scope []string
	// Settings are the credential's provider settings (for example the role
	// of a postgres-role credential). References are already resolved.
	Settings settings.Map
}

// MintRequest asks for a new value.
type MintRequest struct {
	Common
	// Current is the version in use, if any (for alternating strategies).
	Current *VersionRef
	// State is the credential's provider state as the last Mint that
	// returned one left it (whatever became of that Mint's version:
	// current, discarded on rollback), for Stateful providers; zero when
	// there is none yet.
	State secret.Value
}

// MintResponse carries a new value.
type MintResponse struct {
	// Value is the new secret.
	Value secret.Value
	// ExpiresAt is when the value stops working at the resource; zero if never.
	ExpiresAt time.Time
	// GrantedScope is the scope the resource actually granted, if known.
	GrantedScope []string
	// ScopeNotReported is true when the resource did not say which scope it
	// granted (an OAuth token response without scope). GrantedScope is then
	// ignored: the version records its scope as not reported, and no
	// over-scope finding is inferred from the requested scope. Verify may
	// still report it (introspection).
	ScopeNotReported bool
	// Metadata is recorded with the version (never secret: a key id, a role name).
	Metadata map[string]string
	// State, when not zero, replaces the credential's provider state (a
	// Stateful provider's rotated refresh token). The engine seals it and
	// stores it in the same transaction as the pending version, before
	// anything uses the new value (write-ahead), and never publishes it.
	// A provider whose Mint consumes state (a refresh token that is
	// single-use) returns the state that replaces it in the same response.
	State secret.Value
}

// VersionRef names an existing version and its provider metadata.
type VersionRef struct {
	VersionID string
	Value     secret.Value
	Metadata  map[string]string
}

// ActivateRequest asks the provider to make a minted value valid.
type ActivateRequest struct {
	Common
	Value    secret.Value
	Metadata map[string]string
	// ExpiresAt is the expiry the engine wants for the value; zero if none.
	ExpiresAt time.Time
}

// ActivateResponse reports the result of Activate.
type ActivateResponse struct {
	// Metadata, when non-nil, is merged into the version's metadata.
	Metadata map[string]string
}

// VerifyRequest asks the provider to prove a value works.
type VerifyRequest struct {
	Common
	Value    secret.Value
	Metadata map[string]string
}

// VerifyResponse reports the evidence of a verification.
type VerifyResponse struct {
	// GrantedScope is the scope observed during verification, if known.
	GrantedScope []string
	// ScopeNotReported is true when verification did not observe the granted
	// scope either; the version keeps what Mint reported. When false and
	// Mint reported no scope, GrantedScope (even empty) becomes the
	// version's granted scope.
	ScopeNotReported bool
	// Evidence is a short, secret-free record of what was checked.
	Evidence map[string]string
}

// RevokeRequest asks the provider to invalidate a value.
type RevokeRequest struct {
	Common
	Value    secret.Value
	Metadata map[string]string
}

// Loginer is implemented by a Stateful provider whose state an operator
// starts interactively (`rotator login`), such as an OAuth refresh token
// obtained with the device authorization grant (RFC 8628).
type Loginer interface {
	// Login asks the operator, through req.Prompt, to authorize, waits for
	// the authorization (bounded by ctx) and returns the state it
	// obtained. The engine stores the state sealed, replacing the
	// credential's.
	Login(ctx context.Context, req LoginRequest) (LoginResponse, error)
}

// LoginRequest asks a provider to start a credential's state.
type LoginRequest struct {
	Common
	// Prompt is called once with what the operator must do.
	Prompt func(LoginPrompt)
}

// LoginPrompt is what the operator must do to authorize: open the URI and
// enter the code (or open the complete URI, which carries the code).
type LoginPrompt struct {
	VerificationURI         string
	VerificationURIComplete string
	UserCode                string
	ExpiresAt               time.Time
}

// LoginResponse carries the state a login obtained.
type LoginResponse struct {
	// State is the new provider state (never empty on success).
	State secret.Value
	// Metadata is secret-free detail for the audit event (a hash of the
	// refresh token, the granted scope).
	Metadata map[string]string
}

// ErrPermanent marks an error that retrying cannot fix.
var ErrPermanent = errors.New("permanent failure")

// Env is what a factory may use to build a provider.
type Env struct {
	// Name is the configured provider name (the key under providers:).
	Name string
	// Settings are the provider-level settings with references resolved.
	Settings settings.Map
	// Logger is scoped to this provider.
	Logger *slog.Logger
}

// Factory builds providers of one type.
type Factory struct {
	// Description is one line for `--help` and docs.
	Description string
	// Capabilities are what the type can do at best (with the most capable
	// settings).
	Capabilities Capabilities
	// CapabilitiesOf, when set, tells what a provider configured with the
	// given (unresolved) settings can do, where that depends on them (a
	// postgres-role with strategy single has no overlap). Nil means
	// Capabilities.
	CapabilitiesOf func(s settings.Map) Capabilities
	// ValidateProvider checks provider-level settings without resolving
	// references or contacting anything.
	ValidateProvider func(s settings.Map) settings.Errors
	// ValidateCredential checks per-credential settings.
	ValidateCredential func(s settings.Map) settings.Errors
	// ValidateScope, when set, checks a credential's declared scope, for
	// providers whose scope has a syntax (github-app's `contents:read`).
	// Each error's Field is "" (the whole list) or "[i]" (one entry).
	ValidateScope func(scope []string) settings.Errors
	// CheckHost, when set, checks what valid provider-level settings (with
	// references unresolved) name on this host, without contacting
	// anything: that an executable exists and may be run by this user.
	// apply runs it and reports its findings as warnings (errors with
	// --strict), because apply may run elsewhere than the service.
	CheckHost func(s settings.Map) settings.Errors
	// New builds a provider from resolved settings. The engine puts
	// "provider NAME:" before its error, so the error says what is wrong
	// (with the type, if useful) without naming the instance again
	// (providers/registry's TestNewErrorsLeaveTheNameToTheEngine).
	New func(ctx context.Context, env Env) (Provider, error)
}

// CapabilitiesFor returns what a provider of this type configured with s
// can do.
func (f Factory) CapabilitiesFor(s settings.Map) Capabilities {
	if f.CapabilitiesOf != nil {
		return f.CapabilitiesOf(s)
	}
	return f.Capabilities
}
