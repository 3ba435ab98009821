-- A token's hits, alerts and deliveries outlive the token: deleting or expiring a token must not
-- drop an alert that is still waiting to be sent. The foreign keys to tokens go, and a deleted
-- token leaves a copy of what its messages need.
ALTER TABLE hits DROP CONSTRAINT IF EXISTS hits_token_id_fkey;
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_token_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_token_id_fkey;
CREATE INDEX alerts_token ON alerts (token_id, state);

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
