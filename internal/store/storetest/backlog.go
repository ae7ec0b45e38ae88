package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// testBacklog: Backlog counts the outbox's rows and events, the unrouted
// notification events, the unsealed audit events and the credentials the
// scheduler would start, each with the time of its oldest, and leaves out
// what no leader waits on (routed and sealed events, credentials not due,
// rotating, needing attention, with an active run or deleted).
func testBacklog(t *testing.T, s store.Store, ctx context.Context) {
	empty, err := s.Backlog(ctx, t0)
	noErr(t, "backlog of nothing", err)
	equal(t, "backlog of nothing", empty, store.Backlog{})

	ev := func(id string, at time.Time) string {
		return `{"id":"` + id + `","kind":"rotation.failed","time":"` + at.Format(time.RFC3339Nano) + `","summary":"s"}`
	}
	outbox := []store.NotifyOutbox{
		{ID: "01B1", OccurredAt: t0.Add(-time.Hour), Events: json.RawMessage("[" + ev("01B1", t0.Add(-time.Hour)) + "," + ev("01B2", t0.Add(-time.Hour)) + "]")},
		{ID: "01B3", OccurredAt: t0.Add(-time.Minute), Events: json.RawMessage("[" + ev("01B3", t0.Add(-time.Minute)) + "]")},
	}
	seed(t, s,
		// due 2h ago, idle: counted
		credential("due-old", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusOverdue, NextRotationAt: t0.Add(-2 * time.Hour)}
		}),
		// due now, failing (retried by the scheduler): counted
		credential("due-now", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusFailing, NextRotationAt: t0}
		}),
		credential("later", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusHealthy, NextRotationAt: t0.Add(time.Microsecond)}
		}),
		credential("unscheduled", func(c *store.Credential) { c.State.Status = store.StatusNew }),
		credential("attention", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusNeedsAttention, NextRotationAt: t0.Add(-3 * time.Hour)}
		}),
		credential("rotating", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusRotating, NextRotationAt: t0.Add(-3 * time.Hour)}
		}),
		credential("running", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusDue, NextRotationAt: t0.Add(-3 * time.Hour)}
		}),
		credential("deleted", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusDue, NextRotationAt: t0.Add(-3 * time.Hour)}
		}),
	)
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "run", tx.InsertRun(ctx, run("r-running", "running", t0)))
		noErr(t, "delete", tx.DeleteCredential(ctx, "deleted"))
		noErr(t, "outbox", tx.InsertNotifyOutbox(ctx, outbox...))
		noErr(t, "events", tx.InsertNotifyEvents(ctx,
			store.NotifyEvent{ID: "01E1", Kind: "credential.overdue", OccurredAt: t0.Add(-10 * time.Minute), Payload: json.RawMessage(`{}`)},
			store.NotifyEvent{ID: "01E2", Kind: "credential.overdue", OccurredAt: t0.Add(-20 * time.Minute), Payload: json.RawMessage(`{}`)},
			store.NotifyEvent{ID: "01E3", Kind: "credential.overdue", OccurredAt: t0.Add(-30 * time.Minute), Payload: json.RawMessage(`{}`)}))
		noErr(t, "route", tx.RouteNotifyEvents(ctx, t0, []string{"01E3"}, nil))
		return tx.InsertAuditEvents(ctx,
			store.AuditEvent{Action: "sealed", OccurredAt: t0.Add(-5 * time.Hour)},
			store.AuditEvent{Action: "a", OccurredAt: t0.Add(-4 * time.Hour)},
			store.AuditEvent{Action: "b", OccurredAt: t0.Add(-time.Second)})
	})
	sealAll(t, s, 0, 1)
	got, err := s.Backlog(ctx, t0)
	noErr(t, "backlog", err)
	want := store.Backlog{
		OutboxRows: 2, OutboxEvents: 3, OutboxOldest: t0.Add(-time.Hour),
		UnroutedEvents: 2, UnroutedOldest: t0.Add(-20 * time.Minute),
		UnsealedEvents: 2, UnsealedOldest: t0.Add(-4 * time.Hour),
		Due: 2, DueOldest: t0.Add(-2 * time.Hour),
	}
	equal(t, "backlog", got, want)

	// Once the leader has moved the outbox and sealed the audit events,
	// only what it has not reached is left.
	tx(t, s, func(tx store.Tx) error {
		_, _, err := tx.ExpandNotifyOutbox(ctx, 10)
		return err
	})
	sealAll(t, s, 1, 10)
	got, err = s.Backlog(ctx, t0.Add(-90*time.Minute))
	noErr(t, "backlog after the leader", err)
	want = store.Backlog{
		UnroutedEvents: 5, UnroutedOldest: t0.Add(-time.Hour),
		Due: 1, DueOldest: t0.Add(-2 * time.Hour),
	}
	equal(t, "backlog after the leader", got, want)
}
