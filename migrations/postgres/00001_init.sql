-- rotator schema, Postgres dialect. Keep in step with ../sqlite/00001_init.sql:
-- same tables, columns, constraints and index names.
--
-- Conventions: times are timestamptz (UTC, microseconds); JSON is jsonb;
-- optional values (times, version ids) are NULL when absent; durations are
-- whole seconds.

-- +goose Up
CREATE TABLE providers (
    name       text        PRIMARY KEY,
    type       text        NOT NULL,
    settings   jsonb       NOT NULL DEFAULT '{}',
    spec_hash  text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- Providers are soft-deleted like credentials, whose history keeps
    -- referring to them.
    deleted_at timestamptz
);

-- Targets publish current values (config "targets:"); shaped like providers.
CREATE TABLE targets (
    name       text        PRIMARY KEY,
    type       text        NOT NULL,
    settings   jsonb       NOT NULL DEFAULT '{}',
    spec_hash  text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz
);

CREATE TABLE credentials (
    id                   text        PRIMARY KEY,
    consumer             text        NOT NULL,
    provider             text        NOT NULL REFERENCES providers (name),
    scope                jsonb       NOT NULL DEFAULT '[]',
    owner                text        NOT NULL DEFAULT '',
    labels               jsonb       NOT NULL DEFAULT '{}',
    settings             jsonb       NOT NULL DEFAULT '{}',
    max_age_seconds      bigint      NOT NULL DEFAULT 0,
    renew_before_seconds bigint      NOT NULL DEFAULT 0,
    renew_at             double precision NOT NULL DEFAULT 0,
    schedule             text        NOT NULL DEFAULT '',
    rotation_window      jsonb,
    grace_seconds        bigint      NOT NULL DEFAULT 0,
    runbook              text        NOT NULL DEFAULT '',
    runbook_file         text        NOT NULL DEFAULT '',  -- the runbook file apply resolved, absolute
    targets              jsonb       NOT NULL DEFAULT '[]',
    spec_hash            text        NOT NULL DEFAULT '',
    status               text        NOT NULL DEFAULT 'new',
    current_version_id   text,
    pending_version_id   text,
    next_rotation_at     timestamptz,
    last_rotated_at      timestamptz,
    expires_at           timestamptz,
    failure_count        integer     NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    deleted_at           timestamptz
);

-- The scheduler's tick: due live credentials.
CREATE INDEX credentials_next_rotation_at_idx ON credentials (next_rotation_at)
    WHERE deleted_at IS NULL;
CREATE INDEX credentials_consumer_idx ON credentials (consumer);
CREATE INDEX credentials_provider_idx ON credentials (provider);
-- Emergency selection by labels (labels @> '{"team":"x"}').
CREATE INDEX credentials_labels_idx ON credentials USING gin (labels jsonb_path_ops)
    WHERE deleted_at IS NULL;

CREATE TABLE versions (
    id            text        PRIMARY KEY,
    credential_id text        NOT NULL REFERENCES credentials (id),
    stage         text        NOT NULL,
    -- AES-GCM ciphertext; NULL once retired or discarded.
    sealed        bytea,
    key_id        text        NOT NULL DEFAULT '',
    fingerprint   text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    activated_at  timestamptz,
    expires_at    timestamptz,
    retired_at    timestamptz,
    granted_scope jsonb       NOT NULL DEFAULT '[]',
    metadata      jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT versions_stage_check
        CHECK (stage IN ('pending', 'current', 'previous', 'retired', 'discarded'))
);

-- At most one current version per credential.
CREATE UNIQUE INDEX versions_one_current_per_credential ON versions (credential_id)
    WHERE stage = 'current';
CREATE INDEX versions_credential_stage_idx ON versions (credential_id, stage);

-- The credential's version pointers are checked at commit, so a transaction
-- may write the credential and its versions in any order.
ALTER TABLE credentials
    ADD CONSTRAINT credentials_current_version_fkey FOREIGN KEY (current_version_id)
        REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT credentials_pending_version_fkey FOREIGN KEY (pending_version_id)
        REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE runs (
    id             text        PRIMARY KEY,
    credential_id  text        NOT NULL REFERENCES credentials (id),
    trigger        text        NOT NULL,
    actor          text        NOT NULL DEFAULT '',
    reason         text        NOT NULL DEFAULT '',
    state          text        NOT NULL,
    active         boolean     NOT NULL DEFAULT true,
    attempt        integer     NOT NULL DEFAULT 0,
    priority       integer     NOT NULL DEFAULT 0,
    options        jsonb,
    old_version_id text        REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    new_version_id text        REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    runbook_path   text        NOT NULL DEFAULT '',
    runbook_anchor text        NOT NULL DEFAULT '',
    runbook_digest text        NOT NULL DEFAULT '',
    error          text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL
);

-- One active run per credential, across every replica.
CREATE UNIQUE INDEX runs_one_active_per_credential ON runs (credential_id) WHERE active;
CREATE INDEX runs_created_at_idx ON runs (created_at);
CREATE INDEX runs_credential_created_at_idx ON runs (credential_id, created_at);
CREATE INDEX runs_state_idx ON runs (state);

CREATE TABLE run_steps (
    run_id      text        NOT NULL REFERENCES runs (id),
    seq         integer     NOT NULL,
    name        text        NOT NULL,
    state       text        NOT NULL,
    attempt     integer     NOT NULL DEFAULT 0,
    started_at  timestamptz,
    finished_at timestamptz,
    error       text        NOT NULL DEFAULT '',
    evidence    jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, seq)
);

-- Append-only. credential_id and run_id carry no foreign keys: the history
-- outlives what it describes. seq, prev_hash, hash and sealed_at are written
-- once by the sealer.
CREATE TABLE audit_events (
    id            bigint      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    occurred_at   timestamptz NOT NULL,
    actor         text        NOT NULL DEFAULT '',
    action        text        NOT NULL,
    credential_id text,
    run_id        text,
    data          jsonb,
    seq           bigint      UNIQUE,
    prev_hash     text,
    hash          text,
    sealed_at     timestamptz
);

-- The sealer's queue.
CREATE INDEX audit_events_unsealed_idx ON audit_events (id) WHERE seq IS NULL;
CREATE INDEX audit_events_credential_occurred_at_idx ON audit_events (credential_id, occurred_at);
CREATE INDEX audit_events_run_idx ON audit_events (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE run_steps;
DROP TABLE runs;
ALTER TABLE credentials
    DROP CONSTRAINT credentials_current_version_fkey,
    DROP CONSTRAINT credentials_pending_version_fkey;
DROP TABLE versions;
DROP TABLE credentials;
DROP TABLE targets;
DROP TABLE providers;
