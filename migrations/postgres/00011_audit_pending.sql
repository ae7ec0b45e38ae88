-- Unsealed audit events wait in a table of their own (issue 9: the audit's
-- share of a rotation's database work).
--
-- Until now an event was inserted into audit_events with seq NULL and the
-- sealer then UPDATEd it with its seq and hashes. That update could never
-- be HOT (seq is indexed, and the unsealed queue was a partial index on
-- seq IS NULL), so every event was written twice with all its index
-- entries: a heap tuple and five index entries when inserted, a second
-- heap tuple and five more when sealed, and a dead tuple left behind.
--
-- Now the engine, apply and the CLI insert events into audit_pending,
-- which has no index but its primary key, and the sealer moves each one,
-- in one statement per batch, into audit_events together with its seq,
-- prev_hash, hash and sealed_at (DELETE ... RETURNING feeding the INSERT).
-- audit_events holds sealed events only, written once and never updated;
-- its indexes are written once per event. What is hashed and how is
-- unchanged, and so is everything a sealed event records.
--
-- Event ids keep one sequence: audit_pending draws them from
-- audit_events' identity sequence, and the sealer moves an event with its
-- id (which its hash covers). A second sealer that read the same events
-- finds them gone from audit_pending (or its seqs taken) and rolls back,
-- as it failed its update before.

-- +goose Up
CREATE TABLE audit_pending (
    id            bigint      PRIMARY KEY DEFAULT nextval('audit_events_id_seq'),
    occurred_at   timestamptz NOT NULL,
    actor         text        NOT NULL DEFAULT '',
    action        text        NOT NULL,
    credential_id text,
    run_id        text,
    data          jsonb
);
INSERT INTO audit_pending (id, occurred_at, actor, action, credential_id, run_id, data)
SELECT id, occurred_at, actor, action, credential_id, run_id, data FROM audit_events WHERE seq IS NULL ORDER BY id;
DELETE FROM audit_events WHERE seq IS NULL;
DROP INDEX audit_events_unsealed_idx;
ALTER TABLE audit_events ALTER COLUMN seq SET NOT NULL;

-- +goose Down
ALTER TABLE audit_events ALTER COLUMN seq DROP NOT NULL;
INSERT INTO audit_events (id, occurred_at, actor, action, credential_id, run_id, data)
SELECT id, occurred_at, actor, action, credential_id, run_id, data FROM audit_pending ORDER BY id;
CREATE INDEX audit_events_unsealed_idx ON audit_events (id) WHERE seq IS NULL;
DROP TABLE audit_pending;
