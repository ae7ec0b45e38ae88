package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/rotatorhq/rotator/internal/store"
)

// Providers and targets are both named plugin instances with a type and
// settings, kept in tables of the same shape and soft-deleted. pluginTable
// reads and writes either; rows are store.Provider values, which convert
// to store.Target.
type pluginTable struct {
	table string // providers or targets
	noun  string // provider or target, for errors
}

var (
	providersTable = pluginTable{table: "providers", noun: "provider"}
	targetsTable   = pluginTable{table: "targets", noun: "target"}
)

const pluginColumns = `name, type, settings, spec_hash, created_at, updated_at`

type pluginRow struct {
	p        store.Provider
	settings []byte
}

func (r *pluginRow) dest() []any {
	return []any{&r.p.Name, &r.p.Type, &jsonCol{&r.settings}, &r.p.SpecHash,
		&timeCol{&r.p.CreatedAt}, &timeCol{&r.p.UpdatedAt}}
}

func (t pluginTable) decode(r *pluginRow) (store.Provider, error) {
	m, err := decodeSettings(r.settings)
	if err != nil {
		return store.Provider{}, fmt.Errorf("decode settings of %s %s: %w", t.noun, r.p.Name, err)
	}
	r.p.Settings = m
	return r.p, nil
}

func (t pluginTable) list(ctx context.Context, r reader) ([]store.Provider, error) {
	rows, err := r.c.Query(ctx, `SELECT `+pluginColumns+` FROM `+t.table+` WHERE deleted_at IS NULL ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t.table, err)
	}
	defer rows.Close()
	var out []store.Provider
	for rows.Next() {
		var row pluginRow
		if err := rows.Scan(row.dest()...); err != nil {
			return nil, fmt.Errorf("list %s: %w", t.table, err)
		}
		p, err := t.decode(&row)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", t.table, err)
	}
	return out, nil
}

func (t pluginTable) get(ctx context.Context, r reader, name string) (store.Provider, error) {
	var row pluginRow
	err := r.queryOne(ctx, `SELECT `+pluginColumns+` FROM `+t.table+` WHERE name = $1 AND deleted_at IS NULL`,
		[]any{name}, row.dest()...)
	if errors.Is(err, errNoRows) {
		return store.Provider{}, fmt.Errorf("%s %s: %w", t.noun, name, store.ErrNotFound)
	}
	if err != nil {
		return store.Provider{}, fmt.Errorf("get %s %s: %w", t.noun, name, err)
	}
	return t.decode(&row)
}

func (t pluginTable) upsert(ctx context.Context, tx *Tx, p store.Provider) error {
	if p.Name == "" {
		return fmt.Errorf("upsert %s: empty name", t.noun)
	}
	settings, err := jsonText(p.Settings, "{}")
	if err != nil {
		return fmt.Errorf("upsert %s %s: encode settings: %w", t.noun, p.Name, err)
	}
	d := tx.s.dialect()
	_, err = tx.exec(ctx, `INSERT INTO `+t.table+` (`+pluginColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (name) DO UPDATE SET type = excluded.type, settings = excluded.settings,
    spec_hash = excluded.spec_hash, updated_at = excluded.updated_at, deleted_at = NULL`,
		p.Name, p.Type, settings, p.SpecHash, d.time(tx.s.orNow(p.CreatedAt)), d.time(tx.s.orNow(p.UpdatedAt)))
	if err != nil {
		return fmt.Errorf("upsert %s %s: %w", t.noun, p.Name, err)
	}
	return nil
}

// delete marks a row deleted unless a live credential uses it (inUse is a
// predicate on credentials AS c).
func (t pluginTable) delete(ctx context.Context, tx *Tx, name string, inUse func(q *query) (string, error)) error {
	var q query
	nameArg := q.arg(name)
	now := q.arg(tx.s.dialect().time(tx.s.now()))
	used, err := inUse(&q)
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", t.noun, name, err)
	}
	q.sql(`UPDATE `, t.table, ` SET deleted_at = `, now, `, updated_at = `, now,
		` WHERE name = `, nameArg, ` AND deleted_at IS NULL`,
		` AND NOT EXISTS (SELECT 1 FROM credentials AS c WHERE c.deleted_at IS NULL AND `, used, `)`)
	n, err := tx.exec(ctx, q.String(), q.args...)
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", t.noun, name, err)
	}
	if n == 1 {
		return nil
	}
	if _, err := t.get(ctx, tx.reader, name); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete %s %s: %w", t.noun, name, store.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("delete %s %s: %w", t.noun, name, err)
	}
	return fmt.Errorf("delete %s %s: live credentials use it: %w", t.noun, name, store.ErrConflict)
}

// ListProviders returns the live providers ordered by name.
func (r reader) ListProviders(ctx context.Context) ([]store.Provider, error) {
	return providersTable.list(ctx, r)
}

// GetProvider returns a live provider.
func (r reader) GetProvider(ctx context.Context, name string) (store.Provider, error) {
	return providersTable.get(ctx, r, name)
}

// UpsertProvider creates a provider or updates it, reviving it if it was
// deleted. CreatedAt and UpdatedAt default to now; CreatedAt is kept on
// update.
func (tx *Tx) UpsertProvider(ctx context.Context, p store.Provider) error {
	return providersTable.upsert(ctx, tx, p)
}

// DeleteProvider marks a provider deleted. It fails with ErrConflict while
// live credentials use the provider.
func (tx *Tx) DeleteProvider(ctx context.Context, name string) error {
	return providersTable.delete(ctx, tx, name, func(q *query) (string, error) {
		return "c.provider = " + q.arg(name), nil
	})
}

// ListTargets returns the live targets ordered by name.
func (r reader) ListTargets(ctx context.Context) ([]store.Target, error) {
	ps, err := targetsTable.list(ctx, r)
	if err != nil {
		return nil, err
	}
	out := make([]store.Target, len(ps))
	for i, p := range ps {
		out[i] = store.Target(p)
	}
	return out, nil
}

// GetTarget returns a live target.
func (r reader) GetTarget(ctx context.Context, name string) (store.Target, error) {
	p, err := targetsTable.get(ctx, r, name)
	return store.Target(p), err
}

// UpsertTarget creates a target or updates it, reviving it if it was
// deleted. CreatedAt and UpdatedAt default to now; CreatedAt is kept on
// update.
func (tx *Tx) UpsertTarget(ctx context.Context, t store.Target) error {
	return targetsTable.upsert(ctx, tx, store.Provider(t))
}

// DeleteTarget marks a target deleted. It fails with ErrConflict while live
// credentials publish to it.
func (tx *Tx) DeleteTarget(ctx context.Context, name string) error {
	return targetsTable.delete(ctx, tx, name, func(q *query) (string, error) {
		return tx.s.dialect().targetsInclude(q, "c.targets", name)
	})
}
