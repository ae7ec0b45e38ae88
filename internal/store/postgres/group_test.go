package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/testpg"
)

// groupFixture is a migrated store with credentials c0..c(n-1), each with
// a planned run r<i>, and a tracer counting the batches sent.
type groupFixture struct {
	t     *testing.T
	s     *postgres.Store
	trips *roundTrips
	t0    time.Time
}

func newGroupFixture(t *testing.T, dbURL string, n int) *groupFixture {
	t.Helper()
	f := &groupFixture{t: t, trips: &roundTrips{}, t0: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.s = open(t, dbURL, postgres.WithPool(func(c *pgxpool.Config) { c.ConnConfig.Tracer = f.trips }))
	// A group in flight waits for a row an outside transaction holds for
	// as long as the test holds it (blockGroup).
	postgres.SetGroupLockWait(f.s, time.Minute)
	ctx := t.Context()
	if err := f.s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	err := f.s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.UpsertProvider(ctx, store.Provider{Name: "gen", Type: "generated", CreatedAt: f.t0, UpdatedAt: f.t0}); err != nil {
			return err
		}
		for i := range n {
			id := fmt.Sprintf("c%d", i)
			if err := tx.UpsertCredentialSpec(ctx, store.Credential{ID: id, Provider: "gen", State: store.CredentialState{Status: store.StatusNew}, CreatedAt: f.t0, UpdatedAt: f.t0}); err != nil {
				return err
			}
			if err := tx.InsertRun(ctx, store.Run{ID: fmt.Sprintf("r%d", i), CredentialID: id, Trigger: store.TriggerManual, State: "planned", Active: true, CreatedAt: f.t0, UpdatedAt: f.t0}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// mint is the engine's mint commit for credential i: a version v<i>-<tag>
// inserted, the credential pointed at it, the run advanced from
// fromState (as the engine checks it, on the server).
func (f *groupFixture) mint(i int, tag, fromState string) error {
	ctx := context.Background()
	vid := fmt.Sprintf("v%d-%s", i, tag)
	cid, rid := fmt.Sprintf("c%d", i), fmt.Sprintf("r%d", i)
	return f.s.InPipelinedTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertVersion(ctx, store.Version{ID: vid, CredentialID: cid, Stage: store.StagePending, CreatedAt: f.t0}); err != nil {
			return err
		}
		if err := tx.UpdateCredentialState(ctx, cid, store.CredentialState{Status: store.StatusRotating, PendingVersionID: vid}); err != nil {
			return err
		}
		next := store.Run{ID: rid, CredentialID: cid, Trigger: store.TriggerManual, State: "minted", Active: true,
			CreatedAt: f.t0, UpdatedAt: f.t0.Add(time.Second), NewVersionID: vid}
		return tx.AdvanceRun(ctx, store.RunAdvance{Run: next, FromState: fromState, FromUpdatedAt: f.t0,
			Steps:  []store.Step{{RunID: rid, Seq: 0, Name: "mint", State: "ok"}},
			Events: []store.AuditEvent{{Action: "run.mint", RunID: rid}}})
	})
}

// holdRow has an outside transaction lock credential id's row; it returns
// a pool on another connection and a function that lets the row go.
func (f *groupFixture) holdRow(dbURL, id string) (*pgxpool.Pool, func()) {
	t := f.t
	ctx := t.Context()
	locker, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(locker.Close)
	lock, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, "SELECT 1 FROM credentials WHERE id = $1 FOR UPDATE", id); err != nil {
		t.Fatal(err)
	}
	return locker, func() {
		if err := lock.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForLock waits until a backend of the database waits for a lock and
// returns its pid.
func (f *groupFixture) waitForLock(locker *pgxpool.Pool) int {
	t := f.t
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pids []int
		if err := locker.QueryRow(t.Context(), "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()").Scan(&pids); err != nil {
			t.Fatal(err)
		}
		if len(pids) == 1 {
			return pids[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("the first transaction never waited for the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// blockGroup starts the mint of credential 0 while an outside transaction
// holds its row, so that a group is in flight, and returns a function that
// lets it finish and returns its outcome.
func (f *groupFixture) blockGroup(dbURL string) (release func() error) {
	locker, unlock := f.holdRow(dbURL, "c0")
	first := make(chan error, 1)
	go func() { first <- f.mint(0, "a", "planned") }()
	f.waitForLock(locker)
	return func() error {
		unlock()
		return <-first
	}
}

// gather starts the mints of credentials 1..n-1 (fromState of each from
// from) behind the group in flight, waits until all wait for a group, lets the first finish and returns
// every outcome (index 0: the first's).
func (f *groupFixture) gather(dbURL string, n int, from func(i int) string, tag string) []error {
	t := f.t
	release := f.blockGroup(dbURL)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { errs[i] = f.mint(i, tag, from(i)) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for postgres.PendingGroupMembers(f.s) != n-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d transactions wait for a group, want %d", postgres.PendingGroupMembers(f.s), n-1)
		}
		time.Sleep(time.Millisecond)
	}
	errs[0] = release()
	wg.Wait()
	return errs
}

func (f *groupFixture) run(i int) store.Run {
	r, err := f.s.GetRun(f.t.Context(), fmt.Sprintf("r%d", i))
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *groupFixture) versions() int {
	var n int
	if err := f.s.Pool().QueryRow(f.t.Context(), "SELECT count(*) FROM versions").Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// TestGroupCommit: transactions that come while another is in flight go
// to the server together, as one transaction, and each is written.
func TestGroupCommit(t *testing.T) {
	const n = 10
	dbURL := testpg.New(t)
	f := newGroupFixture(t, dbURL, n)
	b0 := f.trips.batches.Load()
	errs := f.gather(dbURL, n, func(int) string { return "planned" }, "a")
	for i, err := range errs {
		if err != nil {
			t.Errorf("mint %d: %v", i, err)
		}
	}
	if b := f.trips.batches.Load() - b0; b != 2 {
		t.Errorf("sent %d batches, want 2 (the first transaction, then the other %d together)", b, n-1)
	}
	if g, txs := f.s.GroupCommits(); g != 2 || txs != n {
		t.Errorf("GroupCommits() = %d groups of %d transactions, want 2 of %d", g, txs, n)
	}
	for i := range n {
		if r := f.run(i); r.State != "minted" || r.NewVersionID != fmt.Sprintf("v%d-a", i) {
			t.Errorf("run %d after its commit: %s, new version %q", i, r.State, r.NewVersionID)
		}
	}
	if v := f.versions(); v != n {
		t.Errorf("%d versions, want %d", v, n)
	}
}

// TestGroupCommitOneFails: a transaction of a group whose check fails on
// the server (its run moved) fails alone, with the error it has when sent
// alone, and writes nothing; the others of its group are written.
func TestGroupCommitOneFails(t *testing.T) {
	const n, bad = 10, 5
	dbURL := testpg.New(t)
	f := newGroupFixture(t, dbURL, n)
	// Alone, the bad transaction's error is a conflict.
	if err := f.mint(bad, "alone", "verifying"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a mint from the wrong state, alone: %v, want a conflict", err)
	}
	b0 := f.trips.batches.Load()
	errs := f.gather(dbURL, n, func(i int) string {
		if i == bad {
			return "verifying"
		}
		return "planned"
	}, "a")
	for i, err := range errs {
		switch {
		case i == bad && !errors.Is(err, store.ErrConflict):
			t.Errorf("the bad mint in a group: %v, want a conflict", err)
		case i == bad:
			t.Logf("the bad mint in a group: %v", err)
		case err != nil:
			t.Errorf("mint %d: %v", i, err)
		}
	}
	// The first alone, the group that failed, then its nine alone.
	if b := f.trips.batches.Load() - b0; b != 2+n-1 {
		t.Errorf("sent %d batches, want %d", b, 2+n-1)
	}
	for i := range n {
		want := "minted"
		if i == bad {
			want = "planned"
		}
		if r := f.run(i); r.State != want {
			t.Errorf("run %d: %s, want %s", i, r.State, want)
		}
	}
	if v := f.versions(); v != n-1 {
		t.Errorf("%d versions, want %d (none of the bad mint's)", v, n-1)
	}
}

// TestGroupCommitSevered: when a group's connection breaks, the client
// cannot know whether the group committed (the COMMIT may have run): every
// transaction of the group gets an error, and none is sent again, which
// could write it twice or report a conflict that hides its commit. Here
// the group's backend is ended while the group waits for a row, so nothing
// of it was written.
func TestGroupCommitSevered(t *testing.T) {
	const n = 6
	dbURL := testpg.New(t)
	f := newGroupFixture(t, dbURL, n)
	release := f.blockGroup(dbURL)
	locker, unlock3 := f.holdRow(dbURL, "c3")
	var once sync.Once
	unlock3 = func(unlock func()) func() { return func() { once.Do(unlock) } }(unlock3)
	defer unlock3()
	b0 := f.trips.batches.Load()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { errs[i] = f.mint(i, "a", "planned") })
	}
	for postgres.PendingGroupMembers(f.s) != n-1 {
		time.Sleep(time.Millisecond)
	}
	if err := release(); err != nil {
		t.Fatalf("the first mint: %v", err)
	}
	// The group waits for c3's row: end its backend.
	pid := f.waitForLock(locker)
	if _, err := locker.Exec(t.Context(), "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// Sent again, mint 3 waits for its row.
		t.Error("the broken group's transactions did not return: were they sent again?")
		unlock3()
		<-done
	}
	for i := 1; i < n; i++ {
		if errs[i] == nil {
			t.Errorf("mint %d of the broken group: no error, want one (its outcome is unknown)", i)
		}
	}
	t.Logf("mint 1 of the broken group: %v", errs[1])
	if b := f.trips.batches.Load() - b0; b != 1 {
		t.Errorf("sent %d batches after the first, want 1: a group whose outcome is unknown is not sent again", b)
	}
	for i := 1; i < n; i++ {
		if r := f.run(i); r.State != "planned" {
			t.Errorf("run %d: %s, want planned (its group's backend was ended before its COMMIT)", i, r.State)
		}
	}
	if v := f.versions(); v != 1 {
		t.Errorf("%d versions, want 1 (the first mint's)", v)
	}
}

// TestGroupCommitLockWait: a transaction that waits for a row lock (a
// credential an outside transaction holds) holds up the transactions that
// come behind it for no longer than the group's lock wait: its group fails
// and it waits alone.
func TestGroupCommitLockWait(t *testing.T) {
	const n = 10
	dbURL := testpg.New(t)
	f := newGroupFixture(t, dbURL, n)
	postgres.SetGroupLockWait(f.s, 100*time.Millisecond)
	locker, unlock := f.holdRow(dbURL, "c0")
	first := make(chan error, 1)
	go func() { first <- f.mint(0, "a", "planned") }()
	f.waitForLock(locker)
	others := make(chan error, n-1)
	for i := 1; i < n; i++ {
		go func() { others <- f.mint(i, "a", "planned") }()
	}
	timeout := time.After(10 * time.Second)
	for range n - 1 {
		select {
		case err := <-others:
			if err != nil {
				t.Error(err)
			}
		case <-timeout:
			unlock()
			t.Fatal("the other transactions waited for the row only the first needs")
		}
	}
	if r := f.run(0); r.State != "planned" {
		t.Errorf("run 0 while its credential is held: %s, want planned", r.State)
	}
	unlock()
	if err := <-first; err != nil {
		t.Errorf("the first mint, once the row was let go: %v", err)
	}
	for i := range n {
		if r := f.run(i); r.State != "minted" {
			t.Errorf("run %d: %s, want minted", i, r.State)
		}
	}
}
