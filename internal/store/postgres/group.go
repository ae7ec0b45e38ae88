package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Group commit: the pipelined write transactions (sqlstore's
// InPipelinedTx) of concurrent callers are sent as one transaction, so that
// under load Postgres runs one BEGIN, one COMMIT and one WAL flush for many
// of them, and the round trips and connections they take fall with it.
//
// A transaction is eligible when everything it does was queued: nothing was
// sent before its Commit (a read inside the transaction sends the queue,
// and that transaction commits alone, as before). Every check of a queued
// statement runs on the server (sqlstore's updateThen), so a member whose
// check fails makes the group's transaction fail before its COMMIT: then
// nothing of the group was written, and each member is sent again alone, in
// its own transaction, which gives it its own outcome. A member's result
// handlers may therefore run twice; they only read results and check them.
// When the group's outcome is unknown (the connection broke), each member
// gets the error, as a transaction sent alone would.
//
// Members are taken in the order they came. One group is in flight while
// fewer than groupMaxMembers transactions wait, so that a lone transaction
// goes at once and, under load, the others gather behind the group in
// flight; more groups (up to the configured number) go in parallel only
// when as many as a full group wait.
type groupCommit struct {
	pool *pgxpool.Pool
	max  int // groups in flight
	// lockWait is the group's lock_timeout (groupLockWait).
	lockWait time.Duration

	mu       sync.Mutex
	pending  []*groupMember
	inFlight int
	closed   bool
	idle     sync.Cond // signalled when inFlight falls to 0 after closed

	groups, members atomic.Int64
}

// groupMember is one transaction's part of a group.
type groupMember struct {
	// queries are its statements, without its BEGIN and COMMIT.
	queries []*pgx.QueuedQuery
	done    chan struct{}
	// After done: err is its outcome when the group committed or its
	// outcome is unknown; replay says that the group did not commit and the
	// member must be sent alone.
	err    error
	replay bool
}

const (
	// groupCommitters is the default number of groups in flight.
	groupCommitters = 4
	// groupMaxMembers bounds the transactions of one group.
	groupMaxMembers = 32
	// groupLockWait bounds how long a group waits for a row lock (a
	// credential being applied, say): longer, and the group fails and its
	// members go alone, so that only the one that needs the lock waits for
	// it and the others are not held up behind it.
	groupLockWait = 500 * time.Millisecond
	// groupTimeout bounds a group's round trip. A group's work is not
	// cancelled with any one member's context: the others' writes ride on it.
	groupTimeout = 30 * time.Second
)

// errGroupClosed: the store was closed while a transaction waited to be
// sent; it was not.
var errGroupClosed = errors.New("commit: the store is closed")

func newGroupCommit(pool *pgxpool.Pool, inFlight int) *groupCommit {
	g := &groupCommit{pool: pool, max: inFlight, lockWait: groupLockWait}
	g.idle.L = &g.mu
	return g
}

// close waits for the groups in flight; transactions that come later are
// refused.
func (g *groupCommit) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for g.inFlight > 0 {
		g.idle.Wait()
	}
}

// stats returns the groups sent and the transactions they held.
func (g *groupCommit) stats() (groups, members int64) {
	return g.groups.Load(), g.members.Load()
}

// commit sends queries (a transaction's statements) in a group and reports
// whether the member must be sent alone (replay) or else its outcome. A
// member waits for its group, whose writes it is part of, even when ctx is
// done: its wait is bounded by the groups ahead of it.
func (g *groupCommit) commit(queries []*pgx.QueuedQuery) (replay bool, err error) {
	m := &groupMember{queries: queries, done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false, errGroupClosed
	}
	g.pending = append(g.pending, m)
	var ms []*groupMember
	if g.inFlight == 0 || (g.inFlight < g.max && len(g.pending) >= groupMaxMembers) {
		g.inFlight++
		ms = g.take()
	}
	g.mu.Unlock()
	if ms != nil {
		go g.run(ms)
	}
	<-m.done
	return m.replay, m.err
}

// take removes the next group from pending; g.mu is held.
func (g *groupCommit) take() []*groupMember {
	n := min(len(g.pending), groupMaxMembers)
	ms := slices.Clone(g.pending[:n])
	clear(g.pending[:n])
	g.pending = append(g.pending[:0], g.pending[n:]...)
	return ms
}

// run sends ms, then the groups that gathered meanwhile, until none waits
// or another group in flight will take them. Whatever waits, a group is in
// flight that will take it.
func (g *groupCommit) run(ms []*groupMember) {
	for {
		g.groups.Add(1)
		g.members.Add(int64(len(ms)))
		g.send(ms)
		for _, m := range ms {
			close(m.done)
		}
		g.mu.Lock()
		// Another group in flight gathers what waits, unless a full
		// group does.
		if len(g.pending) == 0 || (g.inFlight > 1 && len(g.pending) < groupMaxMembers) {
			g.inFlight--
			if g.inFlight == 0 {
				g.idle.Broadcast()
			}
			g.mu.Unlock()
			return
		}
		ms = g.take()
		g.mu.Unlock()
	}
}

// send sends ms as one transaction and sets each member's outcome.
func (g *groupCommit) send(ms []*groupMember) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	conn, err := g.pool.Acquire(ctx)
	if err != nil {
		for _, m := range ms {
			m.err = err
		}
		return
	}
	defer conn.Release()
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 2+len(ms)*4)}
	b.Queue("BEGIN")
	b.Queue(fmt.Sprintf("SET LOCAL lock_timeout = %d", g.lockWait.Milliseconds()))
	for _, m := range ms {
		for _, q := range m.queries {
			fn := q.Fn
			gq := b.Queue(q.SQL, q.Arguments...)
			// A handler's error is the member's, and the rest are read on:
			// whether anything was written is the COMMIT's to say.
			gq.Fn = func(br pgx.BatchResults) error {
				var err error
				if fn != nil {
					err = fn(br)
				} else {
					_, err = br.Exec()
				}
				if err != nil && m.err == nil {
					m.err = err
				}
				return nil
			}
		}
	}
	committed := false
	b.Queue("COMMIT").Fn = func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		if err == nil && tag.String() == "COMMIT" {
			committed = true
		}
		return err
	}
	err = conn.SendBatch(ctx, b).Close()
	pc := conn.Conn().PgConn()
	switch {
	case committed:
		for _, m := range ms {
			if m.err != nil {
				m.err = readAfterCommit(m.err)
			}
		}
	case !pc.IsClosed() && (pc.TxStatus() == 'I' || rollback(ctx, conn) == nil):
		// Nothing was written: a member's statement failed (or waited
		// too long for a lock, or the COMMIT failed). Each member goes
		// again alone.
		for _, m := range ms {
			m.err, m.replay = nil, true
		}
	default:
		if err == nil {
			err = errors.New("commit: the group's transaction did not commit")
		}
		if pc.IsClosed() {
			err = settleBroken(ctx, g.pool, pc.PID(), err)
		}
		for _, m := range ms {
			m.err = err
		}
	}
}

// rollback ends conn's failed transaction.
func rollback(ctx context.Context, conn *pgxpool.Conn) error {
	_, err := conn.Exec(ctx, "ROLLBACK")
	if err == nil && conn.Conn().PgConn().TxStatus() != 'I' {
		err = errors.New("rollback left the connection in a transaction")
	}
	return err
}
