package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// API tokens: one row per token, holding its SHA-256 and never the token.

const tokenColumns = `id, name, token_hash, scopes, created_by, created_at, expires_at, revoked_at, last_used_at`

type tokenRow struct {
	t      store.APIToken
	scopes []byte
}

func (r *tokenRow) dest() []any {
	t := &r.t
	return []any{&t.ID, &t.Name, &t.Hash, &jsonCol{&r.scopes}, &t.CreatedBy,
		&timeCol{&t.CreatedAt}, &timeCol{&t.ExpiresAt}, &timeCol{&t.RevokedAt}, &timeCol{&t.LastUsedAt}}
}

func (r *tokenRow) token() (store.APIToken, error) {
	var err error
	if r.t.Scopes, err = decodeStrings(r.scopes); err != nil {
		return store.APIToken{}, fmt.Errorf("decode scopes of API token %s: %w", r.t.ID, err)
	}
	return r.t, nil
}

// GetAPIToken returns a token by id.
func (r reader) GetAPIToken(ctx context.Context, id string) (store.APIToken, error) {
	return r.getToken(ctx, `id = $1`, id, "API token "+id)
}

// GetAPITokenByHash returns the token with that hash.
func (r reader) GetAPITokenByHash(ctx context.Context, hash []byte) (store.APIToken, error) {
	return r.getToken(ctx, `token_hash = $1`, hash, "API token (by hash)")
}

func (r reader) getToken(ctx context.Context, pred string, arg any, what string) (store.APIToken, error) {
	var row tokenRow
	err := r.queryOne(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE `+pred, []any{arg}, row.dest()...)
	if errors.Is(err, errNoRows) {
		return store.APIToken{}, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return store.APIToken{}, fmt.Errorf("get %s: %w", what, err)
	}
	return row.token()
}

// ListAPITokens returns every token, oldest first.
func (r reader) ListAPITokens(ctx context.Context) ([]store.APIToken, error) {
	rows, err := r.c.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	defer rows.Close()
	var out []store.APIToken
	for rows.Next() {
		var row tokenRow
		if err := rows.Scan(row.dest()...); err != nil {
			return nil, fmt.Errorf("list API tokens: %w", err)
		}
		t, err := row.token()
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	return out, nil
}

// InsertAPIToken stores a new token.
func (tx *Tx) InsertAPIToken(ctx context.Context, t store.APIToken) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return errors.New("insert API token: empty id or hash")
	}
	scopes, err := jsonText(t.Scopes, "[]")
	if err != nil {
		return fmt.Errorf("insert API token %s: encode scopes: %w", t.ID, err)
	}
	d := tx.s.dialect()
	_, err = tx.exec(ctx, `INSERT INTO api_tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		t.ID, t.Name, t.Hash, scopes, t.CreatedBy, d.time(tx.s.orNow(t.CreatedAt)), d.time(t.ExpiresAt),
		d.time(t.RevokedAt), d.time(t.LastUsedAt))
	if err != nil {
		if kind, _ := tx.s.classify(err); kind == KindUnique {
			return fmt.Errorf("insert API token %s: %w", t.ID, store.ErrConflict)
		}
		return fmt.Errorf("insert API token %s: %w", t.ID, err)
	}
	return nil
}

// RevokeAPIToken marks a token revoked (once).
func (tx *Tx) RevokeAPIToken(ctx context.Context, id string, at time.Time) error {
	n, err := tx.exec(ctx, `UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, tx.s.dialect().time(tx.s.orNow(at)))
	if err != nil {
		return fmt.Errorf("revoke API token %s: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	if _, err := tx.GetAPIToken(ctx, id); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	return nil
}

// TouchAPIToken records a token's latest use.
func (tx *Tx) TouchAPIToken(ctx context.Context, id string, at time.Time) error {
	at = tx.s.orNow(at)
	_, err := tx.exec(ctx, `UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)`, id, tx.s.dialect().time(at))
	if err != nil {
		return fmt.Errorf("record the use of API token %s: %w", id, err)
	}
	return nil
}
