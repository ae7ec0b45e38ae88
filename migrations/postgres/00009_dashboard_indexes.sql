-- +goose Up
-- The dashboard's first page over any number of credentials: those that
-- need attention (few) in their order without reading the others, and the
-- expired ones counted without a scan.
CREATE INDEX credentials_attention_idx ON credentials (next_rotation_at, id)
    WHERE deleted_at IS NULL AND status IN ('failing', 'needs_attention');
CREATE INDEX credentials_expires_at_idx ON credentials (expires_at)
    WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX credentials_expires_at_idx;
DROP INDEX credentials_attention_idx;
