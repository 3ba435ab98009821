-- Each token change (created, ended, tombstones pruned) beside the value it moved
-- `tokens_version` to, written in the change's transaction. A SQLite server follows these from
-- the version it last read instead of re-reading every token on each change (a million tokens
-- took seconds a read). The last 10,000 are kept; a follower further behind re-reads everything.
CREATE TABLE token_changes (
    version BIGINT PRIMARY KEY,
    change  TEXT NOT NULL
);
