-- API tokens (DESIGN.md §11): the consume API over TCP authorises a request
-- by its bearer token. Only the SHA-256 of a token is stored (a 256-bit
-- random token needs no slow hash); the token itself is printed once, by
-- 'rotator tokens create'. Scopes are strings such as
-- "consume:github-mcp" or "consume:team=platform" (read, rotate and admin
-- to come). A revoked token keeps its row, so the audit log's token ids
-- stay meaningful. (Numbered 00007, leaving 00006 to a migration being
-- written beside this one.)

-- +goose Up
CREATE TABLE api_tokens (
    id           text        PRIMARY KEY,
    name         text        NOT NULL DEFAULT '',
    token_hash   bytea       NOT NULL,
    scopes       jsonb       NOT NULL DEFAULT '[]',
    created_by   text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE UNIQUE INDEX api_tokens_hash_key ON api_tokens (token_hash);

-- +goose Down
DROP TABLE api_tokens;
