package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
)

func (a *app) keysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the master key that seals stored values",
	}
	cmd.AddCommand(a.keysRotateCommand())
	return cmd
}

// keysResult is the outcome of a re-seal.
type keysResult struct {
	ActiveKeyID string         `json:"active_key_id"`
	Resealed    int            `json:"resealed"`
	Already     int            `json:"already_current"`
	ByOldKey    map[string]int `json:"resealed_by_old_key"`
	DryRun      bool           `json:"dry_run"`
}

func (a *app) keysRotateCommand() *cobra.Command {
	var (
		dryRun    bool
		output    string
		actorName string
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Re-seal every stored value under the active master key",
		Long: `Re-seal every stored value (pending, current and previous versions, those of
deleted credentials included, and providers' state such as rotated refresh
tokens) under the active master key. Set the new key in
ROTATOR_MASTER_KEY (or ROTATOR_MASTER_KEY_FILE) and the old one(s) in
ROTATOR_MASTER_KEY_PREVIOUS (comma-separated), run this, then remove the old
key: commands that need values refuse to run while any value is sealed under a
key they were not given. Each credential is re-sealed in its own transaction,
so the command can be run again after an interruption. Fingerprints recorded
earlier are kept as they were; values minted after the switch are
fingerprinted under the new key. See runbooks/master-key-rotation.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			kr, err := a.keyring(ctx, st)
			if err != nil {
				return err
			}
			res, err := reseal(ctx, st, kr, dryRun, actor(actorName))
			if err != nil {
				return err
			}
			if isData(output) {
				return writeData(a.stdout, output, res)
			}
			verb := "Re-sealed"
			if dryRun {
				verb = "Would re-seal"
			}
			_, err = fmt.Fprintf(a.stdout, "%s %d value(s) under key %s; %d already sealed under it.\n", verb, res.Resealed, res.ActiveKeyID, res.Already)
			return err
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count what would be re-sealed without writing")
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	cmd.Flags().StringVar(&actorName, "actor", "", "who is rotating the key, for the audit log (default: the OS user)")
	return cmd
}

func reseal(ctx context.Context, st store.Store, kr secret.Keyring, dryRun bool, actor string) (keysResult, error) {
	res := keysResult{ActiveKeyID: kr.ActiveKeyID(), ByOldKey: map[string]int{}, DryRun: dryRun}
	after := ""
	for {
		// Deleted credentials too: their versions keep their values (a
		// revival uses them), and an old key must open nothing once retired.
		creds, err := st.ListCredentials(ctx, store.CredentialFilter{AfterID: after, Limit: 500, IncludeDeleted: true})
		if err != nil {
			return res, fmt.Errorf("listing credentials: %w", err)
		}
		if len(creds) == 0 {
			break
		}
		after = creds[len(creds)-1].ID
		for _, c := range creds {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			var counts map[string]int
			already := 0
			err := st.InTx(ctx, func(tx store.Tx) error {
				counts, already = map[string]int{}, 0
				versions, err := tx.ListVersions(ctx, c.ID, store.StagePending, store.StageCurrent, store.StagePrevious)
				if err != nil {
					return err
				}
				for _, v := range versions {
					if len(v.Sealed) == 0 {
						continue
					}
					if v.KeyID == kr.ActiveKeyID() {
						already++
						continue
					}
					val, err := kr.Open(v.CredentialID, v.ID, v.KeyID, v.Sealed)
					if err != nil {
						return fmt.Errorf("version %s of %s: %w (is its key in ROTATOR_MASTER_KEY_PREVIOUS?)", v.ID, c.ID, err)
					}
					counts[v.KeyID]++
					if dryRun {
						continue
					}
					keyID, sealed, err := kr.Seal(v.CredentialID, v.ID, val)
					if err != nil {
						return err
					}
					v.KeyID, v.Sealed = keyID, sealed
					if err := tx.UpdateVersion(ctx, v); err != nil {
						return err
					}
				}
				n, err := resealProviderState(ctx, tx, kr, c.ID, counts, dryRun)
				if err != nil {
					return err
				}
				already += n
				if len(counts) == 0 || dryRun {
					return nil
				}
				data, _ := json.Marshal(map[string]any{"active_key_id": kr.ActiveKeyID(), "old_keys": counts})
				return tx.InsertAuditEvents(ctx, store.AuditEvent{
					OccurredAt: time.Now().UTC(), Actor: actor, Action: "keys.resealed", CredentialID: c.ID, Data: data,
				})
			})
			if err != nil {
				return res, fmt.Errorf("re-sealing credential %s: %w", c.ID, err)
			}
			res.Already += already
			for k, n := range counts {
				res.ByOldKey[k] += n
				res.Resealed += n
			}
		}
	}
	return res, nil
}

// resealProviderState re-seals a credential's provider state (a rotated
// refresh token) under the active key, counting it in counts by its old
// key; it returns 1 when the state is already under the active key.
func resealProviderState(ctx context.Context, tx store.Tx, kr secret.Keyring, credID string, counts map[string]int, dryRun bool) (int, error) {
	ps, err := tx.GetProviderState(ctx, credID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if ps.KeyID == kr.ActiveKeyID() {
		return 1, nil
	}
	val, err := kr.Open(credID, store.ProviderStateAAD, ps.KeyID, ps.Sealed)
	if err != nil {
		return 0, fmt.Errorf("provider state of %s: %w (is its key in ROTATOR_MASTER_KEY_PREVIOUS?)", credID, err)
	}
	counts[ps.KeyID]++
	if dryRun {
		return 0, nil
	}
	keyID, sealed, err := kr.Seal(credID, store.ProviderStateAAD, val)
	if err != nil {
		return 0, err
	}
	ps.KeyID, ps.Sealed, ps.UpdatedAt = keyID, sealed, time.Time{}
	return 0, tx.PutProviderState(ctx, ps)
}
