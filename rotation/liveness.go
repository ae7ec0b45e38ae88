package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/store"
)

// The liveness invariant (docs/state_machine.md): every active run has one
// live job, or a live lease, and reaches a terminal state.
//
//   - A job that exhausts its attempts ends its run (GiveUp) before River
//     discards it.
//   - The leader's reconciler finds active runs without a live job (deleted,
//     cancelled, discarded) and resumes them with a new job, or gives up on
//     those whose job was discarded.
//   - On Postgres each worker holds a session advisory lock on the run it
//     executes, on one connection of its process. When a process dies its
//     connection drops and the locks with it; the leader puts the jobs that
//     are marked running but whose run lock is free back in the queue, so
//     another replica resumes them within seconds instead of waiting for
//     River's rescuer.

// runLockClass is the first key of the two-key advisory locks on runs.
const runLockClass = 0x524f54 // "ROT"

// takeOver puts back in the queue the rotate jobs that are marked running
// while nobody holds their run's lock (their process died), and returns
// how many. A job is put back only when two looks, at least minAge apart,
// found it so with the same attempt: a worker that has just finished (its
// lock released, River's completer not yet flushed) is not mistaken for a
// dead one. Postgres only.
func (e *Engine) takeOver(ctx context.Context, minAge time.Duration) (int, error) {
	pool, ok := e.store.Handle().(*pgxpool.Pool)
	if !ok {
		return 0, nil
	}
	rows, err := pool.Query(ctx, `SELECT j.id, j.args->>'run_id', j.attempted_at FROM river_job AS j
WHERE j.state = 'running' AND j.kind = $1 AND j.attempted_at < now() - make_interval(secs => $2)
AND NOT EXISTS (SELECT 1 FROM pg_locks AS l WHERE l.locktype = 'advisory' AND l.objsubid = 2
    AND l.classid = $3::int4::oid AND l.objid = hashtext(j.args->>'run_id')::oid)`,
		RotateArgs{}.Kind(), minAge.Seconds(), runLockClass)
	if err != nil {
		return 0, fmt.Errorf("finding runs of vanished workers: %w", err)
	}
	type orphan struct {
		job int64
		run string
		at  time.Time
	}
	var orphans []orphan
	for rows.Next() {
		var o orphan
		if err := rows.Scan(&o.job, &o.run, &o.at); err != nil {
			rows.Close()
			return 0, err
		}
		orphans = append(orphans, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	now := time.Now()
	e.suspectsMu.Lock()
	prev := e.suspects
	next := make(map[int64]suspect, len(orphans))
	var confirmed []orphan
	for _, o := range orphans {
		p, ok := prev[o.job]
		if ok && p.attemptedAt.Equal(o.at) && now.Sub(p.seen) >= minAge/2 {
			confirmed = append(confirmed, o)
			continue
		}
		if ok && p.attemptedAt.Equal(o.at) {
			next[o.job] = p
		} else {
			next[o.job] = suspect{attemptedAt: o.at, seen: now}
		}
	}
	e.suspects = next
	e.suspectsMu.Unlock()
	n := 0
	for _, o := range confirmed {
		moved, err := makeJobAvailable(ctx, e.store, o.job)
		if err != nil {
			return n, fmt.Errorf("resuming run %s: %w", o.run, err)
		}
		if moved {
			n++
			e.log.Warn("resuming a run whose worker is gone", slog.String("run", o.run), slog.Int64("job", o.job))
		}
	}
	return n, nil
}

// suspect is a job seen running with its run lock free.
type suspect struct {
	attemptedAt, seen time.Time
}

// reconciler resumes or ends active runs that have no live job.
type reconciler struct {
	e *Engine
	// minAge: runs updated more recently are left alone (their job is being
	// inserted or worked).
	minAge time.Duration
	// cursor pages through the active runs, oldest last.
	cursor time.Time
	last   time.Time
	every  time.Duration
}

// reconcilePage is how many active runs one pass looks at.
const reconcilePage = 1000

// Task is the leader task: at most once per interval.
func (r *reconciler) task(ctx context.Context) error {
	if time.Since(r.last) < r.every {
		return nil
	}
	r.last = time.Now()
	_, err := r.pass(ctx)
	return err
}

// pass looks at one page of active runs and returns how many it resumed or
// ended.
func (r *reconciler) pass(ctx context.Context) (int, error) {
	e := r.e
	until := e.now().Add(-r.minAge)
	if !r.cursor.IsZero() && r.cursor.Before(until) {
		until = r.cursor
	}
	runs, err := e.store.ListRuns(ctx, store.RunFilter{ActiveOnly: true, Until: until, Limit: reconcilePage})
	if err != nil {
		return 0, fmt.Errorf("listing active runs: %w", err)
	}
	if len(runs) < reconcilePage {
		r.cursor = time.Time{}
	} else {
		r.cursor = runs[len(runs)-1].CreatedAt
	}
	now := e.now()
	ids := make([]string, 0, len(runs))
	byID := make(map[string]store.Run, len(runs))
	for _, run := range runs {
		if run.UpdatedAt.After(now.Add(-r.minAge)) || (run.Executor != "" && run.LeaseUntil.After(now)) {
			continue
		}
		ids = append(ids, run.ID)
		byID[run.ID] = run
	}
	if len(ids) == 0 {
		return 0, nil
	}
	jobs, err := runJobs(ctx, e.store, ids)
	if err != nil {
		return 0, err
	}
	n := 0
	var resume []job
	for _, id := range ids {
		j, ok := jobs[id]
		if ok && j.live() {
			continue
		}
		run := byID[id]
		if ok && j.State == "discarded" {
			why := fmt.Sprintf("gave up after %d attempts of its job; see the job's errors and the run's steps", j.Attempt)
			if err := e.GiveUp(ctx, id, why); err != nil {
				e.log.Warn("ending a run whose job was discarded failed", slog.String("run", id), slog.String("error", e.opts.Redactor.Scrub(err.Error())))
				continue
			}
			n++
			continue
		}
		state := "missing"
		if ok {
			state = j.State
		}
		e.log.Warn("resuming an active run that had no live job", slog.String("run", id),
			slog.String("credential", run.CredentialID), slog.String("job", state))
		resume = append(resume, job{RunID: id, CredentialID: run.CredentialID, Priority: max(run.Priority, 1)})
	}
	if len(resume) > 0 {
		if e.queue == nil {
			return n, errors.New("reconciler has no queue")
		}
		err := e.store.InTx(ctx, func(tx store.Tx) error { return e.queue.insertRotate(ctx, tx, resume) })
		if err != nil {
			return n, fmt.Errorf("resuming %d run(s): %w", len(resume), err)
		}
		n += len(resume)
	}
	return n, nil
}

// Reconcile runs one reconciler pass now (tests and 'rotator runs resume'
// use it; the service's leader runs it every few seconds) and returns how
// many runs it resumed or ended.
func (e *Engine) Reconcile(ctx context.Context, minAge time.Duration) (int, error) {
	r := &reconciler{e: e, minAge: minAge}
	return r.pass(ctx)
}
