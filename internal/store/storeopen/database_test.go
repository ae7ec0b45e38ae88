package storeopen_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
)

func TestParse(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for value, want := range map[string]storeopen.Database{
		"./rotator.db":          {URL: "sqlite://" + filepath.Join(wd, "rotator.db"), Dialect: store.DialectSQLite, Path: filepath.Join(wd, "rotator.db")},
		"rotator.db":            {URL: "sqlite://" + filepath.Join(wd, "rotator.db"), Dialect: store.DialectSQLite, Path: filepath.Join(wd, "rotator.db")},
		"/var/lib/r/x.db":       {URL: "sqlite:///var/lib/r/x.db", Dialect: store.DialectSQLite, Path: "/var/lib/r/x.db"},
		" /var/lib/x.db ":       {URL: "sqlite:///var/lib/x.db", Dialect: store.DialectSQLite, Path: "/var/lib/x.db"},
		"data/odd?name%.db":     {URL: "sqlite://" + filepath.Join(wd, "data", "odd%3Fname%25.db"), Dialect: store.DialectSQLite, Path: filepath.Join(wd, "data", "odd?name%.db")},
		"sqlite://./rotator.db": {URL: "sqlite://" + filepath.Join(wd, "rotator.db"), Dialect: store.DialectSQLite, Path: filepath.Join(wd, "rotator.db")},
		"sqlite:///abs/x.db?_pragma=cache_size(-2000)": {URL: "sqlite:///abs/x.db?_pragma=cache_size(-2000)", Dialect: store.DialectSQLite, Path: "/abs/x.db"},
		"file:rel.db":      {URL: "sqlite://" + filepath.Join(wd, "rel.db"), Dialect: store.DialectSQLite, Path: filepath.Join(wd, "rel.db")},
		"file:///abs/y.db": {URL: "sqlite:///abs/y.db", Dialect: store.DialectSQLite, Path: "/abs/y.db"},
		"sqlite::memory:":  {URL: "sqlite::memory:", Dialect: store.DialectSQLite},
		"postgres://u:pw@db:5432/rotator?sslmode=verify-full": {URL: "postgres://u:pw@db:5432/rotator?sslmode=verify-full", Dialect: store.DialectPostgres}, // rotator:ignore: test fixture
		"POSTGRESQL://u@db/rotator":                           {URL: "POSTGRESQL://u@db/rotator", Dialect: store.DialectPostgres},
	} {
		got, err := storeopen.Parse(value)
		if err != nil {
			t.Errorf("Parse(%q): %v", value, err)
			continue
		}
		if got != want {
			t.Errorf("Parse(%q) =\n %+v, want\n %+v", value, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for value, wantIn := range map[string]string{
		"":                                  "no database named",
		"mysql://root:hunter2@db:3306/rot":  `unknown database URL scheme "mysql"`,
		"redis://:hunter2@127.0.0.1:6379/0": "valid forms are an SQLite file path",
		"c:rotator.db":                      "written ./NAME",
		"host=db user=u password=hunter2":   "key=value connection string",
		"sqlite://":                         "names no file",
	} {
		_, err := storeopen.Parse(value)
		if err == nil {
			t.Errorf("Parse(%q): no error", value)
			continue
		}
		if !strings.Contains(err.Error(), wantIn) {
			t.Errorf("Parse(%q): error %q does not contain %q", value, err, wantIn)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q): error shows the password: %v", value, err)
		}
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv(storeopen.EnvURL, "")
	d, err := storeopen.Resolve("")
	if err != nil || d.Path != filepath.Join(dir, "rotator.db") || d.From != storeopen.NamedByDefault {
		t.Errorf("Resolve with nothing set = %+v, %v; want ./rotator.db by default", d, err)
	}
	t.Setenv(storeopen.EnvURL, "env.db")
	d, err = storeopen.Resolve("")
	if err != nil || d.Path != filepath.Join(dir, "env.db") || d.From != storeopen.NamedByEnv {
		t.Errorf("Resolve with the variable = %+v, %v; want env.db from %s", d, err, storeopen.EnvURL)
	}
	// The flag wins.
	d, err = storeopen.Resolve("/elsewhere/flag.db")
	if err != nil || d.Path != "/elsewhere/flag.db" || d.From != storeopen.NamedByFlag {
		t.Errorf("Resolve with the flag = %+v, %v; want /elsewhere/flag.db from --database", d, err)
	}
	if d.KeyFile() != "/elsewhere/flag.db.key" || d.LockFile() != "/elsewhere/flag.db.lock" || d.String() != "/elsewhere/flag.db" {
		t.Errorf("key file %q, lock file %q, name %q", d.KeyFile(), d.LockFile(), d.String())
	}
	t.Setenv(storeopen.EnvURL, "mysql://u:hunter2@h/db")
	if _, err := storeopen.Resolve(""); err == nil || !strings.Contains(err.Error(), storeopen.EnvURL) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Resolve of a bad variable: %v; want an error naming %s without the password", err, storeopen.EnvURL)
	}
	pg, err := storeopen.Resolve("postgres://u:hunter2@h/db")
	if err != nil || pg.KeyFile() != "" || pg.LockFile() != "" || strings.Contains(pg.String(), "hunter2") {
		t.Errorf("Postgres: %+v (%v), key file %q, lock file %q, name %q", pg, err, pg.KeyFile(), pg.LockFile(), pg.String())
	}
}

// OpenExisting does not create a missing SQLite file; Open does.
func TestOpenExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "rotator.db")
	d, err := storeopen.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.OpenExisting(t.Context())
	if !errors.Is(err, storeopen.ErrNoDatabase) || s != nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenExisting of a missing file = %v, %v; want ErrNoDatabase naming %s", s, err, path)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenExisting created the directory: %v", err)
	}
	if s, err = d.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if s, err = d.OpenExisting(t.Context()); err != nil {
		t.Fatalf("OpenExisting of the created file: %v", err)
	}
	_ = s.Close()
}
