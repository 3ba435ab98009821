-- Flood folding: past `[alerts] stored_hits_per_window` stored hits in an open cooldown window,
-- further uses are counted into the window row (how many, their span, capped tallies of
-- addresses, user agents and event names) instead of being stored one by one.
ALTER TABLE alert_windows ADD COLUMN folded BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alert_windows ADD COLUMN folded_first BIGINT;
ALTER TABLE alert_windows ADD COLUMN folded_last BIGINT;
-- Each: the "other" count on the first line, then "count<TAB>value" lines (escaped).
ALTER TABLE alert_windows ADD COLUMN folded_addresses TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_windows ADD COLUMN folded_agents TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_windows ADD COLUMN folded_events TEXT NOT NULL DEFAULT '';

-- The folded uses' event ids, as 8-byte hashes, kept until retention prunes them with the
-- hits of their time: the same event arriving again by another path (EventBridge, CloudWatch
-- Logs and S3 all carry it), even after its window closed, is a repeat. Each row also counts
-- in the token's hit count.
CREATE TABLE folded_events (
    token_id    TEXT NOT NULL,
    event_hash  BIGINT NOT NULL,
    event_time  BIGINT NOT NULL,
    PRIMARY KEY (token_id, event_hash)
);
