package storetest

import (
	"context"
	"errors"
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

// testProviderState: a credential's sealed provider state is stored,
// replaced (also in a pipelined transaction, as the engine writes it with
// the pending version), absent as ErrNotFound, refused for an unknown
// credential, and its key id counts among the sealed key ids.
func testProviderState(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"), credential("c2"))
	if _, err := s.GetProviderState(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetProviderState before any = %v, want ErrNotFound", err)
	}
	tx(t, s, func(tx store.Tx) error {
		return tx.PutProviderState(ctx, store.ProviderState{CredentialID: "c1", KeyID: "ks1", Sealed: []byte("sealed-1"), UpdatedAt: t0})
	})
	got, err := s.GetProviderState(ctx, "c1")
	noErr(t, "get", err)
	equal(t, "key id", got.KeyID, "ks1")
	equal(t, "sealed", string(got.Sealed), "sealed-1")
	if !got.UpdatedAt.Equal(t0) {
		t.Errorf("UpdatedAt = %s, want %s", got.UpdatedAt, t0)
	}
	err = s.InPipelinedTx(ctx, func(tx store.Tx) error {
		return tx.PutProviderState(ctx, store.ProviderState{CredentialID: "c1", KeyID: "ks2", Sealed: []byte("sealed-2")})
	})
	noErr(t, "replace in a pipelined transaction", err)
	got, err = s.GetProviderState(ctx, "c1")
	noErr(t, "get after replace", err)
	equal(t, "replaced key id", got.KeyID, "ks2")
	equal(t, "replaced sealed", string(got.Sealed), "sealed-2")
	if got.UpdatedAt.IsZero() {
		t.Error("UpdatedAt was not defaulted")
	}
	if _, err := s.GetProviderState(ctx, "c2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetProviderState of c2 = %v, want ErrNotFound", err)
	}
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.PutProviderState(ctx, store.ProviderState{CredentialID: "nobody", KeyID: "ks1", Sealed: []byte("x")})
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutProviderState of an unknown credential = %v, want ErrNotFound", err)
	}
	keys, err := s.SealedKeyIDs(ctx)
	noErr(t, "sealed key ids", err)
	equal(t, "sealed key ids", keys, []string{"ks2"})
}
