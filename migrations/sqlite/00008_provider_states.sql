-- Secret state a provider keeps per credential from one mint to the next.
-- See the Postgres twin for the reasons.

-- +goose Up
CREATE TABLE provider_states (
    credential_id TEXT    PRIMARY KEY REFERENCES credentials (id),
    key_id        TEXT    NOT NULL,
    sealed        BLOB    NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- +goose Down
DROP TABLE provider_states;
