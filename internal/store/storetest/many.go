package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// testCredentialUpsertMany checks UpsertCredentialSpecs across its
// statement chunks: new credentials are created with their state,
// existing ones (and deleted ones, revived) get the new spec and keep
// their state and creation time, and a missing provider fails the call.
func testCredentialUpsertMany(t *testing.T, s store.Store, ctx context.Context) {
	const n = 1234
	existing := credential("c-0001", func(c *store.Credential) { c.Owner = "old" })
	deleted := credential("c-0002")
	seed(t, s, existing, deleted)
	st := store.CredentialState{Status: store.StatusFailing, FailureCount: 4, NextRotationAt: t0.Add(time.Minute)}
	tx(t, s, func(tx store.Tx) error {
		if err := tx.UpdateCredentialState(ctx, existing.ID, st); err != nil {
			return err
		}
		return tx.DeleteCredential(ctx, deleted.ID)
	})
	var cs []store.Credential
	for i := range n {
		cs = append(cs, credential(fmt.Sprintf("c-%04d", i), func(c *store.Credential) {
			c.Owner = fmt.Sprintf("owner-%d", i)
			c.State = store.CredentialState{Status: store.StatusNew, NextRotationAt: t0.Add(time.Duration(i) * time.Second)}
			c.CreatedAt, c.UpdatedAt = t0.Add(time.Hour), t0.Add(time.Hour)
		}))
	}
	tx(t, s, func(tx store.Tx) error { return tx.UpsertCredentialSpecs(ctx, cs) })
	all, err := s.ListCredentials(ctx, store.CredentialFilter{})
	noErr(t, "list", err)
	if len(all) != n {
		t.Fatalf("%d credentials, want %d", len(all), n)
	}
	for i, got := range all {
		want := cs[i]
		switch i {
		case 1: // updated: state and creation time kept
			want.State, want.CreatedAt = st, t0
		case 2: // revived: the same
			want.State, want.CreatedAt = deleted.State, t0
		}
		equal(t, "credential "+want.ID, got, want)
	}
	err = s.InTx(ctx, func(tx store.Tx) error {
		bad := []store.Credential{credential("c-new-1"), credential("c-new-2", func(c *store.Credential) { c.Provider = "missing" })}
		return tx.UpsertCredentialSpecs(ctx, bad)
	})
	isErr(t, "upsert on a missing provider", err, store.ErrNotFound)
	if _, err := s.GetCredential(ctx, "c-new-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed UpsertCredentialSpecs wrote c-new-1 (%v)", err)
	}
}

// testCredentialHeads checks that ListCredentialHeads lists the live
// credentials, by id, with their spec hash, runbook file and update time.
func testCredentialHeads(t *testing.T, s store.Store, ctx context.Context) {
	heads, err := s.ListCredentialHeads(ctx)
	noErr(t, "list heads of none", err)
	if len(heads) != 0 {
		t.Fatalf("heads of an empty store: %v", heads)
	}
	b := credential("b", func(c *store.Credential) {
		c.RunbookFile = "/srv/runbooks/generated.md"
		c.UpdatedAt = t0.Add(time.Minute)
	})
	seed(t, s, credential("c"), b, credential("a"), credential("gone"))
	tx(t, s, func(tx store.Tx) error { return tx.DeleteCredential(ctx, "gone") })
	heads, err = s.ListCredentialHeads(ctx)
	noErr(t, "list heads", err)
	want := []store.CredentialHead{
		{ID: "a", SpecHash: "ch-a", UpdatedAt: t0},
		{ID: "b", SpecHash: "ch-b", RunbookFile: "/srv/runbooks/generated.md", UpdatedAt: t0.Add(time.Minute)},
		{ID: "c", SpecHash: "ch-c", UpdatedAt: t0},
	}
	equal(t, "heads", heads, want)
}
