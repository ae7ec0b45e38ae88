package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/store"
)

// runLocks holds session advisory locks on the runs this process executes,
// on one dedicated Postgres connection (liveness.go). It is nil on SQLite
// (one process).
//
// One goroutine owns the connection and serves lock and unlock requests in
// batches: the requests that arrive while a batch is at the server go
// together in the next one, as one round trip (a pipelined unlock query and
// lock query). With many workers busy, locking a run costs a fraction of a
// round trip instead of two; with one, nothing waits longer than before.
//
// It also refuses a run a worker of this process already holds: a session
// lock is re-entrant, so the server would grant it twice.
type runLocks struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	reqs chan lockReq

	startOnce sync.Once
	closeOnce sync.Once
	quit      chan struct{}
	stopped   chan struct{}
}

// lockBatchMax bounds the requests of one batch.
const lockBatchMax = 1024

// lockQueryTimeout bounds one batch at the server; a batch that times out
// drops the connection (and with it every lock), as a broken one does.
const lockQueryTimeout = 10 * time.Second

type lockReq struct {
	run    string
	unlock bool
	// gen is, for an unlock, the generation of the connection the lock was
	// taken on: a lock of a replaced connection is gone already.
	gen   uint64
	reply chan lockReply // nil for unlocks
}

type lockReply struct {
	ok  bool
	gen uint64 // 0: not held at the server (the database was unreachable)
}

func newRunLocks(st store.Store, log *slog.Logger) *runLocks {
	pool, ok := st.Handle().(*pgxpool.Pool)
	if !ok {
		return nil
	}
	return &runLocks{pool: pool, log: log, reqs: make(chan lockReq, lockBatchMax),
		quit: make(chan struct{}), stopped: make(chan struct{})}
}

// lock takes the run's lock; ok is false when another live process (or
// another worker of this one) holds it, that is executes the run. When the
// database cannot be reached, lock returns ok with a no-op unlock: the run
// goes on without the fast-takeover guard, as it would on River's rescuer
// alone.
func (l *runLocks) lock(ctx context.Context, runID string) (unlock func(), ok bool) {
	if l == nil {
		return func() {}, true
	}
	l.startOnce.Do(func() { go l.serve() })
	reply := make(chan lockReply, 1)
	select {
	case l.reqs <- lockReq{run: runID, reply: reply}:
	case <-l.stopped:
		return func() {}, true
	case <-ctx.Done():
		return func() {}, true
	}
	// Wait for the answer even if ctx ends meanwhile: a lock granted to
	// nobody would stay held until the connection closes.
	var r lockReply
	select {
	case r = <-reply:
	case <-l.stopped:
		return func() {}, true
	}
	if !r.ok {
		return nil, false
	}
	return func() {
		select {
		case l.reqs <- lockReq{run: runID, unlock: true, gen: r.gen}:
		case <-l.stopped: // the connection is closed, the lock gone
		}
	}, true
}

// close drops the connection, and with it every lock still held.
func (l *runLocks) close() {
	if l == nil {
		return
	}
	l.closeOnce.Do(func() {
		l.startOnce.Do(func() { close(l.stopped) }) // never started
		close(l.quit)
		<-l.stopped
	})
}

// serve is the goroutine that owns the lock connection.
func (l *runLocks) serve() {
	s := lockServer{l: l, held: make(map[string]uint64)}
	defer close(l.stopped)
	defer s.drop()
	batch := make([]lockReq, 0, lockBatchMax)
	for {
		batch = batch[:0]
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-l.quit:
			return
		}
		batch = l.fill(batch)
		s.do(batch)
	}
}

// unlockLinger is how long a batch of unlocks only waits for more
// requests: nobody waits for an unlock, and a lock request ends the wait.
const unlockLinger = 20 * time.Millisecond

