package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// kindRE matches an event kind.
var kindRE = regexp.MustCompile(`^[a-z][a-z_.]{0,63}$`)

// notifyChunk bounds the rows of one INSERT of the notification tables.
const notifyChunk = 500

// InsertNotifyEvents appends events to the outbox. In a pipelined
// transaction (the engine's commits) the statement is queued with the run's
// own writes and sent in the same round trip.
func (tx *Tx) InsertNotifyEvents(ctx context.Context, evs ...store.NotifyEvent) error {
	return tx.insertNotifyEvents(ctx, evs, false)
}

// insertNotifyEvents inserts events; with skipTaken an id that exists is
// left as it is (moving outbox rows), else it fails with ErrConflict.
func (tx *Tx) insertNotifyEvents(ctx context.Context, evs []store.NotifyEvent, skipTaken bool) error {
	d := tx.s.dialect()
	for start := 0; start < len(evs); start += notifyChunk {
		chunk := evs[start:min(start+notifyChunk, len(evs))]
		var q query
		q.sql(`INSERT INTO notify_events (id, kind, occurred_at, credential_id, run_id, payload) VALUES `)
		for i, ev := range chunk {
			payload, err := jsonRaw(ev.Payload)
			if err != nil || payload == nil {
				return fmt.Errorf("insert notification event %s (%s): payload must be a JSON document", ev.ID, ev.Kind)
			}
			if i > 0 {
				q.sql(", ")
			}
			q.sql("(", q.arg(ev.ID), ", ", q.arg(ev.Kind), ", ", q.arg(d.time(tx.s.orNow(ev.OccurredAt))), ", ",
				q.arg(nullString(ev.CredentialID)), ", ", q.arg(nullString(ev.RunID)), ", ", q.arg(payload), ")")
		}
		if skipTaken {
			q.sql(` ON CONFLICT (id) DO NOTHING`)
		}
		n := len(chunk)
		err := tx.execThen(ctx, q.String(), q.args, func(_ int64, err error) error {
			if err == nil {
				return nil
			}
			if kind, _ := tx.s.classify(err); kind == KindUnique {
				return fmt.Errorf("insert %d notification events: an id exists: %w", n, store.ErrConflict)
			}
			return fmt.Errorf("insert %d notification events: %w", n, err)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// RouteNotifyEvents inserts the items and marks the events routed.
func (tx *Tx) RouteNotifyEvents(ctx context.Context, at time.Time, eventIDs []string, items []store.NotifyItem) error {
	d := tx.s.dialect()
	for start := 0; start < len(items); start += notifyChunk {
		chunk := items[start:min(start+notifyChunk, len(items))]
		var q query
		q.sql(`INSERT INTO notify_items (event_id, receiver, group_key, kind, credential_id, created_at) VALUES `)
		for i, it := range chunk {
			if i > 0 {
				q.sql(", ")
			}
			q.sql("(", q.arg(it.EventID), ", ", q.arg(it.Receiver), ", ", q.arg(it.GroupKey), ", ", q.arg(it.Kind), ", ",
				q.arg(nullString(it.CredentialID)), ", ", q.arg(d.time(tx.s.orNow(it.CreatedAt))), ")")
		}
		q.sql(` ON CONFLICT DO NOTHING`)
		if _, err := tx.exec(ctx, q.String(), q.args...); err != nil {
			return fmt.Errorf("route %d notification items: %w", len(chunk), err)
		}
	}
	for start := 0; start < len(eventIDs); start += notifyChunk {
		chunk := eventIDs[start:min(start+notifyChunk, len(eventIDs))]
		var q query
		in, err := d.inList(&q, "id", chunk)
		if err != nil {
			return err
		}
		sql := `UPDATE notify_events SET routed_at = ` + q.arg(d.time(tx.s.orNow(at))) + ` WHERE ` + in
		if _, err := tx.exec(ctx, sql, q.args...); err != nil {
			return fmt.Errorf("mark %d notification events routed: %w", len(chunk), err)
		}
	}
	return nil
}

// CreateNotifyDelivery inserts d and assigns the waiting items of its
// receiver and group for eventIDs to it.
func (tx *Tx) CreateNotifyDelivery(ctx context.Context, dl store.NotifyDelivery, eventIDs []string) error {
	d := tx.s.dialect()
	events, err := jsonRaw(dl.Events)
	if err != nil || events == nil {
		return fmt.Errorf("insert delivery %s: events must be a JSON document", dl.ID)
	}
	now := tx.s.now()
	created, updated := dl.CreatedAt, dl.UpdatedAt
	if created.IsZero() {
		created = now
	}
	if updated.IsZero() {
		updated = created
	}
	state := dl.State
	if state == "" {
		state = store.DeliveryPending
	}
	var q query
	q.sql(`INSERT INTO notify_deliveries (id, receiver, group_key, state, events, event_count, attempts, last_error, created_at, updated_at) VALUES (`,
		q.arg(dl.ID), ", ", q.arg(dl.Receiver), ", ", q.arg(dl.GroupKey), ", ", q.arg(state), ", ", q.arg(events), ", ",
		q.arg(dl.EventCount), ", ", q.arg(dl.Attempts), ", ", q.arg(nullString(dl.LastError)), ", ", q.arg(d.time(created)), ", ", q.arg(d.time(updated)), ")")
	if _, err := tx.exec(ctx, q.String(), q.args...); err != nil {
		if kind, _ := tx.s.classify(err); kind == KindUnique {
			return fmt.Errorf("insert delivery %s: it exists: %w", dl.ID, store.ErrConflict)
		}
		return fmt.Errorf("insert delivery %s: %w", dl.ID, err)
	}
	for start := 0; start < len(eventIDs); start += notifyChunk {
		chunk := eventIDs[start:min(start+notifyChunk, len(eventIDs))]
		var u query
		u.sql(`UPDATE notify_items SET delivery_id = `, u.arg(dl.ID), ` WHERE receiver = `, u.arg(dl.Receiver),
			` AND group_key = `, u.arg(dl.GroupKey), ` AND delivery_id IS NULL AND `)
		in, err := d.inList(&u, "event_id", chunk)
		if err != nil {
			return err
		}
		u.sql(in)
		if _, err := tx.exec(ctx, u.String(), u.args...); err != nil {
			return fmt.Errorf("assign items to delivery %s: %w", dl.ID, err)
		}
	}
	return nil
}

// UpdateNotifyDelivery writes a delivery's progress.
func (tx *Tx) UpdateNotifyDelivery(ctx context.Context, dl store.NotifyDelivery) error {
	d := tx.s.dialect()
	var q query
	q.sql(`UPDATE notify_deliveries SET state = `, q.arg(dl.State), `, attempts = `, q.arg(dl.Attempts),
		`, last_error = `, q.arg(nullString(dl.LastError)), `, updated_at = `, q.arg(d.time(tx.s.orNow(dl.UpdatedAt))),
		`, finished_at = `, q.arg(d.time(dl.FinishedAt)), ` WHERE id = `, q.arg(dl.ID))
	n, err := tx.exec(ctx, q.String(), q.args...)
	if err != nil {
		return fmt.Errorf("update delivery %s: %w", dl.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("update delivery %s: %w", dl.ID, store.ErrNotFound)
	}
	return nil
}

// InsertNotifyAttempts records attempts.
func (tx *Tx) InsertNotifyAttempts(ctx context.Context, as ...store.NotifyAttempt) error {
	d := tx.s.dialect()
	for start := 0; start < len(as); start += notifyChunk {
		chunk := as[start:min(start+notifyChunk, len(as))]
		var q query
		q.sql(`INSERT INTO notify_attempts (delivery_id, attempt, at, status, error) VALUES `)
		for i, a := range chunk {
			if i > 0 {
				q.sql(", ")
			}
			q.sql("(", q.arg(a.DeliveryID), ", ", q.arg(a.Attempt), ", ", q.arg(d.time(tx.s.orNow(a.At))), ", ",
				q.arg(a.Status), ", ", q.arg(nullString(a.Error)), ")")
		}
		if _, err := tx.exec(ctx, q.String(), q.args...); err != nil {
			if kind, _ := tx.s.classify(err); kind == KindUnique {
				return fmt.Errorf("insert attempts of delivery %s: an attempt number is taken: %w", chunk[0].DeliveryID, store.ErrConflict)
			}
			return fmt.Errorf("insert attempts of delivery %s: %w", chunk[0].DeliveryID, err)
		}
	}
	return nil
}

const notifyEventColumns = `e.id, e.kind, e.occurred_at, e.credential_id, e.run_id, e.payload, e.routed_at`

func scanNotifyEvents(rows Rows) ([]store.NotifyEvent, error) {
	defer rows.Close()
	var out []store.NotifyEvent
	for rows.Next() {
		var ev store.NotifyEvent
		var payload []byte
		if err := rows.Scan(&ev.ID, &ev.Kind, &timeCol{&ev.OccurredAt}, &textCol{&ev.CredentialID}, &textCol{&ev.RunID},
			&jsonCol{&payload}, &timeCol{&ev.RoutedAt}); err != nil {
			return nil, err
		}
		ev.Payload = payload
		out = append(out, ev)
	}
	return out, rows.Err()
}

// ListNotifyEvents returns the events of a kind since a time, oldest first.
func (r reader) ListNotifyEvents(ctx context.Context, kind string, since time.Time) ([]store.NotifyEvent, error) {
	var q query
	// The kind is written as a literal (kinds are plain words), so that
	// both databases can use the partial index of rotation.emergency.
	if !kindRE.MatchString(kind) {
		return nil, fmt.Errorf("list notification events: invalid kind %q", kind)
	}
	q.sql(`SELECT `, notifyEventColumns, ` FROM notify_events AS e WHERE e.kind = '`, kind, `'`)
	if !since.IsZero() {
		q.sql(` AND e.occurred_at >= `, q.arg(r.s.dialect().time(since)))
	}
	q.sql(` ORDER BY e.occurred_at, e.id`)
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, fmt.Errorf("list %s notification events: %w", kind, err)
	}
	evs, err := scanNotifyEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("list %s notification events: %w", kind, err)
	}
	pending, err := r.outboxEvents(ctx, kind, since)
	if err != nil {
		return nil, fmt.Errorf("list %s notification events: %w", kind, err)
	}
	return mergeEvents(evs, pending), nil
}

// ListUnroutedNotifyEvents returns up to limit unrouted events, oldest first.
func (r reader) ListUnroutedNotifyEvents(ctx context.Context, limit int) ([]store.NotifyEvent, error) {
	var q query
	q.sql(`SELECT `, notifyEventColumns, ` FROM notify_events AS e WHERE e.routed_at IS NULL ORDER BY e.id`, sqlLimit(max(limit, 1)))
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, fmt.Errorf("list unrouted notification events: %w", err)
	}
	evs, err := scanNotifyEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("list unrouted notification events: %w", err)
	}
	return evs, nil
}

// NotifiedSince reports whether the receiver got an item of the kind for
// the credential at or after since.
func (r reader) NotifiedSince(ctx context.Context, receiver, kind, credentialID string, since time.Time) (bool, error) {
	d := r.s.dialect()
	var q query
	q.sql(`SELECT 1 FROM notify_items WHERE receiver = `, q.arg(receiver), ` AND kind = `, q.arg(kind),
		` AND coalesce(credential_id, '') = `, q.arg(credentialID), ` AND created_at >= `, q.arg(d.time(since)), ` LIMIT 1`)
	var one int64
	err := r.queryOne(ctx, q.String(), q.args, &intCol{&one})
	switch {
	case errors.Is(err, errNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up earlier notifications: %w", err)
	}
	return true, nil
}

// ListNotifyGroups returns every group with waiting items, with when its
// last delivery was created.
func (r reader) ListNotifyGroups(ctx context.Context) ([]store.NotifyGroup, error) {
	rows, err := r.c.Query(ctx, `SELECT i.receiver, i.group_key, min(i.created_at), count(*),
  (SELECT max(d.created_at) FROM notify_deliveries AS d WHERE d.receiver = i.receiver AND d.group_key = i.group_key)
FROM notify_items AS i WHERE i.delivery_id IS NULL GROUP BY i.receiver, i.group_key ORDER BY 3`)
	if err != nil {
		return nil, fmt.Errorf("list notification groups: %w", err)
	}
	defer rows.Close()
	var out []store.NotifyGroup
	for rows.Next() {
		var g store.NotifyGroup
		var n int64
		if err := rows.Scan(&g.Receiver, &g.GroupKey, &timeCol{&g.FirstAt}, &intCol{&n}, &timeCol{&g.LastSentAt}); err != nil {
			return nil, fmt.Errorf("list notification groups: %w", err)
		}
		g.Waiting = int(n)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list notification groups: %w", err)
	}
	return out, nil
}

// ListWaitingNotifyEvents returns the events waiting in a group.
func (r reader) ListWaitingNotifyEvents(ctx context.Context, receiver, groupKey string, limit int) ([]store.NotifyEvent, error) {
	var q query
	q.sql(`SELECT `, notifyEventColumns, ` FROM notify_items AS i JOIN notify_events AS e ON e.id = i.event_id
WHERE i.receiver = `, q.arg(receiver), ` AND i.group_key = `, q.arg(groupKey), ` AND i.delivery_id IS NULL
ORDER BY i.created_at, e.id`, sqlLimit(max(limit, 1)))
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, fmt.Errorf("list waiting notification events: %w", err)
	}
	evs, err := scanNotifyEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("list waiting notification events: %w", err)
	}
	return evs, nil
}

