package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// Config describes a database to New.
type Config struct {
	// Dialect selects the SQL dialect.
	Dialect store.Dialect
	// DB runs statements and starts transactions.
	DB DB
	// Handle is returned by Store.Handle (*pgxpool.Pool or *sql.DB).
	Handle any
	// Classify tells constraint violations and transient errors apart.
	Classify Classifier
	// Migrate applies the dialect's migrations.
	Migrate func(ctx context.Context) error
	// MigrationLock, if set, takes the lock that Store.Migrate holds while
	// it applies the dialect's migrations and the caller's: one process of
	// those sharing the database at a time. It waits for another holder
	// (bounded by ctx and its own limit) and returns a function that
	// releases the lock.
	MigrationLock func(ctx context.Context) (release func() error, err error)
	// Close releases the connections.
	Close func() error
	// Now is the clock used for timestamps the caller leaves zero; nil
	// means time.Now.
	Now func() time.Time
	// MaxTxAttempts bounds how often InTx runs a transaction that failed
	// with a transient error; 0 means 5.
	MaxTxAttempts int
}

// Store is a store.Store over a Config.
type Store struct {
	reader
	cfg Config
	// changes counts the transactions that committed (or tried to) through
	// this Store, but InAuditTx's: ChangeMark.Local.
	changes atomic.Uint64
}

// New returns a Store over cfg.
func New(cfg Config) *Store {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxTxAttempts <= 0 {
		cfg.MaxTxAttempts = 5
	}
	s := &Store{cfg: cfg}
	s.reader = reader{s: s, c: cfg.DB}
	return s
}

// Dialect names the implementation.
func (s *Store) Dialect() store.Dialect { return s.cfg.Dialect }

