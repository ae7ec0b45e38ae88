package doctor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// The service component: is a 'rotator serve' process leading the job
// queue, and does the work only its leader does get done? Without one,
// nothing fails loudly: scheduled rotations, grace retirements, the audit
// sealer and notifications all just stop, and their backlogs grow.

// Names of the service component's checks.
const (
	CheckLeader        = "leader"
	CheckNotifications = "notifications"
	CheckAuditSealing  = "audit-sealing"
	CheckScheduling    = "scheduling"
)

// DefaultBacklogAge is Options.BacklogAge's default: the leader moves
// notification events and seals audit events every 2 seconds or so, and
// starts due credentials within a second; work five minutes old is not
// being done.
const DefaultBacklogAge = 5 * time.Minute

// service checks the leader and each backlog it works off. current is
// false when the migrations are not current (the backlog's tables may be
// missing).
func (d *doctor) service(ctx context.Context, st store.Store, current bool) {
	leading := d.leader(ctx, st)
	if !current {
		d.add(Check{Component: ComponentService, Name: "backlog", Status: Skipped, Detail: "needs the migrations applied (see migrations)"})
		return
	}
	cctx, cancel := d.timeout(ctx, "reading the backlogs")
	defer cancel()
	now := d.opts.Now().UTC()
	b, err := st.Backlog(cctx, now)
	if err != nil {
		d.add(Check{Component: ComponentService, Name: "backlog", Status: Broken, Detail: errText(cctx, err), Fix: "check the database"})
		return
	}
	d.notifications(b, now, leading)
	d.backlog(CheckAuditSealing, b.UnsealedEvents, b.UnsealedOldest, now,
		fmt.Sprintf("%d audit event(s) not sealed into the hash chain", b.UnsealedEvents),
		"the leader's sealer chains them every few seconds; if 'rotator serve' leads, its log says why it does not (leader task failed)", leading)
	d.backlog(CheckScheduling, b.Due, b.DueOldest, now,
		fmt.Sprintf("%d credential(s) due with no run started", b.Due),
		"the leader's scheduler starts due credentials within a second; if 'rotator serve' leads, its log says why it does not. "+
			"To rotate now without it: 'rotator rotate ID --wait' ('rotator credentials list' shows which are due)", leading)
}

// leader reports whether a 'rotator serve' leads the job queue.
func (d *doctor) leader(ctx context.Context, st store.Store) bool {
	cctx, cancel := d.timeout(ctx, "reading the leader")
	defer cancel()
	c := Check{Component: ComponentService, Name: CheckLeader}
	if d.opts.NoService {
		c.Status, c.Detail = Skipped, "no rotator serve is expected (--no-service): due rotations, retirements and retries wait for 'rotator runs resume'"
		d.add(c)
		return false
	}
	l, found, err := rotation.QueueLeader(cctx, st)
	const stopped = "no rotator serve process is leading: scheduled rotations, retirements, sealing and notifications wait"
	const start = "start 'rotator serve' on this database (with its configuration and master key, e.g. systemctl start rotator); " +
		"if one runs, its log says why it does not lead (it cannot reach the database, or exits at start)"
	switch {
	case errors.Is(err, rotation.ErrNoElection):
		c.Status, c.Detail = Skipped, err.Error()
	case errors.Is(err, rotation.ErrNoQueue):
		c.Status, c.Detail, c.Fix = Broken, stopped+" (no rotator serve has run on this database: it has no job queue tables)", start
	case err != nil:
		c.Status, c.Detail, c.Fix = Broken, errText(cctx, err), "check the database"
	case !found:
		c.Status, c.Detail, c.Fix = Broken, stopped, start
	case !l.Leading:
		c.Status, c.Fix = Broken, start
		c.Detail = fmt.Sprintf("%s; the last leader, %s, elected %s, let its leadership expire at %s (%s ago): it stopped, or lost the database",
			stopped, l.Process, stamp(l.ElectedAt), stamp(l.ExpiresAt), age(l.Now.Sub(l.ExpiresAt)))
	default:
		c.Status = OK
		c.Detail = fmt.Sprintf("%s leads, elected %s (%s ago); its leadership runs until %s unless renewed (every few seconds)",
			l.Process, stamp(l.ElectedAt), age(l.Now.Sub(l.ElectedAt)), stamp(l.ExpiresAt))
	}
	d.add(c)
	return c.Status == OK
}

// notifications checks the events waiting to be routed: in the outbox,
// and in notify_events not yet routed.
func (d *doctor) notifications(b store.Backlog, now time.Time, leading bool) {
	n := b.OutboxEvents + b.UnroutedEvents
	oldest := b.OutboxOldest
	if oldest.IsZero() || (!b.UnroutedOldest.IsZero() && b.UnroutedOldest.Before(oldest)) {
		oldest = b.UnroutedOldest
	}
	what := fmt.Sprintf("%d notification event(s) waiting to be routed (%d in %d notify_outbox row(s), %d in notify_events)",
		n, b.OutboxEvents, b.OutboxRows, b.UnroutedEvents)
	fix := "the leader routes them every 2 seconds when 'rotator serve' runs with -f FILE whose notify: section has routes (docs/notifications.md); " +
		"if it does, its log says why routing fails (leader task failed)"
	if cfg := d.opts.Config; cfg != nil && cfg.Notify == nil && n > 0 {
		// Nobody is meant to route them: they are kept for a serve that
		// will, which is not a fault.
		d.add(Check{Component: ComponentService, Name: CheckNotifications, Status: OK,
			Detail: fmt.Sprintf("%s, the oldest since %s; %s has no notify: section, so no serve started with it sends them (one with a notify: section will)",
				what, stamp(oldest), cfg.File)})
		return
	}
	d.backlog(CheckNotifications, n, oldest, now, what, fix, leading)
}

// backlog adds the check of one backlog: Warn when its oldest item is
// older than BacklogAge.
func (d *doctor) backlog(name string, n int64, oldest, now time.Time, what, fix string, leading bool) {
	c := Check{Component: ComponentService, Name: name, Status: OK}
	switch {
	case n == 0:
		c.Detail = "nothing waiting"
	case now.Sub(oldest) <= d.opts.BacklogAge:
		c.Detail = fmt.Sprintf("%s, the oldest %s old", what, age(now.Sub(oldest)))
	default:
		c.Status = Warn
		c.Detail = fmt.Sprintf("%s, the oldest since %s (%s ago, more than %s)", what, stamp(oldest), age(now.Sub(oldest)), duration.Format(d.opts.BacklogAge))
		c.Fix = fix
		switch {
		case d.opts.NoService:
			c.Fix = "without a serve, 'rotator runs resume' (run it from cron) works off due credentials and retirements, and 'rotator audit verify --seal' seals; " +
				"notifications are sent only by a serve's leader"
		case !leading:
			c.Fix = "no rotator serve process is leading (see service leader): start 'rotator serve'; " + fix
		}
	}
	d.add(c)
}

// stamp is a time as the checks show it: RFC 3339, UTC, whole seconds.
func stamp(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// age is a duration as the checks show it: whole seconds under an hour,
// whole minutes above (1h5m, 3d).
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Hour {
		return duration.Format(d.Round(time.Second))
	}
	return duration.Format(d.Round(time.Minute))
}
