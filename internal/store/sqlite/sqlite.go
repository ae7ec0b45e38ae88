// Package sqlite is the embedded store (modernc.org/sqlite, pure Go): the
// default when no database is configured, so rotator runs with no server.
// The SQL lives in internal/store/sqlstore; this package opens the file,
// migrates and adapts database/sql.
//
// The store uses a single connection (River's riversqlite driver, which
// shares it, needs that too), so transactions are serial: inside InTx use
// only the transaction, never the Store, or the call waits for the
// connection the transaction holds. Transactions begin IMMEDIATE, so a
// second process writing the same file waits (busy_timeout, then InTx
// retries) instead of failing midway.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlstore"
	"github.com/rotatorhq/rotator/migrations"
)

// pragmas are set on every connection, busy_timeout first so that the
// others wait for a lock another process holds.
var pragmas = []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"}

// openBusyWait bounds how long Open tries again while the first connection
// finds the file locked.
const openBusyWait = 30 * time.Second

// Store is the SQLite store.
type Store struct {
	*sqlstore.Store
	db   *sql.DB
	path string
}

// Open opens (creating it if needed) the database at url:
//
//	sqlite://./rotator.db      relative to the working directory
//	sqlite:///abs/path.db      absolute
//	file:path.db, file:///abs  the same, as file URLs
//	sqlite::memory:            in memory, gone at Close (tests)
//
// Query parameters are passed to the driver (for example
// ?_pragma=cache_size(-20000)). A new database file is created with mode
// 0600 (it holds sealed secrets), its directory with 0700.
func Open(ctx context.Context, url string) (*Store, error) {
	path, params, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	if path != ":memory:" {
		if err := createFile(path); err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
		}
	}
	q := params
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := ping(ctx, db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	s.Store = sqlstore.New(sqlstore.Config{
		Dialect:  store.DialectSQLite,
		DB:       dbConn{db},
		Handle:   db,
		Classify: classify,
		Migrate:  s.migrate,
		// A file lock beside the database (see migrationLock).
		MigrationLock: s.migrationLock,
		Close:         db.Close,
	})
	return s, nil
}

// DB returns the database (also returned by Handle).
func (s *Store) DB() *sql.DB { return s.db }

// Path returns the database file, or ":memory:".
func (s *Store) Path() string { return s.path }

// FilePath returns the database file a sqlite:// or file: URL names, as
// Open would open it (cleaned, not made absolute), or ":memory:".
func FilePath(url string) (string, error) {
	path, _, err := parseURL(url)
	return path, err
}

// parseURL returns the file path and driver parameters of a store URL.
func parseURL(raw string) (path string, params url.Values, err error) {
	rest, query, _ := strings.Cut(raw, "?")
	params, err = url.ParseQuery(query)
	if err != nil {
		return "", nil, fmt.Errorf("open sqlite store: parameters of %s: %w", sqlstore.RedactURL(raw), err)
	}
	switch {
	case rest == "sqlite::memory:" || rest == "sqlite://:memory:" || rest == "file::memory:":
		return ":memory:", params, nil
	case strings.HasPrefix(rest, "sqlite://"):
		path = strings.TrimPrefix(rest, "sqlite://")
	case strings.HasPrefix(rest, "file://"):
		path = strings.TrimPrefix(rest, "file://")
	case strings.HasPrefix(rest, "file:"):
		path = strings.TrimPrefix(rest, "file:")
	default:
		return "", nil, fmt.Errorf("open sqlite store: %q is not a sqlite URL; use sqlite://./rotator.db, sqlite:///abs/path.db, file:path.db or sqlite::memory:", raw)
	}
	if path == "" {
		return "", nil, fmt.Errorf("open sqlite store: %q names no file; use sqlite://./rotator.db or sqlite:///abs/path.db", raw)
	}
	if path, err = url.PathUnescape(path); err != nil {
		return "", nil, fmt.Errorf("open sqlite store: path of %q: %w", raw, err)
	}
	return filepath.Clean(path), params, nil
}

// createFile creates the database file with mode 0600, and its directory,
// if they do not exist yet. An existing file keeps its mode.
func createFile(path string) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// Migration lock: SQLite's own locks are per transaction, and goose and
// River apply each migration in a transaction of its own, so two processes
// migrating a new file together would both find a migration pending and the
// second would fail ("table ... already exists"). Store.Migrate therefore
// holds an exclusive flock(2) on a file beside the database,
// <database>.migrate.lock, across rotator's migrations and River's. A second
// process waits for it (polling every migrationLockPoll, for at most
// migrationLockWait) and then finds nothing to do. The file is left in
// place: removing a lock file while another process waits on it would let
// two processes hold "the" lock.
const (
	migrationLockWait = 5 * time.Minute
	migrationLockPoll = 50 * time.Millisecond
)

// migrationLockPath returns the lock file of the database at path.
func migrationLockPath(path string) string { return path + ".migrate.lock" }

