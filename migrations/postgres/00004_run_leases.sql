-- Run leases: a process that executes a run outside the job queue (the CLI,
-- when no service runs) claims it for a short, renewed time. A worker of a
-- service that fetches the run's job meanwhile leaves it to the claimant
-- until the lease ends; a claimant that dies stops renewing, and its lease
-- runs out within seconds. Written only by claim and release, never by a
-- run's state transitions, so a renewal never conflicts with them.

-- +goose Up
ALTER TABLE runs ADD COLUMN executor text;
ALTER TABLE runs ADD COLUMN lease_until timestamptz;

-- +goose Down
ALTER TABLE runs DROP COLUMN lease_until;
ALTER TABLE runs DROP COLUMN executor;
