package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// testSealedKeyIDs: the key ids of versions holding a sealed value,
// distinct and sorted, deleted credentials included; retired and discarded
// versions (whose sealed value is cleared) and versions stored without one
// count for nothing.
func testSealedKeyIDs(t *testing.T, s store.Store, ctx context.Context) {
	keys := func(what string, want ...string) {
		t.Helper()
		got, err := s.SealedKeyIDs(ctx)
		noErr(t, what, err)
		if want == nil {
			want = []string{}
		}
		equal(t, what, got, want)
	}
	keys("empty database")

	seed(t, s, credential("c1"), credential("c2"), credential("c3"))
	withKey := func(v store.Version, key string) store.Version {
		v.KeyID = key
		return v
	}
	cur := withKey(version("v1", "c1", store.StageCurrent, t0), "k2")
	pend := withKey(version("v2", "c1", store.StagePending, t0.Add(time.Minute)), "k1")
	prev := withKey(version("w1", "c2", store.StagePrevious, t0), "k3")
	unsealed := withKey(version("w2", "c2", store.StagePending, t0), "k9")
	unsealed.Sealed = nil
	tx(t, s, func(tx store.Tx) error {
		for _, v := range []store.Version{cur, pend, prev, unsealed} {
			noErr(t, "insert "+v.ID, tx.InsertVersion(ctx, v))
		}
		// Many versions under one key: still one id.
		for i := range 50 {
			noErr(t, "insert", tx.InsertVersion(ctx, withKey(version(fmt.Sprintf("x%02d", i), "c3", store.StagePrevious, t0), "k2")))
		}
		return nil
	})
	keys("sealed versions", "k1", "k2", "k3")

	// A deleted credential's versions keep their values (a revival would use
	// them), so their key still counts.
	tx(t, s, func(tx store.Tx) error { return tx.DeleteCredential(ctx, "c2") })
	keys("after deleting c2", "k1", "k2", "k3")

	// Retiring and discarding clear the sealed value; re-sealing moves it.
	prev.Stage = store.StageRetired
	pend.Stage = store.StageDiscarded
	cur.KeyID, cur.Sealed = "k0", []byte("resealed")
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "retire w1", tx.UpdateVersion(ctx, prev))
		noErr(t, "discard v2", tx.UpdateVersion(ctx, pend))
		return tx.UpdateVersion(ctx, cur)
	})
	keys("after retiring, discarding, re-sealing", "k0", "k2")

	// The same inside a transaction.
	tx(t, s, func(tx store.Tx) error {
		got, err := tx.SealedKeyIDs(ctx)
		noErr(t, "in a transaction", err)
		equal(t, "in a transaction", got, []string{"k0", "k2"})
		return nil
	})
}

// testListCredentialsIncludeDeleted: deleted credentials are listed only
// when asked for.
func testListCredentialsIncludeDeleted(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"), credential("c2"), credential("c3"))
	tx(t, s, func(tx store.Tx) error { return tx.DeleteCredential(ctx, "c2") })
	list, err := s.ListCredentials(ctx, store.CredentialFilter{})
	noErr(t, "list", err)
	equal(t, "live", credIDs(list), []string{"c1", "c3"})
	list, err = s.ListCredentials(ctx, store.CredentialFilter{IncludeDeleted: true})
	noErr(t, "list with deleted", err)
	equal(t, "live and deleted", credIDs(list), []string{"c1", "c2", "c3"})
	list, err = s.ListCredentials(ctx, store.CredentialFilter{IncludeDeleted: true, AfterID: "c1", Limit: 1})
	noErr(t, "page with deleted", err)
	equal(t, "page with deleted", credIDs(list), []string{"c2"})
}
