-- The Postgres twin stamps credentials for the service's list cache
-- (store.Reader.CredentialStamps). SQLite has no row versions to stamp
-- with, and a list on SQLite reads the database file in process, so it
-- keeps no cache: nothing changes here.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
