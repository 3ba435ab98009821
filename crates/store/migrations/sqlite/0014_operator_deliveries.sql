-- Deliveries that belong to no token: operator alerts (`[operator_alerts]`) have a NULL
-- token_id and lanes of their own ('operator/<channel>'). SQLite cannot drop a NOT NULL, so the
-- table is rebuilt with every column, row and index it had.
CREATE TABLE deliveries_new (
    id               TEXT PRIMARY KEY NOT NULL,
    token_id         TEXT,
    message_id       TEXT NOT NULL,
    kind             TEXT NOT NULL,
    channel          TEXT NOT NULL,
    target           TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_until    BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    lane             TEXT NOT NULL DEFAULT '',
    UNIQUE (message_id, channel)
);
INSERT INTO deliveries_new (id, token_id, message_id, kind, channel, target, payload, state,
    attempts, next_attempt_at, claimed_until, last_error, created_at, delivered_at, lane)
SELECT id, token_id, message_id, kind, channel, target, payload, state,
    attempts, next_attempt_at, claimed_until, last_error, created_at, delivered_at, lane
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;

CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_token ON deliveries (token_id, created_at);
CREATE INDEX deliveries_pending_lane ON deliveries (lane, created_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_created ON deliveries (created_at);
