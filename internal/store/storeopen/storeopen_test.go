package storeopen_test

import (
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

func TestOpenDispatches(t *testing.T) {
	pgURL := testpg.New(t)
	dir := t.TempDir()
	for url, want := range map[string]store.Dialect{
		pgURL: store.DialectPostgres,
		strings.Replace(pgURL, "postgres://", "postgresql://", 1): store.DialectPostgres,
		"sqlite://" + filepath.Join(dir, "a.db"):                  store.DialectSQLite,
		"file:" + filepath.Join(dir, "b.db"):                      store.DialectSQLite,
		"sqlite::memory:":                                         store.DialectSQLite,
	} {
		s, err := storeopen.Open(t.Context(), url)
		if err != nil {
			t.Errorf("open %s: %v", url, err)
			continue
		}
		if got := s.Dialect(); got != want {
			t.Errorf("open %s: dialect %s, want %s", url, got, want)
		}
		if err := s.Migrate(t.Context()); err != nil {
			t.Errorf("migrate %s: %v", url, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close %s: %v", url, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	for url, wantIn := range map[string]string{
		"mysql://root:hunter2@db:3306/rotator": "valid forms are postgres://",
		"rotator.db":                           "valid forms are postgres://",
		"":                                     "valid forms are postgres://",
		"postgres://root:hunter2@127.0.0.1:1/x?connect_timeout=1&sslmode=disable": "postgres",
		"sqlite://": "sqlite",
	} {
		s, err := storeopen.Open(t.Context(), url)
		if err == nil {
			s.Close()
			t.Errorf("open %q: no error", url)
			continue
		}
		if s != nil {
			t.Errorf("open %q: non-nil store beside the error", url)
		}
		if !strings.Contains(err.Error(), wantIn) {
			t.Errorf("open %q: error %q does not contain %q", url, err, wantIn)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("open %q: error shows the password: %v", url, err)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(storeopen.EnvURL, "")
	if got := storeopen.FromEnv(); got != "sqlite://./rotator.db" {
		t.Errorf("FromEnv() unset = %q, want %q", got, storeopen.DefaultURL)
	}
	t.Setenv(storeopen.EnvURL, "postgres://u@h/db")
	if got := storeopen.FromEnv(); got != "postgres://u@h/db" {
		t.Errorf("FromEnv() = %q", got)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://user:pass@host:5432/db?sslmode=disable": "postgres://user:xxxxx@host:5432/db?sslmode=disable",
		"postgres://user@host/db":                           "postgres://user@host/db",
		"postgres://host/db?password=pw&user=u":             "postgres://host/db?password=xxxxx&user=u", // rotator:ignore: test fixture
		"sqlite://./rotator.db":                             "sqlite://./rotator.db",
		"postgres://user:p%40ss@host/db":                    "postgres://user:xxxxx@host/db", // rotator:ignore: test fixture
		"post gres://user:pw@host/db":                       "post gres://user:xxxxx@host/db",
		"host=db user=u password=pw sslmode=disable":        "host=db user=u password=xxxxx sslmode=disable",
		"host=db password='p w' user=u":                     "host=db password=xxxxx user=u",
	} {
		if got := storeopen.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
