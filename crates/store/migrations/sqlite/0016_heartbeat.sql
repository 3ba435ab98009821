-- Proof of life. Each decoy account holds one heartbeat identity: an IAM user with no
-- permissions and a key, minted like a decoy but never planted, shown or alerted. A replaced
-- identity keeps its row (retired_at set), so an event of its key that arrives late is still a
-- receipt, not an unknown key.
CREATE TABLE heartbeat_keys (
    access_key_id  TEXT PRIMARY KEY,
    -- The AAD the secret is sealed under (a fresh id, as a token's).
    id             TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    username       TEXT NOT NULL,
    secret_sealed  TEXT NOT NULL,
    minter         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    retired_at     BIGINT
);
-- One live identity per account: two replicas that mint at once cannot both keep theirs.
CREATE UNIQUE INDEX heartbeat_keys_live ON heartbeat_keys (account_id) WHERE retired_at IS NULL;

-- An event of a heartbeat key, by whichever path brought it: a receipt, never a hit.
CREATE TABLE heartbeat_receipts (
    path         TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    account_id   TEXT NOT NULL,
    region       TEXT NOT NULL,
    event_time   BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (path, event_id)
);
CREATE INDEX heartbeat_receipts_received ON heartbeat_receipts (received_at);
CREATE INDEX heartbeat_receipts_path ON heartbeat_receipts (account_id, region, path, received_at);

-- When each account's heartbeat in each region is next due. Replicas take a due slot by
-- compare-and-set, so there is one call per interval per region in all.
CREATE TABLE heartbeat_slots (
    account_id  TEXT NOT NULL,
    region      TEXT NOT NULL,
    due_at      BIGINT NOT NULL,
    PRIMARY KEY (account_id, region)
);
