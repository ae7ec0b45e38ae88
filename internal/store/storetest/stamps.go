package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// testCredentialStamps checks Reader.CredentialStamps: the same selection
// as ListCredentials, stamps equal to those read with the credentials, a
// new stamp after each change of what a summary shows (the credential's
// row, its current version's listed fields) and the same stamp, and the
// same summary, after a change a summary does not show.
func testCredentialStamps(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("a"), credential("b"), credential("c", func(c *store.Credential) { c.Consumer = "other" }))
	va, vp, vb := version("va", "a", store.StageCurrent, t0), version("vp", "a", store.StagePending, t0.Add(time.Minute)), version("vb", "b", store.StageCurrent, t0)
	tx(t, s, func(tx store.Tx) error {
		for _, v := range []store.Version{va, vp, vb} {
			noErr(t, "insert "+v.ID, tx.InsertVersion(ctx, v))
		}
		noErr(t, "a's state", tx.UpdateCredentialState(ctx, "a", store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: "va", PendingVersionID: "vp"}))
		return tx.UpdateCredentialState(ctx, "b", store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: "vb"})
	})

	stamps, ok, err := s.CredentialStamps(ctx, store.CredentialFilter{})
	noErr(t, "stamps", err)
	if !ok {
		if stamps != nil {
			t.Errorf("a store without stamps returned %v", stamps)
		}
		got, err := s.ListCredentials(ctx, store.CredentialFilter{Summary: true, Stamps: true})
		noErr(t, "list with stamps", err)
		for _, c := range got {
			if c.Stamp != 0 {
				t.Errorf("a store without stamps gave %s the stamp %d", c.ID, c.Stamp)
			}
		}
		return
	}
	byID := func(f store.CredentialFilter) map[string]uint64 {
		t.Helper()
		stamps, _, err := s.CredentialStamps(ctx, f)
		noErr(t, "stamps", err)
		m := map[string]uint64{}
		var ids []string
		for _, st := range stamps {
			if st.Stamp == 0 {
				t.Errorf("credential %s has the stamp 0", st.ID)
			}
			m[st.ID] = st.Stamp
			ids = append(ids, st.ID)
		}
		listed, err := s.ListCredentials(ctx, f)
		noErr(t, "list", err)
		equal(t, "stamped ids against listed ids", ids, credIDs(listed))
		return m
	}
	byID(store.CredentialFilter{Limit: 2})
	byID(store.CredentialFilter{AfterID: "a", Limit: 1})
	byID(store.CredentialFilter{Consumer: "other"})
	before := byID(store.CredentialFilter{})

	read := func() map[string]store.Credential {
		t.Helper()
		got, err := s.ListCredentials(ctx, store.CredentialFilter{Summary: true, Stamps: true})
		noErr(t, "list summaries with stamps", err)
		m := map[string]store.Credential{}
		for _, c := range got {
			m[c.ID] = c
		}
		return m
	}
	sums := read()
	for id, st := range before {
		if sums[id].Stamp != st {
			t.Errorf("%s: listed with stamp %d, CredentialStamps says %d", id, sums[id].Stamp, st)
		}
	}
	plain, err := s.ListCredentials(ctx, store.CredentialFilter{IDs: []string{"a"}, Summary: true})
	noErr(t, "list a", err)
	if len(plain) != 1 || plain[0].Stamp != 0 {
		t.Errorf("a list without Stamps filled a stamp: %+v", plain)
	}

	// step makes a change and checks which stamps changed.
	step := func(what string, change func(tx store.Tx) error, changed ...string) {
		t.Helper()
		tx(t, s, change)
		after := byID(store.CredentialFilter{IncludeDeleted: true})
		now := read()
		for _, id := range []string{"a", "b", "c"} {
			want := false
			for _, c := range changed {
				want = want || c == id
			}
			if got := after[id] != before[id]; got != want {
				t.Errorf("%s: stamp of %s changed = %v, want %v", what, id, got, want)
			}
			if !want {
				equal(t, what+": unchanged summary of "+id, now[id], sums[id])
			}
		}
		before, sums = after, now
	}
	step("state of a", func(tx store.Tx) error {
		return tx.UpdateCredentialState(ctx, "a", store.CredentialState{Status: store.StatusFailing, CurrentVersionID: "va", PendingVersionID: "vp"})
	}, "a")
	va.ExpiresAt = t0.Add(2 * time.Hour)
	step("expiry of a's current version", func(tx store.Tx) error { return tx.UpdateVersion(ctx, va) }, "a")
	va.Metadata = map[string]string{store.MetaSHA256: "00ff"}
	step("metadata of a's current version", func(tx store.Tx) error { return tx.UpdateVersion(ctx, va) }, "a")
	va.GrantedScope = []string{"repo:read", "admin"}
	step("granted scope of a's current version", func(tx store.Tx) error { return tx.UpdateVersion(ctx, va) }, "a")
	va.Sealed, va.KeyID = []byte("resealed"), "k2"
	step("a's current version sealed again under another key", func(tx store.Tx) error { return tx.UpdateVersion(ctx, va) })
	vp.ExpiresAt, vp.ActivatedAt = t0.Add(3*time.Hour), t0.Add(time.Minute)
	step("a's pending version", func(tx store.Tx) error { return tx.UpdateVersion(ctx, vp) })
	step("labels of b", func(tx store.Tx) error {
		return tx.UpsertCredentialSpec(ctx, credential("b", func(c *store.Credential) { c.Labels = map[string]string{"team": "ops"} }))
	}, "b")
	// A cutover: the old current demoted, the new one promoted, then the
	// credential pointed at it.
	va.Stage, vp.Stage = store.StagePrevious, store.StageCurrent
	step("cutover of a", func(tx store.Tx) error {
		noErr(t, "demote va", tx.UpdateVersion(ctx, va))
		noErr(t, "promote vp", tx.UpdateVersion(ctx, vp))
		return tx.UpdateCredentialState(ctx, "a", store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: "vp"})
	}, "a")
	step("delete c", func(tx store.Tx) error { return tx.DeleteCredential(ctx, "c") }, "c")
	if live := byID(store.CredentialFilter{}); len(live) != 2 || live["c"] != 0 {
		t.Errorf("stamps of live credentials after deleting c: %v", live)
	}
}
