package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// checkRevokeFirst refuses --revoke-first (exit 2) when the provider of a
// selected credential cannot revoke values: the leaked value would not die,
// and the record would claim it had. With --force the rotation goes on; its
// revoke_first step is recorded as skipped, and the value stays valid until
// it expires.
func (a *app) checkRevokeFirst(ctx context.Context, e *rotation.Engine, creds []store.Credential, f rotateFlags) error {
	if f.force && !f.revokeFirst {
		return usagef("--force only applies to --revoke-first")
	}
	if !f.revokeFirst {
		return nil
	}
	var cannot []string
	for _, c := range creds {
		caps, typ, err := e.Capabilities(ctx, c.Provider)
		if err != nil {
			return fmt.Errorf("credential %s: %w", c.ID, err)
		}
		if !caps.Revocable {
			cannot = append(cannot, fmt.Sprintf("%s (provider %s, type %s)", c.ID, c.Provider, typ))
		}
	}
	if len(cannot) == 0 {
		return nil
	}
	list := strings.Join(cannot, ", ")
	if !f.force {
		return usagef("--revoke-first: the provider of %s cannot revoke values, so the current value would stay valid until it expires; "+
			"rotate with --emergency alone (the previous value is retired right after cutover) and revoke it at the resource by hand, "+
			"or add --force to rotate anyway (the revoke_first step is then recorded as skipped)", list)
	}
	fmt.Fprintf(a.stderr, "warning: --force: the provider of %s cannot revoke values; their current values stay valid until they expire (revoke_first is recorded as skipped)\n", list)
	return nil
}
