-- API keys own what they create. Each token records the operator (and the API key, if one) that
-- created it: a `tokens:write` key may delete only its own operator's tokens. Per operator, so a
-- revoked fleet key's successor still manages the fleet. Tokens made before this migration are
-- given the operator the audit log names as their creator (anonymous and CLI creates stay
-- unowned: no key may delete them).
ALTER TABLE tokens ADD COLUMN created_by_operator TEXT;
ALTER TABLE tokens ADD COLUMN created_by_key TEXT;
UPDATE tokens SET created_by_operator = (
    SELECT o.id FROM audit_log a JOIN operators o ON o.name = a.actor
    WHERE a.action = 'token.create' AND a.target = tokens.id
    ORDER BY a.at LIMIT 1
);
CREATE INDEX tokens_created_by_key ON tokens (created_by_key);

-- Each key's create budget, set when the key is made: creates per minute (a fixed window kept
-- in the row, so every replica counts the same) and live tokens at once.
ALTER TABLE api_keys ADD COLUMN create_per_minute BIGINT NOT NULL DEFAULT 60;
ALTER TABLE api_keys ADD COLUMN live_tokens_max BIGINT NOT NULL DEFAULT 1000;
ALTER TABLE api_keys ADD COLUMN create_window_start BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN create_window_count BIGINT NOT NULL DEFAULT 0;