const deliveryColumns = `id, receiver, group_key, state, events, event_count, attempts, last_error, created_at, updated_at, finished_at`

// GetNotifyDelivery returns a delivery.
func (r reader) GetNotifyDelivery(ctx context.Context, id string) (store.NotifyDelivery, error) {
	ds, err := r.ListNotifyDeliveries(ctx, store.DeliveryFilter{IDs: []string{id}})
	if err != nil {
		return store.NotifyDelivery{}, err
	}
	if len(ds) == 0 {
		return store.NotifyDelivery{}, fmt.Errorf("delivery %s: %w", id, store.ErrNotFound)
	}
	return ds[0], nil
}

// ListNotifyDeliveries returns deliveries, newest first.
func (r reader) ListNotifyDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.NotifyDelivery, error) {
	d := r.s.dialect()
	var q query
	var preds []string
	if len(f.IDs) > 0 {
		in, err := d.inList(&q, "id", f.IDs)
		if err != nil {
			return nil, err
		}
		preds = append(preds, in)
	}
	if f.Receiver != "" {
		preds = append(preds, "receiver = "+q.arg(f.Receiver))
	}
	if f.State != "" {
		preds = append(preds, "state = "+q.arg(f.State))
	}
	if !f.Since.IsZero() {
		preds = append(preds, "created_at >= "+q.arg(d.time(f.Since)))
	}
	if !f.Until.IsZero() {
		preds = append(preds, "created_at < "+q.arg(d.time(f.Until)))
	}
	if f.RunID != "" {
		preds = append(preds, "id IN (SELECT i.delivery_id FROM notify_items AS i JOIN notify_events AS e ON e.id = i.event_id WHERE e.run_id = "+q.arg(f.RunID)+")")
	}
	sql := `SELECT ` + deliveryColumns + ` FROM notify_deliveries` + where(preds) + ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		sql += sqlLimit(f.Limit)
	}
	rows, err := r.c.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.NotifyDelivery
	for rows.Next() {
		var dl store.NotifyDelivery
		var events []byte
		var count, attempts int64
		if err := rows.Scan(&dl.ID, &dl.Receiver, &dl.GroupKey, &dl.State, &jsonCol{&events}, &intCol{&count}, &intCol{&attempts},
			&textCol{&dl.LastError}, &timeCol{&dl.CreatedAt}, &timeCol{&dl.UpdatedAt}, &timeCol{&dl.FinishedAt}); err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		dl.Events, dl.EventCount, dl.Attempts = events, int(count), int(attempts)
		out = append(out, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	return out, nil
}

// ListNotifyAttempts returns the attempts of the given deliveries.
func (r reader) ListNotifyAttempts(ctx context.Context, deliveryIDs []string) ([]store.NotifyAttempt, error) {
	if len(deliveryIDs) == 0 {
		return nil, nil
	}
	var q query
	in, err := r.s.dialect().inList(&q, "delivery_id", deliveryIDs)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.Query(ctx, `SELECT delivery_id, attempt, at, status, error FROM notify_attempts WHERE `+in+` ORDER BY delivery_id, attempt`, q.args...)
	if err != nil {
		return nil, fmt.Errorf("list delivery attempts: %w", err)
	}
	defer rows.Close()
	var out []store.NotifyAttempt
	for rows.Next() {
		var a store.NotifyAttempt
		var n int64
		if err := rows.Scan(&a.DeliveryID, &intCol{&n}, &timeCol{&a.At}, &a.Status, &textCol{&a.Error}); err != nil {
			return nil, fmt.Errorf("list delivery attempts: %w", err)
		}
		a.Attempt = int(n)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list delivery attempts: %w", err)
	}
	return out, nil
}

// PruneNotify deletes settled deliveries and routed events older than
// before, in batches of at most limit.
func (tx *Tx) PruneNotify(ctx context.Context, before time.Time, limit int) (int, int, error) {
	d := tx.s.dialect()
	limit = max(limit, 1)
	var q query
	q.sql(`SELECT id FROM notify_deliveries WHERE state <> `, q.arg(store.DeliveryPending), ` AND finished_at < `,
		q.arg(d.time(before)), ` ORDER BY finished_at`, sqlLimit(limit))
	rows, err := tx.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return 0, 0, fmt.Errorf("prune notifications: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("prune notifications: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("prune notifications: %w", err)
	}
	if len(ids) > 0 {
		for _, table := range []string{"notify_attempts", "notify_items"} {
			var dq query
			in, err := d.inList(&dq, "delivery_id", ids)
			if err != nil {
				return 0, 0, err
			}
			if _, err := tx.exec(ctx, `DELETE FROM `+table+` WHERE `+in, dq.args...); err != nil {
				return 0, 0, fmt.Errorf("prune %s: %w", table, err)
			}
		}
		var dq query
		in, err := d.inList(&dq, "id", ids)
		if err != nil {
			return 0, 0, err
		}
		if _, err := tx.exec(ctx, `DELETE FROM notify_deliveries WHERE `+in, dq.args...); err != nil {
			return 0, 0, fmt.Errorf("prune notify_deliveries: %w", err)
		}
	}
	var eq query
	eq.sql(`DELETE FROM notify_events WHERE id IN (SELECT e.id FROM notify_events AS e WHERE e.routed_at < `, eq.arg(d.time(before)),
		` AND NOT EXISTS (SELECT 1 FROM notify_items AS i WHERE i.event_id = e.id) ORDER BY e.routed_at`, sqlLimit(limit), `)`)
	n, err := tx.exec(ctx, eq.String(), eq.args...)
	if err != nil {
		return len(ids), 0, fmt.Errorf("prune notify_events: %w", err)
	}
	return len(ids), int(n), nil
}
