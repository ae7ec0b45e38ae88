// Package outbox delivers the notification events the engine writes to the
// outbox (one store.NotifyOutbox row per commit, in the transaction of the
// change they describe): the leader moves them into notify_events
// (store.NotifyEvent, one row per event) and routes them to receivers and
// groups (Route), turns each group into one delivery per group_interval
// (Flush), and River jobs send each delivery through the retry stage
// (Deliver), recording every attempt. A delivery's id is chosen when it is
// created and stored with its events, so it is the same (webhook-id,
// Message-ID) on every retry and after any restart, and a delivered one is
// never sent again.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/notify/registry"
	"github.com/rotatorhq/rotator/rotation"
)

// ErrUnknownReceiver is returned for a receiver the configuration lacks.
var ErrUnknownReceiver = errors.New("no such receiver")

// Defaults.
const (
	// DefaultMaxEvents caps the events of one message; a larger group is
	// sent as several messages in one flush (nothing is dropped).
	DefaultMaxEvents = 1000
	// DefaultRouteBatch is how many outbox events one Route call reads.
	DefaultRouteBatch = 2000
	// DefaultCheckEvery spaces the overdue and expiring checks.
	DefaultCheckEvery = time.Minute
)

// Options configure a Dispatcher.
type Options struct {
	Store  store.Store
	Config *notify.Config
	// Resolver resolves the receivers' secret references.
	Resolver *secret.Resolver
	// Redactor learns the resolved secrets, so the log handler scrubs them.
	Redactor *secret.Redactor
	Logger   *slog.Logger
	// Now is the clock (grouping, attempts); time.Now when nil.
	Now func() time.Time
	// Retrier is the retry stage; its Now and Logger default to the
	// dispatcher's.
	Retrier notify.Retrier
	// Enqueue inserts a River job per delivery id in tx (the Runner's
	// EnqueueDeliveries); nil leaves the deliveries to DeliverPending.
	Enqueue func(ctx context.Context, tx store.Tx, ids []string) error
	// MaxEvents, RouteBatch and CheckEvery override the defaults.
	MaxEvents  int
	RouteBatch int
	CheckEvery time.Duration
	// Receivers, when set, are used instead of building them from Config
	// (tests of the dispatcher itself).
	Receivers map[string]notify.Receiver
	// NewRequest fills the fields of every receiver's NewRequest other than
	// Name and Settings (an HTTP client, a clock).
	NewRequest notify.NewRequest
}

// Dispatcher routes, groups and delivers outbox events.
type Dispatcher struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	mu        sync.Mutex
	receivers map[string]notify.Receiver

	// pruned is when Prune last ran.
	pruned time.Time
	// checked is when the overdue/expiring check last ran; raised holds
	// when an event was last written per kind and credential, so a lasting
	// state is written once per repeat interval, not once per check.
	checked time.Time
	raised  map[string]time.Time
}

