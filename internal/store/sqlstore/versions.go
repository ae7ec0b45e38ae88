package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rotatorhq/rotator/internal/store"
)

const versionColumns = `id, credential_id, stage, sealed, key_id, fingerprint,
    created_at, activated_at, expires_at, retired_at, granted_scope, metadata`

// versionColumnsV are the version columns under the alias v, as joined to
// credentials.
const versionColumnsV = `v.id, v.credential_id, v.stage, v.sealed, v.key_id, v.fingerprint,
    v.created_at, v.activated_at, v.expires_at, v.retired_at, v.granted_scope, v.metadata`

// currentVersionIndex is the unique index allowing one current version per
// credential, as each dialect names it in errors.
var currentVersionIndex = []string{"versions_one_current_per_credential", "versions.credential_id"}

// versionRow scans a version; every column may be NULL (outer joins).
type versionRow struct {
	v                      store.Version
	stage                  string
	grantedScope, metadata []byte
}

func (r *versionRow) dest() []any {
	v := &r.v
	return []any{&textCol{&v.ID}, &textCol{&v.CredentialID}, &textCol{&r.stage}, &v.Sealed,
		&textCol{&v.KeyID}, &textCol{&v.Fingerprint},
		&timeCol{&v.CreatedAt}, &timeCol{&v.ActivatedAt}, &timeCol{&v.ExpiresAt}, &timeCol{&v.RetiredAt},
		&jsonCol{&r.grantedScope}, &jsonCol{&r.metadata}}
}

func (r *versionRow) version() (store.Version, error) {
	v := r.v
	v.Stage = store.Stage(r.stage)
	var err error
	if v.GrantedScope, err = decodeStrings(r.grantedScope); err != nil {
		return store.Version{}, fmt.Errorf("decode granted scope of version %s: %w", v.ID, err)
	}
	if v.Metadata, err = decodeStringMap(r.metadata); err != nil {
		return store.Version{}, fmt.Errorf("decode metadata of version %s: %w", v.ID, err)
	}
	if len(v.Sealed) == 0 {
		v.Sealed = nil
	}
	return v, nil
}

// GetVersion returns a version.
func (r reader) GetVersion(ctx context.Context, id string) (store.Version, error) {
	var row versionRow
	err := r.queryOne(ctx, `SELECT `+versionColumns+` FROM versions WHERE id = $1`, []any{id}, row.dest()...)
	if errors.Is(err, errNoRows) {
		return store.Version{}, fmt.Errorf("version %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Version{}, fmt.Errorf("get version %s: %w", id, err)
	}
	return row.version()
}

// ListVersions returns a credential's versions, newest first, optionally
// only those in the given stages.
func (r reader) ListVersions(ctx context.Context, credentialID string, stages ...store.Stage) ([]store.Version, error) {
	var q query
	preds := []string{"credential_id = " + q.arg(credentialID)}
	if len(stages) > 0 {
		names := make([]string, len(stages))
		for i, s := range stages {
			names[i] = string(s)
		}
		p, err := r.s.dialect().inList(&q, "stage", names)
		if err != nil {
			return nil, fmt.Errorf("list versions of credential %s: %w", credentialID, err)
		}
		preds = append(preds, p)
	}
	q.sql(`SELECT `, versionColumns, ` FROM versions`, where(preds), ` ORDER BY created_at DESC, id DESC`)
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, fmt.Errorf("list versions of credential %s: %w", credentialID, err)
	}
	defer rows.Close()
	var out []store.Version
	for rows.Next() {
		var row versionRow
		if err := rows.Scan(row.dest()...); err != nil {
			return nil, fmt.Errorf("list versions of credential %s: %w", credentialID, err)
		}
		v, err := row.version()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list versions of credential %s: %w", credentialID, err)
	}
	return out, nil
}

// sealedKeyIDs walks the partial index versions_sealed_key_idx (migration
// 00005) from one key id to the next, so that it reads one index entry per
// distinct key however many versions there are (a "loose index scan": the
// same SQL on both dialects).
const sealedKeyIDs = `WITH RECURSIVE k(key_id) AS (
    SELECT (SELECT key_id FROM versions WHERE sealed IS NOT NULL ORDER BY key_id LIMIT 1)
  UNION ALL
    SELECT (SELECT v.key_id FROM versions AS v WHERE v.sealed IS NOT NULL AND v.key_id > k.key_id
            ORDER BY v.key_id LIMIT 1)
    FROM k WHERE k.key_id IS NOT NULL
)
SELECT key_id FROM k WHERE key_id IS NOT NULL
UNION
SELECT key_id FROM provider_states
ORDER BY 1`

