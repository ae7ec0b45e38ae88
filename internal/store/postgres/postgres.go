// Package postgres is the Postgres store (pgx/v5, pgxpool): the production
// store, and the one to use for several replicas. The SQL lives in
// internal/store/sqlstore; this package connects, migrates and adapts pgx.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlstore"
	"github.com/rotatorhq/rotator/migrations"
)

// Store is the Postgres store.
type Store struct {
	*sqlstore.Store
	pool *pgxpool.Pool
	g    *groupCommit // nil: no group commit
}

// Options are what an Option adjusts: the pool configuration parsed from
// the URL, and the store's own settings.
type Options struct {
	Pool *pgxpool.Config
	// GroupCommits is how many group commits (group.go) may be in flight
	// at once; 0 sends every transaction alone.
	GroupCommits int
}

// Option adjusts Options.
type Option func(*Options)

// WithMaxConns sets the pool size.
func WithMaxConns(n int32) Option {
	return func(o *Options) { o.Pool.MaxConns = n }
}

// WithGroupCommits sets Options.GroupCommits (default 4).
func WithGroupCommits(n int) Option {
	return func(o *Options) { o.GroupCommits = max(0, n) }
}

// WithPool adjusts the pool configuration.
func WithPool(fn func(*pgxpool.Config)) Option {
	return func(o *Options) { fn(o.Pool) }
}

// WithSchema puts the store's tables in schema (which must exist) by
// setting the search_path of every connection. A URL parameter
// ?search_path=name does the same.
func WithSchema(schema string) Option {
	return func(o *Options) {
		o.Pool.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	}
}

// Open connects to the database at url (postgres://user:pass@host:port/db?
// sslmode=...; any pgx connection string) and checks that it answers. The
// pool holds max(16, 4 × GOMAXPROCS) connections, at most 64, unless the URL
// sets pool_max_conns or an option sets MaxConns. Errors never include the
// password.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn redacts the password in its parse errors.
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = int32(min(64, max(16, 4*runtime.GOMAXPROCS(0))))
	}
	o := Options{Pool: cfg, GroupCommits: groupCommitters}
	for _, opt := range opts {
		opt(&o)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", sqlstore.RedactURL(url), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", sqlstore.RedactURL(url), err)
	}
	db := poolConn{p: pool}
	if o.GroupCommits > 0 {
		db.g = newGroupCommit(pool, o.GroupCommits)
	}
	s := &Store{pool: pool, g: db.g}
	s.Store = sqlstore.New(sqlstore.Config{
		Dialect:  store.DialectPostgres,
		DB:       db,
		Handle:   pool,
		Classify: classify,
		Migrate:  s.migrate,
		// The lock is taken on a connection of its own (see migrationLock).
		MigrationLock: s.migrationLock,
		Close: func() error {
			if db.g != nil {
				db.g.close()
			}
			pool.Close()
			return nil
		},
	})
	return s, nil
}

// GroupCommits returns how many group commits the store sent and how many
// transactions they held (group.go); zeros without group commit.
func (s *Store) GroupCommits() (groups, transactions int64) {
	if s.g == nil {
		return 0, 0
	}
	return s.g.stats()
}

// Pool returns the connection pool (also returned by Handle).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// migrationLockWait bounds how long Migrate waits for another process's
// migrations, and migrationLockPoll is how often it asks for the lock.
const (
	migrationLockWait = 5 * time.Minute
	migrationLockPoll = 100 * time.Millisecond
)

