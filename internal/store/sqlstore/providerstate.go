package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/rotatorhq/rotator/internal/store"
)

// GetProviderState returns a credential's sealed provider state.
func (r reader) GetProviderState(ctx context.Context, credentialID string) (store.ProviderState, error) {
	ps := store.ProviderState{CredentialID: credentialID}
	err := r.queryOne(ctx, `SELECT key_id, sealed, updated_at FROM provider_states WHERE credential_id = $1`,
		[]any{credentialID}, &textCol{&ps.KeyID}, &ps.Sealed, &timeCol{&ps.UpdatedAt})
	if errors.Is(err, errNoRows) {
		return store.ProviderState{}, fmt.Errorf("provider state of credential %s: %w", credentialID, store.ErrNotFound)
	}
	if err != nil {
		return store.ProviderState{}, fmt.Errorf("get provider state of credential %s: %w", credentialID, err)
	}
	return ps, nil
}

// PutProviderState creates or replaces a credential's sealed provider state.
func (tx *Tx) PutProviderState(ctx context.Context, ps store.ProviderState) error {
	if len(ps.Sealed) == 0 || ps.KeyID == "" {
		return fmt.Errorf("put provider state of credential %s: no sealed state or key id", ps.CredentialID)
	}
	d := tx.s.dialect()
	return tx.execThen(ctx, `INSERT INTO provider_states (credential_id, key_id, sealed, updated_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (credential_id) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_at = excluded.updated_at`,
		[]any{ps.CredentialID, ps.KeyID, ps.Sealed, d.time(tx.s.orNow(ps.UpdatedAt))},
		func(_ int64, err error) error {
			if err == nil {
				return nil
			}
			if kind, _ := tx.s.classify(err); kind == KindForeignKey {
				return fmt.Errorf("put provider state: credential %s: %w", ps.CredentialID, store.ErrNotFound)
			}
			return fmt.Errorf("put provider state of credential %s: %w", ps.CredentialID, err)
		})
}
