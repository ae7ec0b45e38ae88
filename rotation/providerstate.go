package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
)

// providerState opens the credential's provider state for a Stateful
// provider (a rotated refresh token); zero when the provider is not
// Stateful or the credential has none yet. Only Stateful providers cost the
// extra read.
func (x *execution) providerState(ctx context.Context) (secret.Value, error) {
	if !x.caps.Stateful {
		return secret.Value{}, nil
	}
	ps, err := x.e.store.GetProviderState(ctx, x.cred.ID)
	if errors.Is(err, store.ErrNotFound) {
		return secret.Value{}, nil
	}
	if err != nil {
		return secret.Value{}, fmt.Errorf("run %s: reading the provider state of %s: %w", x.run.ID, x.cred.ID, err)
	}
	val, err := x.e.opts.Keyring.Open(x.cred.ID, store.ProviderStateAAD, ps.KeyID, ps.Sealed)
	if err != nil {
		return secret.Value{}, fmt.Errorf("run %s: opening the provider state of %s: %w", x.run.ID, x.cred.ID, err)
	}
	x.learn(val)
	return val, nil
}

// sealState seals the state a Mint returned, to be stored with the pending
// version in one transaction (write-ahead); nil when Mint returned none.
func (x *execution) sealState(state secret.Value, at time.Time) (*store.ProviderState, error) {
	if state.IsZero() {
		return nil, nil
	}
	if !x.caps.Stateful {
		return nil, fmt.Errorf("provider %s returned provider state but does not declare the Stateful capability", x.cred.Provider)
	}
	x.learn(state)
	keyID, sealed, err := x.e.opts.Keyring.Seal(x.cred.ID, store.ProviderStateAAD, state)
	if err != nil {
		return nil, err
	}
	return &store.ProviderState{CredentialID: x.cred.ID, KeyID: keyID, Sealed: sealed, UpdatedAt: at}, nil
}
