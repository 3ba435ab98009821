-- Session decoys (`aws_session` tokens). A token's refresh secret (its SHA-256) can only issue
-- new sessions; every session issued keeps its row, so a CloudTrail record of an expired or
-- replaced session key is still matched to its token.
CREATE TABLE session_refresh (
    token_id      TEXT PRIMARY KEY NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    refresh_hash  TEXT NOT NULL
);

CREATE TABLE token_sessions (
    -- The ASIA key id handed out.
    access_key_id   TEXT PRIMARY KEY NOT NULL,
    token_id        TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL,
    -- The session's secret, sealed under the token id (the sensor checks signatures with it).
    secret_sealed   TEXT NOT NULL,
    -- The session token, sealed under the token id and key id (the sensor compares it).
    session_sealed  TEXT NOT NULL,
    issued_at       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    -- The CloudTrail eventID of the server's own GetSessionToken call that issued it, once seen.
    issue_event_id  TEXT
);
CREATE INDEX token_sessions_token ON token_sessions (token_id, issued_at);

-- A decoy with an expected-use window (`expected_use = until_confirm`, a CI run's): its uses are
-- recorded but held (the token's alert window stays open until `until`, its expiry) until a
-- confirm closes the window and the held uses go out as one digest.
CREATE TABLE token_holds (
    token_id      TEXT PRIMARY KEY NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    until         BIGINT NOT NULL,
    confirmed_at  BIGINT
);
