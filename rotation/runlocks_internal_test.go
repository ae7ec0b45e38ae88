package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oklog/ulid/v2"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/testpg"
)

// TestRunLocks: the batched run locks grant a free run once, refuse a run
// held by this process or by another session, free a run on unlock, and
// drop every lock when closed; many workers locking at once all get
// their (distinct) runs.
func TestRunLocks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := testpg.New(t)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	l := newRunLocks(st, slog.New(slog.DiscardHandler))
	t.Cleanup(l.close)

	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close(context.Background()) })
	// heldElsewhere: can another session take the run's lock? (It lets go
	// at once when it could.)
	heldElsewhere := func(run string) bool {
		t.Helper()
		var got bool
		if err := other.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, runLockClass, run).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got {
			if _, err := other.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, runLockClass, run); err != nil {
				t.Fatal(err)
			}
		}
		return !got
	}
	run := func() string { return "test-" + ulid.Make().String() }

	a := run()
	unlock, ok := l.lock(ctx, a)
	if !ok {
		t.Fatal("a free run was refused")
	}
	if !heldElsewhere(a) {
		t.Fatal("the lock is not held at the server")
	}
	if _, ok := l.lock(ctx, a); ok {
		t.Fatal("a run this process holds was granted again")
	}
	unlock()
	// The unlock is asynchronous; the next lock request is served after it.
	unlock2, ok := l.lock(ctx, a)
	if !ok {
		t.Fatal("an unlocked run was refused")
	}
	unlock2()

	// Held by another session: refused.
	b := run()
	if _, err := other.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, runLockClass, b); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.lock(ctx, b); ok {
		t.Fatal("a run another session holds was granted")
	}
	if _, err := other.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, runLockClass, b); err != nil {
		t.Fatal(err)
	}

	// Many at once (they batch): every one granted, each held.
	runs := make([]string, 200)
	for i := range runs {
		runs[i] = fmt.Sprintf("%s-%d", run(), i)
	}
	unlocks := make([]func(), len(runs))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var refused int
	for i, r := range runs {
		wg.Go(func() {
			u, ok := l.lock(ctx, r)
			mu.Lock()
			defer mu.Unlock()
			if !ok {
				refused++
				return
			}
			unlocks[i] = u
		})
	}
	wg.Wait()
	if refused > 0 {
		t.Fatalf("%d of %d free runs refused", refused, len(runs))
	}
	for _, r := range runs[:5] {
		if !heldElsewhere(r) {
			t.Fatalf("run %s is not held at the server", r)
		}
	}
	// Close drops the connection and every lock with it.
	l.close()
	// The server frees them when the closed connection's backend exits,
	// a moment after the client hangs up.
	for _, r := range runs[:5] {
		deadline := time.Now().Add(10 * time.Second)
		for heldElsewhere(r) {
			if time.Now().After(deadline) {
				t.Fatalf("run %s is still held 10s after close", r)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// After close, lock neither blocks nor guards.
	if _, ok := l.lock(ctx, run()); !ok {
		t.Fatal("lock after close refused")
	}
	for _, u := range unlocks {
		u() // no-op, must not block
	}
}
