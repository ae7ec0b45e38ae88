-- Which master keys sealed the stored values, at a glance. See the
-- Postgres twin for the reasons.

-- +goose Up
CREATE INDEX versions_sealed_key_idx ON versions (key_id) WHERE sealed IS NOT NULL;

-- +goose Down
DROP INDEX versions_sealed_key_idx;
