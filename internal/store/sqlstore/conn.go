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
	// KindNoRows is a write that matched no row, reported by the server
	// (rotator_expect_rows, Postgres) in a pipelined transaction; the
	// Classifier returns the check's detail in place of a constraint.
	KindNoRows
)

// Classifier tells the kind of a (possibly wrapped) database error and, for
// constraint violations, what was violated as the database names it: the
// constraint or index name on Postgres ("runs_one_active_per_credential"),
// the columns on SQLite ("runs.credential_id").
type Classifier func(err error) (kind ErrorKind, constraint string)

// PipeTx is a transaction that queues statements: a queued statement is
// sent, with every statement queued before it, by the next Exec, Query,
// Flush or Commit, in one round trip. Its handler then runs with its
// result, in queue order; the first handler error stops the others and is
// returned by the call that sent the queue.
type PipeTx interface {
	TxConn
	// QueueExec queues a statement; then gets the rows it affected or its
	// error.
	QueueExec(sql string, args []any, then func(rowsAffected int64, err error) error)
	// QueueQuery queues a query; then reads its rows (and checks Err,
	// where the query's error is reported). then must not close them.
	QueueQuery(sql string, args []any, then func(rows Rows) error)
	// Flush sends the queue.
	Flush(ctx context.Context) error
}

// PipeDB is a DB whose transactions can queue statements: BeginPipe queues
// the begin itself, and Commit queues the commit behind the writes, so a
// transaction that only writes takes one round trip.
type PipeDB interface {
	BeginPipe(ctx context.Context) (PipeTx, error)
}

// PipeReadDB is a PipeDB that can also queue reads without BEGIN and
// COMMIT: the queue is sent as one pipeline ending in one Sync, which
// Postgres runs as one implicit transaction, as consistent as an explicit
// READ COMMITTED one (each statement sees the data committed before it
// started) for two statements fewer.
type PipeReadDB interface {
	BeginPipeRead(ctx context.Context) (PipeTx, error)
}

// CommitError is the error of a PipeTx's queued COMMIT itself (a deferred
// constraint), as opposed to an error of a statement queued before it.
type CommitError struct{ Err error }

func (e *CommitError) Error() string { return e.Err.Error() }

func (e *CommitError) Unwrap() error { return e.Err }
