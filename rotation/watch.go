package rotation

import (
	"context"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// Watch follows runs that a service executes, polling their state until
// each credential's outcome is known: the run ended (a failed attempt that
// the service retries before the deadline is followed into its next run),
// or cut over (unless waitRetired, which waits for the retirement of the
// previous version too). It returns one Result per run, in order; runs
// still going when ctx ends are returned as they stand, with ctx's error.
func Watch(ctx context.Context, st store.Store, runIDs []string, deadline time.Time, waitRetired bool, progress func(Progress)) []Result {
	if progress == nil {
		progress = func(Progress) {}
	}
	out := make([]Result, len(runIDs))
	cur := make([]string, len(runIDs))
	done := make([]bool, len(runIDs))
	waitingFrom := make([]time.Time, len(runIDs)) // a failed attempt's end
	reported := map[string]bool{}
	for i, id := range runIDs {
		cur[i] = id
		out[i].Attempts = []string{id}
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var pending []string
		idx := map[string]int{}
		for i := range runIDs {
			if !done[i] && waitingFrom[i].IsZero() {
				pending = append(pending, cur[i])
				idx[cur[i]] = i
			}
		}
		for i := 0; i < len(pending); i += 500 {
			runs, err := st.ListRuns(ctx, store.RunFilter{IDs: pending[i:min(i+500, len(pending))]})
			if err != nil {
				break
			}
			for _, r := range runs {
				i := idx[r.ID]
				out[i].Run, out[i].Credential = r, r.CredentialID
				s := State(r.State)
				switch {
				case s == StateCutOver && !waitRetired:
					done[i] = true
					progress(Progress{Kind: ProgressFinished, Credential: r.CredentialID, Run: r.ID, State: s, At: runOptions(r).RetireAfter})
				case s.Terminal():
					if s == StateRolledBack && !IsCancelled(r) {
						if c, err := st.GetCredential(ctx, r.CredentialID); err == nil && c.State.Status == store.StatusFailing {
							out[i].NextAttempt = c.State.NextRotationAt
							if !c.State.NextRotationAt.After(deadline) && !c.State.NextRotationAt.IsZero() {
								waitingFrom[i] = r.CreatedAt
								progress(Progress{Kind: ProgressAttemptFailed, Credential: r.CredentialID, Run: r.ID, State: s,
									At: c.State.NextRotationAt, Error: r.Error, Attempt: r.Attempt})
								continue
							}
						}
					}
					done[i] = true
					progress(Progress{Kind: ProgressFinished, Credential: r.CredentialID, Run: r.ID, State: s, Error: r.Error, Attempt: r.Attempt})
				case s == StateCutOver || s == StateRetiringPrevious:
					if !reported[r.ID] {
						reported[r.ID] = true
						progress(Progress{Kind: ProgressWaitingRetire, Credential: r.CredentialID, Run: r.ID, State: s, At: runOptions(r).RetireAfter})
					}
				}
			}
		}
		// Failed attempts: the service's scheduler starts the next run of
		// the credential; follow it.
		for i := range runIDs {
			if done[i] || waitingFrom[i].IsZero() {
				continue
			}
			runs, err := st.ListRuns(ctx, store.RunFilter{CredentialID: out[i].Credential, Limit: 1})
			if err == nil && len(runs) > 0 && runs[0].ID != cur[i] && !runs[0].CreatedAt.Before(waitingFrom[i]) {
				cur[i] = runs[0].ID
				out[i].Attempts = append(out[i].Attempts, cur[i])
				out[i].NextAttempt = time.Time{}
				waitingFrom[i] = time.Time{}
				progress(Progress{Kind: ProgressRetrying, Credential: out[i].Credential, Run: cur[i], Attempt: runs[0].Attempt})
			} else if time.Now().After(deadline) {
				done[i] = true
			}
		}
		all := true
		for i := range done {
			all = all && done[i]
		}
		if all {
			return out
		}
		select {
		case <-ctx.Done():
			for i := range out {
				if !done[i] {
					out[i].Err = ctx.Err()
				}
			}
			return out
		case <-tick.C:
		}
	}
}