// migrationLock takes the session advisory lock under which Migrate applies
// rotator's migrations and the caller's (River's), so that replicas starting
// together on an empty database migrate one after another. The lock is held
// by a connection of its own, outside the pool, so that the migrations have
// the pool's connections (even pool_max_conns=1) to work on. Its id derives
// from the schema, so stores in different schemas of one database migrate
// independently; it is the id earlier versions gave goose's session locker,
// so a replica of an earlier version migrating at the same time waits too.
func (s *Store) migrationLock(ctx context.Context) (func() error, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("connecting for the migration lock: %w", err)
	}
	closeConn := func() error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return conn.Close(cctx)
	}
	var schema *string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return nil, errors.Join(fmt.Errorf("read current schema: %w", err), closeConn())
	}
	if schema == nil {
		return nil, errors.Join(errors.New("no schema to migrate: the search_path names no existing schema"), closeConn())
	}
	id := migrationLockID(*schema)
	wctx, cancel := context.WithTimeoutCause(ctx, migrationLockWait,
		fmt.Errorf("another process held the migration lock (advisory lock %d) for %s", id, migrationLockWait))
	defer cancel()
	for {
		var ok bool
		if err := conn.QueryRow(wctx, "SELECT pg_try_advisory_lock($1)", id).Scan(&ok); err != nil {
			if c := context.Cause(wctx); c != nil {
				err = c
			}
			return nil, errors.Join(fmt.Errorf("taking the migration lock: %w", err), closeConn())
		}
		if ok {
			break
		}
		t := time.NewTimer(migrationLockPoll)
		select {
		case <-wctx.Done():
			t.Stop()
			return nil, errors.Join(fmt.Errorf("taking the migration lock: %w", context.Cause(wctx)), closeConn())
		case <-t.C:
		}
	}
	return func() error {
		// Closing the session releases the lock; unlocking first says so
		// to the server at once.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, err := conn.Exec(cctx, "SELECT pg_advisory_unlock($1)", id)
		return errors.Join(err, closeConn())
	}, nil
}

// migrationLockID is the advisory lock id of the migrations of a schema.
func migrationLockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("rotator migrations in schema " + schema))
	return int64(h.Sum64() >> 1)
}

// migrate applies the embedded migrations with goose. Store.Migrate holds
// the migration lock around it.
func (s *Store) migrate(ctx context.Context) (err error) {
	db := stdlib.OpenDBFromPool(s.pool)
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.Postgres,
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		_ = db.Close()
		return err
	}
	defer func() { err = errors.Join(err, p.Close()) }() // closes db, not the pool
	if _, err := p.Up(ctx); err != nil {
		return err
	}
	return nil
}

// classify tells unique and foreign-key violations and transient errors
// apart by SQLSTATE.
func classify(err error) (sqlstore.ErrorKind, string) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return sqlstore.KindOther, ""
	}
	switch pgErr.Code {
	case "23505": // unique_violation
		return sqlstore.KindUnique, pgErr.ConstraintName
	case "23503": // foreign_key_violation
		return sqlstore.KindForeignKey, pgErr.ConstraintName
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return sqlstore.KindRetry, ""
	case "RTR01": // rotator_expect_rows (migration 00002)
		return sqlstore.KindNoRows, pgErr.Message
	}
	return sqlstore.KindOther, ""
}

// poolConn adapts a pgxpool.Pool to sqlstore.DB.
type poolConn struct {
	p *pgxpool.Pool
	g *groupCommit // nil: no group commit
}

// Exec runs a statement and returns the rows it affected.
func (c poolConn) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := c.p.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

// Query runs a query.
func (c poolConn) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	return c.p.Query(ctx, sql, args...)
}

// Begin starts a transaction.
func (c poolConn) Begin(ctx context.Context) (sqlstore.TxConn, error) {
	tx, err := c.p.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return txConn{tx}, nil
}

// BeginPipe starts a transaction whose BEGIN is queued with its first
// statements: nothing is sent until the first Exec, Query, Flush or Commit,
// and Commit queues the COMMIT behind the last statements. A transaction
// that only writes is one round trip.
func (c poolConn) BeginPipe(context.Context) (sqlstore.PipeTx, error) {
	p := &pipeTx{pool: c.p, g: c.g, b: &pgx.Batch{}}
	p.b.Queue("BEGIN")
	return p, nil
}

