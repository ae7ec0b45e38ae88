package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// Migrate applies every pending migration.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.cfg.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s database: %w", s.cfg.Dialect, err)
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
	backoff := 5 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.inTx(ctx, fn)
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

func (s *Store) inTx(ctx context.Context, fn func(tx store.Tx) error) (err error) {
	conn, err := s.cfg.DB.Begin(ctx)
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
	if err := conn.Commit(ctx); err != nil {
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

var (
	_ store.Store = (*Store)(nil)
	_ store.Tx    = (*Tx)(nil)
)
