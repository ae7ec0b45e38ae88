-- One outbox row per commit (issue 12: delivery adds no more than one row
-- to a rotation's commit).
--
-- Until now the engine wrote one notify_events row per event in the commit
-- that caused it: a successful rotation with every kind routed wrote three
-- rows, each with its primary key and partial index entries, and rotations
-- were 15-29 % slower for it (docs/benchmarks.md). Now a commit writes its
-- events as one row of notify_outbox: a JSON array of the events, each
-- exactly as it is stored in notify_events.payload, under the id of its
-- first event; occurred_at is the time of its latest event. The table has
-- no index but its primary key.
--
-- The leader moves outbox rows into notify_events before it routes (in its
-- own transaction: insert each event under the id it was given when it was
-- noted, ON CONFLICT DO NOTHING, and delete the row), so routing, grouping
-- and delivery are as before. Readers of events (ListNotifyEvents) read
-- both tables. Events written outside a run's commit (the CLI, emergencies,
-- the overdue and expiring checks) still go to notify_events directly.
--
-- Down moves the events still in the outbox into notify_events, so none is
-- lost.

-- +goose Up
CREATE TABLE notify_outbox (
    id          text        PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    events      text        NOT NULL
);

-- +goose Down
INSERT INTO notify_events (id, kind, occurred_at, credential_id, run_id, payload)
SELECT e->>'id', e->>'kind', (e->>'time')::timestamptz, e->>'credential', e->>'run_id', e::text
FROM notify_outbox AS o CROSS JOIN LATERAL json_array_elements(o.events::json) AS x(e)
ORDER BY o.id
ON CONFLICT (id) DO NOTHING;
DROP TABLE notify_outbox;