// Migrate applies every pending migration, then runs each of also, under
// the migration lock (see store.Store).
func (s *Store) Migrate(ctx context.Context, also ...func(ctx context.Context) error) (err error) {
	if s.cfg.MigrationLock != nil {
		release, err := s.cfg.MigrationLock(ctx)
		if err != nil {
			return fmt.Errorf("migrate %s database: %w", s.cfg.Dialect, err)
		}
		defer func() {
			if rerr := release(); rerr != nil {
				err = errors.Join(err, fmt.Errorf("migrate %s database: releasing the migration lock: %w", s.cfg.Dialect, rerr))
			}
		}()
	}
	if err := s.cfg.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s database: %w", s.cfg.Dialect, err)
	}
	for _, fn := range also {
		if err := fn(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Handle returns the driver's pool (*pgxpool.Pool or *sql.DB).
func (s *Store) Handle() any { return s.cfg.Handle }

// Close releases the connections.
func (s *Store) Close() error {
	if s.cfg.Close == nil {
		return nil
	}
	return s.cfg.Close()
}

// InTx runs fn in one transaction, committing if fn returns nil and rolling
// back otherwise. A transaction that fails with a transient error
// (serialization failure or deadlock on Postgres, busy on SQLite) is run
// again, up to Config.MaxTxAttempts times with jittered exponential backoff.
//
// On SQLite the store has a single connection: inside fn use only tx, never
// the Store itself, or fn waits for the connection it holds.
func (s *Store) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.retryTx(ctx, s.cfg.DB.Begin, fn)
}

// InAuditTx is InPipelinedTx for fn that only reads and appends audit
// events (store.ChangeTracker): its commit is not counted as a change.
func (s *Store) InAuditTx(ctx context.Context, fn func(tx store.AuditTx) error) error {
	begin := s.cfg.DB.Begin
	if p, ok := s.cfg.DB.(PipeDB); ok {
		begin = func(ctx context.Context) (TxConn, error) { return p.BeginPipe(ctx) }
	}
	return s.retryTx(ctx, begin, func(tx store.Tx) error {
		tx.(*Tx).audit = true
		return fn(tx.(*Tx))
	})
}

// ChangesExact reports whether ChangeMark sees the commits of other
// connections too: on SQLite it does (PRAGMA data_version).
func (s *Store) ChangesExact() bool { return !s.dialect().pg() }

// ChangeMark returns the store's store.ChangeMark as tx sees it: the
// count of this Store's commits, then (SQLite) the connection's
// data_version, which another connection's commit changes. On SQLite no
// commit of this Store can come in between, since tx holds its only
// connection.
func (tx *Tx) ChangeMark(ctx context.Context) (store.ChangeMark, error) {
	m := store.ChangeMark{Local: tx.s.changes.Load()}
	if tx.s.dialect().pg() {
		return m, nil
	}
	if err := tx.queryOne(ctx, "PRAGMA data_version", nil, &m.Others); err != nil {
		return store.ChangeMark{}, fmt.Errorf("read data_version: %w", err)
	}
	return m, nil
}

// InPipelinedTx is InTx for a transaction that writes and does not need a
// write's outcome before its next statement. Where the database can
// (Postgres), the begin, the writes and the commit are queued and sent
// together when fn returns: one round trip instead of one per statement (a
// read inside fn sends what is queued before it). An error of a queued write (a conflict, a
// row not found) is then returned by InPipelinedTx, not by the write. On
// SQLite it is InTx.
func (s *Store) InPipelinedTx(ctx context.Context, fn func(tx store.Tx) error) error {
	p, ok := s.cfg.DB.(PipeDB)
	if !ok {
		return s.InTx(ctx, fn)
	}
	begin := func(ctx context.Context) (TxConn, error) { return p.BeginPipe(ctx) }
	return s.retryTx(ctx, begin, fn)
}

// inPipelinedRead is InPipelinedTx for fn that only reads: on Postgres
// without BEGIN and COMMIT (PipeReadDB).
func (s *Store) inPipelinedRead(ctx context.Context, fn func(tx store.Tx) error) error {
	p, ok := s.cfg.DB.(PipeReadDB)
	if !ok {
		return s.InPipelinedTx(ctx, fn)
	}
	begin := func(ctx context.Context) (TxConn, error) { return p.BeginPipeRead(ctx) }
	return s.retryTx(ctx, begin, fn)
}

func (s *Store) retryTx(ctx context.Context, begin func(context.Context) (TxConn, error), fn func(tx store.Tx) error) error {
	backoff := 5 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.inTx(ctx, begin, fn)
		if err == nil || attempt >= s.cfg.MaxTxAttempts || !s.retryable(err) {
			return err
		}
		wait := backoff/2 + rand.N(backoff)
		backoff = min(2*backoff, time.Second)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (transaction gave up after %d attempts: %w)", err, attempt, context.Cause(ctx))
		case <-t.C:
		}
	}
}

