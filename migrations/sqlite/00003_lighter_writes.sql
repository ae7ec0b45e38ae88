-- Fewer index writes per rotation; nothing recorded changes. See the
-- Postgres twin for the reasons.
--
-- runs: no index on state, which every run update rewrote.
--
-- audit_events: the occurred_at index is rebuilt unchanged (SQLite has no
-- BRIN; on Postgres it becomes one), to keep the dialects' index names in
-- step. seq keeps its column UNIQUE: its automatic index cannot be replaced
-- by a partial one without rebuilding the table.

-- +goose Up
DROP INDEX runs_state_idx;
DROP INDEX audit_events_occurred_at_idx;
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);

-- +goose Down
DROP INDEX audit_events_occurred_at_idx;
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);
CREATE INDEX runs_state_idx ON runs (state);
