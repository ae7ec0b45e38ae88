// Package targets defines the contract of the places where rotator publishes
// the current value of a credential for its consumers to read (a file, AWS
// Secrets Manager), and the types every target implementation shares.
//
// A target never imports the engine or the store. Every method takes a
// request struct, so fields can be added without breaking implementations.
package targets

import (
	"context"
	"errors"
	"log/slog"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// Target publishes credential values.
//
// Both methods must be idempotent for a given IdempotencyKey: after a crash
// the engine calls them again. Errors must never contain the value. Return
// an error wrapping ErrPermanent when a
// retry cannot help.
type Target interface {
	// Stage publishes the value as pending, where consumers that read the
	// current value do not see it yet (AWSPENDING). It may be a no-op.
	Stage(ctx context.Context, req StageRequest) error
	// Promote makes the staged value the current one; the previous current
	// value, where the target keeps one, becomes the previous.
	Promote(ctx context.Context, req PromoteRequest) error
}

// Common carries the fields every request has.
type Common struct {
	// CredentialID is the credential being published.
	CredentialID string
	// VersionID is the version being published.
	VersionID string
	// IdempotencyKey is unique per run and step.
	IdempotencyKey string
	// Key is the binding's key (an environment variable name, a JSON field),
	// empty when the binding has none.
	Key string
	// Value is the secret being published.
	Value secret.Value
}

// StageRequest asks a target to publish a value as pending.
type StageRequest struct {
	Common
}

// PromoteRequest asks a target to make a value current.
type PromoteRequest struct {
	Common
	// PreviousVersionID is the version that was current, if any.
	PreviousVersionID string
}

// Env is what a factory may use to build a target.
type Env struct {
	// Name is the configured target name (the key under targets:).
	Name string
	// Settings are the target's settings with references resolved.
	Settings settings.Map
	// Logger is scoped to this target.
	Logger *slog.Logger
}

// Factory builds targets of one type.
type Factory struct {
	// Description is one line for `--help` and docs.
	Description string
	// Validate checks settings without resolving references or contacting anything.
	Validate func(s settings.Map) settings.Errors
	// ValidateKey checks a credential binding's key; nil means any key is valid.
	ValidateKey func(key string) error
	// New builds a target from resolved settings. The engine puts
	// "target NAME:" before its error, so the error says what is wrong
	// (with the type, if useful) without naming the instance again
	// (providers/registry's TestNewErrorsLeaveTheNameToTheEngine).
	New func(ctx context.Context, env Env) (Target, error)
}

// ErrPermanent marks an error that retrying cannot fix.
var ErrPermanent = errors.New("permanent failure")

// ErrSkipped is wrapped by the error of a Stage or Withdraw that did not do
// what its name says and did not need to: a target without a pending slot
// that only checked that Promote will be able to write, a value another
// credential still publishes under the same key. It is not a failure: the
// engine records the step as skipped, with the error's text (after
// "skipped: ") as the reason, and goes on. Promote never returns it.
var ErrSkipped = errors.New("skipped")

// Withdrawer is implemented by targets that can take a credential's value
// back out, for a credential removed from the inventory (apply --prune).
//
// Withdraw must be idempotent: a value that is already gone is success. It
// must leave the values of every other credential alone (req.Others), and it
// works without the value (req.Value is empty): a target withdraws what it
// published under the binding, whatever it is. Errors follow the rules of
// Target's methods.
type Withdrawer interface {
	Withdraw(ctx context.Context, req WithdrawRequest) (WithdrawResponse, error)
}

// WithdrawRequest asks a target to remove a removed credential's value.
// Common's VersionID is the credential's current version ("" if none) and
// its Value is empty.
type WithdrawRequest struct {
	Common
	// VersionIDs are the credential's versions that may be published at the
	// target (current, previous, pending), newest first.
	VersionIDs []string
	// Others are the other credentials published at the same target, whose
	// values must stay.
	Others []Binding
}

// Binding names a credential published at a target under a key ("" for
// the target's default).
type Binding struct {
	CredentialID string
	Key          string
}

// WithdrawResponse reports what Withdraw did.
type WithdrawResponse struct {
	// Detail is a short, secret-free account of what was done, such as
	// "removed GITHUB_TOKEN from /srv/run/mcp.env".
	Detail string
}
