-- Postgres only: rotator_expect_rows, for pipelined transactions, which
-- SQLite does not have. Kept so that both dialects number alike.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
