-- rotator schema, SQLite dialect. Keep in step with ../postgres/00001_init.sql:
-- same tables, columns, constraints and index names.
--
-- Conventions: STRICT tables; times are INTEGER unix microseconds (UTC), so
-- ordering and range queries are exact; JSON is TEXT; booleans are INTEGER
-- 0/1; optional values (times, version ids) are NULL when absent; durations
-- are whole seconds.

-- +goose Up
CREATE TABLE providers (
    name       TEXT    PRIMARY KEY,
    type       TEXT    NOT NULL,
    settings   TEXT    NOT NULL DEFAULT '{}',
    spec_hash  TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- Providers are soft-deleted like credentials, whose history keeps
    -- referring to them.
    deleted_at INTEGER
) STRICT;

-- Targets publish current values (config "targets:"); shaped like providers.
CREATE TABLE targets (
    name       TEXT    PRIMARY KEY,
    type       TEXT    NOT NULL,
    settings   TEXT    NOT NULL DEFAULT '{}',
    spec_hash  TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
) STRICT;

CREATE TABLE credentials (
    id                   TEXT    PRIMARY KEY,
    consumer             TEXT    NOT NULL,
    provider             TEXT    NOT NULL REFERENCES providers (name),
    scope                TEXT    NOT NULL DEFAULT '[]',
    owner                TEXT    NOT NULL DEFAULT '',
    labels               TEXT    NOT NULL DEFAULT '{}',
    settings             TEXT    NOT NULL DEFAULT '{}',
    max_age_seconds      INTEGER NOT NULL DEFAULT 0,
    renew_before_seconds INTEGER NOT NULL DEFAULT 0,
    renew_at             REAL    NOT NULL DEFAULT 0,
    schedule             TEXT    NOT NULL DEFAULT '',
    rotation_window      TEXT,
    grace_seconds        INTEGER NOT NULL DEFAULT 0,
    runbook              TEXT    NOT NULL DEFAULT '',
    runbook_file         TEXT    NOT NULL DEFAULT '',  -- the runbook file apply resolved, absolute
    targets              TEXT    NOT NULL DEFAULT '[]',
    spec_hash            TEXT    NOT NULL DEFAULT '',
    status               TEXT    NOT NULL DEFAULT 'new',
    -- Version pointers are checked at commit, so a transaction may write the
    -- credential and its versions in any order.
    current_version_id   TEXT    REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    pending_version_id   TEXT    REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    next_rotation_at     INTEGER,
    last_rotated_at      INTEGER,
    expires_at           INTEGER,
    failure_count        INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    deleted_at           INTEGER
) STRICT;

-- The scheduler's tick: due live credentials.
CREATE INDEX credentials_next_rotation_at_idx ON credentials (next_rotation_at)
    WHERE deleted_at IS NULL;
CREATE INDEX credentials_consumer_idx ON credentials (consumer);
CREATE INDEX credentials_provider_idx ON credentials (provider);

CREATE TABLE versions (
    id            TEXT    PRIMARY KEY,
    credential_id TEXT    NOT NULL REFERENCES credentials (id),
    stage         TEXT    NOT NULL
        CONSTRAINT versions_stage_check
        CHECK (stage IN ('pending', 'current', 'previous', 'retired', 'discarded')),
    -- AES-GCM ciphertext; NULL once retired or discarded.
    sealed        BLOB,
    key_id        TEXT    NOT NULL DEFAULT '',
    fingerprint   TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    activated_at  INTEGER,
    expires_at    INTEGER,
    retired_at    INTEGER,
    granted_scope TEXT    NOT NULL DEFAULT '[]',
    metadata      TEXT    NOT NULL DEFAULT '{}'
) STRICT;

-- At most one current version per credential.
CREATE UNIQUE INDEX versions_one_current_per_credential ON versions (credential_id)
    WHERE stage = 'current';
CREATE INDEX versions_credential_stage_idx ON versions (credential_id, stage);

CREATE TABLE runs (
    id             TEXT    PRIMARY KEY,
    credential_id  TEXT    NOT NULL REFERENCES credentials (id),
    trigger        TEXT    NOT NULL,
    actor          TEXT    NOT NULL DEFAULT '',
    reason         TEXT    NOT NULL DEFAULT '',
    state          TEXT    NOT NULL,
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    attempt        INTEGER NOT NULL DEFAULT 0,
    priority       INTEGER NOT NULL DEFAULT 0,
    options        TEXT,
    old_version_id TEXT    REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    new_version_id TEXT    REFERENCES versions (id) DEFERRABLE INITIALLY DEFERRED,
    runbook_path   TEXT    NOT NULL DEFAULT '',
    runbook_anchor TEXT    NOT NULL DEFAULT '',
    runbook_digest TEXT    NOT NULL DEFAULT '',
    error          TEXT    NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    updated_at     INTEGER NOT NULL
) STRICT;

-- One active run per credential.
CREATE UNIQUE INDEX runs_one_active_per_credential ON runs (credential_id) WHERE active;
CREATE INDEX runs_created_at_idx ON runs (created_at);
CREATE INDEX runs_credential_created_at_idx ON runs (credential_id, created_at);
CREATE INDEX runs_state_idx ON runs (state);

CREATE TABLE run_steps (
    run_id      TEXT    NOT NULL REFERENCES runs (id),
    seq         INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER,
    finished_at INTEGER,
    error       TEXT    NOT NULL DEFAULT '',
    evidence    TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, seq)
) STRICT;

-- Append-only. credential_id and run_id carry no foreign keys: the history
-- outlives what it describes. seq, prev_hash, hash and sealed_at are written
-- once by the sealer. AUTOINCREMENT: ids are never reused.
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at   INTEGER NOT NULL,
    actor         TEXT    NOT NULL DEFAULT '',
    action        TEXT    NOT NULL,
    credential_id TEXT,
    run_id        TEXT,
    data          TEXT,
    seq           INTEGER UNIQUE,
    prev_hash     TEXT,
    hash          TEXT,
    sealed_at     INTEGER
) STRICT;

-- The sealer's queue.
CREATE INDEX audit_events_unsealed_idx ON audit_events (id) WHERE seq IS NULL;
CREATE INDEX audit_events_credential_occurred_at_idx ON audit_events (credential_id, occurred_at);
CREATE INDEX audit_events_run_idx ON audit_events (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE run_steps;
DROP TABLE runs;
DROP TABLE versions;
DROP TABLE credentials;
DROP TABLE targets;
DROP TABLE providers;
