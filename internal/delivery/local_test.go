package delivery_test

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

func TestLocal(t *testing.T) {
	t.Parallel()
	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
		deliverytest.Exercise(t, func(t *testing.T) deliverytest.Bundle {
			f := deliverytest.NewFixture(t, deliverytest.OpenStore(t, dialect))
			src, err := delivery.NewLocal(delivery.LocalOptions{Store: f.Store, Keyring: f.Keyring, Reader: "uid:1000 (alice)", Poll: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = src.Close() })
			return deliverytest.Bundle{Source: src, Fixture: f, Reader: "uid:1000 (alice)", Via: "local"}
		})
	})
}

// TestLocalWatchesShareOnePoller watches three credentials, two watches
// each, and checks that the source reads the store once per interval for
// all of them, that every watch sees its credential's rotation, and that
// the poller stops when nothing is watched.
func TestLocalWatchesShareOnePoller(t *testing.T) {
	t.Parallel()
	f := deliverytest.NewFixture(t, deliverytest.OpenStore(t, "sqlite"))
	const poll = 50 * time.Millisecond
	src, err := delivery.NewLocal(delivery.LocalOptions{Store: f.Store, Keyring: f.Keyring, Poll: poll})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ids := []string{deliverytest.CredA, deliverytest.CredB, deliverytest.CredNoValue}
	type result struct {
		id, version string
		err         error
	}
	results := make(chan result, 2*len(ids))
	var wg sync.WaitGroup
	for _, id := range ids {
		after := f.CurrentVersion(t, id)
		for range 2 {
			wg.Go(func() {
				cur, err := src.Watch(t.Context(), delivery.WatchRequest{CredentialID: id, AfterVersionID: after})
				results <- result{id, cur.VersionID, err}
			})
		}
	}
	// Let the watches wait through several intervals.
	deadline := time.Now().Add(10 * time.Second)
	for delivery.LocalPolls(src) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the poller made %d queries in 10s", delivery.LocalPolls(src))
		}
		time.Sleep(poll / 2)
	}
	start, t0 := delivery.LocalPolls(src), time.Now()
	time.Sleep(10 * poll)
	polls, intervals := delivery.LocalPolls(src)-start, int64(time.Since(t0)/poll)
	if polls > intervals+1 {
		t.Errorf("%d store queries in %d intervals for %d watches: want at most one per interval", polls, intervals, 2*len(ids))
	}
	want := map[string]string{}
	for _, id := range ids {
		want[id] = f.Rotate(t, id)
	}
	wg.Wait()
	close(results)
	n := 0
	for r := range results {
		n++
		if r.err != nil || r.version != want[r.id] {
			t.Errorf("watch of %s = version %s, %v; want %s", r.id, r.version, r.err, want[r.id])
		}
	}
	if n != 2*len(ids) {
		t.Errorf("%d watches returned; want %d", n, 2*len(ids))
	}
	if delivery.LocalPolling(src) {
		t.Error("the poller still runs with nothing watched")
	}
}
