package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

const runColumns = `id, credential_id, trigger, actor, reason, state, active, attempt, priority, options,
    old_version_id, new_version_id, runbook_path, runbook_anchor, runbook_digest, error,
    created_at, started_at, finished_at, updated_at`

// runSelectColumns are runColumns plus the lease, which only ClaimRuns and
// ReleaseRuns write.
const runSelectColumns = runColumns + `, executor, lease_until`

// activeRunIndex is the unique index allowing one active run per
// credential, as each dialect names it in errors.
var activeRunIndex = []string{"runs_one_active_per_credential", "runs.credential_id"}

type runRow struct {
	r       store.Run
	trigger string
	options []byte
}

func (row *runRow) dest() []any {
	r := &row.r
	return []any{&r.ID, &r.CredentialID, &row.trigger, &r.Actor, &r.Reason, &r.State, &r.Active,
		&r.Attempt, &r.Priority, &jsonCol{&row.options},
		&textCol{&r.OldVersionID}, &textCol{&r.NewVersionID},
		&r.Runbook.Path, &r.Runbook.Anchor, &r.Runbook.Digest, &r.Error,
		&timeCol{&r.CreatedAt}, &timeCol{&r.StartedAt}, &timeCol{&r.FinishedAt}, &timeCol{&r.UpdatedAt},
		&textCol{&r.Executor}, &timeCol{&r.LeaseUntil}}
}

func (row *runRow) run() store.Run {
	r := row.r
	r.Trigger = store.Trigger(row.trigger)
	if len(row.options) > 0 {
		r.Options = json.RawMessage(row.options)
	}
	return r
}

