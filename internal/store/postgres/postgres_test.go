package postgres_test

import (
	"context"
	"fmt"
	neturl "net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/store/storetest"
	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

func open(t *testing.T, url string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), url, opts...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Exercise(t, func(t *testing.T) store.Store { return open(t, testpg.New(t)) })
}

func TestHandleIsPool(t *testing.T) {
	s := open(t, testpg.New(t))
	if s.Handle() != s.Pool() || s.Pool() == nil {
		t.Errorf("Handle() = %v, want the pool", s.Handle())
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		if _, ok := tx.Raw().(pgx.Tx); !ok {
			t.Errorf("Raw() is %T, want pgx.Tx", tx.Raw())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSchemas checks that stores in two schemas of one database are
// independent, and that WithSchema works like ?search_path=.
func TestSchemas(t *testing.T) {
	url := testpg.New(t)
	u, err := neturl.Parse(testpg.New(t))
	if err != nil {
		t.Fatal(err)
	}
	other := u.Query().Get("search_path")
	a := open(t, url)
	b := open(t, url, postgres.WithSchema(other))
	ctx := t.Context()
	for _, s := range []*postgres.Store{a, b} {
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.InTx(ctx, func(tx store.Tx) error {
		return tx.UpsertProvider(ctx, store.Provider{Name: "only-in-a", Type: "generated"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetProvider(ctx, "only-in-a"); err == nil {
		t.Errorf("schema %s sees the provider of the first schema", other)
	}
	var schema string
	if err := b.Pool().QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil || schema != other {
		t.Errorf("current_schema() = %q, %v; want %s", schema, err, other)
	}
}

// TestConcurrentMigrate checks that replicas starting together migrate
// once, under the advisory lock.
func TestConcurrentMigrate(t *testing.T) {
	url := testpg.New(t)
	const n = 4
	errs := make(chan error, n)
	for range n {
		s := open(t, url)
		go func() { errs <- s.Migrate(t.Context()) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("migrate: %v", err)
		}
	}
}

func TestMigrationLock(t *testing.T) {
	storetest.ExerciseMigrationLock(t, func(t *testing.T, n int) []store.Store {
		url := testpg.New(t)
		out := make([]store.Store, n)
		for i := range out {
			// One connection each: the lock has a connection of its own.
			out[i] = open(t, url, postgres.WithMaxConns(1))
		}
		return out
	})
}

func TestOpenErrorsHidePassword(t *testing.T) {
	for _, url := range []string{
		// rotator:ignore: test fixture
		"postgres://rotator:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		// rotator:ignore: test fixture
		"postgres://rotator:s3cr3t-pw@127.0.0.1:5432/db?sslmode=bogus",
	} {
		s, err := postgres.Open(context.Background(), url)
		if err == nil {
			s.Close()
			t.Fatalf("open %s: no error", url)
		}
		if strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func BenchmarkRotations(b *testing.B) {
	s, err := postgres.Open(b.Context(), testpg.New(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	storetest.BenchmarkRotations(b, s)
}

// roundTrips counts what a pool sends: single statements and batches (one
// round trip each).
type roundTrips struct{ queries, batches atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.queries.Add(1)
	return ctx
}

func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.batches.Add(1)
	return ctx
}

func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TestPipelinedTxOneRoundTrip: a pipelined transaction that only writes
// (the engine's commit: a version, the credential, the run) is sent as one
// batch, BEGIN and COMMIT included; InTx sends each statement alone.
func TestPipelinedTxOneRoundTrip(t *testing.T) {
	trips := &roundTrips{}
	s := open(t, testpg.New(t), postgres.WithPool(func(c *pgxpool.Config) { c.ConnConfig.Tracer = trips }))
	ctx := t.Context()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.UpsertProvider(ctx, store.Provider{Name: "gen", Type: "generated", CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		if err := tx.UpsertCredentialSpec(ctx, store.Credential{ID: "c1", Provider: "gen", State: store.CredentialState{Status: store.StatusNew}, CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		return tx.InsertRun(ctx, store.Run{ID: "r1", CredentialID: "c1", Trigger: store.TriggerManual, State: "planned", Active: true, CreatedAt: t0, UpdatedAt: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	commit := func(i int, in func(context.Context, func(store.Tx) error) error) error {
		from := t0.Add(time.Duration(i) * time.Second)
		next := store.Run{ID: "r1", CredentialID: "c1", Trigger: store.TriggerManual, State: "minted", Active: true,
			CreatedAt: t0, UpdatedAt: from.Add(time.Second), NewVersionID: fmt.Sprintf("v%d", i)}
		return in(ctx, func(tx store.Tx) error {
			if err := tx.InsertVersion(ctx, store.Version{ID: next.NewVersionID, CredentialID: "c1", Stage: store.StagePending, CreatedAt: from}); err != nil {
				return err
			}
			if err := tx.UpdateCredentialState(ctx, "c1", store.CredentialState{Status: store.StatusRotating, PendingVersionID: next.NewVersionID}); err != nil {
				return err
			}
			fromState := "minted"
			if i == 0 {
				fromState = "planned"
			}
			return tx.AdvanceRun(ctx, store.RunAdvance{Run: next, FromState: fromState, FromUpdatedAt: from,
				Steps:  []store.Step{{RunID: "r1", Seq: i, Name: "mint", State: "ok"}},
				Events: []store.AuditEvent{{Action: "run.mint", RunID: "r1"}}})
		})
	}
	for i, c := range []struct {
		name             string
		in               func(context.Context, func(store.Tx) error) error
		queries, batches int64
	}{
		{"pipelined", s.InPipelinedTx, 0, 1},
		{"pipelined again (statements cached)", s.InPipelinedTx, 0, 1},
		{"InTx", s.InTx, 5, 0}, // begin, 3 statements, commit
	} {
		q0, b0 := trips.queries.Load(), trips.batches.Load()
		if err := commit(i, c.in); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if q, b := trips.queries.Load()-q0, trips.batches.Load()-b0; q != c.queries || b != c.batches {
			t.Errorf("%s: sent %d statements and %d batches, want %d and %d", c.name, q, b, c.queries, c.batches)
		}
	}
	r, err := s.GetRun(ctx, "r1")
	if err != nil || r.NewVersionID != "v2" {
		t.Errorf("run after three commits: %+v, %v; want new version v2", r, err)
	}
}

// TestStatusChangesAreHOT checks that the engine's status changes that do
// not move a credential into or out of the statuses needing attention
// are HOT updates (migration 00014): they write no index. A change into
// needs_attention is not (credentials_attention_idx gains the credential),
// which shows the count can tell the two apart.
func TestStatusChangesAreHOT(t *testing.T) {
	s := open(t, testpg.New(t))
	ctx := t.Context()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	next := t0.Add(time.Hour)
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.UpsertProvider(ctx, store.Provider{Name: "gen", Type: "generated", CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		if err := tx.UpsertCredentialSpec(ctx, store.Credential{ID: "c1", Provider: "gen", Labels: map[string]string{"team": "a"},
			State: store.CredentialState{Status: store.StatusHealthy, NextRotationAt: next}, CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		return tx.InsertVersion(ctx, store.Version{ID: "v1", CredentialID: "c1", Stage: store.StagePending, CreatedAt: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		st  store.CredentialState
		hot bool
	}{
		{store.CredentialState{Status: store.StatusRotating, NextRotationAt: next}, true},                         // enqueue
		{store.CredentialState{Status: store.StatusRotating, PendingVersionID: "v1", NextRotationAt: next}, true}, // mint
		{store.CredentialState{Status: store.StatusHealthy, NextRotationAt: next}, true},                          // rolled back
		{store.CredentialState{Status: store.StatusNeedsAttention, NextRotationAt: next, FailureCount: 1}, false},
		{store.CredentialState{Status: store.StatusFailing, NextRotationAt: next, FailureCount: 2}, true}, // attention either way
		{store.CredentialState{Status: store.StatusRotating, NextRotationAt: next, FailureCount: 2}, false},
	} {
		err := s.InTx(ctx, func(tx store.Tx) error {
			// The backend's counts not yet reported, this transaction's
			// among them.
			hotUpdates := func() (n int64, err error) {
				err = tx.Raw().(pgx.Tx).QueryRow(ctx, `SELECT pg_stat_get_xact_tuples_hot_updated('credentials'::regclass)`).Scan(&n)
				return n, err
			}
			before, err := hotUpdates()
			if err != nil {
				return err
			}
			if err := tx.UpdateCredentialState(ctx, "c1", c.st); err != nil {
				return err
			}
			after, err := hotUpdates()
			if err != nil {
				return err
			}
			if hot := after - before; (hot == 1) != c.hot {
				t.Errorf("status %s: %d HOT updates, want HOT %v", c.st.Status, hot, c.hot)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("status %s: %v", c.st.Status, err)
		}
	}
}
