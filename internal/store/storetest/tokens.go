package storetest

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// testAPITokens: tokens round-trip (hash, scopes, times), are found by id
// and by hash, listed oldest first with revoked ones; ids and hashes are
// unique; revoking is once and idempotent; a use moves LastUsedAt forward
// only.
func testAPITokens(t *testing.T, s store.Store, ctx context.Context) {
	hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	a := store.APIToken{ID: "tok_a", Name: "laptop", Hash: hash("a"), Scopes: []string{"consume:github-mcp", "consume:team=platform"},
		CreatedBy: "alice", CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
	b := store.APIToken{ID: "tok_b", Hash: hash("b"), Scopes: []string{"consume:x"}, CreatedAt: t0.Add(time.Second)}

	_, err := s.GetAPIToken(ctx, "tok_a")
	isErr(t, "get before insert", err, store.ErrNotFound)
	list, err := s.ListAPITokens(ctx)
	noErr(t, "list empty", err)
	equal(t, "list empty", len(list), 0)

	tx(t, s, func(tx store.Tx) error {
		noErr(t, "insert b", tx.InsertAPIToken(ctx, b))
		return tx.InsertAPIToken(ctx, a)
	})
	got, err := s.GetAPIToken(ctx, "tok_a")
	noErr(t, "get a", err)
	equal(t, "get a", got, a)
	got, err = s.GetAPITokenByHash(ctx, hash("b"))
	noErr(t, "get b by hash", err)
	equal(t, "get b by hash", got, b)
	_, err = s.GetAPITokenByHash(ctx, hash("c"))
	isErr(t, "get by unknown hash", err, store.ErrNotFound)
	list, err = s.ListAPITokens(ctx)
	noErr(t, "list", err)
	equal(t, "list", list, []store.APIToken{a, b})

	dupID := b
	dupID.Hash = hash("other")
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.InsertAPIToken(ctx, dupID) })
	isErr(t, "insert an existing id", err, store.ErrConflict)
	dupHash := a
	dupHash.ID = "tok_c"
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.InsertAPIToken(ctx, dupHash) })
	isErr(t, "insert an existing hash", err, store.ErrConflict)

	revokedAt := t0.Add(time.Hour)
	tx(t, s, func(tx store.Tx) error { return tx.RevokeAPIToken(ctx, "tok_a", revokedAt) })
	tx(t, s, func(tx store.Tx) error { return tx.RevokeAPIToken(ctx, "tok_a", revokedAt.Add(time.Hour)) })
	got, err = s.GetAPIToken(ctx, "tok_a")
	noErr(t, "get revoked", err)
	equal(t, "revoked at (the first revocation)", got.RevokedAt, revokedAt)
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.RevokeAPIToken(ctx, "tok_none", revokedAt) })
	isErr(t, "revoke an unknown id", err, store.ErrNotFound)

	used := t0.Add(2 * time.Hour)
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "touch", tx.TouchAPIToken(ctx, "tok_b", used))
		noErr(t, "touch earlier", tx.TouchAPIToken(ctx, "tok_b", used.Add(-time.Minute)))
		return tx.TouchAPIToken(ctx, "tok_none", used)
	})
	got, err = s.GetAPIToken(ctx, "tok_b")
	noErr(t, "get touched", err)
	equal(t, "last used", got.LastUsedAt, used)
	equal(t, "revocation of another token", got.RevokedAt, time.Time{})
}
