package api_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
)

// socketReader reads credentials over b's socket.
func socketReader(t *testing.T, b *bundle) func(id string) (delivery.Current, error) {
	t.Helper()
	src, err := delivery.NewAPI(delivery.APIOptions{Socket: b.socket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return func(id string) (delivery.Current, error) {
		return src.Read(t.Context(), delivery.ReadRequest{CredentialID: id})
	}
}

// queries returns how many credential queries the recorder's checks made.
func queries(b *bundle) int64 {
	_, _, n := api.RecorderStats(b.srv)
	return n
}

// TestCachedReadsSkipTheQuery: once a cached version is confirmed, reads
// need no credential query while nothing is committed through the store
// (MaxStale an hour here), and a rotation committed through the server's
// own store handle is seen by the very next read, on Postgres too, where
// the bound for other processes' changes is that hour.
func TestCachedReadsSkipTheQuery(t *testing.T) {
	t.Parallel()
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		b := newBundleOpts(t, dialect, []api.Rule{uidRule(t, os.Getuid(), "*")}, "", func(o *api.Options) { o.MaxStale = time.Hour })
		read := socketReader(t, b)
		first, err := read(deliverytest.CredA) // uncached: reads the store
		if err != nil {
			t.Fatal(err)
		}
		if _, err := read(deliverytest.CredA); err != nil { // confirms the entry
			t.Fatal(err)
		}
		before := queries(b)
		for range 5 {
			cur, err := read(deliverytest.CredA)
			if err != nil {
				t.Fatal(err)
			}
			if cur.VersionID != first.VersionID || cur.Value.RevealString() != first.Value.RevealString() {
				t.Fatalf("cached read: version %s, want %s (or another value)", cur.VersionID, first.VersionID)
			}
		}
		if n := queries(b) - before; n != 0 {
			t.Errorf("5 reads of a confirmed version made %d credential queries; want 0", n)
		}

		v2 := b.f.Rotate(t, deliverytest.CredA)
		cur, err := read(deliverytest.CredA)
		if err != nil {
			t.Fatal(err)
		}
		if cur.VersionID != v2 || cur.Value.RevealString() != b.f.Value(t, deliverytest.CredA) {
			t.Errorf("read right after a rotation committed through the server's store: version %s, want %s", cur.VersionID, v2)
		}
	})
}

// TestCachedReadsSeeOtherProcesses: a change committed through another
// handle on the same database (as by another replica or a CLI) is seen at
// once on SQLite (data_version), and on Postgres by every read that starts
// MaxStale after the commit.
func TestCachedReadsSeeOtherProcesses(t *testing.T) {
	t.Parallel()
	const maxStale = 300 * time.Millisecond
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		b := newBundleOpts(t, dialect, []api.Rule{uidRule(t, os.Getuid(), "team=dt")}, "", func(o *api.Options) { o.MaxStale = maxStale })
		read := socketReader(t, b)
		other := b.f.Elsewhere(t)
		// settle waits out the bound where the store cannot see the
		// other handle's commits.
		settle := func() {
			if dialect == "postgres" {
				time.Sleep(maxStale + 10*time.Millisecond)
			}
		}
		for range 3 { // uncached, confirming, served without a query
			if _, err := read(deliverytest.CredA); err != nil {
				t.Fatal(err)
			}
		}

		v2 := other.Rotate(t, deliverytest.CredA)
		settle()
		cur, err := read(deliverytest.CredA)
		if err != nil {
			t.Fatal(err)
		}
		if cur.VersionID != v2 || cur.Value.RevealString() != b.f.Value(t, deliverytest.CredA) {
			t.Errorf("read after a rotation committed elsewhere: version %s, want %s", cur.VersionID, v2)
		}

		for range 2 {
			if _, err := read(deliverytest.CredA); err != nil {
				t.Fatal(err)
			}
		}
		relabel(t, other.Store, deliverytest.CredA, map[string]string{"team": "other"})
		settle()
		if _, err := read(deliverytest.CredA); !errors.Is(err, delivery.ErrForbidden) {
			t.Errorf("read after the labels changed elsewhere: %v; want ErrForbidden", err)
		}
	})
}
