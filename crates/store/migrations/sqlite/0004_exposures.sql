-- Exposures: a decoy key seen in public (an AWS Health event, or AWS's quarantine policy on its
-- user). At most one row per token and source; later sightings add to it.
CREATE TABLE exposures (
    id           TEXT PRIMARY KEY NOT NULL,
    token_id     TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    -- 'health' or 'quarantine'.
    source       TEXT NOT NULL,
    -- The AWS Health event type, or the quarantine policy's name.
    event_type   TEXT NOT NULL,
    -- The Health event ARN or policy ARN counted last: a second copy of it is not a new sighting.
    last_ref     TEXT NOT NULL,
    -- AWS's text and the place it names: attacker-influenced, escaped wherever shown.
    description  TEXT NOT NULL,
    location     TEXT,
    -- When AWS says it happened (unix ms).
    event_time   BIGINT NOT NULL,
    first_seen   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL,
    seen_count   BIGINT NOT NULL DEFAULT 1,
    raw          TEXT NOT NULL,
    UNIQUE (token_id, source)
);
CREATE INDEX exposures_first_seen ON exposures (first_seen);
