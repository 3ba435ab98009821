//! The rows of access control: operators, their sessions and API keys, and the audit log.

/// An operator who signs in to the console.
#[derive(Clone, Debug)]
pub struct OperatorRecord {
    pub id: String,
    pub name: String,
    /// argon2id in the PHC string format; never leaves the server.
    pub password_hash: String,
    /// Consecutive failed sign-ins since the last good one (or the last lockout).
    pub failed_logins: i64,
    /// Sign-in is refused until this time (unix ms).
    pub locked_until: Option<i64>,
    pub created_at: i64,
}

/// An API key as stored: only the SHA-256 of the key, never the key.
#[derive(Clone, Debug)]
pub struct ApiKeyRecord {
    pub id: String,
    pub operator_id: String,
    pub name: String,
    pub key_hash: String,
    /// Space-separated scope names.
    pub scopes: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// Create budget: tokens this key may create per minute, and live at once.
    pub create_per_minute: i64,
    pub live_tokens_max: i64,
}

/// One line of the audit log: who did what to what, and when (unix ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
}
