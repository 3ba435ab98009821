-- A deleted or expired token's copy becomes its tombstone: when it ended and how. A CloudTrail
-- record can arrive long after the call; one from before the end is a hit of the token, one
-- from after it a use of a retired key. Tombstones are kept for `[detection] late_event_window`
-- even without hits, and matched by key and by user like live tokens.
ALTER TABLE deleted_tokens ADD COLUMN died_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deleted_tokens ADD COLUMN ended TEXT NOT NULL DEFAULT 'deleted';
-- Rows from before this migration never noted their end: this migration's time is an upper
-- bound, so a late record of such a token is taken as a use before the end (alerted, never
-- dropped).
UPDATE deleted_tokens SET
    died_at = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT,
    ended = CASE WHEN expires_at IS NOT NULL AND expires_at <= (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT
                 THEN 'expired' ELSE 'deleted' END;
CREATE INDEX deleted_tokens_key ON deleted_tokens (access_key_id);
CREATE INDEX deleted_tokens_user ON deleted_tokens (account_id, username);
CREATE INDEX deleted_tokens_died ON deleted_tokens (died_at);
