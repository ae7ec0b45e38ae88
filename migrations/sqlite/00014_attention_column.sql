-- The Postgres twin makes status changes HOT updates by moving the
-- predicate of credentials_attention_idx to a generated column. SQLite has
-- no HOT updates; it gets the same column (virtual: computed when read,
-- nothing stored) and the same index, so that both dialects run the same
-- dashboard queries.

-- +goose Up
ALTER TABLE credentials ADD COLUMN attention INTEGER
    GENERATED ALWAYS AS (status IN ('failing', 'needs_attention')) VIRTUAL;
DROP INDEX credentials_attention_idx;
CREATE INDEX credentials_attention_idx ON credentials (next_rotation_at, id)
    WHERE deleted_at IS NULL AND attention;

-- +goose Down
DROP INDEX credentials_attention_idx;
ALTER TABLE credentials DROP COLUMN attention;
CREATE INDEX credentials_attention_idx ON credentials (next_rotation_at, id)
    WHERE deleted_at IS NULL AND status IN ('failing', 'needs_attention');
