package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// ExerciseMigrationLock checks the contract of Migrate's also functions:
// they run after the store's own migrations, under the migration lock, so
// that processes migrating one database at once never run them together;
// their error is returned and the lock released. newStores returns n open
// stores on one empty database (not migrated), as n processes would have,
// and closes them at t.Cleanup.
func ExerciseMigrationLock(t *testing.T, newStores func(t *testing.T, n int) []store.Store) {
	t.Helper()
	t.Run("OneAtATime", func(t *testing.T) {
		t.Parallel()
		const n = 4
		stores := newStores(t, n)
		var inside, most, calls atomic.Int32
		errs := make(chan error, n)
		var start sync.WaitGroup
		start.Add(1)
		for _, s := range stores {
			go func() {
				start.Wait()
				errs <- s.Migrate(t.Context(), func(ctx context.Context) error {
					calls.Add(1)
					now := inside.Add(1)
					defer inside.Add(-1)
					for {
						m := most.Load()
						if now <= m || most.CompareAndSwap(m, now) {
							break
						}
					}
					// The store's own migrations are done when also runs.
					if _, err := s.GetCredential(ctx, "none"); !errors.Is(err, store.ErrNotFound) {
						return errors.New("also ran before the store's migrations: " + errString(err))
					}
					time.Sleep(50 * time.Millisecond) // long enough for an unlocked peer to overlap
					return nil
				})
			}()
		}
		start.Done()
		for range n {
			if err := <-errs; err != nil {
				t.Errorf("migrate: %v", err)
			}
		}
		if c := calls.Load(); c != n {
			t.Errorf("also ran %d times, want %d (once per Migrate)", c, n)
		}
		if m := most.Load(); m != 1 {
			t.Errorf("%d Migrate calls ran their also functions at the same time, want 1 (the migration lock)", m)
		}
	})
	t.Run("ErrorReleasesLock", func(t *testing.T) {
		t.Parallel()
		stores := newStores(t, 2)
		boom := errors.New("canary migration failure")
		second := false
		err := stores[0].Migrate(t.Context(),
			func(context.Context) error { return boom },
			func(context.Context) error { second = true; return nil })
		if !errors.Is(err, boom) {
			t.Fatalf("Migrate returned %v, want the also function's error", err)
		}
		if second {
			t.Error("the also function after the failing one ran")
		}
		// The lock was released: another store migrates at once.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := stores[1].Migrate(ctx); err != nil {
			t.Fatalf("migrate after a failed migrate: %v", err)
		}
	})
	t.Run("WaitIsBounded", func(t *testing.T) {
		t.Parallel()
		stores := newStores(t, 2)
		holding, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- stores[0].Migrate(t.Context(), func(context.Context) error {
				close(holding)
				<-release
				return nil
			})
		}()
		<-holding
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		err := stores[1].Migrate(ctx, func(context.Context) error {
			t.Error("also ran while another store held the migration lock")
			return nil
		})
		close(release)
		if err == nil {
			t.Error("Migrate returned nil while another store held the lock past its context's deadline")
		}
		if err := <-done; err != nil {
			t.Errorf("migrate holding the lock: %v", err)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
