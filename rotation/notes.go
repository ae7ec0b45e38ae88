package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
)

// Notifications (issue 12). An execution notes the events a commit causes;
// commit writes them to the notification outbox in the same transaction as
// the run's state, as one notify_outbox row (queued with its other writes:
// no extra round trip on Postgres, no extra commit anywhere).
// notify/outbox routes and delivers them; the engine knows nothing of
// receivers.

// note records an event for the next commit. Versions appear by id and
// fingerprint, never by value; reason is already scrubbed.
func (x *execution) note(kind notify.Kind, at time.Time, reason, summary string) {
	if !x.e.notifies(kind) {
		return
	}
	ev := notify.Event{
		ID: NewID(at), Kind: kind, Time: at, CredentialID: x.cred.ID, Consumer: x.cred.Consumer, Labels: x.cred.Labels,
		RunID: x.run.ID, Trigger: string(x.run.Trigger), Reason: reason, Summary: summary, Runbook: x.cred.Runbook,
	}
	if ev.CredentialID == "" {
		ev.CredentialID = x.run.CredentialID
	}
	if id := x.run.OldVersionID; id != "" {
		ev.OldVersion = &notify.Version{ID: id}
		if c := x.oldVersion; c != nil && c.ID == id {
			ev.OldVersion.Fingerprint = c.Fingerprint
		}
	}
	if v := x.newVer; v != nil {
		ev.NewVersion = &notify.Version{ID: v.ID, Fingerprint: v.Fingerprint}
	}
	x.notes = append(x.notes, ev)
}

// notifies reports whether the engine writes events of the kind
// (Options.NotifyKinds).
func (e *Engine) notifies(kind notify.Kind) bool {
	if e.opts.NotifyKinds == nil {
		return !notify.MachineKinds[kind]
	}
	return e.opts.NotifyKinds(kind)
}

// writeNotes queues the noted events in the commit's transaction, as one
// outbox row however many they are.
func (x *execution) writeNotes(ctx context.Context, tx store.Tx) error {
	if len(x.notes) == 0 {
		return nil
	}
	row, err := OutboxRow(x.notes...)
	if err != nil {
		return err
	}
	return tx.InsertNotifyOutbox(ctx, row)
}

// OutboxRow encodes the events of one commit as one outbox row (at least
// one event): a JSON array of the events, under the first one's id, at the
// latest one's time. notify/outbox moves it into notify_events, event by
// event, before routing.
func OutboxRow(evs ...notify.Event) (store.NotifyOutbox, error) {
	b, err := notify.AppendEvents(make([]byte, 0, 512*len(evs)), evs...)
	if err != nil {
		return store.NotifyOutbox{}, fmt.Errorf("encoding %d notification events: %w", len(evs), err)
	}
	latest := evs[0].Time
	for _, ev := range evs[1:] {
		if ev.Time.After(latest) {
			latest = ev.Time
		}
	}
	return store.NotifyOutbox{ID: evs[0].ID, OccurredAt: latest, Events: b}, nil
}

// OutboxRows encodes events as notify_events rows, for the events the CLI
// and the notify dispatcher raise themselves (WriteEvents): those go
// straight to notify_events, where an id written twice (an emergency's
// summary) is a conflict.
func OutboxRows(evs ...notify.Event) ([]store.NotifyEvent, error) {
	rows := make([]store.NotifyEvent, len(evs))
	for i := range evs {
		ev := &evs[i]
		b, err := notify.AppendEvent(nil, ev)
		if err != nil {
			return nil, fmt.Errorf("encoding %s event: %w", ev.Kind, err)
		}
		rows[i] = store.NotifyEvent{ID: ev.ID, Kind: string(ev.Kind), OccurredAt: ev.Time, CredentialID: ev.CredentialID, RunID: ev.RunID, Payload: b}
	}
	return rows, nil
}

// noteCutover notes what a cut-over commit means for consumers: the new
// value was staged and verified (those steps commit with the cutover), is
// current now, and, when the run ends in the same commit, the previous
// value is retired.
func (x *execution) noteCutover(now time.Time, retired bool) {
	id := x.cred.ID
	x.note(notify.KindStaged, now, "", fmt.Sprintf("a new value of %s was staged at its targets and verified", id))
	x.note(notify.KindCutOver, now, "", fmt.Sprintf("%s cut over to a new value; consumers should reload it", id))
	if retired {
		x.note(notify.KindRetired, now, "", fmt.Sprintf("the previous value of %s was retired", id))
	}
}

// noteEmergency writes the rotation.emergency "started" event for the
// runs an emergency request started. It is its own small transaction after
// the runs are enqueued (an emergency is rare, and the enqueue path stays
// as it is); a failure is logged, never fatal to the emergency.
func (e *Engine) noteEmergency(ctx context.Context, req Request, started []Started) {
	var creds []string
	for _, s := range started {
		if !s.Skipped {
			creds = append(creds, s.CredentialID)
		}
	}
	if len(creds) == 0 {
		return
	}
	now := e.now()
	ev := notify.Event{ID: NewID(now), Kind: notify.KindEmergency, Time: now, Phase: "started", Reason: req.Reason,
		Trigger: string(store.TriggerEmergency), Credentials: creds,
		Summary: fmt.Sprintf("emergency rotation of %d credentials started by %s: %s", len(creds), req.Actor, req.Reason)}
	if len(creds) == 1 {
		ev.CredentialID = creds[0]
	}
	if err := e.WriteEvents(context.WithoutCancel(ctx), ev); err != nil {
		e.log.Error("writing the emergency notification failed", slog.String("error", e.opts.Redactor.Scrub(err.Error())))
	}
}

// WriteEvents writes events to the notification outbox in a transaction of
// their own, for events no run commit carries (an emergency's start and
// summary, audit verification, the overdue and expiring checks).
func (e *Engine) WriteEvents(ctx context.Context, evs ...notify.Event) error {
	return WriteEvents(ctx, e.store, evs...)
}

// WriteEvents writes events to the store's notification outbox in one
// transaction.
func WriteEvents(ctx context.Context, st store.Store, evs ...notify.Event) error {
	rows, err := OutboxRows(evs...)
	if err != nil {
		return err
	}
	return st.InTx(ctx, func(tx store.Tx) error { return tx.InsertNotifyEvents(ctx, rows...) })
}
