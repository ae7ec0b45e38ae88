package sqlstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// The notification outbox (migration 00012): the engine writes the events
// of a commit as one notify_outbox row, a JSON array; the leader moves the
// rows into notify_events (ExpandNotifyOutbox) before it routes, and
// ListNotifyEvents reads the rows not yet moved.

// InsertNotifyOutbox writes outbox rows. In a pipelined transaction (the
// engine's commits) the statement is queued with the run's own writes and
// sent in the same round trip.
func (tx *Tx) InsertNotifyOutbox(ctx context.Context, rows ...store.NotifyOutbox) error {
	d := tx.s.dialect()
	for start := 0; start < len(rows); start += notifyChunk {
		chunk := rows[start:min(start+notifyChunk, len(rows))]
		var q query
		q.sql(`INSERT INTO notify_outbox (id, occurred_at, events) VALUES `)
		for i, r := range chunk {
			if len(r.Events) < 2 || r.Events[0] != '[' || !json.Valid(r.Events) {
				return fmt.Errorf("insert notification outbox row %s: events must be a JSON array", r.ID)
			}
			if i > 0 {
				q.sql(", ")
			}
			q.sql("(", q.arg(r.ID), ", ", q.arg(d.time(tx.s.orNow(r.OccurredAt))), ", ", q.arg(string(r.Events)), ")")
		}
		n := len(chunk)
		err := tx.execThen(ctx, q.String(), q.args, func(_ int64, err error) error {
			if err == nil {
				return nil
			}
			if kind, _ := tx.s.classify(err); kind == KindUnique {
				return fmt.Errorf("insert %d notification outbox rows: an id exists: %w", n, store.ErrConflict)
			}
			return fmt.Errorf("insert %d notification outbox rows: %w", n, err)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ExpandNotifyOutbox moves up to limit outbox rows into notify_events. The
// rows are locked (Postgres; SQLite transactions are serial), so two
// leaders cannot both move one; an event id already in notify_events is
// left as it is.
func (tx *Tx) ExpandNotifyOutbox(ctx context.Context, limit int) (int, int, error) {
	d := tx.s.dialect()
	var q query
	q.sql(`SELECT o.id, o.occurred_at, o.events FROM notify_outbox AS o ORDER BY o.id`, sqlLimit(max(limit, 1)), d.forUpdate("o"))
	rows, err := tx.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return 0, 0, fmt.Errorf("read the notification outbox: %w", err)
	}
	out, err := scanOutbox(rows)
	if err != nil {
		return 0, 0, fmt.Errorf("read the notification outbox: %w", err)
	}
	if len(out) == 0 {
		return 0, 0, nil
	}
	var evs []store.NotifyEvent
	ids := make([]string, len(out))
	for i, r := range out {
		ids[i] = r.ID
		evs = append(evs, outboxRowEvents(r)...)
	}
	if err := tx.insertNotifyEvents(ctx, evs, true); err != nil {
		return 0, 0, err
	}
	for start := 0; start < len(ids); start += notifyChunk {
		var dq query
		in, err := d.inList(&dq, "id", ids[start:min(start+notifyChunk, len(ids))])
		if err != nil {
			return 0, 0, err
		}
		if _, err := tx.exec(ctx, `DELETE FROM notify_outbox WHERE `+in, dq.args...); err != nil {
			return 0, 0, fmt.Errorf("delete moved notification outbox rows: %w", err)
		}
	}
	return len(out), len(evs), nil
}

func scanOutbox(rows Rows) ([]store.NotifyOutbox, error) {
	defer rows.Close()
	var out []store.NotifyOutbox
	for rows.Next() {
		var r store.NotifyOutbox
		var events string
		if err := rows.Scan(&r.ID, &timeCol{&r.OccurredAt}, &events); err != nil {
			return nil, err
		}
		r.Events = json.RawMessage(events)
		out = append(out, r)
	}
	return out, rows.Err()
}

// outboxMeta is what the columns of notify_events take from an event.
type outboxMeta struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Time       time.Time `json:"time"`
	Credential string    `json:"credential"`
	RunID      string    `json:"run_id"`
}

// outboxRowEvents splits an outbox row into events, each payload the
// element's bytes as written. A row that is not an array of events (never
// written by rotator) still moves, so that it cannot stall routing: its
// elements get ids after the row's and an empty kind, and the router
// skips what does not decode, as it does any bad payload.
func outboxRowEvents(r store.NotifyOutbox) []store.NotifyEvent {
	var elems []json.RawMessage
	if err := json.Unmarshal(r.Events, &elems); err != nil {
		elems = []json.RawMessage{r.Events}
	}
	evs := make([]store.NotifyEvent, 0, len(elems))
	for i, el := range elems {
		var m outboxMeta
		if err := json.Unmarshal(el, &m); err != nil || m.ID == "" {
			m = outboxMeta{ID: fmt.Sprintf("%s.%d", r.ID, i)}
		}
		at := m.Time
		if at.IsZero() {
			at = r.OccurredAt
		}
		evs = append(evs, store.NotifyEvent{ID: m.ID, Kind: m.Kind, OccurredAt: at.UTC().Truncate(time.Microsecond),
			CredentialID: m.Credential, RunID: m.RunID, Payload: el})
	}
	return evs
}

// outboxEvents returns the events of a kind at or after since that are
// still in the outbox. A row's occurred_at is its latest event's time, so
// a row before since holds none; the kind is matched on the text first,
// then on each event.
func (r reader) outboxEvents(ctx context.Context, kind string, since time.Time) ([]store.NotifyEvent, error) {
	var q query
	q.sql(`SELECT o.id, o.occurred_at, o.events FROM notify_outbox AS o WHERE o.events LIKE `, q.arg(`%"kind":"`+kind+`"%`))
	if !since.IsZero() {
		q.sql(` AND o.occurred_at >= `, q.arg(r.s.dialect().time(since)))
	}
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, err
	}
	out, err := scanOutbox(rows)
	if err != nil {
		return nil, err
	}
	var evs []store.NotifyEvent
	for _, row := range out {
		for _, ev := range outboxRowEvents(row) {
			if ev.Kind == kind && !ev.OccurredAt.Before(since) {
				evs = append(evs, ev)
			}
		}
	}
	return evs, nil
}

// mergeEvents adds the outbox's events to those of notify_events (an id in
// both, which a reader cannot see, counts once), by time and id.
func mergeEvents(evs, pending []store.NotifyEvent) []store.NotifyEvent {
	if len(pending) == 0 {
		return evs
	}
	seen := make(map[string]bool, len(evs))
	for _, ev := range evs {
		seen[ev.ID] = true
	}
	for _, ev := range pending {
		if !seen[ev.ID] {
			evs = append(evs, ev)
		}
	}
	slices.SortFunc(evs, func(a, b store.NotifyEvent) int {
		return cmp.Or(a.OccurredAt.Compare(b.OccurredAt), cmp.Compare(a.ID, b.ID))
	})
	return evs
}
