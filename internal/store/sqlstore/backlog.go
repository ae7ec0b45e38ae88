package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// Backlog implements store.Reader in one statement. The outbox and the
// unsealed audit events are scanned whole (they have no index but their
// primary key, and hold seconds of work while a leader runs); the
// unrouted events are read through notify_events_unrouted_idx, the due
// credentials through credentials_next_rotation_at_idx.
func (r reader) Backlog(ctx context.Context, now time.Time) (store.Backlog, error) {
	var b store.Backlog
	d := r.s.dialect()
	var q query
	at := q.arg(d.time(now))
	names := make([]string, len(store.SchedulerExcludes))
	for i, s := range store.SchedulerExcludes {
		names[i] = string(s)
	}
	excluded, err := d.inList(&q, "c.status", names)
	if err != nil {
		return b, fmt.Errorf("read the backlog: %w", err)
	}
	// A row is a JSON array of events (InsertNotifyOutbox checks it); one
	// that is not counts as one event, as ExpandNotifyOutbox moves it.
	events := `CASE WHEN json_typeof(o.events::json) = 'array' THEN json_array_length(o.events::json) ELSE 1 END`
	if !d.pg() {
		events = `CASE WHEN json_valid(o.events) THEN (CASE WHEN json_type(o.events) = 'array' THEN json_array_length(o.events) ELSE 1 END) ELSE 1 END`
	}
	q.sql(`SELECT o.n, o.events, o.oldest, e.n, e.oldest, a.n, a.oldest, c.n, c.oldest
FROM (SELECT count(*) AS n, COALESCE(sum(`, events, `), 0) AS events, min(o.occurred_at) AS oldest FROM notify_outbox AS o) AS o,
    (SELECT count(*) AS n, min(occurred_at) AS oldest FROM notify_events WHERE routed_at IS NULL) AS e,
    (SELECT count(*) AS n, min(occurred_at) AS oldest FROM audit_pending) AS a,
    (SELECT count(*) AS n, min(c.next_rotation_at) AS oldest FROM credentials AS c
        WHERE c.deleted_at IS NULL AND c.next_rotation_at <= `, at, ` AND NOT (`, excluded, `)
        AND NOT EXISTS (SELECT 1 FROM runs AS r WHERE r.credential_id = c.id AND r.active)) AS c`)
	err = r.queryOne(ctx, q.String(), q.args,
		&b.OutboxRows, &b.OutboxEvents, &timeCol{&b.OutboxOldest},
		&b.UnroutedEvents, &timeCol{&b.UnroutedOldest},
		&b.UnsealedEvents, &timeCol{&b.UnsealedOldest},
		&b.Due, &timeCol{&b.DueOldest})
	if err != nil {
		return b, fmt.Errorf("read the backlog: %w", err)
	}
	return b, nil
}
