// Package notify delivers rotation events (a credential needs attention, a
// run failed, an emergency rotation happened) to people: webhooks, Slack,
// email. This file holds the contract; the delivery channels and the retry
// stage come with the notifications work (DESIGN.md §3).
package notify

import (
	"context"
	"time"
)

// Kind names an event.
type Kind string

// Event kinds.
const (
	KindNeedsAttention Kind = "credential.needs_attention"
	KindRunFailed      Kind = "run.failed"
	KindEmergency      Kind = "rotation.emergency"
)

// Event is something a person should hear about. It never carries a secret
// value: versions appear by id and fingerprint.
type Event struct {
	Kind         Kind              `json:"kind"`
	Time         time.Time         `json:"time"`
	CredentialID string            `json:"credential_id,omitempty"`
	Consumer     string            `json:"consumer,omitempty"`
	RunID        string            `json:"run_id,omitempty"`
	Summary      string            `json:"summary"`
	Runbook      string            `json:"runbook,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// Notifier delivers events to one destination. It reports whether a failed
// delivery is worth retrying; the retry stage (not the notifier) loops.
type Notifier interface {
	Notify(ctx context.Context, ev Event) (retry bool, err error)
}

// Func adapts a function to a Notifier.
type Func func(ctx context.Context, ev Event) (bool, error)

// Notify implements Notifier.
func (f Func) Notify(ctx context.Context, ev Event) (bool, error) { return f(ctx, ev) }

var _ Notifier = Func(nil)
