-- API tokens; see the Postgres twin.

-- +goose Up
CREATE TABLE api_tokens (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL DEFAULT '',
    token_hash   BLOB    NOT NULL,
    scopes       TEXT    NOT NULL DEFAULT '[]',
    created_by   TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT;
CREATE UNIQUE INDEX api_tokens_hash_key ON api_tokens (token_hash);

-- +goose Down
DROP TABLE api_tokens;
