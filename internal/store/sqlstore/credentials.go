package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// credentialSelect reads live credentials with their current version.
const credentialSelect = `SELECT c.id, c.consumer, c.provider, c.scope, c.owner, c.labels, c.settings,
    c.max_age_seconds, c.renew_before_seconds, c.renew_at, c.schedule, c.rotation_window, c.grace_seconds,
    c.runbook, c.runbook_file, c.targets, c.spec_hash, c.status, c.current_version_id, c.pending_version_id,
    c.next_rotation_at, c.last_rotated_at, c.expires_at, c.failure_count, c.created_at, c.updated_at,
    ` + versionColumnsV + `
FROM credentials AS c LEFT JOIN versions AS v ON v.id = c.current_version_id`

// credentialSummarySelect is credentialSelect without the columns a
// listing does not show (CredentialFilter.Summary): NULL in their place, so
// that credentialRow scans both.
// The current version's key id and retired time are left out too: the
// stamps (CredentialStamps) do not follow them.
var credentialSummarySelect = summarize(credentialSelect, "c.settings", "c.rotation_window", "c.targets",
	"v.sealed", "v.key_id", "v.retired_at")

// credentialSelects are credentialSelect and credentialSummarySelect,
// each also with the row version (Postgres's xmin) last: selectIndex.
var credentialSelects = [4]string{credentialSelect, credentialSummarySelect,
	stampedSelect(credentialSelect), stampedSelect(credentialSummarySelect)}

func selectIndex(summary, stamped bool) int {
	i := 0
	if summary {
		i++
	}
	if stamped {
		i += 2
	}
	return i
}

func stampedSelect(sel string) string {
	const from = "\nFROM credentials AS c"
	if strings.Count(sel, from) != 1 {
		panic("sqlstore: the credential select has no single FROM")
	}
	return strings.Replace(sel, from, ", c.xmin"+from, 1)
}

// summarize replaces each column of sel with a NULL of the column's kind
// (CAST(NULL AS ...) reads the same in both dialects).
func summarize(sel string, cols ...string) string {
	for _, col := range cols {
		typ := "jsonb"
		switch col {
		case "v.sealed":
			typ = "bytea"
		case "v.key_id":
			typ = "text"
		case "v.retired_at":
			typ = "timestamptz"
		}
		n := strings.Count(sel, col+",")
		if n != 1 {
			panic(fmt.Sprintf("sqlstore: column %s appears %d times in the credential select", col, n))
		}
		sel = strings.Replace(sel, col+",", "CAST(NULL AS "+typ+"),", 1)
	}
	return sel
}

type credentialRow struct {
	c                               store.Credential
	scope, labels, settings, window []byte
	targets                         []byte
	maxAge, renewBefore, grace      int64
	statusText                      string
	current                         versionRow
}

func (r *credentialRow) dest() []any {
	c := &r.c
	d := []any{&c.ID, &c.Consumer, &c.Provider, &jsonCol{&r.scope}, &c.Owner, &jsonCol{&r.labels}, &jsonCol{&r.settings},
		&r.maxAge, &r.renewBefore, &c.Policy.RenewAt, &c.Policy.Schedule, &jsonCol{&r.window}, &r.grace,
		&c.Runbook, &c.RunbookFile, &jsonCol{&r.targets}, &c.SpecHash, &r.statusText,
		&textCol{&c.State.CurrentVersionID}, &textCol{&c.State.PendingVersionID},
		&timeCol{&c.State.NextRotationAt}, &timeCol{&c.State.LastRotatedAt}, &timeCol{&c.State.ExpiresAt},
		&c.State.FailureCount, &timeCol{&c.CreatedAt}, &timeCol{&c.UpdatedAt}}
	return append(d, r.current.dest()...)
}

func (r *credentialRow) credential() (store.Credential, error) {
	c := r.c
	fail := func(field string, err error) (store.Credential, error) {
		return store.Credential{}, fmt.Errorf("decode %s of credential %s: %w", field, c.ID, err)
	}
	var err error
	if c.Scope, err = decodeStrings(r.scope); err != nil {
		return fail("scope", err)
	}
	if c.Labels, err = decodeStringMap(r.labels); err != nil {
		return fail("labels", err)
	}
	if c.Settings, err = decodeSettings(r.settings); err != nil {
		return fail("settings", err)
	}
	if len(r.window) > 0 && string(r.window) != "null" {
		c.Policy.Window = new(store.Window)
		if err := json.Unmarshal(r.window, c.Policy.Window); err != nil {
			return fail("window", err)
		}
	}
	if len(r.targets) > 0 {
		if err := json.Unmarshal(r.targets, &c.Targets); err != nil {
			return fail("targets", err)
		}
		if len(c.Targets) == 0 {
			c.Targets = nil
		}
	}
	c.Policy.MaxAge = time.Duration(r.maxAge) * time.Second
	c.Policy.RenewBefore = time.Duration(r.renewBefore) * time.Second
	c.Policy.Grace = time.Duration(r.grace) * time.Second
	c.State.Status = store.Status(r.statusText)
	if r.current.v.ID != "" {
		v, err := r.current.version()
		if err != nil {
			return store.Credential{}, err
		}
		c.Current = &v
	}
	return c, nil
}

