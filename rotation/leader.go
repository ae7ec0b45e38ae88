package rotation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/store"
)

// ErrNoQueue is returned by QueueLeader when the database has no job
// queue tables: no 'rotator serve' (which applies River's migrations at
// start) has run on it.
var ErrNoQueue = errors.New("the database has no job queue tables")

// ErrNoElection is returned by QueueLeader for a store with no job queue
// (neither Postgres nor SQLite): no leader can be read there.
var ErrNoElection = errors.New("this kind of database has no job queue leader to read")

// Leader is the row of River's leader table: the 'rotator serve' process
// elected to run the scheduler and the leader-only tasks (the audit
// sealer, notification routing, rescuing runs of dead workers). The
// elected process renews ExpiresAt every few seconds, and deletes the row
// when it stops; a process that died leaves it, expired, until another is
// elected.
type Leader struct {
	Process Process
	// ElectedAt is when its leadership began; ExpiresAt when it ends
	// unless renewed.
	ElectedAt, ExpiresAt time.Time
	// Now is the database's clock when the row was read; Leading is
	// whether ExpiresAt was still ahead of it.
	Now     time.Time
	Leading bool
}

// QueueLeader reads River's leader table on the store's database, on
// the database's clock; ok is false when the table holds no leader, not
// even an expired one. Both dialects elect a leader the same way (River's
// Postgres and SQLite drivers share the elector and its table).
func QueueLeader(ctx context.Context, st store.Store) (l Leader, ok bool, err error) {
	var id string
	switch h := st.Handle().(type) {
	case *pgxpool.Pool:
		err = h.QueryRow(ctx, `SELECT leader_id, elected_at, expires_at, now(), expires_at > now() FROM river_leader ORDER BY expires_at DESC LIMIT 1`).
			Scan(&id, &l.ElectedAt, &l.ExpiresAt, &l.Now, &l.Leading)
	case *sql.DB:
		// River's SQLite driver writes times as text (datetime(..., 'subsec'),
		// UTC); unixepoch reads them in any of SQLite's time formats.
		var elected, expires, now float64
		err = h.QueryRowContext(ctx, `SELECT leader_id, unixepoch(elected_at, 'subsec'), unixepoch(expires_at, 'subsec'), unixepoch('now', 'subsec'),
    unixepoch(expires_at, 'subsec') >= unixepoch('now', 'subsec') FROM river_leader ORDER BY expires_at DESC LIMIT 1`).
			Scan(&id, &elected, &expires, &now, &l.Leading)
		l.ElectedAt, l.ExpiresAt, l.Now = unixSeconds(elected), unixSeconds(expires), unixSeconds(now)
	default:
		return Leader{}, false, fmt.Errorf("%w (a %T store)", ErrNoElection, st.Handle())
	}
	if errors.Is(err, pgx.ErrNoRows) || errors.Is(err, sql.ErrNoRows) {
		return Leader{}, false, nil
	}
	if err != nil {
		if tableMissing(err) {
			return Leader{}, false, fmt.Errorf("reading the queue's leader: %w", ErrNoQueue)
		}
		return Leader{}, false, fmt.Errorf("reading the queue's leader: %w", err)
	}
	l.Process, _ = ParseProcess(id)
	l.ElectedAt, l.ExpiresAt, l.Now = l.ElectedAt.UTC(), l.ExpiresAt.UTC(), l.Now.UTC()
	return l, true, nil
}

func unixSeconds(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC()
}

// ServiceRunning reports whether a Runner holds River's leadership on the
// store's database, which is what a running 'rotator serve' does (its
// leadership expires within seconds of its end): queued runs will be
// executed.
func ServiceRunning(ctx context.Context, st store.Store) (bool, error) {
	_, ok, err := RunningService(ctx, st)
	return ok, err
}

// RunningService returns the process of the 'rotator serve' that leads the
// job queue on the store's database, if one does.
func RunningService(ctx context.Context, st store.Store) (Process, bool, error) {
	l, ok, err := QueueLeader(ctx, st)
	if err != nil || !ok || !l.Leading {
		return Process{}, false, err
	}
	return l.Process, true, nil
}