// BeginPipeRead starts a pipeline of reads with no BEGIN and no COMMIT:
// Commit sends the queue, which the server runs as one implicit
// transaction (one Sync ends the batch).
func (c poolConn) BeginPipeRead(context.Context) (sqlstore.PipeTx, error) {
	return &pipeTx{pool: c.p, b: &pgx.Batch{}, implicit: true}, nil
}

// pipeTx is a sqlstore.PipeTx: statements queued in a pgx.Batch, sent on a
// connection of the pool acquired by the first send and released by Commit
// or Rollback.
type pipeTx struct {
	pool *pgxpool.Pool
	g    *groupCommit  // nil: commit alone
	conn *pgxpool.Conn // nil until the first send
	b    *pgx.Batch
	done bool
	// implicit: no BEGIN and COMMIT are queued (BeginPipeRead).
	implicit bool
}

// QueueExec queues a statement.
func (p *pipeTx) QueueExec(sql string, args []any, then func(int64, error) error) {
	qq := p.b.Queue(sql, args...)
	qq.Fn = func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		return then(tag.RowsAffected(), err)
	}
}

// QueueQuery queues a query.
func (p *pipeTx) QueueQuery(sql string, args []any, then func(sqlstore.Rows) error) {
	qq := p.b.Queue(sql, args...)
	qq.Fn = func(br pgx.BatchResults) error {
		rows, _ := br.Query() // the error is also rows.Err()
		defer rows.Close()
		return then(rows)
	}
}

// Flush sends the queue in one round trip.
func (p *pipeTx) Flush(ctx context.Context) error {
	if p.done {
		return pgx.ErrTxClosed
	}
	if p.b.Len() == 0 {
		return nil
	}
	if p.conn == nil {
		conn, err := p.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		p.conn = conn
	}
	b := p.b
	p.b = &pgx.Batch{}
	return p.conn.SendBatch(ctx, b).Close()
}

// Exec sends the queue, then runs a statement.
func (p *pipeTx) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	if err := p.Flush(ctx); err != nil {
		return 0, err
	}
	tag, err := p.conn.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

// Query sends the queue, then runs a query.
func (p *pipeTx) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	if err := p.Flush(ctx); err != nil {
		return nil, err
	}
	return p.conn.Query(ctx, sql, args...)
}

// errCommitRolledBack: the server answered the COMMIT with ROLLBACK (the
// transaction had failed).
var errCommitRolledBack = errors.New("commit: the transaction was rolled back")

// Commit queues the COMMIT and sends the queue. Every check of the queued
// statements runs on the server (sqlstore's updateThen), so a statement
// that fails stops the COMMIT from running. Should a handler fail after the
// COMMIT ran (a result that cannot be read), the error says so.
func (p *pipeTx) Commit(ctx context.Context) error {
	if p.done {
		return pgx.ErrTxClosed
	}
	if p.implicit { // Flush sends nothing when nothing is queued
		err := p.Flush(ctx)
		p.done = true
		p.release()
		return err
	}
	if p.conn == nil && p.b.Len() == 1 { // only the BEGIN: nothing to do
		p.done = true
		return nil
	}
	if p.conn == nil && p.g != nil {
		// Nothing sent yet: the statements may go with other
		// transactions' (group.go), or else alone below.
		replay, err := p.g.commit(p.b.QueuedQueries[1:])
		if !replay {
			p.done = true
			p.b = &pgx.Batch{}
			return err
		}
	}
	qq := p.b.Queue("COMMIT")
	qq.Fn = func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		if err == nil && tag.String() == "ROLLBACK" {
			err = errCommitRolledBack
		}
		if err != nil {
			return &sqlstore.CommitError{Err: err}
		}
		return nil
	}
	err := p.Flush(ctx)
	if err != nil && p.conn != nil && p.conn.Conn().PgConn().TxStatus() == 'I' {
		var pgErr *pgconn.PgError
		var ce *sqlstore.CommitError
		if !errors.As(err, &pgErr) && !errors.As(err, &ce) {
			err = readAfterCommit(err)
		}
	}
	if err != nil && p.conn != nil && p.conn.Conn().IsClosed() {
		err = settleBroken(ctx, p.pool, p.conn.Conn().PgConn().PID(), err)
	}
	if err != nil {
		return errors.Join(err, p.Rollback(ctx))
	}
	p.done = true
	p.release()
	return nil
}

