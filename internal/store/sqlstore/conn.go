// Package sqlstore implements store.Store once, in SQL, for both dialects.
//
// The dialect packages (internal/store/postgres, internal/store/sqlite) adapt
// their driver (pgx/v5, database/sql with modernc.org/sqlite) to the small
// DB, TxConn and Rows interfaces below and describe their errors through a
// Classifier; every query lives here. SQL is written with $1-style
// placeholders, which SQLite accepts positionally too. The few differences
// between the dialects (time encoding, list and JSON containment
// predicates, row locks, casts) are spelled out in dialect.go.
package sqlstore

import "context"

// Conn runs statements: a connection pool or a transaction.
type Conn interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, sql string, args ...any) (rowsAffected int64, err error)
	// Query runs a query. The caller closes the Rows.
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
}

// Rows iterates over the result of a query, like pgx.Rows and *sql.Rows.
type Rows interface {
	Next() bool
	// Scan reads the current row into dest. Targets are pointers to basic
	// types or sql.Scanner implementations.
	Scan(dest ...any) error
	Err() error
	Close()
}

// TxConn is a database transaction.
type TxConn interface {
	Conn
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
	// Raw returns the driver's transaction (pgx.Tx or *sql.Tx).
	Raw() any
}

// DB is a connection pool that starts transactions.
type DB interface {
	Conn
	Begin(ctx context.Context) (TxConn, error)
}

// ErrorKind classifies a database error.
type ErrorKind int

// Error kinds.
const (
	// KindOther is any error the store does not treat specially.
	KindOther ErrorKind = iota
	// KindUnique is a violated unique constraint or index.
	KindUnique
	// KindForeignKey is a violated foreign key.
	KindForeignKey
	// KindRetry is a transient failure (serialization failure, deadlock,
	// database busy): the whole transaction may be run again.
	KindRetry
)

// Classifier tells the kind of a (possibly wrapped) database error and, for
// constraint violations, what was violated as the database names it: the
// constraint or index name on Postgres ("runs_one_active_per_credential"),
// the columns on SQLite ("runs.credential_id").
type Classifier func(err error) (kind ErrorKind, constraint string)
