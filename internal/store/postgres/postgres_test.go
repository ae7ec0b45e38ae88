package postgres_test

import (
	"context"
	neturl "net/url"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/jackc/pgx/v5"

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

func TestOpenErrorsHidePassword(t *testing.T) {
	for _, url := range []string{
		"postgres://rotator:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
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
