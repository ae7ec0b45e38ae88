package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rotatorhq/rotator/internal/store"
)

// upsertChunk is how many credentials one INSERT writes: 26 parameters
// each, well below both dialects' limits on bound parameters (32,766 on
// SQLite, 65,535 on Postgres).
const upsertChunk = 500

const credentialInsert = `INSERT INTO credentials (id, consumer, provider, scope, owner, labels, settings,
    max_age_seconds, renew_before_seconds, renew_at, schedule, rotation_window, grace_seconds,
    runbook, targets, spec_hash, status, current_version_id, pending_version_id,
    next_rotation_at, last_rotated_at, expires_at, failure_count, created_at, updated_at, runbook_file)
VALUES `

const credentialConflict = `
ON CONFLICT (id) DO UPDATE SET consumer = excluded.consumer, provider = excluded.provider,
    scope = excluded.scope, owner = excluded.owner, labels = excluded.labels, settings = excluded.settings,
    max_age_seconds = excluded.max_age_seconds, renew_before_seconds = excluded.renew_before_seconds,
    renew_at = excluded.renew_at, schedule = excluded.schedule, rotation_window = excluded.rotation_window,
    grace_seconds = excluded.grace_seconds, runbook = excluded.runbook, runbook_file = excluded.runbook_file, targets = excluded.targets,
    spec_hash = excluded.spec_hash, updated_at = excluded.updated_at, deleted_at = NULL`

// UpsertCredentialSpecs is UpsertCredentialSpec for many credentials, in
// statements of up to upsertChunk rows: one round trip (and one statement
// to prepare) per chunk instead of per credential. The ids must differ.
func (tx *Tx) UpsertCredentialSpecs(ctx context.Context, cs []store.Credential) error {
	for start := 0; start < len(cs); start += upsertChunk {
		chunk := cs[start:min(start+upsertChunk, len(cs))]
		var q query
		q.sql(credentialInsert)
		for i, c := range chunk {
			if i > 0 {
				q.sql(", ")
			}
			if err := tx.credentialRow(&q, c); err != nil {
				return err
			}
		}
		q.sql(credentialConflict)
		if _, err := tx.exec(ctx, q.String(), q.args...); err != nil {
			what := "credential " + chunk[0].ID
			if len(chunk) > 1 {
				what = fmt.Sprintf("%d credentials (%s to %s)", len(chunk), chunk[0].ID, chunk[len(chunk)-1].ID)
			}
			if kind, _ := tx.s.classify(err); kind == KindForeignKey {
				if len(chunk) == 1 {
					return fmt.Errorf("upsert %s: provider %s: %w", what, chunk[0].Provider, store.ErrNotFound)
				}
				return fmt.Errorf("upsert %s: a provider: %w", what, store.ErrNotFound)
			}
			return fmt.Errorf("upsert %s: %w", what, err)
		}
	}
	return nil
}

// credentialRow appends the values of one credential to an INSERT.
func (tx *Tx) credentialRow(q *query, c store.Credential) error {
	if c.ID == "" {
		return errors.New("upsert credential: empty id")
	}
	fail := func(what string, err error) error {
		return fmt.Errorf("upsert credential %s: %s: %w", c.ID, what, err)
	}
	scope, err := jsonText(c.Scope, "[]")
	if err != nil {
		return fail("encode scope", err)
	}
	labels, err := jsonText(c.Labels, "{}")
	if err != nil {
		return fail("encode labels", err)
	}
	settings, err := jsonText(c.Settings, "{}")
	if err != nil {
		return fail("encode settings", err)
	}
	targets, err := jsonText(c.Targets, "[]")
	if err != nil {
		return fail("encode targets", err)
	}
	var window any
	if c.Policy.Window != nil {
		b, err := json.Marshal(c.Policy.Window)
		if err != nil {
			return fail("encode window", err)
		}
		window = string(b)
	}
	status := c.State.Status
	if status == "" {
		status = store.StatusNew
	}
	d := tx.s.dialect()
	now := tx.s.now()
	created, updated := c.CreatedAt, c.UpdatedAt
	if created.IsZero() {
		created = now
	}
	if updated.IsZero() {
		updated = now
	}
	values := []any{
		c.ID, c.Consumer, c.Provider, scope, c.Owner, labels, settings,
		seconds(c.Policy.MaxAge), seconds(c.Policy.RenewBefore), c.Policy.RenewAt, c.Policy.Schedule, window,
		seconds(c.Policy.Grace), c.Runbook, targets, c.SpecHash, string(status),
		nullString(c.State.CurrentVersionID), nullString(c.State.PendingVersionID),
		d.time(c.State.NextRotationAt), d.time(c.State.LastRotatedAt), d.time(c.State.ExpiresAt),
		c.State.FailureCount, d.time(created), d.time(updated), c.RunbookFile,
	}
	q.sql("(")
	for i, v := range values {
		if i > 0 {
			q.sql(", ")
		}
		q.sql(q.arg(v))
	}
	q.sql(")")
	return nil
}

// ListCredentialHeads returns the head of every live credential, ordered
// by id, in one query.
func (r reader) ListCredentialHeads(ctx context.Context) ([]store.CredentialHead, error) {
	rows, err := r.c.Query(ctx, `SELECT id, spec_hash, runbook_file, updated_at FROM credentials WHERE deleted_at IS NULL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list credential heads: %w", err)
	}
	defer rows.Close()
	var out []store.CredentialHead
	for rows.Next() {
		var h store.CredentialHead
		if err := rows.Scan(&h.ID, &h.SpecHash, &h.RunbookFile, &timeCol{&h.UpdatedAt}); err != nil {
			return nil, fmt.Errorf("list credential heads: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list credential heads: %w", err)
	}
	return out, nil
}