// scanCredentials reads the rows of a credentialSelect; limit, when
// positive, is the most it returns. At the first row the result is made
// room for a page at once (up to 128: a credential is over 400 bytes, and
// growing the slice row by row copies a page about twice); nothing is
// made when there is no row (the scheduler's frequent empty polls). The
// scan destinations are made once for all rows: every column is written
// by each Scan, and credential() copies out what it keeps.
func scanCredentials(rows Rows, limit int, stamped bool) ([]store.Credential, error) {
	var out []store.Credential
	var row credentialRow
	dest := row.dest()
	var xmin uint32
	if stamped {
		dest = append(dest, &xmin)
	}
	for rows.Next() {
		if out == nil && limit > 0 {
			out = make([]store.Credential, 0, min(limit, 128))
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		c, err := row.credential()
		if err != nil {
			return nil, err
		}
		c.Stamp = uint64(xmin)
		out = append(out, c)
	}
	return out, rows.Err()
}

// GetCredential returns a live credential with Current filled.
func (r reader) GetCredential(ctx context.Context, id string) (store.Credential, error) {
	return r.getCredential(ctx, id, "get", "")
}

// LockCredential returns a live credential with Current filled and locks
// its row until the transaction ends.
func (tx *Tx) LockCredential(ctx context.Context, id string) (store.Credential, error) {
	return tx.getCredential(ctx, id, "lock", tx.s.dialect().forUpdate("c"))
}

func (r reader) getCredential(ctx context.Context, id, verb, suffix string) (store.Credential, error) {
	var row credentialRow
	err := r.queryOne(ctx, credentialSelect+` WHERE c.id = $1 AND c.deleted_at IS NULL`+suffix, []any{id}, row.dest()...)
	if errors.Is(err, errNoRows) {
		return store.Credential{}, fmt.Errorf("credential %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Credential{}, fmt.Errorf("%s credential %s: %w", verb, id, err)
	}
	return row.credential()
}

// ListCredentials returns live credentials (and deleted ones with
// f.IncludeDeleted) ordered by id, with Current filled.
func (r reader) ListCredentials(ctx context.Context, f store.CredentialFilter) ([]store.Credential, error) {
	stamped := f.Stamps && r.s.dialect().pg()
	sel := credentialSelects[selectIndex(f.Summary, stamped)]
	q, err := r.credentialQuery(sel, f)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	defer rows.Close()
	out, err := scanCredentials(rows, f.Limit, stamped)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	return out, nil
}

// CredentialStamps returns the id and row version (xmin) of each
// credential f selects; none on SQLite.
func (r reader) CredentialStamps(ctx context.Context, f store.CredentialFilter) ([]store.CredentialStamp, bool, error) {
	if !r.s.dialect().pg() {
		return nil, false, nil
	}
	q, err := r.credentialQuery("SELECT c.id, c.xmin FROM credentials AS c", f)
	if err != nil {
		return nil, true, fmt.Errorf("list credential stamps: %w", err)
	}
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, true, fmt.Errorf("list credential stamps: %w", err)
	}
	defer rows.Close()
	var out []store.CredentialStamp
	var id string
	var xmin uint32
	for rows.Next() {
		if out == nil && f.Limit > 0 {
			out = make([]store.CredentialStamp, 0, min(f.Limit, 1024))
		}
		if err := rows.Scan(&id, &xmin); err != nil {
			return nil, true, fmt.Errorf("list credential stamps: %w", err)
		}
		out = append(out, store.CredentialStamp{ID: id, Stamp: uint64(xmin)})
	}
	if err := rows.Err(); err != nil {
		return nil, true, fmt.Errorf("list credential stamps: %w", err)
	}
	return out, true, nil
}

// credentialQuery is sel (a SELECT ... FROM credentials AS c ...) with
// f's conditions, order and limit.
func (r reader) credentialQuery(sel string, f store.CredentialFilter) (query, error) {
	d := r.s.dialect()
	var q query
	var preds []string
	if !f.IncludeDeleted {
		preds = append(preds, "c.deleted_at IS NULL")
	}
	if len(f.IDs) > 0 {
		p, err := d.inList(&q, "c.id", f.IDs)
		if err != nil {
			return q, err
		}
		preds = append(preds, p)
	}
	if f.Consumer != "" {
		preds = append(preds, "c.consumer = "+q.arg(f.Consumer))
	}
	if f.Provider != "" {
		preds = append(preds, "c.provider = "+q.arg(f.Provider))
	}
	if len(f.Labels) > 0 {
		p, err := d.labelsMatch(&q, "c.labels", f.Labels)
		if err != nil {
			return q, err
		}
		preds = append(preds, p)
	}
	if !f.DueBefore.IsZero() {
		preds = append(preds, "c.next_rotation_at <= "+q.arg(d.time(f.DueBefore)))
	}
	if len(f.ExcludeStatuses) > 0 {
		names := make([]string, len(f.ExcludeStatuses))
		for i, s := range f.ExcludeStatuses {
			names[i] = string(s)
		}
		p, err := d.inList(&q, "c.status", names)
		if err != nil {
			return q, err
		}
		preds = append(preds, "NOT ("+p+")")
	}
	if f.Idle {
		preds = append(preds, "NOT EXISTS (SELECT 1 FROM runs r WHERE r.credential_id = c.id AND r.active)")
	}
	if f.AfterID != "" {
		preds = append(preds, "c.id > "+q.arg(f.AfterID))
	}
	order := " ORDER BY c.id"
	switch {
	case f.OrderByDue && !f.DueBefore.IsZero(): // all scheduled
		order = " ORDER BY c.next_rotation_at, c.id"
	case f.OrderByDue:
		order = " ORDER BY c.next_rotation_at IS NULL, c.next_rotation_at, c.id"
	}
	q.sql(sel, where(preds), order)
	if f.Limit > 0 {
		q.sql(sqlLimit(f.Limit))
	}
	return q, nil
}

// UpsertCredentialSpec creates a credential (with c.State; Status defaults
// to new) or updates its spec fields, reviving it if it was deleted. The
// state of an existing credential is left alone. Durations are stored in
// whole seconds.
func (tx *Tx) UpsertCredentialSpec(ctx context.Context, c store.Credential) error {
	return tx.UpsertCredentialSpecs(ctx, []store.Credential{c})
}

// UpdateCredentialState writes the engine-maintained fields of a live
// credential and its updated_at.
func (tx *Tx) UpdateCredentialState(ctx context.Context, id string, st store.CredentialState) error {
	d := tx.s.dialect()
	return tx.updateThen(ctx, `UPDATE credentials SET status = $2, current_version_id = $3, pending_version_id = $4,
    next_rotation_at = $5, last_rotated_at = $6, expires_at = $7, failure_count = $8, updated_at = $9
WHERE id = $1 AND deleted_at IS NULL`,
		[]any{id, string(st.Status), nullString(st.CurrentVersionID), nullString(st.PendingVersionID),
			d.time(st.NextRotationAt), d.time(st.LastRotatedAt), d.time(st.ExpiresAt), st.FailureCount,
			d.time(tx.s.now())},
		func(n int64, err error) error {
			if err != nil {
				return fmt.Errorf("update state of credential %s: %w", id, err)
			}
			if n == 0 {
				return fmt.Errorf("update state of credential %s: %w", id, store.ErrNotFound)
			}
			return nil
		})
}

// SetCredentialStatus sets the status (and updated_at) of the live
// credentials among ids.
func (tx *Tx) SetCredentialStatus(ctx context.Context, ids []string, status store.Status) error {
	if len(ids) == 0 {
		return nil
	}
	var q query
	set := q.arg(string(status))
	now := q.arg(tx.s.dialect().time(tx.s.now()))
	in, err := tx.s.dialect().inList(&q, "id", ids)
	if err != nil {
		return fmt.Errorf("set status of %d credentials to %s: %w", len(ids), status, err)
	}
	q.sql(`UPDATE credentials SET status = `, set, `, updated_at = `, now, ` WHERE deleted_at IS NULL AND `, in)
	if _, err := tx.exec(ctx, q.String(), q.args...); err != nil {
		return fmt.Errorf("set status of %d credentials to %s: %w", len(ids), status, err)
	}
	return nil
}

// DeleteCredential marks a live credential deleted; its versions, runs and
// audit events stay.
func (tx *Tx) DeleteCredential(ctx context.Context, id string) error {
	now := tx.s.dialect().time(tx.s.now())
	n, err := tx.exec(ctx, `UPDATE credentials SET deleted_at = $2, updated_at = $2
WHERE id = $1 AND deleted_at IS NULL`, id, now)
	if err != nil {
		return fmt.Errorf("delete credential %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("delete credential %s: %w", id, store.ErrNotFound)
	}
	return nil
}
