-- Unsealed audit events wait in a table of their own: audit_pending, from
-- which the sealer moves them into audit_events with their seq and hashes.
-- See the Postgres twin for the reasons.
--
-- Event ids keep one sequence: audit_pending's AUTOINCREMENT counter
-- starts where audit_events' stands, and the sealer moves each event with
-- its id (audit_events' counter follows the ids moved in). seq stays
-- nullable here (SQLite adds no NOT NULL without rebuilding the table);
-- the store writes only sealed events into audit_events.

-- +goose Up
CREATE TABLE audit_pending (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at   INTEGER NOT NULL,
    actor         TEXT    NOT NULL DEFAULT '',
    action        TEXT    NOT NULL,
    credential_id TEXT,
    run_id        TEXT,
    data          TEXT
) STRICT;
INSERT INTO audit_pending (id, occurred_at, actor, action, credential_id, run_id, data)
SELECT id, occurred_at, actor, action, credential_id, run_id, data FROM audit_events WHERE seq IS NULL ORDER BY id;
DELETE FROM audit_events WHERE seq IS NULL;
DROP INDEX audit_events_unsealed_idx;
DELETE FROM sqlite_sequence WHERE name = 'audit_pending';
INSERT INTO sqlite_sequence (name, seq) SELECT 'audit_pending', seq FROM sqlite_sequence WHERE name = 'audit_events';

-- +goose Down
INSERT INTO audit_events (id, occurred_at, actor, action, credential_id, run_id, data)
SELECT id, occurred_at, actor, action, credential_id, run_id, data FROM audit_pending ORDER BY id;
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'audit_pending'), 0))
WHERE name = 'audit_events';
CREATE INDEX audit_events_unsealed_idx ON audit_events (id) WHERE seq IS NULL;
DROP TABLE audit_pending;
