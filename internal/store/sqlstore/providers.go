package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/rotatorhq/rotator/internal/store"
)

const providerColumns = `name, type, settings, spec_hash, created_at, updated_at`

type providerRow struct {
	p        store.Provider
	settings []byte
}

func (r *providerRow) dest() []any {
	return []any{&r.p.Name, &r.p.Type, &jsonCol{&r.settings}, &r.p.SpecHash,
		&timeCol{&r.p.CreatedAt}, &timeCol{&r.p.UpdatedAt}}
}

func (r *providerRow) provider() (store.Provider, error) {
	m, err := decodeSettings(r.settings)
	if err != nil {
		return store.Provider{}, fmt.Errorf("decode settings of provider %s: %w", r.p.Name, err)
	}
	r.p.Settings = m
	return r.p, nil
}

// ListProviders returns the live providers ordered by name.
func (r reader) ListProviders(ctx context.Context) ([]store.Provider, error) {
	rows, err := r.c.Query(ctx, `SELECT `+providerColumns+` FROM providers WHERE deleted_at IS NULL ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", err)
	}
	defer rows.Close()
	var out []store.Provider
	for rows.Next() {
		var row providerRow
		if err := rows.Scan(row.dest()...); err != nil {
			return nil, fmt.Errorf("list providers: %w", err)
		}
		p, err := row.provider()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list providers: %w", err)
	}
	return out, nil
}

// GetProvider returns a live provider.
func (r reader) GetProvider(ctx context.Context, name string) (store.Provider, error) {
	var row providerRow
	err := r.queryOne(ctx, `SELECT `+providerColumns+` FROM providers WHERE name = $1 AND deleted_at IS NULL`,
		[]any{name}, row.dest()...)
	if errors.Is(err, errNoRows) {
		return store.Provider{}, fmt.Errorf("provider %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Provider{}, fmt.Errorf("get provider %s: %w", name, err)
	}
	return row.provider()
}

// UpsertProvider creates a provider or updates it, reviving it if it was
// deleted. CreatedAt and UpdatedAt default to now.
func (tx *Tx) UpsertProvider(ctx context.Context, p store.Provider) error {
	if p.Name == "" {
		return errors.New("upsert provider: empty name")
	}
	settings, err := jsonText(p.Settings, "{}")
	if err != nil {
		return fmt.Errorf("upsert provider %s: encode settings: %w", p.Name, err)
	}
	now := tx.s.now()
	d := tx.s.dialect()
	created, updated := p.CreatedAt, p.UpdatedAt
	if created.IsZero() {
		created = now
	}
	if updated.IsZero() {
		updated = now
	}
	_, err = tx.exec(ctx, `INSERT INTO providers (`+providerColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (name) DO UPDATE SET type = excluded.type, settings = excluded.settings,
    spec_hash = excluded.spec_hash, updated_at = excluded.updated_at, deleted_at = NULL`,
		p.Name, p.Type, settings, p.SpecHash, d.time(created), d.time(updated))
	if err != nil {
		return fmt.Errorf("upsert provider %s: %w", p.Name, err)
	}
	return nil
}

// DeleteProvider marks a provider deleted. It fails with ErrConflict while
// live credentials use the provider.
func (tx *Tx) DeleteProvider(ctx context.Context, name string) error {
	now := tx.s.dialect().time(tx.s.now())
	n, err := tx.exec(ctx, `UPDATE providers SET deleted_at = $2, updated_at = $2
WHERE name = $1 AND deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM credentials WHERE provider = $1 AND deleted_at IS NULL)`, name, now)
	if err != nil {
		return fmt.Errorf("delete provider %s: %w", name, err)
	}
	if n == 1 {
		return nil
	}
	if _, err := tx.GetProvider(ctx, name); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete provider %s: %w", name, store.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("delete provider %s: %w", name, err)
	}
	return fmt.Errorf("delete provider %s: live credentials use it: %w", name, store.ErrConflict)
}