// GetRun returns a run.
func (r reader) GetRun(ctx context.Context, id string) (store.Run, error) {
	var row runRow
	err := r.queryOne(ctx, `SELECT `+runSelectColumns+` FROM runs WHERE id = $1`, []any{id}, row.dest()...)
	if errors.Is(err, errNoRows) {
		return store.Run{}, fmt.Errorf("run %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("get run %s: %w", id, err)
	}
	return row.run(), nil
}

// ListRuns returns runs, newest first. Since is inclusive and Until
// exclusive, both on the creation time.
func (r reader) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	d := r.s.dialect()
	var q query
	var preds []string
	if f.CredentialID != "" {
		preds = append(preds, "credential_id = "+q.arg(f.CredentialID))
	}
	if len(f.IDs) > 0 {
		p, err := d.inList(&q, "id", f.IDs)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		preds = append(preds, p)
	}
	if len(f.CredentialIDs) > 0 {
		p, err := d.inList(&q, "credential_id", f.CredentialIDs)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		preds = append(preds, p)
	}
	if f.IDPrefix != "" {
		// Run ids are ULIDs: callers pass letters and digits only, so the
		// prefix holds no LIKE wildcard.
		preds = append(preds, "id LIKE "+q.arg(f.IDPrefix+"%"))
	}
	if f.State != "" {
		preds = append(preds, "state = "+q.arg(f.State))
	}
	if f.Trigger != "" {
		preds = append(preds, "trigger = "+q.arg(string(f.Trigger)))
	}
	if f.ActiveOnly {
		preds = append(preds, "active")
	}
	if !f.Since.IsZero() {
		preds = append(preds, "created_at >= "+q.arg(d.time(f.Since)))
	}
	if !f.Until.IsZero() {
		preds = append(preds, "created_at < "+q.arg(d.time(f.Until)))
	}
	if !f.BeforeCreatedAt.IsZero() {
		// A row comparison both dialects run on the created_at index.
		preds = append(preds, "(created_at, id) < ("+q.arg(d.time(f.BeforeCreatedAt))+", "+q.arg(f.BeforeID)+")")
	}
	q.sql(`SELECT `, runSelectColumns, ` FROM runs`, where(preds), ` ORDER BY created_at DESC, id DESC`)
	if f.Limit > 0 {
		q.sql(sqlLimit(f.Limit))
	}
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		var row runRow
		if err := rows.Scan(row.dest()...); err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		out = append(out, row.run())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// InsertRun inserts a run. CreatedAt defaults to now and UpdatedAt to
// CreatedAt. If r is active and the credential already has an active run
// it returns ErrActiveRun and the transaction stays usable (the insert is
// skipped, not failed, on both dialects).
func (tx *Tx) InsertRun(ctx context.Context, r store.Run) error {
	if r.ID == "" {
		return fmt.Errorf("insert run for credential %s: empty id", r.CredentialID)
	}
	r.CreatedAt = tx.s.orNow(r.CreatedAt)
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.CreatedAt
	}
	args, err := tx.runArgs(r)
	if err != nil {
		return err
	}
	n, err := tx.exec(ctx, `INSERT INTO runs (`+runColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
ON CONFLICT (credential_id) WHERE active DO NOTHING`, args...)
	if err != nil {
		return tx.runError("insert", r, err)
	}
	if n == 0 {
		return fmt.Errorf("insert run %s: credential %s: %w", r.ID, r.CredentialID, store.ErrActiveRun)
	}
	return nil
}

// runChunk is how many runs one INSERT of InsertRunsIfIdle writes (20
// parameters each).
const runChunk = 500

// InsertRunsIfIdle inserts the runs whose credential has no active run, in
// multi-row statements, and returns those it inserted in input order (with
// CreatedAt and UpdatedAt defaulted as by InsertRun). Of several active
// runs for one credential the first wins. An existing run id is
// ErrConflict.
func (tx *Tx) InsertRunsIfIdle(ctx context.Context, runs []store.Run) ([]store.Run, error) {
	runs = slices.Clone(runs)
	inserted := make(map[string]bool, len(runs))
	for start := 0; start < len(runs); start += runChunk {
		chunk := runs[start:min(start+runChunk, len(runs))]
		var q query
		q.sql(`INSERT INTO runs (`, runColumns, `) VALUES `)
		for i := range chunk {
			r := &chunk[i]
			if r.ID == "" {
				return nil, fmt.Errorf("insert run for credential %s: empty id", r.CredentialID)
			}
			r.CreatedAt = tx.s.orNow(r.CreatedAt)
			if r.UpdatedAt.IsZero() {
				r.UpdatedAt = r.CreatedAt
			}
			args, err := tx.runArgs(*r)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				q.sql(", ")
			}
			for j, a := range args {
				if j == 0 {
					q.sql("(")
				} else {
					q.sql(", ")
				}
				q.sql(q.arg(a))
			}
			q.sql(")")
		}
		q.sql(` ON CONFLICT (credential_id) WHERE active DO NOTHING RETURNING id`)
		rows, err := tx.c.Query(ctx, q.String(), q.args...)
		if err == nil {
			for rows.Next() {
				var id string
				if err = rows.Scan(&id); err != nil {
					break
				}
				inserted[id] = true
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		if err != nil {
			if kind, _ := tx.s.classify(err); kind == KindUnique {
				return nil, fmt.Errorf("insert %d runs: a run id exists: %w", len(chunk), store.ErrConflict)
			} else if kind == KindForeignKey {
				return nil, fmt.Errorf("insert %d runs: a credential does not exist: %w", len(chunk), store.ErrNotFound)
			}
			return nil, fmt.Errorf("insert %d runs: %w", len(chunk), err)
		}
	}
	out := make([]store.Run, 0, len(inserted))
	for _, r := range runs {
		if inserted[r.ID] {
			out = append(out, r)
		}
	}
	return out, nil
}

// UpdateRun writes every field of a run but its id, credential and
// creation time. UpdatedAt defaults to now.
func (tx *Tx) UpdateRun(ctx context.Context, r store.Run) error {
	r.UpdatedAt = tx.s.orNow(r.UpdatedAt)
	args, err := tx.runArgs(r)
	if err != nil {
		return err
	}
	args = slices.Delete(args, 16, 17) // created_at
	args = slices.Delete(args, 1, 2)   // credential_id
	n, err := tx.exec(ctx, `UPDATE runs SET trigger = $2, actor = $3, reason = $4, state = $5, active = $6,
    attempt = $7, priority = $8, options = $9, old_version_id = $10, new_version_id = $11,
    runbook_path = $12, runbook_anchor = $13, runbook_digest = $14, error = $15,
    started_at = $16, finished_at = $17, updated_at = $18
WHERE id = $1`, args...)
	if err != nil {
		return tx.runError("update", r, err)
	}
	if n == 0 {
		return fmt.Errorf("update run %s: %w", r.ID, store.ErrNotFound)
	}
	return nil
}

// AdvanceRun writes a.Run like UpdateRun if the stored run is still in
// a.FromState and was last updated at a.FromUpdatedAt (a compare-and-set),
// and inserts a.Steps and a.Events. Otherwise nothing is written and the
// error is ErrConflict, or ErrNotFound when the run does not exist. On
// Postgres it is one statement: the step and event inserts are
// data-modifying CTEs that insert only if the run's update matched.
func (tx *Tx) AdvanceRun(ctx context.Context, a store.RunAdvance) error {
	d := tx.s.dialect()
	r := a.Run
	r.UpdatedAt = tx.s.orNow(r.UpdatedAt)
	args, err := tx.runArgs(r)
	if err != nil {
		return err
	}
	args = slices.Delete(args, 16, 17) // created_at
	args = slices.Delete(args, 1, 2)   // credential_id
	var q query
	for _, arg := range args {
		q.arg(arg) // $1 … $18, as in UpdateRun
	}
	update := `UPDATE runs SET trigger = $2, actor = $3, reason = $4, state = $5, active = $6,
    attempt = $7, priority = $8, options = $9, old_version_id = $10, new_version_id = $11,
    runbook_path = $12, runbook_anchor = $13, runbook_digest = $14, error = $15,
    started_at = $16, finished_at = $17, updated_at = $18
WHERE id = $1 AND state = ` + q.arg(a.FromState) + ` AND updated_at = ` + q.arg(d.time(a.FromUpdatedAt))

	if d.pg() && len(a.Steps) <= stepChunk && len(a.Events) <= auditChunk {
		return tx.advanceRunPg(ctx, a, r, update, q)
	}
	n, err := tx.exec(ctx, update, q.args...)
	if err != nil {
		return tx.runError("advance", r, err)
	}
	if n == 0 {
		cur, err := tx.GetRun(ctx, r.ID)
		if err != nil {
			return fmt.Errorf("advance run %s: %w", r.ID, err)
		}
		return fmt.Errorf("advance run %s from %s: it is %s since %s: %w", r.ID, a.FromState, cur.State,
			cur.UpdatedAt.Format(time.RFC3339Nano), store.ErrConflict)
	}
	if err := tx.InsertStep(ctx, a.Steps...); err != nil {
		return err
	}
	return tx.InsertAuditEvents(ctx, a.Events...)
}

// advanceRunPg is AdvanceRun in one Postgres statement: the step and event
// inserts are data-modifying CTEs that insert only if the run's update
// matched, and the statement also returns the run as it was before (all
// parts of a statement see one snapshot), to explain a mismatch without a
// second read. In a pipelined transaction it is queued.
func (tx *Tx) advanceRunPg(ctx context.Context, a store.RunAdvance, r store.Run, update string, q query) error {
	q.sql(`WITH r AS (`, update, ` RETURNING id)`)
	if len(a.Steps) > 0 {
		if err := tx.stepValues(&q, a.Steps, ", s AS (INSERT INTO run_steps "+stepInsertColumns+
			" SELECT * FROM (VALUES ", ") AS v WHERE EXISTS (SELECT 1 FROM r))"); err != nil {
			return err
		}
	}
	if len(a.Events) > 0 {
		if err := tx.auditValues(&q, a.Events, ", e AS (INSERT INTO audit_pending "+auditInsertColumns+
			" SELECT * FROM (VALUES ", ") AS v WHERE EXISTS (SELECT 1 FROM r))"); err != nil {
			return err
		}
	}
	count := `(SELECT count(*) FROM r)`
	if _, piped := tx.conn.(PipeTx); piped {
		// A mismatch must fail the transaction on the server, before the
		// COMMIT queued behind it.
		count = `rotator_expect_rows(` + count + `, CASE WHEN o.id IS NULL THEN 'missing' ELSE o.state || ' since ' ||
    to_char(o.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END)`
	}
	q.sql(` SELECT `, count, `, o.state, o.updated_at FROM (SELECT 1) AS one
LEFT JOIN runs AS o ON o.id = $1`)
	return tx.queryThen(ctx, q.String(), q.args, func(rows Rows) error {
		var n int64
		var state *string
		var updated time.Time
		if rows.Next() {
			if err := rows.Scan(&n, &state, &timeCol{&updated}); err != nil {
				return tx.runError("advance", r, err)
			}
		}
		if err := rows.Err(); err != nil {
			switch kind, detail := tx.s.classify(err); {
			case kind == KindUnique && !slices.Contains(activeRunIndex, detail):
				return fmt.Errorf("advance run %s: a step exists: %w", r.ID, store.ErrConflict)
			case kind == KindNoRows && detail == "missing":
				return fmt.Errorf("advance run %s: %w", r.ID, store.ErrNotFound)
			case kind == KindNoRows:
				return fmt.Errorf("advance run %s from %s: it is %s: %w", r.ID, a.FromState, detail, store.ErrConflict)
			}
			return tx.runError("advance", r, err)
		}
		switch {
		case n > 0:
			return nil
		case state == nil:
			return fmt.Errorf("advance run %s: %w", r.ID, store.ErrNotFound)
		}
		return fmt.Errorf("advance run %s from %s: it is %s since %s: %w", r.ID, a.FromState, *state,
			updated.Format(time.RFC3339Nano), store.ErrConflict)
	})
}

// runArgs are the arguments for runColumns, in order.
func (tx *Tx) runArgs(r store.Run) ([]any, error) {
	opts, err := jsonRaw(r.Options)
	if err != nil {
		return nil, fmt.Errorf("run %s: options: %w", r.ID, err)
	}
	d := tx.s.dialect()
	return []any{r.ID, r.CredentialID, string(r.Trigger), r.Actor, r.Reason, r.State, r.Active,
		r.Attempt, r.Priority, opts, nullString(r.OldVersionID), nullString(r.NewVersionID),
		r.Runbook.Path, r.Runbook.Anchor, r.Runbook.Digest, r.Error,
		d.time(r.CreatedAt), d.time(r.StartedAt), d.time(r.FinishedAt), d.time(r.UpdatedAt)}, nil
}

func (tx *Tx) runError(verb string, r store.Run, err error) error {
	switch kind, constraint := tx.s.classify(err); kind {
	case KindUnique:
		if slices.Contains(activeRunIndex, constraint) {
			return fmt.Errorf("%s run %s: credential %s: %w", verb, r.ID, r.CredentialID, store.ErrActiveRun)
		}
		return fmt.Errorf("%s run %s: run exists: %w", verb, r.ID, store.ErrConflict)
	case KindForeignKey:
		return fmt.Errorf("%s run %s: credential %s: %w", verb, r.ID, r.CredentialID, store.ErrNotFound)
	case KindOther, KindRetry, KindNoRows:
	}
	return fmt.Errorf("%s run %s of credential %s: %w", verb, r.ID, r.CredentialID, err)
}

// ListSteps returns a run's steps ordered by Seq.
func (r reader) ListSteps(ctx context.Context, runID string) ([]store.Step, error) {
	rows, err := r.c.Query(ctx, `SELECT run_id, seq, name, state, attempt, started_at, finished_at, error, evidence
FROM run_steps WHERE run_id = $1 ORDER BY seq`, runID)
	if err != nil {
		return nil, fmt.Errorf("list steps of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []store.Step
	for rows.Next() {
		var s store.Step
		var evidence []byte
		if err := rows.Scan(&s.RunID, &s.Seq, &s.Name, &s.State, &s.Attempt,
			&timeCol{&s.StartedAt}, &timeCol{&s.FinishedAt}, &s.Error, &jsonCol{&evidence}); err != nil {
			return nil, fmt.Errorf("list steps of run %s: %w", runID, err)
		}
		if s.Evidence, err = decodeStringMap(evidence); err != nil {
			return nil, fmt.Errorf("decode evidence of step %d of run %s: %w", s.Seq, runID, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list steps of run %s: %w", runID, err)
	}
	return out, nil
}

// stepChunk is how many steps one INSERT of InsertStep writes (9
// parameters each).
const stepChunk = 500

const stepInsertColumns = `(run_id, seq, name, state, attempt, started_at, finished_at, error, evidence)`

// stepValues appends prefix, the rows of steps (typed, so that Postgres
// accepts them in a VALUES list that is not directly an INSERT's) and
// suffix to q.
func (tx *Tx) stepValues(q *query, steps []store.Step, prefix, suffix string) error {
	d := tx.s.dialect()
	q.sql(prefix)
	for i, s := range steps {
		evidence, err := jsonText(s.Evidence, "{}")
		if err != nil {
			return fmt.Errorf("insert step %d of run %s: encode evidence: %w", s.Seq, s.RunID, err)
		}
		if i > 0 {
			q.sql(", ")
		}
		q.sql("(", d.cast(q.arg(s.RunID), typeText), ", ", d.cast(q.arg(s.Seq), typeInt), ", ",
			d.cast(q.arg(s.Name), typeText), ", ", d.cast(q.arg(s.State), typeText), ", ",
			d.cast(q.arg(s.Attempt), typeInt), ", ", d.cast(q.arg(d.time(s.StartedAt)), typeTime), ", ",
			d.cast(q.arg(d.time(s.FinishedAt)), typeTime), ", ", d.cast(q.arg(s.Error), typeText), ", ",
			d.cast(q.arg(evidence), typeJSON), ")")
	}
	q.sql(suffix)
	return nil
}

// InsertStep inserts steps, in multi-row statements. An existing (run, seq)
// is ErrConflict; an unknown run is ErrNotFound.
//
// On Postgres run_steps has no foreign key to runs (migration 00003: its
// per-row check cost more than a tenth of Postgres's CPU per rotation), so
// the statement itself inserts only steps of existing runs and fails whole,
// on the server, if any is missing. AdvanceRun needs no such check: it
// inserts steps only when the run's own update matched.
func (tx *Tx) InsertStep(ctx context.Context, steps ...store.Step) error {
	pg := tx.s.dialect().pg()
	for start := 0; start < len(steps); start += stepChunk {
		chunk := steps[start:min(start+stepChunk, len(steps))]
		var q query
		prefix, suffix := "INSERT INTO run_steps "+stepInsertColumns+" VALUES ", ""
		if pg {
			prefix = "WITH i AS (INSERT INTO run_steps " + stepInsertColumns + " SELECT * FROM (VALUES "
			suffix = ") AS v WHERE EXISTS (SELECT 1 FROM runs AS r WHERE r.id = v.column1) RETURNING 1)" +
				" SELECT rotator_expect_rows(CASE WHEN count(*) = " + strconv.Itoa(len(chunk)) + " THEN 1 ELSE 0 END, 'missing run') FROM i"
		}
		if err := tx.stepValues(&q, chunk, prefix, suffix); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, q.String(), q.args...); err != nil {
			first := chunk[0]
			what := fmt.Sprintf("step %d of run %s", first.Seq, first.RunID)
			if len(chunk) > 1 {
				what = fmt.Sprintf("%d steps of run %s", len(chunk), first.RunID)
			}
			switch kind, _ := tx.s.classify(err); kind {
			case KindUnique:
				return fmt.Errorf("insert %s: step exists: %w", what, store.ErrConflict)
			case KindForeignKey, KindNoRows:
				return fmt.Errorf("insert %s: a run does not exist: %w", what, store.ErrNotFound)
			case KindOther, KindRetry:
			}
			return fmt.Errorf("insert %s: %w", what, err)
		}
	}
	return nil
}

// ClaimRuns leases active runs to executor until until, where nobody else
// holds an unexpired lease.
func (s *Store) ClaimRuns(ctx context.Context, ids []string, executor string, now, until time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	d := s.dialect()
	var out []string
	for start := 0; start < len(ids); start += runChunk {
		var q query
		in, err := d.inList(&q, "id", ids[start:min(start+runChunk, len(ids))])
		if err != nil {
			return nil, fmt.Errorf("claim runs: %w", err)
		}
		ex := q.arg(executor)
		q.sql(`UPDATE runs SET executor = `, ex, `, lease_until = `, q.arg(d.time(until)), ` WHERE `, in,
			` AND active AND (executor IS NULL OR executor = `, ex, ` OR lease_until IS NULL OR lease_until < `, q.arg(d.time(now)), `) RETURNING id`)
		err = s.InTx(ctx, func(stx store.Tx) error {
			tx := stx.(*Tx)
			rows, err := tx.c.Query(ctx, q.String(), q.args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				out = append(out, id)
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("claim runs: %w", err)
		}
	}
	return out, nil
}

// ReleaseRuns ends executor's leases on ids (every lease of executor when
// ids is empty).
func (s *Store) ReleaseRuns(ctx context.Context, executor string, ids []string) error {
	d := s.dialect()
	var q query
	q.sql(`UPDATE runs SET executor = NULL, lease_until = NULL WHERE executor = `, q.arg(executor))
	if len(ids) > 0 {
		in, err := d.inList(&q, "id", ids)
		if err != nil {
			return fmt.Errorf("release runs: %w", err)
		}
		q.sql(` AND `, in)
	}
	err := s.InTx(ctx, func(stx store.Tx) error {
		_, err := stx.(*Tx).exec(ctx, q.String(), q.args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("release runs: %w", err)
	}
	return nil
}
