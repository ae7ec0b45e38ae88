-- Durable notifications (issue 12): an outbox the engine writes in the
-- transaction of the state change an event describes, and what delivery
-- makes of it.
--
-- notify_events is the outbox: one row per event, written beside the run's
-- own rows (no extra commit on the rotation path). The leader routes each
-- event to receivers and groups (notify_items), and flushes a group into
-- one delivery per group_interval (notify_deliveries). A delivery's id is
-- the webhook-id: it never changes across retries and restarts, and its
-- events are stored as sent. Every attempt is a row of notify_attempts.
--
-- Payloads are text, not jsonb: SQL never looks inside them, and parsing
-- them into jsonb would cost the rotation's commit CPU for nothing. The
-- only index beyond the keys that every row pays for is the partial one of
-- unrouted events (dropped from it once routed); the emergency index holds
-- only rotation.emergency rows.

-- +goose Up
CREATE TABLE notify_events (
    id            text        PRIMARY KEY,
    kind          text        NOT NULL,
    occurred_at   timestamptz NOT NULL,
    credential_id text,
    run_id        text,
    payload       text        NOT NULL,
    routed_at     timestamptz
);
CREATE INDEX notify_events_unrouted_idx ON notify_events (id) WHERE routed_at IS NULL;
CREATE INDEX notify_events_emergency_idx ON notify_events (occurred_at) WHERE kind = 'rotation.emergency';

CREATE TABLE notify_deliveries (
    id          text        PRIMARY KEY,
    receiver    text        NOT NULL,
    group_key   text        NOT NULL,
    state       text        NOT NULL,
    events      text        NOT NULL,
    event_count integer     NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX notify_deliveries_group_idx ON notify_deliveries (receiver, group_key, created_at);
CREATE INDEX notify_deliveries_pending_idx ON notify_deliveries (created_at) WHERE state = 'pending';

CREATE TABLE notify_items (
    event_id      text        NOT NULL REFERENCES notify_events (id),
    receiver      text        NOT NULL,
    group_key     text        NOT NULL,
    kind          text        NOT NULL,
    credential_id text,
    created_at    timestamptz NOT NULL,
    delivery_id   text        REFERENCES notify_deliveries (id),
    PRIMARY KEY (event_id, receiver, group_key)
);
CREATE INDEX notify_items_waiting_idx ON notify_items (receiver, group_key, created_at) WHERE delivery_id IS NULL;
CREATE INDEX notify_items_repeat_idx ON notify_items (receiver, kind, credential_id, created_at);

CREATE TABLE notify_attempts (
    delivery_id text        NOT NULL REFERENCES notify_deliveries (id),
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL,
    status      text        NOT NULL,
    error       text,
    PRIMARY KEY (delivery_id, attempt)
);

-- +goose Down
DROP TABLE notify_attempts;
DROP TABLE notify_items;
DROP TABLE notify_deliveries;
DROP TABLE notify_events;
