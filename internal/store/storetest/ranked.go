package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// testCredentialsRanked checks the dashboard's order (attention statuses
// first, then next rotation with unscheduled last, then id) and that
// keyset pages of every size join up into it, across the segments.
func testCredentialsRanked(t *testing.T, s store.Store, ctx context.Context) {
	at := func(status store.Status, d time.Duration) func(*store.Credential) {
		return func(c *store.Credential) {
			c.State.Status = status
			if d != 0 {
				c.State.NextRotationAt = t0.Add(d)
			}
		}
	}
	seed(t, s,
		credential("a", at(store.StatusHealthy, time.Hour)),
		credential("b", at(store.StatusHealthy, -time.Hour)),
		credential("c", at(store.StatusNew, 0)), // unscheduled
		credential("d", at(store.StatusDue, -time.Hour)),
		credential("e", at(store.StatusNeedsAttention, 2*time.Hour)),
		credential("f", at(store.StatusFailing, -3*time.Hour)),
		credential("g", at(store.StatusFailing, 0)), // failing, unscheduled
		credential("h", at(store.StatusHealthy, 0)),
		credential("i", at(store.StatusNeedsAttention, 2*time.Hour)),
		credential("x", at(store.StatusFailing, -5*time.Hour)), // deleted below
	)
	tx(t, s, func(tx store.Tx) error { return tx.DeleteCredential(ctx, "x") })
	want := []string{"f", "e", "i", "g", "b", "d", "a", "c", "h"}
	all, err := s.ListCredentialsRanked(ctx, store.RankedFilter{Limit: 100})
	noErr(t, "ranked", err)
	equal(t, "ranked order", credIDs(all), want)
	for _, c := range all {
		if c.Current != nil || c.Scope == nil || c.Labels == nil {
			t.Errorf("credential %s not read in full: %+v", c.ID, c)
		}
		if c.Settings != nil || c.Targets != nil || c.Policy.Window != nil {
			t.Errorf("credential %s is not a summary: %+v", c.ID, c)
		}
	}
	for size := 1; size <= len(want); size++ {
		t.Run(fmt.Sprintf("pages of %d", size), func(t *testing.T) {
			var got []string
			var after *store.RankKey
			for range len(want) + 1 {
				page, err := s.ListCredentialsRanked(ctx, store.RankedFilter{After: after, Limit: size})
				noErr(t, "page", err)
				if len(page) > size {
					t.Fatalf("page of %d credentials, limit %d", len(page), size)
				}
				if len(page) == 0 {
					break
				}
				got = append(got, credIDs(page)...)
				k := store.RankKeyOf(page[len(page)-1])
				after = &k
			}
			equal(t, "pages joined", got, want)
		})
	}
	if _, err := s.ListCredentialsRanked(ctx, store.RankedFilter{}); err == nil {
		t.Error("ListCredentialsRanked without a limit: no error")
	}
}

// testCounts checks the dashboard's totals.
func testCounts(t *testing.T, s store.Store, ctx context.Context) {
	empty, err := s.Counts(ctx, t0)
	noErr(t, "counts of nothing", err)
	equal(t, "counts of nothing", empty, store.Counts{})
	seed(t, s,
		credential("a", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusHealthy, NextRotationAt: t0.Add(time.Hour), ExpiresAt: t0.Add(-time.Minute)}
		}),
		credential("b", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusFailing, NextRotationAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(-time.Minute)}
		}),
		credential("c", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusHealthy, NextRotationAt: t0}
		}),
		credential("d", func(c *store.Credential) { c.State.Status = store.StatusNeedsAttention }),
		credential("x", func(c *store.Credential) {
			c.State = store.CredentialState{Status: store.StatusFailing, NextRotationAt: t0.Add(-time.Hour)}
		}),
	)
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "delete x", tx.DeleteCredential(ctx, "x"))
		// a has a current version (so its expiry counts); b has none.
		noErr(t, "version", tx.InsertVersion(ctx, version("a-v1", "a", store.StageCurrent, t0)))
		st := store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: "a-v1", NextRotationAt: t0.Add(time.Hour), ExpiresAt: t0.Add(-time.Minute)}
		noErr(t, "state", tx.UpdateCredentialState(ctx, "a", st))
		noErr(t, "run", tx.InsertRun(ctx, run("r1", "b", t0)))
		return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "a", OccurredAt: t0}, store.AuditEvent{Action: "b", OccurredAt: t0},
			store.AuditEvent{Action: "c", OccurredAt: t0})
	})
	sealAll(t, s, 0, 2)
	got, err := s.Counts(ctx, t0)
	noErr(t, "counts", err)
	want := store.Counts{
		Credentials: 4, Failing: 1, NeedsAttention: 1,
		Due: 2, Expired: 1, ActiveRuns: 1, SealedEvents: 2, UnsealedEvents: 1,
	}
	equal(t, "counts", got, want)
	if !slices.Equal(store.AttentionStatuses, []store.Status{store.StatusFailing, store.StatusNeedsAttention}) {
		// Change migration 00014's credentials.attention with it.
		t.Errorf("AttentionStatuses = %v", store.AttentionStatuses)
	}
}
