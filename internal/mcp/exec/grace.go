package exec

import (
	"context"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// StoreGraceEnd returns an Options.GraceEnd that reads the store: the
// retire_after the engine set on the run that cut over to the version (the
// cutover time plus the credential's grace, zero grace for an emergency),
// or, when that run is not found, now plus the credential's grace.
func StoreGraceEnd(st store.Reader) func(ctx context.Context, credentialID, version string) (time.Time, error) {
	return func(ctx context.Context, credentialID, version string) (time.Time, error) {
		runs, err := st.ListRuns(ctx, store.RunFilter{CredentialID: credentialID, Limit: 5})
		if err != nil {
			return time.Time{}, err
		}
		for _, r := range runs {
			if r.NewVersionID == version {
				if t := rotation.OptionsOf(r).RetireAfter; !t.IsZero() {
					return t, nil
				}
			}
		}
		c, err := st.GetCredential(ctx, credentialID)
		if err != nil {
			return time.Time{}, err
		}
		return time.Now().Add(c.Policy.Grace), nil
	}
}
