package inventory

import (
	"context"
	"fmt"

	"github.com/rotatorhq/rotator/internal/store"
)

// storedCredential is what apply keeps of a stored credential to tell
// created, updated and unchanged apart: its head (spec hash, runbook file,
// update time). The full rows (settings, labels, state, current version)
// of 100,000 credentials would hold several hundred megabytes; an update
// reads its credential again.
type storedCredential struct {
	store.CredentialHead
	// declared is set once the file is found to declare the credential.
	declared bool
}

// storedCredentials reads the heads of the live credentials and returns
// their ids in order with what apply needs of each.
func storedCredentials(ctx context.Context, tx store.Tx) ([]string, map[string]*storedCredential, error) {
	heads, err := tx.ListCredentialHeads(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("listing credentials: %w", err)
	}
	ids := make([]string, len(heads))
	all := make([]storedCredential, len(heads))
	byID := make(map[string]*storedCredential, len(heads))
	for i, h := range heads {
		ids[i] = h.ID
		all[i].CredentialHead = h
		byID[h.ID] = &all[i]
	}
	return ids, byID, nil
}