// fill adds the requests waiting to batch; a batch of unlocks only lingers
// for unlockLinger, or until a lock request comes, to take more with it.
func (l *runLocks) fill(batch []lockReq) []lockReq {
	var linger <-chan time.Time
	for len(batch) < lockBatchMax {
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
			continue
		default:
		}
		if hasLock(batch) {
			return batch
		}
		if linger == nil {
			t := time.NewTimer(unlockLinger)
			defer t.Stop()
			linger = t.C
		}
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-linger:
			return batch
		case <-l.quit:
			return batch
		}
	}
	return batch
}

func hasLock(batch []lockReq) bool {
	for _, r := range batch {
		if !r.unlock {
			return true
		}
	}
	return false
}

// lockServer is serve's state.
type lockServer struct {
	l    *runLocks
	conn *pgxpool.Conn
	gen  uint64
	// held maps the runs locked on the current connection to its
	// generation.
	held map[string]uint64
}

// do serves one batch: unlocks first (a run unlocked and locked again in
// one batch is free for the lock), then locks.
func (s *lockServer) do(batch []lockReq) {
	var unlocks, locks []string
	var lockReqs []lockReq
	for _, r := range batch {
		if r.unlock {
			if g, ok := s.held[r.run]; ok && g == r.gen && r.gen == s.gen {
				delete(s.held, r.run)
				unlocks = append(unlocks, r.run)
			}
			continue
		}
		if _, ok := s.held[r.run]; ok || containsString(locks, r.run) {
			r.reply <- lockReply{ok: false}
			continue
		}
		locks = append(locks, r.run)
		lockReqs = append(lockReqs, r)
	}
	if len(unlocks) == 0 && len(locks) == 0 {
		return
	}
	got, err := s.query(unlocks, locks)
	if err != nil {
		s.l.log.Debug("run locks unavailable", slog.Int("locks", len(locks)), slog.Int("unlocks", len(unlocks)), slog.String("error", err.Error()))
		s.drop()
		for _, r := range lockReqs {
			r.reply <- lockReply{ok: true} // unguarded, see lock
		}
		return
	}
	for i, r := range lockReqs {
		if got[i] {
			s.held[r.run] = s.gen
		}
		r.reply <- lockReply{ok: got[i], gen: s.gen}
	}
}

const (
	unlockRunsSQL = `SELECT count(*) FILTER (WHERE pg_advisory_unlock($1, hashtext(r))) FROM unnest($2::text[]) AS r`
	lockRunsSQL   = `SELECT coalesce(array_agg(pg_try_advisory_lock($1, hashtext(r)) ORDER BY o), '{}') FROM unnest($2::text[]) WITH ORDINALITY AS t(r, o)`
)

// query sends the unlocks and the locks in one round trip and returns, in
// order, whether each lock was granted.
func (s *lockServer) query(unlocks, locks []string) ([]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), lockQueryTimeout)
	defer cancel()
	if s.conn == nil {
		c, err := s.l.pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		s.conn = c
		s.gen++
		clear(s.held)
	}
	b := &pgx.Batch{}
	if len(unlocks) > 0 {
		b.Queue(unlockRunsSQL, runLockClass, unlocks)
	}
	if len(locks) > 0 {
		b.Queue(lockRunsSQL, runLockClass, locks)
	}
	res := s.conn.SendBatch(ctx, b)
	defer res.Close()
	if len(unlocks) > 0 {
		var n int64
		if err := res.QueryRow().Scan(&n); err != nil {
			return nil, fmt.Errorf("unlocking runs: %w", err)
		}
	}
	var got []bool
	if len(locks) > 0 {
		if err := res.QueryRow().Scan(&got); err != nil {
			return nil, fmt.Errorf("locking runs: %w", err)
		}
		if len(got) != len(locks) {
			return nil, fmt.Errorf("locking %d runs: %d answers", len(locks), len(got))
		}
	}
	return got, res.Close()
}

// drop closes the lock connection (never returning it to the pool with
// locks held); the next batch takes a new one.
func (s *lockServer) drop() {
	if s.conn == nil {
		return
	}
	c := s.conn.Hijack()
	s.conn = nil
	clear(s.held)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

func containsString(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
