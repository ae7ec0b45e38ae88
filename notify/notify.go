// Package notify tells people and machines what rotator did: a run failed
// or rolled back, a credential needs attention, is overdue or expiring, an
// emergency rotation started, the audit chain broke, and (for machines that
// reload on a cutover) a new value was staged, cut over or the previous one
// retired.
//
// This package holds the contract shared by the engine and the delivery
// side: the Event (schema version 1, docs/notifications.md), the Receiver
// interface every channel implements (notify/webhook, notify/slack,
// notify/email, listed in notify/registry), the retry stage (retry.go),
// routing (route.go) and grouping (group.go). The engine writes events to
// the outbox in the transaction of the state change that causes them;
// notify/outbox routes, groups and delivers them. No event carries a
// secret value: versions appear by id and fingerprint.
package notify

import (
	"context"
	"time"
)

// SchemaVersion is the version of the event schema (docs/notifications.md).
const SchemaVersion = 1

// Kind names an event.
type Kind string

// Event kinds. The first group is for people; the machine kinds
// (Staged, CutOver, Retired) are opt-in: routes must name them.
const (
	// KindRunFailed: a run ended failed without a rollback (a value no
	// configured key opens, the credential removed mid-run).
	KindRunFailed Kind = "rotation.failed"
	// KindRolledBack: a run failed before (or at) cutover and was rolled
	// back; consumers still use the previous value.
	KindRolledBack Kind = "rotation.rolled_back"
	// KindNeedsAttention: retries are exhausted (or cannot help); a person
	// must act. The credential is not rotated again until then.
	KindNeedsAttention Kind = "credential.needs_attention"
	// KindEmergency: an emergency rotation started (phase "started") or
	// ended (phase "summary").
	KindEmergency Kind = "rotation.emergency"
	// KindOverdue: a credential is past its due time and not rotated.
	KindOverdue Kind = "credential.overdue"
	// KindExpiring: a credential's current value expires soon and no
	// rotation has succeeded since it became due.
	KindExpiring Kind = "credential.expiring"
	// KindChainBroken: audit verification found the hash chain broken.
	KindChainBroken Kind = "audit.chain_broken"
	// KindStaged: a new value is staged at every target (pending) and
	// verified; consumers may prefetch it.
	KindStaged Kind = "rotation.staged"
	// KindCutOver: the new value is current at every target; consumers
	// reload now.
	KindCutOver Kind = "rotation.cut_over"
	// KindRetired: the previous value was retired (revoked where the
	// provider can); it no longer works.
	KindRetired Kind = "rotation.retired"
	// KindTest is sent by `rotator notify test`.
	KindTest Kind = "notify.test"
)

// Kinds lists every event kind, people's first, in the order of the
// documentation.
var Kinds = []Kind{KindRunFailed, KindRolledBack, KindNeedsAttention, KindEmergency, KindOverdue,
	KindExpiring, KindChainBroken, KindStaged, KindCutOver, KindRetired, KindTest}

// MachineKinds are the kinds delivered only to routes that name them.
var MachineKinds = map[Kind]bool{KindStaged: true, KindCutOver: true, KindRetired: true}

// Known reports whether k is an event kind.
func Known(k Kind) bool {
	for _, x := range Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Severity returns how bad an event is: "critical", "warning", "info" or
// "ok"; receivers use it for colour.
func (k Kind) Severity() string {
	switch k {
	case KindNeedsAttention, KindChainBroken, KindEmergency:
		return "critical"
	case KindRunFailed, KindRolledBack, KindOverdue, KindExpiring:
		return "warning"
	case KindCutOver, KindRetired:
		return "ok"
	case KindStaged, KindTest:
		return "info"
	}
	return "info"
}

// Version is a credential version as events show it: never its value.
type Version struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Links point a reader to the run and the runbook section. They are filled
// by the dispatcher from the `notify.links` templates; empty otherwise.
type Links struct {
	Run     string `json:"run,omitempty"`
	Runbook string `json:"runbook,omitempty"`
}

// Event is one thing that happened (schema version 1). It never carries a
// secret value: versions appear by id and keyed fingerprint, errors are
// scrubbed before they are written.
type Event struct {
	// ID identifies the event (a ULID); stable across deliveries.
	ID string `json:"id"`
	// Kind names what happened.
	Kind Kind `json:"kind"`
	// Time is when it happened (RFC 3339, UTC).
	Time time.Time `json:"time"`
	// CredentialID, Consumer and Labels describe the credential.
	CredentialID string            `json:"credential,omitempty"`
	Consumer     string            `json:"consumer,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	// RunID and Trigger describe the run.
	RunID   string `json:"run_id,omitempty"`
	Trigger string `json:"trigger,omitempty"`
	// OldVersion is the version current before the run; NewVersion the one
	// it minted.
	OldVersion *Version `json:"old_version,omitempty"`
	NewVersion *Version `json:"new_version,omitempty"`
	// Reason says why (the run's error, the emergency's reason).
	Reason string `json:"reason,omitempty"`
	// Summary is one human sentence.
	Summary string `json:"summary"`
	// Runbook is the credential's runbook reference (path#anchor).
	Runbook string `json:"runbook,omitempty"`
	// Links are URLs of the run and the runbook section.
	Links *Links `json:"links,omitempty"`
	// Phase is "started" or "summary" for rotation.emergency.
	Phase string `json:"phase,omitempty"`
	// Credentials lists the credentials an emergency covers.
	Credentials []string `json:"credentials,omitempty"`
}

// Message is what one delivery sends to one receiver: the events of one
// group (a burst becomes one message), under a delivery id that stays the
// same across every retry and restart (the webhook-id).
type Message struct {
	// DeliveryID identifies the delivery; receivers deduplicate on it.
	DeliveryID string `json:"delivery_id"`
	// Receiver is the configured receiver's name.
	Receiver string `json:"receiver"`
	// GroupKey names the group (route and group_by values).
	GroupKey string `json:"group_key"`
	// Events are the group's events in the order they happened.
	Events []Event `json:"events"`
}

// Notifier is the engine's in-process observer: it hears an event right
// after its commit, best effort (tests, embedding). Durable delivery goes
// through the outbox instead.
type Notifier interface {
	Notify(ctx context.Context, ev Event) (retry bool, err error)
}

// Func adapts a function to a Notifier.
type Func func(ctx context.Context, ev Event) (bool, error)

// Notify implements Notifier.
func (f Func) Notify(ctx context.Context, ev Event) (bool, error) { return f(ctx, ev) }

// Receiver delivers messages to one destination (after Alertmanager's
// notify.Notifier). It sends once: it reports whether a failure is worth
// retrying (5xx, 429, a network error) and, for 429 and 503, how long the
// server asked to wait (as a *RetryAfterError); the retry stage loops.
// Sending the same DeliveryID twice must be harmless to the destination.
type Receiver interface {
	Notify(ctx context.Context, msg Message) (retry bool, err error)
}

// ReceiverFunc adapts a function to a Receiver.
type ReceiverFunc func(ctx context.Context, msg Message) (bool, error)

// Notify implements Receiver.
func (f ReceiverFunc) Notify(ctx context.Context, msg Message) (bool, error) { return f(ctx, msg) }

var (
	_ Notifier = Func(nil)
	_ Receiver = ReceiverFunc(nil)
)
