-- Tokens, their alert channels, the hits recorded against them, and installation settings.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE tokens (
    id                TEXT PRIMARY KEY NOT NULL,
    kind              TEXT NOT NULL,
    memo              TEXT NOT NULL,
    email             TEXT,
    email_enabled     BIGINT NOT NULL DEFAULT 1,
    webhook_url       TEXT,
    webhook_enabled   BIGINT NOT NULL DEFAULT 1,
    manage_hash       TEXT NOT NULL,
    minter            TEXT NOT NULL,
    access_key_id     TEXT NOT NULL UNIQUE,
    secret_sealed     TEXT NOT NULL,
    username          TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    region            TEXT NOT NULL,
    output            TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    -- When the token and its key are deleted by the expiry job (unix ms); NULL: never.
    expires_at        BIGINT,
    -- Alerting state: the open cooldown window, the source ignore list, channel health.
    cooldown_until           BIGINT,
    ignore_sources           TEXT NOT NULL DEFAULT '',
    email_failures           BIGINT NOT NULL DEFAULT 0,
    webhook_failures         BIGINT NOT NULL DEFAULT 0,
    email_disabled_reason    TEXT,
    webhook_disabled_reason  TEXT
);
CREATE INDEX tokens_created_at ON tokens (created_at);

-- One row per use of a token's key, deduplicated by CloudTrail eventID across every path.
CREATE TABLE hits (
    id               TEXT PRIMARY KEY NOT NULL,
    token_id         TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL UNIQUE,
    event_time       BIGINT NOT NULL,
    received_at      BIGINT NOT NULL,
    event_name       TEXT NOT NULL,
    event_source     TEXT NOT NULL,
    region           TEXT NOT NULL,
    source_ip        TEXT NOT NULL,
    user_agent       TEXT NOT NULL,
    error_code       TEXT,
    error_message    TEXT,
    account_id       TEXT,
    access_key_id    TEXT,
    tls_host         TEXT,
    vpc_endpoint_id  TEXT,
    request_id       TEXT,
    path             TEXT NOT NULL,
    note             TEXT,
    -- Why the hit raised no alert of its own (its source is on the token's ignore list).
    suppressed       TEXT,
    raw              TEXT NOT NULL
);
CREATE INDEX hits_token_time ON hits (token_id, event_time);

-- One row per new hit, written in the hit's transaction. The planner turns it into deliveries
-- ('sent'), holds it for the cooldown summary ('grouped' then 'summarized'), or drops it from
-- alerting because its source is ignored ('ignored').
CREATE TABLE alerts (
    id          TEXT PRIMARY KEY NOT NULL,
    hit_id      TEXT NOT NULL UNIQUE REFERENCES hits (id) ON DELETE CASCADE,
    token_id    TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    summary_id  TEXT
);
CREATE INDEX alerts_state ON alerts (state, created_at);

-- The outbox proper: one row per (message, channel). A message is a hit's alert, a cooldown
-- summary or a test. The payload is frozen when the row is written, so a retry sends the same.
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    token_id         TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
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
    UNIQUE (message_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_token ON deliveries (token_id, created_at);
