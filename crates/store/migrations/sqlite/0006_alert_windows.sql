-- Cooldown windows as one row per token: a hit inside an open window is counted here at commit
-- (a counter, the time span and a few distinct values), so a flood leaves no row per hit for
-- the planner. The row is read and deleted, in one transaction, when its summary is planned.
CREATE TABLE alert_windows (
    token_id          TEXT PRIMARY KEY NOT NULL,
    -- The summary's message id.
    id                TEXT NOT NULL,
    -- When the first gathered hit was received; the token's cooldown end at the last one.
    opened_at         BIGINT NOT NULL,
    closes_at         BIGINT,
    hits              BIGINT NOT NULL,
    first_event_time  BIGINT NOT NULL,
    last_event_time   BIGINT NOT NULL,
    -- The summary shows this hit's details.
    last_hit_id       TEXT NOT NULL,
    -- At most a few distinct values, one per line (escaped), and how many hits had another.
    addresses         TEXT NOT NULL,
    other_addresses   BIGINT NOT NULL,
    events            TEXT NOT NULL,
    other_events      BIGINT NOT NULL
);

-- Alerts gathered before windows had rows go back to the planner, which counts them into
-- their windows (or, if the window has closed since, sends one and opens the next).
UPDATE alerts SET state = 'new' WHERE state = 'grouped';
