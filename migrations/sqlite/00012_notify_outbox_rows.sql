-- One outbox row per commit (issue 12). See the Postgres twin for the
-- design.
--
-- Down moves the events still in the outbox into notify_events. Their
-- time is the event's own ("time", RFC 3339 as Go writes it) in unix
-- microseconds: unixepoch() gives the whole seconds (offset applied), and
-- the fraction's digits, up to six, are read from the text.

-- +goose Up
CREATE TABLE notify_outbox (
    id          TEXT    PRIMARY KEY,
    occurred_at INTEGER NOT NULL,
    events      TEXT    NOT NULL
) STRICT;

-- +goose Down
WITH e AS (
    SELECT o.id AS row_id, x.key AS n, x.value AS payload, json_extract(x.value, '$.time') AS t,
           CASE WHEN instr(json_extract(x.value, '$.time'), '.') > 0
                THEN substr(json_extract(x.value, '$.time'), instr(json_extract(x.value, '$.time'), '.') + 1) ELSE '' END AS frac
    FROM notify_outbox AS o, json_each(o.events) AS x
)
INSERT INTO notify_events (id, kind, occurred_at, credential_id, run_id, payload)
SELECT json_extract(payload, '$.id'), json_extract(payload, '$.kind'),
       unixepoch(t) * 1000000 + CAST(substr(substr(frac, 1, length(frac) - CASE WHEN frac = '' THEN 0 WHEN frac LIKE '%Z' THEN 1 ELSE 6 END) || '000000', 1, 6) AS INTEGER),
       json_extract(payload, '$.credential'), json_extract(payload, '$.run_id'), payload
FROM e WHERE true
ORDER BY row_id, n
ON CONFLICT (id) DO NOTHING;
DROP TABLE notify_outbox;
