package rotation

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/store"
)

// jobInfo is the newest queue job of a run.
type jobInfo struct {
	ID          int64
	RunID       string
	State       string
	Attempt     int
	MaxAttempts int
	AttemptedAt time.Time
}

// live reports whether the job will still execute its run: it is queued,
// scheduled, waiting for a retry or running.
func (j jobInfo) live() bool {
	switch j.State {
	case "available", "scheduled", "retryable", "running", "pending":
		return true
	}
	return false
}

// runJobs returns the newest job of each of the given runs (runs without
// any job are absent). On Postgres the lookup uses River's GIN index on
// job arguments.
func runJobs(ctx context.Context, st store.Store, runIDs []string) (map[string]jobInfo, error) {
	out := make(map[string]jobInfo, len(runIDs))
	if len(runIDs) == 0 {
		return out, nil
	}
	scan := func(id int64, runID, state string, attempt, maxAttempts int, at *time.Time) {
		if cur, ok := out[runID]; ok && cur.ID > id {
			return
		}
		j := jobInfo{ID: id, RunID: runID, State: state, Attempt: attempt, MaxAttempts: maxAttempts}
		if at != nil {
			j.AttemptedAt = *at
		}
		out[runID] = j
	}
	switch h := st.Handle().(type) {
	case *pgxpool.Pool:
		rows, err := h.Query(ctx, `SELECT j.id, r.id, j.state, j.attempt, j.max_attempts, j.attempted_at
FROM unnest($1::text[]) AS r(id)
JOIN river_job AS j ON j.args @> jsonb_build_object('run_id', r.id) AND j.kind = $2`, runIDs, RotateArgs{}.Kind())
		if err != nil {
			return nil, fmt.Errorf("reading the jobs of %d run(s): %w", len(runIDs), err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id            int64
				runID, state  string
				attempt, maxA int
				at            *time.Time
			)
			if err := rows.Scan(&id, &runID, &state, &attempt, &maxA, &at); err != nil {
				return nil, err
			}
			scan(id, runID, state, attempt, maxA, at)
		}
		return out, rows.Err()
	case *sql.DB:
		list, _ := json.Marshal(runIDs)
		rows, err := h.QueryContext(ctx, `SELECT j.id, json_extract(j.args, '$.run_id'), j.state, j.attempt, j.max_attempts
FROM river_job AS j WHERE j.kind = ? AND json_extract(j.args, '$.run_id') IN (SELECT value FROM json_each(?))`, RotateArgs{}.Kind(), string(list))
		if err != nil {
			return nil, fmt.Errorf("reading the jobs of %d run(s): %w", len(runIDs), err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id            int64
				runID, state  string
				attempt, maxA int
			)
			if err := rows.Scan(&id, &runID, &state, &attempt, &maxA); err != nil {
				return nil, err
			}
			scan(id, runID, state, attempt, maxA, nil)
		}
		return out, rows.Err()
	}
	return nil, fmt.Errorf("no queue on a %T store", st.Handle())
}

// makeJobAvailable puts a job that is marked running, but whose worker is
// gone, back in the queue at once (what River's rescuer does after
// RescueStuckJobsAfter).
func makeJobAvailable(ctx context.Context, st store.Store, jobID int64) (bool, error) {
	switch h := st.Handle().(type) {
	case *pgxpool.Pool:
		tag, err := h.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now() WHERE id = $1 AND state = 'running'`, jobID)
		if err != nil {
			return false, err
		}
		return tag.RowsAffected() > 0, nil
	case *sql.DB:
		res, err := h.ExecContext(ctx, `UPDATE river_job SET state = 'available', scheduled_at = datetime('now', 'subsec') WHERE id = ? AND state = 'running'`, jobID)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		return n > 0, err
	}
	return false, fmt.Errorf("no queue on a %T store", st.Handle())
}
