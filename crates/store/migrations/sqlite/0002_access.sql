-- Who may use the console and the operator API: operators with password hashes, their
-- sessions, their API keys, and the audit log. Secrets are stored only as hashes.
CREATE TABLE operators (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL UNIQUE,
    -- argon2id, in the PHC string format (salt and parameters inside).
    password_hash  TEXT NOT NULL,
    -- Consecutive failed sign-ins; reset by a good one or when a lockout starts.
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    -- Sign-in refused until this time (unix ms); NULL: not locked.
    locked_until   BIGINT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE sessions (
    -- SHA-256 of the cookie value: a database leak does not hand out live sessions.
    id_hash      TEXT PRIMARY KEY NOT NULL,
    operator_id  TEXT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    operator_id   TEXT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    -- Space-separated scopes, e.g. "tokens:read alerts:read".
    scopes        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);

CREATE TABLE audit_log (
    id       TEXT PRIMARY KEY NOT NULL,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    details  TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
