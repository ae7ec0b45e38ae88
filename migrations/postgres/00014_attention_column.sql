-- Status changes are HOT updates again.
--
-- 00003 left room on each credentials page so that the updates a rotation
-- makes without changing an indexed column (the status at enqueue, at mint
-- and at the end) are HOT: no index is written. 00009 then gave the
-- dashboard credentials_attention_idx, whose predicate reads status, so
-- every status change became a non-HOT update writing all of the table's
-- indexes (the GIN one on labels among them): two per rotation.
--
-- The index's predicate now reads a stored generated column, attention,
-- which changes only when a credential enters or leaves the statuses that
-- need attention (store.AttentionStatuses). A status change between other
-- statuses (healthy, rotating, due) leaves every indexed value alone and
-- is HOT again. Queries that want the index say `attention`.
--
-- Adding a stored column rewrites the table once (under an exclusive lock:
-- 100,000 credentials take about a second).

-- +goose Up
ALTER TABLE credentials ADD COLUMN attention boolean
    GENERATED ALWAYS AS (status IN ('failing', 'needs_attention')) STORED;
DROP INDEX credentials_attention_idx;
CREATE INDEX credentials_attention_idx ON credentials (next_rotation_at, id)
    WHERE deleted_at IS NULL AND attention;

-- +goose Down
DROP INDEX credentials_attention_idx;
ALTER TABLE credentials DROP COLUMN attention;
CREATE INDEX credentials_attention_idx ON credentials (next_rotation_at, id)
    WHERE deleted_at IS NULL AND status IN ('failing', 'needs_attention');
