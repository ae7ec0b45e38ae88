-- Durable notifications (issue 12). See the Postgres twin for the design.

-- +goose Up
CREATE TABLE notify_events (
    id            TEXT    PRIMARY KEY,
    kind          TEXT    NOT NULL,
    occurred_at   INTEGER NOT NULL,
    credential_id TEXT,
    run_id        TEXT,
    payload       TEXT    NOT NULL,
    routed_at     INTEGER
) STRICT;
CREATE INDEX notify_events_unrouted_idx ON notify_events (id) WHERE routed_at IS NULL;
CREATE INDEX notify_events_emergency_idx ON notify_events (occurred_at) WHERE kind = 'rotation.emergency';

CREATE TABLE notify_deliveries (
    id          TEXT    PRIMARY KEY,
    receiver    TEXT    NOT NULL,
    group_key   TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    events      TEXT    NOT NULL,
    event_count INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER
) STRICT;
CREATE INDEX notify_deliveries_group_idx ON notify_deliveries (receiver, group_key, created_at);
CREATE INDEX notify_deliveries_pending_idx ON notify_deliveries (created_at) WHERE state = 'pending';

CREATE TABLE notify_items (
    event_id      TEXT    NOT NULL REFERENCES notify_events (id),
    receiver      TEXT    NOT NULL,
    group_key     TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    credential_id TEXT,
    created_at    INTEGER NOT NULL,
    delivery_id   TEXT    REFERENCES notify_deliveries (id),
    PRIMARY KEY (event_id, receiver, group_key)
) STRICT;
CREATE INDEX notify_items_waiting_idx ON notify_items (receiver, group_key, created_at) WHERE delivery_id IS NULL;
CREATE INDEX notify_items_repeat_idx ON notify_items (receiver, kind, credential_id, created_at);

CREATE TABLE notify_attempts (
    delivery_id TEXT    NOT NULL REFERENCES notify_deliveries (id),
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
) STRICT;

-- +goose Down
DROP TABLE notify_attempts;
DROP TABLE notify_items;
DROP TABLE notify_deliveries;
DROP TABLE notify_events;
