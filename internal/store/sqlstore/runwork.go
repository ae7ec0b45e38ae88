package sqlstore

import (
	"context"
	"fmt"

	"github.com/rotatorhq/rotator/internal/store"
)

// GetRunWork reads a run, its live credential and the credential's pending
// and previous versions, and the spec hashes of its plugins: four queries,
// queued in one pipeline (one round trip on Postgres, read as one implicit
// transaction: inPipelinedRead). A missing run is
// ErrNotFound; a missing credential leaves Credential nil.
func (s *Store) GetRunWork(ctx context.Context, runID string) (store.RunWork, error) {
	var w store.RunWork
	err := s.inPipelinedRead(ctx, func(stx store.Tx) error {
		w = store.RunWork{}
		tx, ok := stx.(*Tx)
		if !ok {
			return fmt.Errorf("unexpected transaction type %T", stx)
		}
		if err := tx.queryThen(ctx, `SELECT `+runSelectColumns+` FROM runs WHERE id = $1`, []any{runID}, func(rows Rows) error {
			var row runRow
			if rows.Next() {
				if err := rows.Scan(row.dest()...); err != nil {
					return err
				}
				w.Run = row.run()
			}
			return rows.Err()
		}); err != nil {
			return err
		}
		const ofRun = `(SELECT credential_id FROM runs WHERE id = $1)`
		if err := tx.queryThen(ctx, credentialSelect+` WHERE c.id = `+ofRun+` AND c.deleted_at IS NULL`, []any{runID}, func(rows Rows) error {
			var row credentialRow
			if rows.Next() {
				if err := rows.Scan(row.dest()...); err != nil {
					return err
				}
				c, err := row.credential()
				if err != nil {
					return err
				}
				w.Credential = &c
			}
			return rows.Err()
		}); err != nil {
			return err
		}
		if err := tx.queryThen(ctx, `SELECT `+versionColumns+` FROM versions WHERE credential_id = `+ofRun+
			` AND stage IN ('pending', 'previous') ORDER BY created_at DESC, id DESC`, []any{runID}, func(rows Rows) error {
			for rows.Next() {
				var row versionRow
				if err := rows.Scan(row.dest()...); err != nil {
					return err
				}
				v, err := row.version()
				if err != nil {
					return err
				}
				if v.Stage == store.StagePending {
					w.Pending = append(w.Pending, v)
				} else {
					w.Previous = append(w.Previous, v)
				}
			}
			return rows.Err()
		}); err != nil {
			return err
		}
		// The configuration the run starts with: its provider's and its
		// targets' spec hashes.
		ofCred := `(SELECT credential_id FROM runs WHERE id = $1)`
		bindings := `SELECT b->>'target' FROM credentials AS c, jsonb_array_elements(c.targets) AS b WHERE c.id = ` + ofCred
		if !s.dialect().pg() {
			bindings = `SELECT json_extract(b.value, '$.target') FROM credentials AS c, json_each(c.targets) AS b WHERE c.id = ` + ofCred
		}
		if err := tx.queryThen(ctx, `SELECT 'p', p.name, p.spec_hash FROM providers AS p
WHERE p.name = (SELECT provider FROM credentials WHERE id = `+ofCred+`)
UNION ALL SELECT 't', t.name, t.spec_hash FROM targets AS t WHERE t.deleted_at IS NULL AND t.name IN (`+bindings+`)`,
			[]any{runID}, func(rows Rows) error {
				for rows.Next() {
					var kind, name, hash string
					if err := rows.Scan(&kind, &name, &hash); err != nil {
						return err
					}
					if kind == "p" {
						w.ProviderHash = hash
						continue
					}
					if w.TargetHashes == nil {
						w.TargetHashes = map[string]string{}
					}
					w.TargetHashes[name] = hash
				}
				return rows.Err()
			}); err != nil {
			return err
		}
		// On Postgres the handlers above run when the queue is sent, at
		// commit: a missing run is known after InPipelinedTx returns.
		return nil
	})
	if err != nil {
		return store.RunWork{}, fmt.Errorf("read run %s: %w", runID, err)
	}
	if w.Run.ID == "" {
		return store.RunWork{}, fmt.Errorf("run %s: %w", runID, store.ErrNotFound)
	}
	return w, nil
}
