package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// errWithdrawFailed reports that apply committed but withdrawing or
// revoking a removed credential's value failed (exit 1).
var errWithdrawFailed = errors.New("the configuration was applied, but withdrawing or revoking the values of removed credentials failed (see above, and 'rotator audit list'); retry what failed by hand")

// applyResult is apply's -o json output: the diff and, after --prune, what
// was done about the removed credentials' values.
type applyResult struct {
	inventory.Diff
	Withdrawals []rotation.WithdrawAction `json:"withdrawals"`
}

func (r applyResult) failed() bool {
	for _, w := range r.Withdrawals {
		if w.Outcome == rotation.StepFailed {
			return true
		}
	}
	return false
}

// withdraw withdraws the removed credentials' values from their targets
// and, with opts.Revoke, revokes them; only revoking needs the master key.
func (a *app) withdraw(ctx context.Context, st store.Store, removals []rotation.Removal, opts rotation.WithdrawOptions) ([]rotation.WithdrawAction, error) {
	var kr secret.Keyring
	if opts.Revoke {
		var err error
		if kr, err = a.keyring(ctx, st); err != nil {
			// The removal is committed: withdraw anyway; each revocation
			// then fails, and apply exits 1.
			fmt.Fprintf(a.stderr, "error: revoking the removed credentials' values needs the master key: %s\n", a.redactor.Scrub(err.Error()))
			kr = secret.Keyring{}
		}
	}
	e, err := rotation.NewForWithdraw(rotation.Options{Store: st, Keyring: kr, Redactor: a.redactor, Logger: a.logger})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	return e.Withdraw(ctx, removals, opts)
}

// printApply prints the diff, then what was done about removed
// credentials' values (warnStillValid warns about those left valid).
func (a *app) printApply(r applyResult, revoke bool) error {
	if err := a.printDiff(r.Diff); err != nil {
		return err
	}
	if r.DryRun {
		for _, rm := range r.Removals {
			a.printWouldWithdraw(rm, revoke)
		}
		return nil
	}
	if len(r.Withdrawals) == 0 {
		return nil
	}
	fmt.Fprintln(a.stdout, "Removed credentials' values:")
	t := newTable(a.stdout, "  CREDENTIAL", "ACTION", "AT", "OUTCOME", "DETAIL")
	for _, w := range r.Withdrawals {
		at := w.Target
		if w.Action == rotation.ActionRevoke {
			at = "version " + w.Version
		}
		detail := w.Detail
		if w.Error != "" {
			detail = w.Error
		}
		t.row("  "+w.Credential, w.Action, at, string(w.Outcome), orDash(detail))
	}
	return t.flush()
}

// printWouldWithdraw says what apply without --dry-run would do about a
// removed credential's values.
func (a *app) printWouldWithdraw(rm rotation.Removal, revoke bool) {
	c := rm.Credential
	var where []string
	for _, b := range c.Targets {
		where = append(where, b.Target)
	}
	if len(where) > 0 {
		fmt.Fprintf(a.stdout, "Would withdraw credential %s's value from %s.\n", c.ID, strings.Join(where, ", "))
	}
	if len(rm.Versions) == 0 {
		return
	}
	if revoke {
		fmt.Fprintf(a.stdout, "Would revoke %d value(s) of credential %s at provider %s.\n", len(rm.Versions), c.ID, rm.Provider.Name)
		return
	}
	fmt.Fprintf(a.stderr, "warning: credential %s: without --revoke its values would remain valid at provider %s until they expire (%s); add --revoke to revoke them\n",
		c.ID, rm.Provider.Name, validUntil(rm.Versions))
}

// warnStillValid warns, per removed credential, about the values that stay
// valid at its provider, and says how to revoke them.
func (a *app) warnStillValid(actions []rotation.WithdrawAction, revoke bool) {
	type left struct{ parts []string }
	byCred := map[string]*left{}
	var order []string
	for _, w := range actions {
		if w.Action != rotation.ActionRevoke || w.Outcome != rotation.StepSkipped {
			continue
		}
		l := byCred[w.Credential]
		if l == nil {
			l = &left{}
			byCred[w.Credential] = l
			order = append(order, w.Credential)
		}
		until := "no expiry"
		if w.ExpiresAt != nil {
			until = "until " + w.ExpiresAt.UTC().Format(time.RFC3339)
		}
		l.parts = append(l.parts, fmt.Sprintf("version %s, fingerprint %s, %s", w.Version, w.Fingerprint, until))
	}
	for _, id := range order {
		how := "re-apply the file that declares it, then apply this one with --prune --revoke, or revoke the values at the provider by hand"
		if revoke {
			how = "its provider cannot revoke values: disable or delete them at the resource by hand"
		}
		fmt.Fprintf(a.stderr, "warning: credential %s was removed, but its values remain valid at its provider until they expire (%s); to revoke them, %s\n",
			id, strings.Join(byCred[id].parts, "; "), how)
	}
}

// validUntil lists versions with their expiry, for warnings.
func validUntil(vs []store.Version) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		until := "no expiry"
		if !v.ExpiresAt.IsZero() {
			until = "until " + v.ExpiresAt.UTC().Format(time.RFC3339)
		}
		parts = append(parts, fmt.Sprintf("version %s, fingerprint %s, %s", v.ID, v.Fingerprint, until))
	}
	return strings.Join(parts, "; ")
}
