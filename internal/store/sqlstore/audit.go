package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// Audit events live in two tables (migrations 00011): audit_pending holds
// the unsealed ones, as inserted, and audit_events the sealed ones, each
// written once, by the sealer, which moves events from the first to the
// second with their seq and hashes. Both draw their ids from one sequence.

// auditColumns are audit_events' columns; pendingColumns the first seven,
// all audit_pending has.
const (
	auditColumns   = `id, occurred_at, actor, action, credential_id, run_id, data, seq, prev_hash, hash, sealed_at`
	pendingColumns = `id, occurred_at, actor, action, credential_id, run_id, data`
)

// auditIDKey is audit_events' primary key, as each dialect names it in
// errors.
var auditIDKey = []string{"audit_events_pkey", "audit_events.id"}

// auditPage is how many events ScanAuditEvents reads per query. Each page
// is read completely before fn sees its events, so fn may use the store or
// the transaction it scans in.
const auditPage = 500

// auditChunk is how many events one INSERT or seal statement writes,
// well below both dialects' limits on bound parameters.
const auditChunk = 1000

// ScanAuditEvents calls fn for each matching event, reading in pages of a
// few hundred so memory stays bounded however long the log. Sealed events
// come first, in Seq order, then (unless AfterSeq is set) unsealed events
// in ID order; Unsealed selects only the latter. Since is inclusive and
// Until exclusive, on OccurredAt. Outside a transaction, an event sealed
// while the scan moves from sealed to unsealed events may be missed.
func (r reader) ScanAuditEvents(ctx context.Context, f store.AuditFilter, fn func(store.AuditEvent) error) error {
	if f.Newest && f.Limit > 0 {
		return r.scanNewest(ctx, f, fn)
	}
	left := f.Limit
	if left <= 0 {
		left = -1
	}
	if !f.Unsealed {
		var err error
		if left, err = r.scanAudit(ctx, f, true, f.AfterSeq, left, fn); err != nil {
			return err
		}
	}
	if f.AfterSeq == 0 || f.Unsealed {
		if _, err := r.scanAudit(ctx, f, false, 0, left, fn); err != nil {
			return err
		}
	}
	return nil
}

// auditSource is where sealed (audit_events, by seq) or unsealed
// (audit_pending, by id) events are read: the table, its columns and the
// order's key.
func auditSource(sealed bool) (table, columns, key string) {
	if sealed {
		return "audit_events", auditColumns, "seq"
	}
	return "audit_pending", pendingColumns, "id"
}

// scanAudit pages through sealed events (by seq, after the given one) or
// unsealed events (by id), calling fn for each, until left reaches 0 (-1:
// no limit). It returns what is left.
func (r reader) scanAudit(ctx context.Context, f store.AuditFilter, sealed bool, after int64, left int,
	fn func(store.AuditEvent) error,
) (int, error) {
	d := r.s.dialect()
	table, columns, key := auditSource(sealed)
	for left != 0 {
		if err := ctx.Err(); err != nil {
			return left, fmt.Errorf("scan audit events: %w", err)
		}
		var q query
		preds := append([]string{key + " > " + q.arg(after)}, auditPreds(&q, d, f)...)
		page := auditPage
		if left > 0 && left < page {
			page = left
		}
		q.sql(`SELECT `, columns, ` FROM `, table, where(preds), ` ORDER BY `, key, sqlLimit(page))
		evs, err := r.auditPage(ctx, q, sealed)
		if err != nil {
			return left, err
		}
		for _, ev := range evs {
			if err := fn(ev); err != nil {
				return left, err
			}
			if left > 0 {
				left--
			}
		}
		if len(evs) < page {
			break
		}
		last := evs[len(evs)-1]
		after = last.ID
		if sealed {
			after = last.Seq
		}
	}
	return left, nil
}

// auditPreds returns the predicates of f other than the position in the
// order.
func auditPreds(q *query, d dialect, f store.AuditFilter) []string {
	var preds []string
	if f.CredentialID != "" {
		preds = append(preds, "credential_id = "+q.arg(f.CredentialID))
	}
	if f.RunID != "" {
		preds = append(preds, "run_id = "+q.arg(f.RunID))
	}
	if !f.Since.IsZero() {
		preds = append(preds, "occurred_at >= "+q.arg(d.time(f.Since)))
	}
	if !f.Until.IsZero() {
		preds = append(preds, "occurred_at < "+q.arg(d.time(f.Until)))
	}
	return preds
}

