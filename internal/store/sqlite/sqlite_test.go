package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, url string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Exercise(t, func(t *testing.T) store.Store {
		return open(t, "sqlite://"+filepath.Join(t.TempDir(), "rotator.db"))
	})
}

func TestMigrationLock(t *testing.T) {
	storetest.ExerciseMigrationLock(t, func(t *testing.T, n int) []store.Store {
		url := "sqlite://" + filepath.Join(t.TempDir(), "rotator.db")
		out := make([]store.Store, n)
		for i := range out {
			out[i] = open(t, url)
		}
		return out
	})
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "rotator.db")
	s := open(t, "sqlite://"+path)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("database file mode %o, want 600", mode)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if mode := di.Mode().Perm(); mode != 0o700 {
		t.Errorf("database directory mode %o, want 700", mode)
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
}

func TestOpenPragmas(t *testing.T) {
	s := open(t, "sqlite://"+filepath.Join(t.TempDir(), "rotator.db"))
	ctx := t.Context()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"busy_timeout": "10000",
		"foreign_keys": "1",
		"synchronous":  "1", // NORMAL
	} {
		var got string
		if err := s.DB().QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("pragma %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("pragma %s = %s, want %s", pragma, got, want)
		}
	}
	if n := s.DB().Stats().MaxOpenConnections; n != 1 {
		t.Errorf("MaxOpenConnections = %d, want 1", n)
	}
}

func TestOpenURLs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for url, wantPath := range map[string]string{
		"sqlite://./rel.db":                         "rel.db",
		"sqlite://sub/rel.db":                       filepath.Join("sub", "rel.db"),
		"sqlite://" + filepath.Join(dir, "a.db"):    filepath.Join(dir, "a.db"),
		"file:b.db":                                 "b.db",
		"file://" + filepath.Join(dir, "c.db"):      filepath.Join(dir, "c.db"),
		"sqlite://./p.db?_pragma=cache_size(-2000)": "p.db",
		"sqlite::memory:":                           ":memory:",
	} {
		t.Run(url, func(t *testing.T) {
			s := open(t, url)
			if s.Path() != wantPath {
				t.Errorf("Path() = %q, want %q", s.Path(), wantPath)
			}
			ctx := t.Context()
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			err := s.InTx(ctx, func(tx store.Tx) error {
				return tx.UpsertProvider(ctx, store.Provider{Name: "p", Type: "generated"})
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetProvider(ctx, "p"); err != nil {
				t.Errorf("read back: %v", err)
			}
		})
	}
	for _, url := range []string{"sqlite://", "postgres://x", "rotator.db", "sqlite://a.db?%zz"} {
		t.Run("bad "+url, func(t *testing.T) {
			s, err := sqlite.Open(context.Background(), url)
			if err == nil {
				s.Close()
				t.Fatalf("open %q: no error", url)
			}
			if !strings.Contains(err.Error(), "sqlite") {
				t.Errorf("error %q does not say what failed", err)
			}
		})
	}
}

// TestTwoStoresOneFile checks that two stores (two processes, say the
// service and the CLI) can write the same file.
func TestTwoStoresOneFile(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "rotator.db")
	a, b := open(t, url), open(t, url)
	ctx := t.Context()
	if err := a.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for _, s := range []*sqlite.Store{a, b} {
		go func() {
			var err error
			for i := 0; i < 50 && err == nil; i++ {
				err = s.InTx(ctx, func(tx store.Tx) error {
					return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "x"})
				})
			}
			done <- err
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := a.ScanAuditEvents(ctx, store.AuditFilter{}, func(store.AuditEvent) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Errorf("%d events, want 100", n)
	}
}

func BenchmarkRotations(b *testing.B) {
	s, err := sqlite.Open(b.Context(), "sqlite://"+filepath.Join(b.TempDir(), "rotator.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	storetest.BenchmarkRotations(b, s)
}
