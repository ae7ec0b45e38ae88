package storeopen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
)

// Where a database was named (Database.From).
const (
	NamedByFlag    = "--database"
	NamedByEnv     = EnvURL
	NamedByDefault = "the default"
)

// ErrNoDatabase is returned (wrapped) by OpenExisting when the SQLite file
// a command was pointed at does not exist.
var ErrNoDatabase = errors.New("database does not exist")

// Database is the database a command works on, as named by the --database
// flag, ROTATOR_DATABASE_URL or the default.
type Database struct {
	// URL is what Open takes; an SQLite file is named by its absolute path.
	URL string
	// Dialect is the store implementation the URL selects.
	Dialect store.Dialect
	// Path is the absolute path of an SQLite database file; empty for
	// Postgres and for an in-memory SQLite database.
	Path string
	// From says where the database was named: NamedByFlag, NamedByEnv or
	// NamedByDefault.
	From string
}

// Resolve returns the database named by flag (the --database value), or
// when that is empty by ROTATOR_DATABASE_URL, or else DefaultURL
// (./rotator.db). The value is interpreted by Parse.
func Resolve(flag string) (Database, error) {
	value, from := strings.TrimSpace(flag), NamedByFlag
	if value == "" {
		value, from = strings.TrimSpace(os.Getenv(EnvURL)), NamedByEnv
	}
	if value == "" {
		value, from = DefaultURL, NamedByDefault
	}
	d, err := Parse(value)
	if err != nil {
		if from != NamedByDefault {
			err = fmt.Errorf("%s: %w", from, err)
		}
		return Database{}, err
	}
	d.From = from
	return d, nil
}

// schemeRE matches the scheme of a URL (RFC 3986: a letter, then letters,
// digits, +, - or .), followed by its colon.
var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// Parse interprets a --database or ROTATOR_DATABASE_URL value:
//
//	postgres://user:pass@host:5432/db, postgresql://...     Postgres
//	sqlite://./rotator.db, sqlite:///abs/x.db, file:x.db    an SQLite file
//	sqlite::memory:                                         SQLite in memory
//	./rotator.db, /abs/x.db, rotator.db                     an SQLite file
//
// A value without a URL scheme is the path of an SQLite file (relative to
// the working directory). Errors never include a password.
func Parse(value string) (Database, error) {
	value = strings.TrimSpace(value)
	scheme := ""
	if m := schemeRE.FindString(value); m != "" {
		scheme = strings.ToLower(strings.TrimSuffix(m, ":"))
	}
	switch scheme {
	case "postgres", "postgresql":
		return Database{URL: value, Dialect: store.DialectPostgres}, nil
	case "sqlite", "file":
		path, err := sqlite.FilePath(value)
		if err != nil {
			return Database{}, err
		}
		if path == ":memory:" {
			return Database{URL: value, Dialect: store.DialectSQLite}, nil
		}
		_, query, _ := strings.Cut(value, "?")
		return sqliteFile(path, query)
	case "":
		if value == "" {
			return Database{}, errors.New("no database named; give an SQLite file (./rotator.db) or a postgres:// URL")
		}
		if strings.ContainsAny(value, " \t") && strings.Contains(value, "=") {
			return Database{}, fmt.Errorf("%q looks like a key=value connection string, which is not supported; "+
				"write it as a URL: postgres://user:pass@host:5432/db?sslmode=verify-full", Redact(value))
		}
		return sqliteFile(value, "")
	}
	return Database{}, fmt.Errorf("%q: unknown database URL scheme %q; valid forms are an SQLite file path "+
		"(./rotator.db, /abs/path.db), sqlite://./rotator.db, sqlite:///abs/path.db, file:path.db, sqlite::memory:, "+
		"postgres://user:pass@host:5432/db and postgresql://...; a file whose name contains ':' is written ./NAME",
		Redact(value), scheme)
}

// sqliteFile is the Database of an SQLite file at path, with the driver
// parameters in query.
func sqliteFile(path, query string) (Database, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Database{}, fmt.Errorf("database path %s: %w", path, err)
	}
	// Escape what sqlite.Open would take for a query or an escape.
	url := "sqlite://" + strings.NewReplacer("%", "%25", "?", "%3F").Replace(abs)
	if query != "" {
		url += "?" + query
	}
	return Database{URL: url, Dialect: store.DialectSQLite, Path: abs}, nil
}

// String names the database for messages: the file of an SQLite database,
// else the URL without its password.
func (d Database) String() string {
	if d.Path != "" {
		return d.Path
	}
	return Redact(d.URL)
}

// KeyFile is where a master key is generated for an SQLite database
// (<file>.key), or "" for Postgres and in-memory databases.
func (d Database) KeyFile() string {
	if d.Path == "" {
		return ""
	}
	return d.Path + ".key"
}

// LockFile is the file `rotator serve` locks beside an SQLite database
// (<file>.lock), or "" for Postgres and in-memory databases.
func (d Database) LockFile() string {
	if d.Path == "" {
		return ""
	}
	return d.Path + ".lock"
}

// Open opens the database without migrating it, creating an SQLite file
// that does not exist.
func (d Database) Open(ctx context.Context) (store.Store, error) { return Open(ctx, d.URL) }

// OpenExisting is Open for a database that must exist already: an SQLite
// file that does not is an error wrapping ErrNoDatabase, and is not
// created. (Whether a Postgres database exists is known on connecting.)
func (d Database) OpenExisting(ctx context.Context) (store.Store, error) {
	if d.Path != "" {
		if _, err := os.Stat(d.Path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s (named by %s)", ErrNoDatabase, d.Path, d.From)
		}
	}
	return d.Open(ctx)
}
