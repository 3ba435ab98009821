-- One row per delivery lane, with the time its head may next be tried (`next_at`, NULL when
-- the lane has nothing pending) and its claim's lease (`claimed_until`). Workers claim lanes
-- here, in time order, so a claim reads the due lanes and a few rows of each, never the
-- backlog behind a head that waits for a retry. A lane is named by a text key, so messages
-- that belong to no token (operator alerts, SIEM streams) can have lanes of their own:
-- 'token/<token id>/<channel>' for a token's alerts.
CREATE TABLE delivery_lanes (
    lane           TEXT PRIMARY KEY NOT NULL,
    next_at        BIGINT,
    claimed_until  BIGINT
);
CREATE INDEX delivery_lanes_due ON delivery_lanes (next_at) WHERE next_at IS NOT NULL;

ALTER TABLE deliveries ADD COLUMN lane TEXT NOT NULL DEFAULT '';
UPDATE deliveries SET lane = 'token/' || token_id || '/' || channel;
DROP INDEX deliveries_pending_lane;
CREATE INDEX deliveries_pending_lane ON deliveries (lane, created_at, id) WHERE state = 'pending';
-- Retention prunes finished deliveries by age.
CREATE INDEX deliveries_created ON deliveries (created_at);

INSERT INTO delivery_lanes (lane, next_at, claimed_until)
SELECT d.lane, d.next_attempt_at, NULL FROM deliveries d
WHERE d.state = 'pending' AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.state = 'pending'
    AND e.lane = d.lane
    AND (e.created_at < d.created_at OR (e.created_at = d.created_at AND e.id < d.id)));

-- The planner reads each token's oldest new alert through this index instead of numbering
-- every new alert.
CREATE INDEX alerts_token_new ON alerts (token_id, created_at, id) WHERE state = 'new';