func (s *Store) inTx(ctx context.Context, begin func(context.Context) (TxConn, error), fn func(tx store.Tx) error) (err error) {
	conn, err := begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	done := false
	defer func() {
		if !done {
			// fn panicked or failed: roll back even if ctx is cancelled.
			_ = conn.Rollback(context.WithoutCancel(ctx))
		}
	}()
	tx := &Tx{reader: reader{s: s, c: conn}, conn: conn}
	if err := fn(tx); err != nil {
		return err
	}
	done = true
	if !tx.audit {
		// Counted once the commit is over, failed or not, so that a read
		// that starts after InTx returned sees the count moved.
		defer s.changes.Add(1)
	}
	// A PipeTx sends its queue with the COMMIT; a queued write's error is
	// returned here, as its handler made it.
	if err := conn.Commit(ctx); err != nil {
		var ce *CommitError
		if _, piped := conn.(PipeTx); piped && !errors.As(err, &ce) {
			return err
		}
		if kind, constraint := s.classify(err); kind == KindForeignKey || kind == KindUnique {
			// Deferred constraints are checked at commit.
			return fmt.Errorf("commit transaction: %s: %w: %w", constraint, store.ErrConflict, err)
		}
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

func (s *Store) retryable(err error) bool {
	kind, _ := s.classify(err)
	return kind == KindRetry
}

func (s *Store) classify(err error) (ErrorKind, string) {
	if err == nil || s.cfg.Classify == nil {
		return KindOther, ""
	}
	return s.cfg.Classify(err)
}

// now returns the current time as the store keeps it.
func (s *Store) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

func (s *Store) dialect() dialect { return dialect(s.cfg.Dialect) }

// orNow returns t, or the current time when t is zero.
func (s *Store) orNow(t time.Time) time.Time {
	if t.IsZero() {
		return s.now()
	}
	return t
}

// Tx is a store.Tx: the reads of the store plus writes, in one transaction.
type Tx struct {
	reader
	conn TxConn
	// audit: the transaction of InAuditTx, which changes no credential.
	audit bool
}

// Raw returns the driver's transaction (pgx.Tx or *sql.Tx).
func (tx *Tx) Raw() any { return tx.conn.Raw() }

// reader implements store.Reader over a pool or a transaction.
type reader struct {
	s *Store
	c Conn
}

// errNoRows is returned by queryOne when the query returned no row.
var errNoRows = errors.New("no rows")

// queryOne runs a query and scans its first row into dest; errNoRows if
// there is none.
func (r reader) queryOne(ctx context.Context, sql string, args []any, dest ...any) error {
	rows, err := r.c.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return errNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// exec runs a statement and returns the rows affected.
func (r reader) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	return r.c.Exec(ctx, sql, args...)
}

// execThen runs a statement and returns what then makes of its result. In
// a pipelined transaction (InPipelinedTx) it queues the statement and
// returns nil: then runs when the queue is sent, and its error fails the
// transaction.
func (tx *Tx) execThen(ctx context.Context, sql string, args []any, then func(n int64, err error) error) error {
	if p, ok := tx.conn.(PipeTx); ok {
		p.QueueExec(sql, args, then)
		return nil
	}
	n, err := tx.exec(ctx, sql, args...)
	return then(n, err)
}

// updateThen is execThen for an UPDATE that must match a row: in a
// pipelined transaction the server checks that it did
// (rotator_expect_rows), so that a miss fails the transaction before the
// COMMIT queued behind it. then sees 0 rows for a miss, either way.
func (tx *Tx) updateThen(ctx context.Context, sql string, args []any, then func(n int64, err error) error) error {
	p, ok := tx.conn.(PipeTx)
	if !ok {
		n, err := tx.exec(ctx, sql, args...)
		return then(n, err)
	}
	p.QueueQuery(`WITH u AS (`+sql+` RETURNING 1) SELECT rotator_expect_rows(count(*), '') FROM u`, args,
		func(rows Rows) error {
			var n int64
			if rows.Next() {
				if err := rows.Scan(&n); err != nil {
					return then(0, err)
				}
			}
			if err := rows.Err(); err != nil {
				if kind, _ := tx.s.classify(err); kind == KindNoRows {
					return then(0, nil)
				}
				return then(0, err)
			}
			return then(n, nil)
		})
	return nil
}

// queryThen runs a query and returns what then makes of its rows (then
// checks rows.Err, where the query's error is reported). In a pipelined
// transaction it is queued, as with execThen.
func (tx *Tx) queryThen(ctx context.Context, sql string, args []any, then func(rows Rows) error) error {
	if p, ok := tx.conn.(PipeTx); ok {
		p.QueueQuery(sql, args, then)
		return nil
	}
	rows, err := tx.c.Query(ctx, sql, args...)
	if err != nil {
		return then(errRows{err})
	}
	defer rows.Close()
	return then(rows)
}

// errRows are the Rows of a query that failed before returning any.
type errRows struct{ err error }

func (r errRows) Next() bool        { return false }
func (r errRows) Scan(...any) error { return r.err }
func (r errRows) Err() error        { return r.err }
func (r errRows) Close()            {}

var (
	_ store.Store         = (*Store)(nil)
	_ store.Tx            = (*Tx)(nil)
	_ store.ChangeTracker = (*Store)(nil)
	_ store.AuditTx       = (*Tx)(nil)
)
