-- Secret state a provider keeps per credential from one mint to the next:
-- the rotated refresh token of an oauth2-refresh-token credential. It is
-- sealed like a version's value (AES-GCM under the master key key_id, AAD
-- = credential id + "provider-state") and replaced in the same transaction
-- that stores the pending version its mint produced (write-ahead). It
-- belongs to the credential, not to a version: a version discarded on
-- rollback does not take the refresh token that replaced the current one's
-- with it.

-- +goose Up
CREATE TABLE provider_states (
    credential_id text        PRIMARY KEY REFERENCES credentials (id),
    key_id        text        NOT NULL,
    sealed        bytea       NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- +goose Down
DROP TABLE provider_states;