// migrationLock takes the migration lock; an in-memory database needs none.
func (s *Store) migrationLock(ctx context.Context) (func() error, error) {
	if s.path == ":memory:" || !fileLocks {
		return func() error { return nil }, nil
	}
	path := migrationLockPath(s.path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	wctx, cancel := context.WithTimeoutCause(ctx, migrationLockWait,
		fmt.Errorf("another process held the migration lock %s for %s", path, migrationLockWait))
	defer cancel()
	for {
		ok, err := tryLock(f)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("migration lock %s: %w", path, err)
		}
		if ok {
			return f.Close, nil // closing the file releases the lock
		}
		t := time.NewTimer(migrationLockPoll)
		select {
		case <-wctx.Done():
			t.Stop()
			_ = f.Close()
			return nil, fmt.Errorf("taking the migration lock: %w", context.Cause(wctx))
		case <-t.C:
		}
	}
}

// migrate applies the embedded migrations with goose. Store.Migrate holds
// the migration lock around it.
func (s *Store) migrate(ctx context.Context) error {
	p, err := goose.NewProvider(goose.DialectSQLite3, s.db, migrations.SQLite,
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	// Not p.Close: it would close the store's database.
	_, err = p.Up(ctx)
	return err
}

// ping makes the first connection, trying again while the file is locked.
// Processes opening a new file together can find it so at once, busy
// timeout or not: turning a new file to WAL needs its exclusive lock, and
// SQLite answers SQLITE_BUSY without waiting where waiting could deadlock.
func ping(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(openBusyWait)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		err := db.PingContext(ctx)
		if kind, _ := classify(err); err == nil || kind != sqlstore.KindRetry || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// classify tells constraint violations and busy errors apart by extended
// result code.
func classify(err error) (sqlstore.ErrorKind, string) {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return sqlstore.KindOther, ""
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return sqlstore.KindUnique, constraint(se.Error())
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return sqlstore.KindForeignKey, constraint(se.Error())
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return sqlstore.KindRetry, ""
	}
	return sqlstore.KindOther, ""
}

// constraint extracts what a constraint error names, e.g. "runs.credential_id"
// from "constraint failed: UNIQUE constraint failed: runs.credential_id (2067)".
func constraint(msg string) string {
	const marker = "constraint failed: "
	if i := strings.LastIndex(msg, marker); i >= 0 {
		msg = msg[i+len(marker):]
	}
	if i := strings.LastIndex(msg, " ("); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// dbConn adapts a *sql.DB to sqlstore.DB.
type dbConn struct{ db *sql.DB }

// Exec runs a statement and returns the rows it affected.
func (c dbConn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	query, args, err := positional(query, args)
	if err != nil {
		return 0, err
	}
	return rowsAffected(c.db.ExecContext(ctx, query, args...))
}

// Query runs a query.
func (c dbConn) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	query, args, err := positional(query, args)
	if err != nil {
		return nil, err
	}
	rows, err := c.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

// Begin starts a transaction.
func (c dbConn) Begin(ctx context.Context) (sqlstore.TxConn, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return txConn{tx}, nil
}

// txConn adapts a *sql.Tx to sqlstore.TxConn.
type txConn struct{ tx *sql.Tx }

// Exec runs a statement and returns the rows it affected.
func (c txConn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	query, args, err := positional(query, args)
	if err != nil {
		return 0, err
	}
	return rowsAffected(c.tx.ExecContext(ctx, query, args...))
}

// Query runs a query.
func (c txConn) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	query, args, err := positional(query, args)
	if err != nil {
		return nil, err
	}
	rows, err := c.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

// Commit commits the transaction.
func (c txConn) Commit(context.Context) error { return c.tx.Commit() }

// Rollback rolls the transaction back.
func (c txConn) Rollback(context.Context) error { return c.tx.Rollback() }

// Raw returns the *sql.Tx.
func (c txConn) Raw() any { return c.tx }

// sqlRows adapts *sql.Rows to sqlstore.Rows.
type sqlRows struct{ *sql.Rows }

// Close closes the rows.
func (r sqlRows) Close() { _ = r.Rows.Close() }

// positional rewrites $N placeholders to ? and orders the arguments to
// match, repeating one bound twice. SQLite reads $N too, but looks each up
// by name while parsing and again while binding, which is quadratic in the
// number of parameters (a multi-row INSERT binds thousands); bare ? is
// not. Quoted literals and identifiers are left alone.
func positional(query string, args []any) (string, []any, error) {
	if !strings.Contains(query, "$") {
		return query, args, nil
	}
	var b strings.Builder
	b.Grow(len(query))
	out := make([]any, 0, len(args))
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '$' && i+1 < len(query) && query[i+1] >= '0' && query[i+1] <= '9':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n, err := strconv.Atoi(query[i+1 : j])
			if err != nil || n < 1 || n > len(args) {
				return "", nil, fmt.Errorf("placeholder %s with %d arguments", query[i:j], len(args))
			}
			out = append(out, args[n-1])
			b.WriteByte('?')
			i = j - 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), out, nil
}

func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

var _ store.Store = (*Store)(nil)