// SealedKeyIDs returns, sorted, the distinct key ids of the versions that
// hold a sealed value (retired and discarded versions hold none) and of the
// provider states.
func (r reader) SealedKeyIDs(ctx context.Context) ([]string, error) {
	rows, err := r.c.Query(ctx, sealedKeyIDs)
	if err != nil {
		return nil, fmt.Errorf("list the key ids of sealed values: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&textCol{&id}); err != nil {
			return nil, fmt.Errorf("list the key ids of sealed values: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the key ids of sealed values: %w", err)
	}
	return out, nil
}

// InsertVersion inserts a version. CreatedAt defaults to now. A second
// current version of a credential, or an existing id, is ErrConflict; an
// unknown credential is ErrNotFound.
func (tx *Tx) InsertVersion(ctx context.Context, v store.Version) error {
	if v.ID == "" {
		return fmt.Errorf("insert version of credential %s: empty id", v.CredentialID)
	}
	scope, err := jsonText(v.GrantedScope, "[]")
	if err != nil {
		return fmt.Errorf("insert version %s: encode granted scope: %w", v.ID, err)
	}
	meta, err := jsonText(v.Metadata, "{}")
	if err != nil {
		return fmt.Errorf("insert version %s: encode metadata: %w", v.ID, err)
	}
	d := tx.s.dialect()
	return tx.execThen(ctx, `INSERT INTO versions (`+versionColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		[]any{v.ID, v.CredentialID, string(v.Stage), sealedArg(v), v.KeyID, v.Fingerprint,
			d.time(tx.s.orNow(v.CreatedAt)), d.time(v.ActivatedAt), d.time(v.ExpiresAt), d.time(v.RetiredAt),
			scope, meta},
		func(_ int64, err error) error {
			if err != nil {
				return tx.versionError("insert", v, err)
			}
			return nil
		})
}

// UpdateVersion writes a version's stage, key id, activated, expires and
// retired times, granted scope, metadata and sealed value. The sealed value
// is cleared when the stage is retired or discarded, whatever v.Sealed
// holds. To swap the current version, demote the old one first: the unique
// index is checked per statement.
func (tx *Tx) UpdateVersion(ctx context.Context, v store.Version) error {
	scope, err := jsonText(v.GrantedScope, "[]")
	if err != nil {
		return fmt.Errorf("update version %s: encode granted scope: %w", v.ID, err)
	}
	meta, err := jsonText(v.Metadata, "{}")
	if err != nil {
		return fmt.Errorf("update version %s: encode metadata: %w", v.ID, err)
	}
	d := tx.s.dialect()
	return tx.updateThen(ctx, `UPDATE versions SET stage = $2, sealed = $3, key_id = $4,
    activated_at = $5, expires_at = $6, retired_at = $7, granted_scope = $8, metadata = $9
WHERE id = $1`,
		[]any{v.ID, string(v.Stage), sealedArg(v), v.KeyID,
			d.time(v.ActivatedAt), d.time(v.ExpiresAt), d.time(v.RetiredAt), scope, meta},
		func(n int64, err error) error {
			if err != nil {
				return tx.versionError("update", v, err)
			}
			if n == 0 {
				return fmt.Errorf("update version %s: %w", v.ID, store.ErrNotFound)
			}
			return nil
		})
}

// sealedArg is the sealed value to store: none once retired or discarded.
func sealedArg(v store.Version) any {
	if v.Stage == store.StageRetired || v.Stage == store.StageDiscarded {
		return nil
	}
	return nullBytes(v.Sealed)
}

func (tx *Tx) versionError(verb string, v store.Version, err error) error {
	switch kind, constraint := tx.s.classify(err); kind {
	case KindUnique:
		if slices.Contains(currentVersionIndex, constraint) {
			return fmt.Errorf("%s version %s: credential %s already has a current version: %w",
				verb, v.ID, v.CredentialID, store.ErrConflict)
		}
		return fmt.Errorf("%s version %s: version exists: %w", verb, v.ID, store.ErrConflict)
	case KindForeignKey:
		return fmt.Errorf("%s version %s: credential %s: %w", verb, v.ID, v.CredentialID, store.ErrNotFound)
	case KindOther, KindRetry, KindNoRows:
	}
	return fmt.Errorf("%s version %s of credential %s: %w", verb, v.ID, v.CredentialID, err)
}