// New returns a Dispatcher.
func New(opts Options) (*Dispatcher, error) {
	if opts.Store == nil || opts.Config == nil {
		return nil, errors.New("notification dispatcher needs a store and a notify configuration")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Resolver == nil {
		opts.Resolver = &secret.Resolver{}
	}
	if opts.Redactor == nil {
		opts.Redactor = &secret.Redactor{}
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.RouteBatch <= 0 {
		opts.RouteBatch = DefaultRouteBatch
	}
	if opts.CheckEvery <= 0 {
		opts.CheckEvery = DefaultCheckEvery
	}
	if opts.Retrier.Now == nil {
		opts.Retrier.Now = opts.Now
	}
	if opts.Retrier.Logger == nil {
		opts.Retrier.Logger = opts.Logger
	}
	opts.Config.Fill()
	d := &Dispatcher{opts: opts, log: opts.Logger, now: func() time.Time { return opts.Now().UTC().Truncate(time.Microsecond) },
		receivers: map[string]notify.Receiver{}, raised: map[string]time.Time{}}
	for name, r := range opts.Receivers {
		d.receivers[name] = r
	}
	return d, nil
}

// SetEnqueue sets the function that inserts delivery jobs (the Runner is
// built after the Dispatcher, whose Deliver its worker calls).
func (d *Dispatcher) SetEnqueue(fn func(ctx context.Context, tx store.Tx, ids []string) error) {
	d.opts.Enqueue = fn
}

// receiver returns the named receiver, building it on first use with its
// references resolved.
func (d *Dispatcher) receiver(ctx context.Context, name string) (notify.Receiver, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.receivers[name]; ok {
		return r, nil
	}
	rc, ok := d.opts.Config.Receivers[name]
	if !ok {
		return nil, fmt.Errorf("receiver %q: %w", name, ErrUnknownReceiver)
	}
	f, ok := registry.Lookup(rc.Type)
	if !ok {
		return nil, fmt.Errorf("receiver %s: unknown type %q", name, rc.Type)
	}
	resolved, err := settings.Resolve(ctx, rc.Settings, func(ctx context.Context, ref string) (secret.Value, error) {
		v, err := d.opts.Resolver.ResolveString(ctx, ref)
		if err == nil {
			d.opts.Redactor.Register(v)
		}
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("receiver %s: %w", name, err)
	}
	req := d.opts.NewRequest
	req.Name, req.Settings = name, resolved
	if req.Now == nil {
		req.Now = d.opts.Now
	}
	if req.Logger == nil {
		req.Logger = d.log.With(slog.String("receiver", name))
	}
	r, err := f.New(req)
	if err != nil {
		return nil, err
	}
	d.receivers[name] = r
	return r, nil
}

// Task is the leader task serve runs about every 2 seconds: route, check,
// flush.
func (d *Dispatcher) Task(ctx context.Context) error {
	if err := d.Route(ctx); err != nil {
		return err
	}
	if err := d.Check(ctx); err != nil {
		d.log.Warn("checking for overdue and expiring credentials failed", slog.String("error", d.scrub(err)))
	}
	if err := d.Prune(ctx); err != nil {
		d.log.Warn("pruning old notifications failed", slog.String("error", d.scrub(err)))
	}
	_, err := d.Flush(ctx)
	return err
}

func (d *Dispatcher) scrub(err error) string { return d.opts.Redactor.Scrub(err.Error()) }

// Route moves the engine's outbox rows (one per commit) into
// notify_events, then reads unrouted events and files each into the groups
// of the receivers its routes name, marking it routed, in one transaction
// per batch. A lasting state (needs_attention, overdue, expiring, chain
// broken) already sent to a receiver for the same credential within
// repeat_interval is not filed again.
func (d *Dispatcher) Route(ctx context.Context) error {
	if err := d.expand(ctx); err != nil {
		return err
	}
	for {
		n, err := d.routeBatch(ctx)
		if err != nil || n < d.opts.RouteBatch {
			return err
		}
	}
}

// expand moves outbox rows into notify_events, RouteBatch rows per
// transaction. Each event keeps the id it was given when it was noted, and
// a row is deleted in the transaction that inserts its events, so a crash
// at any point moves every event once: delivery ids stay exactly once.
func (d *Dispatcher) expand(ctx context.Context) error {
	for {
		var n int
		err := d.opts.Store.InTx(ctx, func(tx store.Tx) error {
			var err error
			n, _, err = tx.ExpandNotifyOutbox(ctx, d.opts.RouteBatch)
			return err
		})
		if err != nil {
			return fmt.Errorf("moving the notification outbox: %w", err)
		}
		if n < d.opts.RouteBatch || ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (d *Dispatcher) routeBatch(ctx context.Context) (int, error) {
	now := d.now()
	var n int
	err := d.opts.Store.InTx(ctx, func(tx store.Tx) error {
		evs, err := tx.ListUnroutedNotifyEvents(ctx, d.opts.RouteBatch)
		if err != nil {
			return err
		}
		n = len(evs)
		if n == 0 {
			return nil
		}
		ids := make([]string, 0, n)
		var items []store.NotifyItem
		muted := map[string]bool{}
		for _, row := range evs {
			ids = append(ids, row.ID)
			var ev notify.Event
			if err := json.Unmarshal(row.Payload, &ev); err != nil {
				d.log.Error("an outbox event does not decode; it is skipped", slog.String("event", row.ID), slog.String("error", err.Error()))
				continue
			}
			for _, m := range d.opts.Config.Matches(ev) {
				if notify.IsState(ev.Kind) {
					key := m.Receiver + "\x00" + string(ev.Kind) + "\x00" + ev.CredentialID
					if muted[key] {
						continue
					}
					sent, err := tx.NotifiedSince(ctx, m.Receiver, string(ev.Kind), ev.CredentialID, now.Add(-m.RepeatInterval))
					if err != nil {
						return err
					}
					muted[key] = true // one per batch, too
					if sent {
						continue
					}
				}
				items = append(items, store.NotifyItem{EventID: row.ID, Receiver: m.Receiver, GroupKey: m.GroupKey,
					Kind: string(ev.Kind), CredentialID: ev.CredentialID, CreatedAt: now})
			}
		}
		return tx.RouteNotifyEvents(ctx, now, ids, items)
	})
	if err != nil {
		return 0, fmt.Errorf("routing notification events: %w", err)
	}
	return n, nil
}

// Flush turns every group that is due (group_wait after its first event,
// group_interval after its last message) into deliveries of at most
// MaxEvents events each, enqueueing a job per delivery in the same
// transaction. It returns the ids of the deliveries it created.
func (d *Dispatcher) Flush(ctx context.Context) ([]string, error) {
	groups, err := d.opts.Store.ListNotifyGroups(ctx)
	if err != nil {
		return nil, err
	}
	now := d.now()
	var created []string
	for _, g := range groups {
		if err := ctx.Err(); err != nil {
			return created, err
		}
		m := d.timing(g)
		if now.Before(notify.GroupDue(g.FirstAt, g.LastSentAt, m)) {
			continue
		}
		ids, err := d.flushGroup(ctx, g, now)
		created = append(created, ids...)
		if err != nil {
			return created, err
		}
	}
	return created, nil
}

// timing finds the grouping settings of a group: the route is the first
// part of its key (position in the tree).
func (d *Dispatcher) timing(g store.NotifyGroup) notify.Match {
	pos, _, _ := strings.Cut(g.GroupKey, ":")
	r := &d.opts.Config.Route
	for _, p := range strings.Split(pos, ".")[1:] {
		var i int
		if _, err := fmt.Sscan(p, &i); err != nil || i >= len(r.Routes) {
			break
		}
		r = &r.Routes[i]
	}
	return notify.Match{Receiver: g.Receiver, GroupKey: g.GroupKey, GroupWait: r.GroupWait, GroupInterval: r.GroupInterval, RepeatInterval: r.RepeatInterval}
}

func (d *Dispatcher) flushGroup(ctx context.Context, g store.NotifyGroup, now time.Time) ([]string, error) {
	var ids []string
	err := d.opts.Store.InTx(ctx, func(tx store.Tx) error {
		ids = ids[:0]
		for {
			rows, err := tx.ListWaitingNotifyEvents(ctx, g.Receiver, g.GroupKey, d.opts.MaxEvents)
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				break
			}
			evs := make([]notify.Event, 0, len(rows))
			eventIDs := make([]string, len(rows))
			for i, row := range rows {
				eventIDs[i] = row.ID
				var ev notify.Event
				if err := json.Unmarshal(row.Payload, &ev); err != nil {
					continue
				}
				ev.Links = d.opts.Config.Links.Link(ev)
				evs = append(evs, ev)
			}
			body, err := json.Marshal(evs)
			if err != nil {
				return err
			}
			id := rotation.NewID(now)
			dl := store.NotifyDelivery{ID: id, Receiver: g.Receiver, GroupKey: g.GroupKey, State: store.DeliveryPending,
				Events: body, EventCount: len(evs), CreatedAt: now, UpdatedAt: now}
			if err := tx.CreateNotifyDelivery(ctx, dl, eventIDs); err != nil {
				return err
			}
			ids = append(ids, id)
			if len(rows) < d.opts.MaxEvents {
				break
			}
		}
		if d.opts.Enqueue != nil && len(ids) > 0 {
			return d.opts.Enqueue(ctx, tx, ids)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("flushing notification group %s: %w", g.GroupKey, err)
	}
	return ids, nil
}

// Deliver sends one delivery through the retry stage and records every
// attempt. A delivery that is no longer pending (delivered, or failed for
// good) is not sent again. It returns nil once the delivery is settled,
// and an error when it should be tried again later (the retry stage gave
// up on a retryable failure, unless lastChance, which settles it failed).
// A cancelled ctx (serve shutting down) leaves the delivery pending: its
// job runs again.
func (d *Dispatcher) Deliver(ctx context.Context, id string, lastChance bool) error {
	dl, err := d.opts.Store.GetNotifyDelivery(ctx, id)
	if err != nil {
		return err
	}
	return d.deliver(ctx, dl, deliverRun{retrier: d.opts.Retrier, lastChance: lastChance})
}

// deliverRun is what a delivery job (Deliver) and `rotator notify test`
// (Test) do differently around the one delivery path.
type deliverRun struct {
	retrier notify.Retrier
	// lastChance settles a delivery the retry stage gave up on as failed.
	lastChance bool
	// final says that nothing will run this delivery again (no job
	// exists for it): every outcome settles it, a cancel as failed.
	final bool
	// progress, when set, is told of every attempt as it is recorded
	// (its stored number, its error scrubbed).
	progress func(notify.Attempt)
}

func (d *Dispatcher) deliver(ctx context.Context, dl store.NotifyDelivery, run deliverRun) error {
	if dl.State != store.DeliveryPending {
		return nil
	}
	var evs []notify.Event
	if err := json.Unmarshal(dl.Events, &evs); err != nil {
		return d.settle(ctx, dl, nil, store.DeliveryFailed, "stored events do not decode: "+err.Error())
	}
	rcv, err := d.receiver(ctx, dl.Receiver)
	if err != nil {
		switch {
		case errors.Is(err, ErrUnknownReceiver):
			return d.settle(ctx, dl, nil, store.DeliveryFailed, "receiver "+dl.Receiver+" is no longer configured")
		case run.final:
			return d.settle(context.WithoutCancel(ctx), dl, nil, store.DeliveryFailed, d.scrub(err))
		}
		return err
	}
	msg := notify.Message{DeliveryID: dl.ID, Receiver: dl.Receiver, GroupKey: dl.GroupKey, Events: evs}
	var attempts []store.NotifyAttempt
	derr := run.retrier.Deliver(ctx, rcv, msg, func(a notify.Attempt) {
		a.N += dl.Attempts
		a.Error = d.opts.Redactor.Scrub(a.Error)
		attempts = append(attempts, store.NotifyAttempt{DeliveryID: dl.ID, Attempt: a.N, At: a.At, Status: a.Status, Error: a.Error})
		if run.progress != nil {
			run.progress(a)
		}
	})
	switch {
	case derr == nil:
		return d.settle(context.WithoutCancel(ctx), dl, attempts, store.DeliveryDelivered, "")
	case errors.Is(derr, notify.ErrGaveUp) && !run.lastChance && !run.final:
		if err := d.settle(ctx, dl, attempts, store.DeliveryPending, d.scrub(derr)); err != nil {
			return err
		}
		return fmt.Errorf("delivery %s to %s is retried later: %s", dl.ID, dl.Receiver, d.scrub(derr))
	case ctx.Err() != nil && run.final:
		// No job runs it again: record the cancel as its failure.
		return d.settle(context.WithoutCancel(ctx), dl, attempts, store.DeliveryFailed,
			"cancelled: "+d.scrub(context.Cause(ctx)))
	case ctx.Err() != nil:
		// Shutting down: record what was tried; the job runs again.
		_ = d.settle(context.WithoutCancel(ctx), dl, attempts, store.DeliveryPending, d.scrub(derr))
		return ctx.Err()
	default:
		return d.settle(ctx, dl, attempts, store.DeliveryFailed, d.scrub(derr))
	}
}

// settle records attempts and the delivery's new state in one transaction.
func (d *Dispatcher) settle(ctx context.Context, dl store.NotifyDelivery, attempts []store.NotifyAttempt, state, lastErr string) error {
	now := d.now()
	dl.State, dl.LastError, dl.UpdatedAt = state, lastErr, now
	dl.Attempts += len(attempts)
	if state != store.DeliveryPending {
		dl.FinishedAt = now
	}
	// A retry stage that gave up still moved the attempt numbers on.
	return d.opts.Store.InTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertNotifyAttempts(ctx, attempts...); err != nil {
			return err
		}
		return tx.UpdateNotifyDelivery(ctx, dl)
	})
}

// DeliverPending delivers every pending delivery once, in this process
// (used when no River queue runs: the tests of the dispatcher).
func (d *Dispatcher) DeliverPending(ctx context.Context) error {
	ds, err := d.opts.Store.ListNotifyDeliveries(ctx, store.DeliveryFilter{State: store.DeliveryPending})
	if err != nil {
		return err
	}
	var errs []error
	for i := len(ds) - 1; i >= 0; i-- { // oldest first
		if err := d.Deliver(ctx, ds[i].ID, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func marshalEvents(evs []notify.Event) ([]byte, error) { return json.Marshal(evs) }

// pruneBatch bounds the rows one Prune deletes per table.
const pruneBatch = 5000

// Prune deletes, at most every CheckEvery, settled deliveries (with their
// items and attempts) and routed events older than the retention.
func (d *Dispatcher) Prune(ctx context.Context) error {
	now := d.now()
	if !d.pruned.IsZero() && now.Sub(d.pruned) < d.opts.CheckEvery {
		return nil
	}
	d.pruned = now
	return d.opts.Store.InTx(ctx, func(tx store.Tx) error {
		_, _, err := tx.PruneNotify(ctx, now.Add(-d.opts.Config.Retention), pruneBatch)
		return err
	})
}
