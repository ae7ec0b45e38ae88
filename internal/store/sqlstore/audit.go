package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

const auditColumns = `id, occurred_at, actor, action, credential_id, run_id, data, seq, prev_hash, hash, sealed_at`

// auditPage is how many events ScanAuditEvents reads per query. Each page
// is read completely before fn sees its events, so fn may use the store or
// the transaction it scans in.
const auditPage = 500

// auditChunk is how many events one INSERT or UPDATE statement writes,
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

// scanAudit pages through sealed events (by seq, after the given one) or
// unsealed events (by id), calling fn for each, until left reaches 0 (-1:
// no limit). It returns what is left.
func (r reader) scanAudit(ctx context.Context, f store.AuditFilter, sealed bool, after int64, left int,
	fn func(store.AuditEvent) error,
) (int, error) {
	d := r.s.dialect()
	key := "id"
	if sealed {
		key = "seq"
	}
	for left != 0 {
		if err := ctx.Err(); err != nil {
			return left, fmt.Errorf("scan audit events: %w", err)
		}
		var q query
		preds := append([]string{key + " > " + q.arg(after)}, auditPreds(&q, d, f, sealed)...)
		page := auditPage
		if left > 0 && left < page {
			page = left
		}
		q.sql(`SELECT `, auditColumns, ` FROM audit_events`, where(preds), ` ORDER BY `, key, ` LIMIT `, q.arg(page))
		evs, err := r.auditPage(ctx, q)
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
func auditPreds(q *query, d dialect, f store.AuditFilter, sealed bool) []string {
	preds := []string{"seq IS NULL"}
	if sealed {
		preds = []string{"seq IS NOT NULL"}
	}
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
	key := "id"
	if sealed {
		key = "seq"
	}
	var out []store.AuditEvent
	var before int64
	for len(out) < limit {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("scan audit events: %w", err)
		}
		var q query
		preds := auditPreds(&q, d, f, sealed)
		if sealed {
			preds = append(preds, "seq > "+q.arg(f.AfterSeq))
		}
		if before > 0 {
			preds = append(preds, key+" < "+q.arg(before))
		}
		page := min(auditPage, limit-len(out))
		q.sql(`SELECT `, auditColumns, ` FROM audit_events`, where(preds), ` ORDER BY `, key, ` DESC LIMIT `, q.arg(page))
		evs, err := r.auditPage(ctx, q)
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

func (r reader) auditPage(ctx context.Context, q query) ([]store.AuditEvent, error) {
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, fmt.Errorf("scan audit events: %w", err)
	}
	defer rows.Close()
	var evs []store.AuditEvent
	for rows.Next() {
		var ev store.AuditEvent
		var data []byte
		if err := rows.Scan(&ev.ID, &timeCol{&ev.OccurredAt}, &ev.Actor, &ev.Action,
			&textCol{&ev.CredentialID}, &textCol{&ev.RunID}, &jsonCol{&data},
			&intCol{&ev.Seq}, &textCol{&ev.PrevHash}, &textCol{&ev.Hash}, &timeCol{&ev.SealedAt}); err != nil {
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

// InsertAuditEvents appends events, unsealed: their ID, Seq, PrevHash, Hash
// and SealedAt are ignored. OccurredAt defaults to now. Data must be empty
// or valid JSON; Postgres stores it as jsonb, so it reads back normalized
// (key order, spacing): hash events as read back, never as written.
func (tx *Tx) InsertAuditEvents(ctx context.Context, evs ...store.AuditEvent) error {
	for start := 0; start < len(evs); start += auditChunk {
		chunk := evs[start:min(start+auditChunk, len(evs))]
		var q query
		if err := tx.auditValues(&q, chunk, "INSERT INTO audit_events "+auditInsertColumns+" VALUES ", ""); err != nil {
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

// SealAuditEvents writes Seq, PrevHash, Hash and SealedAt (default now) of
// unsealed events, identified by ID. If any event is missing or already
// sealed, or a Seq is taken, it returns ErrConflict: another sealer got
// there first, and the transaction must be rolled back.
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
		q.sql(` UPDATE audit_events AS a SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash, sealed_at = v.sealed_at
FROM v WHERE a.id = v.id AND coalesce(a.seq, 0) = 0`) // not "a.seq IS NULL": SQLite would scan the seq index
		n, err := tx.exec(ctx, q.String(), q.args...)
		if err != nil {
			if kind, _ := tx.s.classify(err); kind == KindUnique {
				return fmt.Errorf("seal audit events %s: a seq is taken: %w", idRange(chunk), store.ErrConflict)
			}
			return fmt.Errorf("seal audit events %s: %w", idRange(chunk), err)
		}
		if n != int64(len(chunk)) {
			return fmt.Errorf("seal audit events %s: %d of %d missing or already sealed: %w",
				idRange(chunk), int64(len(chunk))-n, len(chunk), store.ErrConflict)
		}
	}
	return nil
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
