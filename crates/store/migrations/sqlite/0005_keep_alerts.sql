-- A token's hits, alerts and deliveries outlive the token: deleting or expiring a token must not
-- drop an alert that is still waiting to be sent. The foreign keys to tokens go (SQLite can only
-- do that by rebuilding the tables), and a deleted token leaves a copy of what its messages need.
-- Order matters: the new alerts table refers to hits_new, so dropping the old hits table cascades
-- into nothing; the renames then rewrite that reference to "hits".

CREATE TABLE hits_new (
    id               TEXT PRIMARY KEY NOT NULL,
    token_id         TEXT NOT NULL,
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
    suppressed       TEXT,
    raw              TEXT NOT NULL
);
INSERT INTO hits_new (id, token_id, event_id, event_time, received_at, event_name, event_source,
    region, source_ip, user_agent, error_code, error_message, account_id, access_key_id, tls_host,
    vpc_endpoint_id, request_id, path, note, suppressed, raw)
SELECT id, token_id, event_id, event_time, received_at, event_name, event_source,
    region, source_ip, user_agent, error_code, error_message, account_id, access_key_id, tls_host,
    vpc_endpoint_id, request_id, path, note, suppressed, raw FROM hits;

CREATE TABLE alerts_new (
    id          TEXT PRIMARY KEY NOT NULL,
    hit_id      TEXT NOT NULL UNIQUE REFERENCES hits_new (id) ON DELETE CASCADE,
    token_id    TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    summary_id  TEXT
);
INSERT INTO alerts_new (id, hit_id, token_id, state, created_at, summary_id)
SELECT id, hit_id, token_id, state, created_at, summary_id FROM alerts;

CREATE TABLE deliveries_new (
    id               TEXT PRIMARY KEY NOT NULL,
    token_id         TEXT NOT NULL,
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
INSERT INTO deliveries_new (id, token_id, message_id, kind, channel, target, payload, state,
    attempts, next_attempt_at, claimed_until, last_error, created_at, delivered_at)
SELECT id, token_id, message_id, kind, channel, target, payload, state,
    attempts, next_attempt_at, claimed_until, last_error, created_at, delivered_at FROM deliveries;

DROP TABLE deliveries;
DROP TABLE alerts;
DROP TABLE hits;
ALTER TABLE hits_new RENAME TO hits;
ALTER TABLE alerts_new RENAME TO alerts;
ALTER TABLE deliveries_new RENAME TO deliveries;

CREATE INDEX hits_token_time ON hits (token_id, event_time);
CREATE INDEX hits_received_at ON hits (received_at);
CREATE INDEX alerts_state ON alerts (state, created_at);
CREATE INDEX alerts_token ON alerts (token_id, state);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_token ON deliveries (token_id, created_at);

-- What a deleted or expired token's late messages need (memo, channels, ignore list), copied
-- in the delete's transaction. The sealed secret is not kept.
CREATE TABLE deleted_tokens (
    id                TEXT PRIMARY KEY NOT NULL,
    kind              TEXT NOT NULL,
    memo              TEXT NOT NULL,
    email             TEXT,
    email_enabled     BIGINT NOT NULL,
    webhook_url       TEXT,
    webhook_enabled   BIGINT NOT NULL,
    manage_hash       TEXT NOT NULL,
    minter            TEXT NOT NULL,
    access_key_id     TEXT NOT NULL,
    secret_sealed     TEXT NOT NULL,
    username          TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    region            TEXT NOT NULL,
    output            TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT,
    cooldown_until           BIGINT,
    ignore_sources           TEXT NOT NULL,
    email_disabled_reason    TEXT,
    webhook_disabled_reason  TEXT
);

-- Minting writes its intent before the first IAM call and clears it once the token is stored.
-- An intent left behind means a crash in between; the reconciler cleans up after it.
-- What the minter made is noted as soon as it answers, so a crash before the token is stored
-- leaves the key to revoke.
CREATE TABLE mint_intents (
    id             TEXT PRIMARY KEY NOT NULL,
    minter         TEXT NOT NULL,
    account_id     TEXT,
    username       TEXT,
    access_key_id  TEXT,
    created_at     BIGINT NOT NULL
);
