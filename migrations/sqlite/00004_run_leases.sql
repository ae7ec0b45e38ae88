-- Run leases; see the Postgres twin.

-- +goose Up
ALTER TABLE runs ADD COLUMN executor TEXT;
ALTER TABLE runs ADD COLUMN lease_until INTEGER;

-- +goose Down
ALTER TABLE runs DROP COLUMN lease_until;
ALTER TABLE runs DROP COLUMN executor;
