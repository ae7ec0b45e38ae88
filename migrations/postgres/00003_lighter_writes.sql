-- Fewer index writes per rotation; nothing recorded changes.
--
-- runs: no index on state. Only `runs list --state` filtered on it, and that
-- walks runs_created_at_idx anyway for its order. Without it, and with room
-- left on each page (fillfactor), a run's updates that keep it active change
-- no indexed column and are HOT: no index is written. Runs are only updated
-- while active, so the room left is modest.
--
-- credentials: room on each page (half of it: the table is small, and each
-- row is updated three times per rotation), so the updates at enqueue and at
-- mint (status, pending version) are HOT and leave the five indexes, the GIN
-- one among them, alone.
--
-- run_steps: no foreign key to runs. Its check ran once per step row (five
-- per rotation), as a query of its own, and cost about a tenth of Postgres's
-- CPU per rotation. Steps are written by the statement that updates their
-- run, and only if that update matched; InsertStep checks for the runs
-- itself, failing whole. Runs are never deleted. (SQLite keeps the key:
-- dropping it there means rebuilding the table.)
--
-- audit_events: occurred_at is only ever a range filter (the order is by id
-- or seq), and events arrive in time order: a BRIN index serves it for a
-- fraction of a B-tree's upkeep. seq is NULL until the sealer sets it, so the
-- unique index on it holds only sealed events.

-- +goose Up
DROP INDEX runs_state_idx;
ALTER TABLE runs SET (fillfactor = 70);
ALTER TABLE credentials SET (fillfactor = 50);
ALTER TABLE run_steps DROP CONSTRAINT run_steps_run_id_fkey;

DROP INDEX audit_events_occurred_at_idx;
CREATE INDEX audit_events_occurred_at_idx ON audit_events USING brin (occurred_at);

ALTER TABLE audit_events DROP CONSTRAINT audit_events_seq_key;
CREATE UNIQUE INDEX audit_events_seq_key ON audit_events (seq) WHERE seq IS NOT NULL;

-- +goose Down
DROP INDEX audit_events_seq_key;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_seq_key UNIQUE (seq);

DROP INDEX audit_events_occurred_at_idx;
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);

ALTER TABLE run_steps ADD CONSTRAINT run_steps_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id);
ALTER TABLE credentials RESET (fillfactor);
ALTER TABLE runs RESET (fillfactor);
CREATE INDEX runs_state_idx ON runs (state);
