package api_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/store"
)

// TestCachedReadsFollowTheStore checks the server's value cache against
// changes the watch poller has not seen yet (its interval is 100ms; each
// read follows the change at once): a read after a credential's labels no
// longer match the reader's rule is refused, and a read after the
// credential was removed is not served.
func TestCachedReadsFollowTheStore(t *testing.T) {
	t.Parallel()
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		b := newBundle(t, dialect, []api.Rule{uidRule(t, os.Getuid(), "team=dt")})
		src, err := delivery.NewAPI(delivery.APIOptions{Socket: b.socket})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		read := func(id string) error {
			_, err := src.Read(t.Context(), delivery.ReadRequest{CredentialID: id})
			return err
		}
		for _, id := range []string{deliverytest.CredA, deliverytest.CredB} {
			if err := read(id); err != nil {
				t.Fatal(err)
			}
			if err := read(id); err != nil { // from the cache
				t.Fatal(err)
			}
		}
		relabel(t, b.f.Store, deliverytest.CredA, map[string]string{"team": "other"})
		if err := read(deliverytest.CredA); !errors.Is(err, delivery.ErrForbidden) {
			t.Errorf("read after the labels changed: %v; want ErrForbidden", err)
		}
		ctx := context.Background()
		err = b.f.Store.InTx(ctx, func(tx store.Tx) error { return tx.DeleteCredential(ctx, deliverytest.CredB) })
		if err != nil {
			t.Fatal(err)
		}
		if err := read(deliverytest.CredB); err == nil {
			t.Error("a removed credential was still served")
		}
	})
}

// relabel gives credential id these labels, through st.
func relabel(t *testing.T, st store.Store, id string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	err := st.InTx(ctx, func(tx store.Tx) error {
		c, err := tx.LockCredential(ctx, id)
		if err != nil {
			return err
		}
		c.Labels = labels
		return tx.UpsertCredentialSpec(ctx, c)
	})
	if err != nil {
		t.Fatal(err)
	}
}
