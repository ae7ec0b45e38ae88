// Package delivery hands credentials' current values to their consumers at
// the transport layer (DESIGN.md §10): `rotator exec`, `rotator headers` and
// `rotator proxy` read values through a Source, never from a config file and
// never through a model.
//
// Two sources implement the contract: Local reads the store on the same host
// with the master key at hand; the consume API source reads the service's
// `GET /v1/credentials/{id}/value` over its Unix socket or over TCP with a
// `consume:` token. Both pass the conformance suite in deliverytest.
package delivery

import (
	"context"
	"errors"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
)

// Errors a Source returns (wrapped); callers test them with errors.Is.
var (
	// ErrNotFound: no credential has that id.
	ErrNotFound = errors.New("credential not found")
	// ErrNoValue: the credential exists but has no current version yet
	// (it has never been rotated).
	ErrNoValue = errors.New("credential has no current value")
	// ErrForbidden: the reader may not read that credential.
	ErrForbidden = errors.New("not allowed to read this credential")
)

// Current is a credential's current version as a consumer sees it.
type Current struct {
	CredentialID string
	VersionID    string
	// Fingerprint identifies the value without revealing it.
	Fingerprint string
	// ExpiresAt is when the value stops working (zero: no known expiry).
	ExpiresAt time.Time
	// NextCutoverAt is when the next rotation is due (zero: not scheduled).
	NextCutoverAt time.Time
	// Value is the secret itself; it prints as [REDACTED].
	Value secret.Value
}

// ReadRequest asks for a credential's current value.
type ReadRequest struct {
	CredentialID string
	// Purpose says why the value is read (for example "exec", "headers",
	// "proxy"); it is recorded in the value.read audit event.
	Purpose string
}

// WatchRequest waits for a credential's current version to change.
type WatchRequest struct {
	CredentialID string
	// AfterVersionID is the version the caller holds; Watch returns as soon
	// as the current version is another one (at once if it already is).
	AfterVersionID string
	Purpose        string
}

// Source reads credentials' current values for delivery.
//
// Read returns the current version of a credential. It returns an error
// wrapping ErrNotFound, ErrNoValue or ErrForbidden when those apply; any
// other error may be transient (the store or the service unreachable), and
// the caller may retry it. Every successful Read is recorded as a
// value.read audit event (credential, version, reader; never the value).
//
// Watch blocks until the current version differs from AfterVersionID, and
// returns the new current version (read, and audited, as by Read). It
// returns ctx's error when ctx ends first. It does not poll the caller's
// way: how it learns of a change is the source's business.
//
// Sources are safe for concurrent use. Close releases what the source
// holds; it does not end Watch calls in progress (cancel their contexts).
type Source interface {
	Read(ctx context.Context, req ReadRequest) (Current, error)
	Watch(ctx context.Context, req WatchRequest) (Current, error)
	Close() error
}