// scanNewest reads the last f.Limit events of the scan order (unsealed
// events come last), newest first, then calls fn for them in scan order. It
// holds f.Limit events in memory.
func (r reader) scanNewest(ctx context.Context, f store.AuditFilter, fn func(store.AuditEvent) error) error {
	var sealed, unsealed []store.AuditEvent
	var err error
	if f.AfterSeq == 0 || f.Unsealed {
		if unsealed, err = r.scanAuditDesc(ctx, f, false, f.Limit); err != nil {
			return err
		}
	}
	if left := f.Limit - len(unsealed); !f.Unsealed && left > 0 {
		if sealed, err = r.scanAuditDesc(ctx, f, true, left); err != nil {
			return err
		}
	}
	for _, evs := range [][]store.AuditEvent{sealed, unsealed} {
		for i := len(evs) - 1; i >= 0; i-- {
			if err := fn(evs[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// scanAuditDesc returns up to limit sealed (by seq, above f.AfterSeq) or
// unsealed (by id) events, last first.
func (r reader) scanAuditDesc(ctx context.Context, f store.AuditFilter, sealed bool, limit int) ([]store.AuditEvent, error) {
	d := r.s.dialect()
	table, columns, key := auditSource(sealed)
	var out []store.AuditEvent
	var before int64
	for len(out) < limit {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("scan audit events: %w", err)
		}
		var q query
		preds := auditPreds(&q, d, f)
		if sealed {
			preds = append(preds, "seq > "+q.arg(f.AfterSeq))
		}
		if before > 0 {
			preds = append(preds, key+" < "+q.arg(before))
		}
		page := min(auditPage, limit-len(out))
		q.sql(`SELECT `, columns, ` FROM `, table, where(preds), ` ORDER BY `, key, ` DESC`, sqlLimit(page))
		evs, err := r.auditPage(ctx, q, sealed)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
		if len(evs) < page {
			break
		}
		last := evs[len(evs)-1]
		before = last.ID
		if sealed {
			before = last.Seq
		}
	}
	return out, nil
}

// auditPage reads a page of auditColumns (sealed) or pendingColumns.
func (r reader) auditPage(ctx context.Context, q query, sealed bool) ([]store.AuditEvent, error) {
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, fmt.Errorf("scan audit events: %w", err)
	}
	defer rows.Close()
	var evs []store.AuditEvent
	for rows.Next() {
		var ev store.AuditEvent
		var data []byte
		dst := []any{&ev.ID, &timeCol{&ev.OccurredAt}, &ev.Actor, &ev.Action,
			&textCol{&ev.CredentialID}, &textCol{&ev.RunID}, &jsonCol{&data}}
		if sealed {
			// NULLs only a hand edit could leave read as empty.
			dst = append(dst, &intCol{&ev.Seq}, &textCol{&ev.PrevHash}, &textCol{&ev.Hash}, &timeCol{&ev.SealedAt})
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("scan audit events: %w", err)
		}
		if len(data) > 0 {
			ev.Data = json.RawMessage(data)
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan audit events: %w", err)
	}
	return evs, nil
}

// InsertAuditEvents appends events to audit_pending, unsealed: their ID,
// Seq, PrevHash, Hash and SealedAt are ignored. OccurredAt defaults to now. Data must be empty
// or valid JSON; Postgres stores it as jsonb, so it reads back normalized
// (key order, spacing): hash events as read back, never as written.
func (tx *Tx) InsertAuditEvents(ctx context.Context, evs ...store.AuditEvent) error {
	for start := 0; start < len(evs); start += auditChunk {
		chunk := evs[start:min(start+auditChunk, len(evs))]
		var q query
		if err := tx.auditValues(&q, chunk, "INSERT INTO audit_pending "+auditInsertColumns+" VALUES ", ""); err != nil {
			return err
		}
		wrap := func(_ int64, err error) error {
			if err != nil {
				return fmt.Errorf("insert %d audit events: %w", len(chunk), err)
			}
			return nil
		}
		if tx.audit {
			// InAuditTx: queued, so that on Postgres the BEGIN, the
			// inserts and the COMMIT are one round trip.
			if err := tx.execThen(ctx, q.String(), q.args, wrap); err != nil {
				return err
			}
			continue
		}
		if err := wrap(tx.exec(ctx, q.String(), q.args...)); err != nil {
			return err
		}
	}
	return nil
}

const auditInsertColumns = `(occurred_at, actor, action, credential_id, run_id, data)`

// auditValues appends prefix, the rows of evs (typed, so that Postgres
// accepts them in a VALUES list that is not directly an INSERT's) and
// suffix to q. A zero OccurredAt is now.
func (tx *Tx) auditValues(q *query, evs []store.AuditEvent, prefix, suffix string) error {
	d := tx.s.dialect()
	now := tx.s.now()
	q.sql(prefix)
	for i, ev := range evs {
		data, err := jsonRaw(ev.Data)
		if err != nil {
			return fmt.Errorf("insert audit event %s (credential %s, run %s): data: %w",
				ev.Action, ev.CredentialID, ev.RunID, err)
		}
		occurred := ev.OccurredAt
		if occurred.IsZero() {
			occurred = now
		}
		if i > 0 {
			q.sql(", ")
		}
		q.sql("(", d.cast(q.arg(d.time(occurred)), typeTime), ", ", d.cast(q.arg(ev.Actor), typeText), ", ",
			d.cast(q.arg(ev.Action), typeText), ", ", d.cast(q.arg(nullString(ev.CredentialID)), typeText), ", ",
			d.cast(q.arg(nullString(ev.RunID)), typeText), ", ", d.cast(q.arg(data), typeJSON), ")")
	}
	q.sql(suffix)
	return nil
}

// SealAuditEvents moves unsealed events, identified by ID, from
// audit_pending into audit_events with their Seq, PrevHash, Hash and
// SealedAt (default now): the content sealed is the stored one, as the
// sealer read it. If any event is missing or already sealed, or a Seq is
// taken, it returns ErrConflict: another sealer got there first, and the
// transaction must be rolled back.
func (tx *Tx) SealAuditEvents(ctx context.Context, evs []store.AuditEvent) error {
	d := tx.s.dialect()
	now := tx.s.now()
	for start := 0; start < len(evs); start += auditChunk {
		chunk := evs[start:min(start+auditChunk, len(evs))]
		var q query
		build := sealValues
		if d.pg() {
			build = sealArrays
		}
		if err := build(d, &q, chunk, now); err != nil {
			return err
		}
		if d.pg() {
			// One statement: the DELETE's rows feed the INSERT. A row
			// another sealer moved meanwhile is not returned. $1 is the
			// ids' array (sealArrays binds it first).
			q.sql(`, p AS (DELETE FROM audit_pending WHERE id = ANY($1) RETURNING `, pendingColumns, `)
INSERT INTO audit_events (`, auditColumns, `)
SELECT p.id, p.occurred_at, p.actor, p.action, p.credential_id, p.run_id, p.data, v.seq, v.prev_hash, v.hash, v.sealed_at
FROM p JOIN v ON v.id = p.id ORDER BY v.seq`)
		} else {
			// SQLite scans v and looks each event up: the rows go in in
			// the order of chunk (seq order, as the sealer gives them)
			// without sorting them.
			q.sql(` INSERT INTO audit_events (`, auditColumns, `)
SELECT p.id, p.occurred_at, p.actor, p.action, p.credential_id, p.run_id, p.data, v.seq, v.prev_hash, v.hash, v.sealed_at
FROM v JOIN audit_pending AS p ON p.id = v.id`)
		}
		n, err := tx.exec(ctx, q.String(), q.args...)
		if err != nil {
			switch kind, detail := tx.s.classify(err); {
			case kind == KindUnique && slices.Contains(auditIDKey, detail):
				// Sealers never race to this: a moved event is gone from
				// audit_pending. Not a conflict to retry.
				return fmt.Errorf("seal audit events %s: an event's id is in audit_events already (audit_pending holds a copy of a sealed event, made by hand?): %w",
					idRange(chunk), err)
			case kind == KindUnique:
				return fmt.Errorf("seal audit events %s: a seq is taken: %w", idRange(chunk), store.ErrConflict)
			}
			return fmt.Errorf("seal audit events %s: %w", idRange(chunk), err)
		}
		if n == int64(len(chunk)) && !d.pg() {
			n, err = tx.deletePending(ctx, chunk)
			if err != nil {
				return fmt.Errorf("seal audit events %s: %w", idRange(chunk), err)
			}
		}
		if n != int64(len(chunk)) {
			return fmt.Errorf("seal audit events %s: %d of %d missing or already sealed: %w",
				idRange(chunk), int64(len(chunk))-n, len(chunk), store.ErrConflict)
		}
	}
	return nil
}

// deletePending deletes the moved events from audit_pending (SQLite, whose
// DELETE cannot feed an INSERT) and returns how many it deleted.
func (tx *Tx) deletePending(ctx context.Context, chunk []store.AuditEvent) (int64, error) {
	ids := make([]int64, len(chunk))
	for i, ev := range chunk {
		ids[i] = ev.ID
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return 0, err
	}
	return tx.exec(ctx, `DELETE FROM audit_pending WHERE id IN (SELECT value FROM json_each($1))`, string(list))
}

// sealValues writes the seal statement's CTE v (id, seq, prev_hash, hash,
// sealed_at) as a VALUES list.
func sealValues(d dialect, q *query, chunk []store.AuditEvent, now time.Time) error {
	q.sql(`WITH v (id, seq, prev_hash, hash, sealed_at) AS (VALUES `)
	for i, ev := range chunk {
		if err := checkSeal(ev); err != nil {
			return err
		}
		if i > 0 {
			q.sql(", ")
		}
		q.sql("(", d.cast(q.arg(ev.ID), typeInt), ", ", d.cast(q.arg(ev.Seq), typeInt), ", ",
			d.cast(q.arg(ev.PrevHash), typeText), ", ", d.cast(q.arg(ev.Hash), typeText), ", ",
			d.cast(q.arg(d.time(sealedAt(ev, now))), typeTime), ")")
	}
	q.sql(`)`)
	return nil
}

// sealArrays writes the same CTE as five arrays (Postgres): one statement
// text for every batch size, and five parameters to bind instead of five
// per event.
func sealArrays(_ dialect, q *query, chunk []store.AuditEvent, now time.Time) error {
	ids := make([]int64, len(chunk))
	seqs := make([]int64, len(chunk))
	prevs := make([]string, len(chunk))
	hashes := make([]string, len(chunk))
	sealed := make([]time.Time, len(chunk))
	for i, ev := range chunk {
		if err := checkSeal(ev); err != nil {
			return err
		}
		ids[i], seqs[i], prevs[i], hashes[i], sealed[i] = ev.ID, ev.Seq, ev.PrevHash, ev.Hash, sealedAt(ev, now).UTC().Truncate(time.Microsecond)
	}
	q.sql(`WITH v (id, seq, prev_hash, hash, sealed_at) AS (SELECT * FROM unnest(CAST(`, q.arg(ids), ` AS bigint[]), CAST(`,
		q.arg(seqs), ` AS bigint[]), CAST(`, q.arg(prevs), ` AS text[]), CAST(`, q.arg(hashes), ` AS text[]), CAST(`,
		q.arg(sealed), ` AS timestamptz[])))`)
	return nil
}

func checkSeal(ev store.AuditEvent) error {
	if ev.ID <= 0 || ev.Seq <= 0 || ev.Hash == "" {
		return fmt.Errorf("seal audit event %d: want an id, a positive seq and a hash (seq %d)", ev.ID, ev.Seq)
	}
	return nil
}

// sealedAt is ev's SealedAt, or now when it has none.
func sealedAt(ev store.AuditEvent, now time.Time) time.Time {
	if ev.SealedAt.IsZero() {
		return now
	}
	return ev.SealedAt
}

func idRange(evs []store.AuditEvent) string {
	if len(evs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d", evs[0].ID)
	if len(evs) > 1 {
		fmt.Fprintf(&b, "..%d", evs[len(evs)-1].ID)
	}
	return b.String()
}
