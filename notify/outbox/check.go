package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/rotation"
)

// Check writes the summaries of finished emergencies (Summarize),
// credential.overdue for credentials past their due time
// (rotation.EffectiveStatus says overdue or expired) and
// credential.expiring for those whose current value expires within
// expiring_within while the rotation that was due has not succeeded. It
// runs at most every CheckEvery and raises a lasting state once per
// repeat interval (routing mutes repeats per receiver, too).
func (d *Dispatcher) Check(ctx context.Context) error {
	now := d.now()
	if !d.checked.IsZero() && now.Sub(d.checked) < d.opts.CheckEvery {
		return nil
	}
	d.checked = now
	if err := d.Summarize(ctx); err != nil {
		return fmt.Errorf("summarising emergencies: %w", err)
	}
	creds, err := d.opts.Store.ListCredentials(ctx, store.CredentialFilter{DueBefore: now})
	if err != nil {
		return fmt.Errorf("listing due credentials: %w", err)
	}
	repeat := d.opts.Config.Route.RepeatInterval
	var evs []notify.Event
	for _, c := range creds {
		status := rotation.EffectiveStatus(c, now)
		exp := c.State.ExpiresAt
		switch {
		case status == store.StatusOverdue || status == store.StatusExpired:
			evs = d.raise(evs, c, notify.KindOverdue, now, repeat, string(status),
				fmt.Sprintf("credential %s is overdue: due at %s and not rotated", c.ID, c.State.NextRotationAt.Format(time.RFC3339)))
		}
		if !exp.IsZero() && now.Before(exp) && exp.Sub(now) <= d.opts.Config.ExpiringWithin && status != store.StatusHealthy {
			evs = d.raise(evs, c, notify.KindExpiring, now, repeat, string(status),
				fmt.Sprintf("credential %s expires at %s and no rotation has succeeded since it was due", c.ID, exp.Format(time.RFC3339)))
		}
	}
	if len(evs) == 0 {
		return nil
	}
	return rotation.WriteEvents(ctx, d.opts.Store, evs...)
}

func (d *Dispatcher) raise(evs []notify.Event, c store.Credential, kind notify.Kind, now time.Time, repeat time.Duration, reason, summary string) []notify.Event {
	key := string(kind) + "\x00" + c.ID
	if last, ok := d.raised[key]; ok && now.Sub(last) < repeat {
		return evs
	}
	d.raised[key] = now
	ev := notify.Event{ID: rotation.NewID(now), Kind: kind, Time: now, CredentialID: c.ID, Consumer: c.Consumer, Labels: c.Labels,
		Reason: reason, Summary: summary, Runbook: c.Runbook}
	if c.Current != nil {
		ev.OldVersion = &notify.Version{ID: c.Current.ID, Fingerprint: c.Current.Fingerprint}
	}
	return append(evs, ev)
}

// TestOptions configure Test.
type TestOptions struct {
	// Actor is who sends the test; the event's summary names it.
	Actor string
	// MaxAttempts bounds the tries; 0 keeps the retry stage's (8 by
	// default). 1 sends once, without retrying.
	MaxAttempts int
	// Progress, when set, is called after every attempt, before the wait
	// for the next one: the attempt as it is stored (its error scrubbed
	// by the Redactor, its Wait set when another attempt follows).
	Progress func(notify.Attempt)
}

// Test sends a notify.test event to one receiver now, through the retry
// stage, as a recorded delivery (visible in `rotator notify list`). It
// returns the delivery id and the delivery's error.
//
// The delivery has no job: nothing but this call sends it, so this call
// settles it whatever happens. When ctx is cancelled (Ctrl-C), the
// delivery is recorded failed, with the attempts made and "cancelled:"
// and the cause as its error, rather than left pending forever (serve
// delivers only what it routed and enqueued itself).
func (d *Dispatcher) Test(ctx context.Context, receiver string, opts TestOptions) (string, error) {
	if _, ok := d.opts.Config.Receivers[receiver]; !ok {
		return "", fmt.Errorf("receiver %q: %w", receiver, ErrUnknownReceiver)
	}
	now := d.now()
	ev := notify.Event{ID: rotation.NewID(now), Kind: notify.KindTest, Time: now,
		Summary: fmt.Sprintf("test notification from rotator to receiver %s (sent by %s)", receiver, opts.Actor)}
	rows, err := rotation.OutboxRows(ev)
	if err != nil {
		return "", err
	}
	id := rotation.NewID(now)
	body, err := marshalEvents([]notify.Event{ev})
	if err != nil {
		return "", err
	}
	groupKey := "test:" + receiver
	dl := store.NotifyDelivery{ID: id, Receiver: receiver, GroupKey: groupKey, State: store.DeliveryPending,
		Events: body, EventCount: 1, CreatedAt: now, UpdatedAt: now}
	err = d.opts.Store.InTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertNotifyEvents(ctx, rows...); err != nil {
			return err
		}
		if err := tx.RouteNotifyEvents(ctx, now, []string{ev.ID}, []store.NotifyItem{{EventID: ev.ID, Receiver: receiver, GroupKey: groupKey,
			Kind: string(ev.Kind), CreatedAt: now}}); err != nil {
			return err
		}
		return tx.CreateNotifyDelivery(ctx, dl, []string{ev.ID})
	})
	if err != nil {
		return "", err
	}
	r := d.opts.Retrier
	if opts.MaxAttempts > 0 {
		r.MaxAttempts = opts.MaxAttempts
	}
	var last notify.Attempt // as stored: its error scrubbed
	progress := func(a notify.Attempt) {
		last = a
		if opts.Progress != nil {
			opts.Progress(a)
		}
	}
	if err := d.deliver(ctx, dl, deliverRun{retrier: r, final: true, progress: progress}); err != nil {
		return id, err
	}
	// Read what was settled even when ctx was cancelled.
	got, err := d.opts.Store.GetNotifyDelivery(context.WithoutCancel(ctx), id)
	if err != nil {
		return id, err
	}
	if got.State != store.DeliveryDelivered {
		// The last attempt's error says why once; the delivery's own
		// wraps it in the retry stage's account (the id again, "gave
		// up"). A cancel is the delivery's error, not the attempt's.
		cause := got.LastError
		if ctx.Err() == nil && last.Error != "" {
			cause = last.Error
		}
		return id, fmt.Errorf("delivery %s %s after %d attempt(s): %s", id, got.State, got.Attempts, cause)
	}
	return id, nil
}