// readAfterCommit is the error of a result that could not be read from a
// transaction that committed.
func readAfterCommit(err error) error {
	return fmt.Errorf("transaction committed, but reading a result failed: %w", err)
}

// settleWait bounds how long settleBroken waits for a backend to end.
const settleWait = 10 * time.Second

// settleBroken makes the outcome of a transaction whose connection broke
// while its COMMIT was on the way (err) definite before the caller reads
// what was written: the server may still be running it when the client
// learns of the break, so a read made at once could find it neither
// committed nor rolled back, and a caller would take a commit that then
// happens for one that did not. The backend that ran it (pid) is let
// finish what it received (it shows as active, not waiting for the
// client), for at most settleWait; then it is ended with
// pg_terminate_backend, which a COMMIT it has not run yet never runs
// after, and waited for. If that cannot be done, err says so.
func settleBroken(ctx context.Context, pool *pgxpool.Pool, pid uint32, err error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleWait)
	defer cancel()
	finishBy := time.Now().Add(settleWait / 2)
	for {
		var state, wait string
		qerr := pool.QueryRow(ctx, `SELECT coalesce(state, ''), coalesce(wait_event, '') FROM pg_stat_activity WHERE pid = $1`,
			int32(pid)).Scan(&state, &wait)
		if errors.Is(qerr, pgx.ErrNoRows) {
			return err // gone: whatever it did is settled
		}
		if qerr == nil && (state != "active" || wait == "ClientRead" || time.Now().After(finishBy)) {
			_, qerr = pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, int32(pid))
		}
		if qerr == nil {
			t := time.NewTimer(5 * time.Millisecond)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				qerr = ctx.Err()
			}
		}
		return fmt.Errorf("%w (the server's session %d of that transaction could not be ended, so it may still commit: %v)", err, pid, qerr)
	}
}

// Rollback rolls back whatever was sent and releases the connection; a
// queue never sent is dropped.
func (p *pipeTx) Rollback(ctx context.Context) error {
	p.b = &pgx.Batch{}
	p.done = true
	if p.conn == nil {
		return nil
	}
	defer p.release()
	if p.conn.Conn().PgConn().TxStatus() == 'I' {
		return nil
	}
	_, err := p.conn.Exec(ctx, "ROLLBACK")
	return err
}

// release returns the connection to the pool, which closes it if it is
// still in a transaction (a rollback that failed).
func (p *pipeTx) release() {
	if p.conn != nil {
		p.conn.Release()
		p.conn = nil
	}
}

// Raw returns nil: a pipelined transaction has no pgx.Tx.
func (p *pipeTx) Raw() any { return nil }

// txConn adapts a pgx.Tx to sqlstore.TxConn.
type txConn struct{ tx pgx.Tx }

// Exec runs a statement and returns the rows it affected.
func (c txConn) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := c.tx.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

// Query runs a query.
func (c txConn) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	return c.tx.Query(ctx, sql, args...)
}

// Commit commits the transaction.
func (c txConn) Commit(ctx context.Context) error { return c.tx.Commit(ctx) }

// Rollback rolls the transaction back.
func (c txConn) Rollback(ctx context.Context) error { return c.tx.Rollback(ctx) }

// Raw returns the pgx.Tx.
func (c txConn) Raw() any { return c.tx }

var _ store.Store = (*Store)(nil)
