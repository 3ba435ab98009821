//! The access model's public types: scopes, operators, API key and audit views, and errors.

use canarykeys_store::{ApiKeyRecord, OperatorRecord, StoreError};
use serde::Serialize;

/// Consecutive wrong passwords before the account backs off.
pub const LOCK_AFTER: i64 = 5;
/// The first back-off, doubled by each further wrong password.
pub const BACKOFF_FIRST_MILLIS: i64 = 30 * 1000;
/// The longest back-off.
pub const BACKOFF_MAX_MILLIS: i64 = 15 * 60 * 1000;

/// How long an operator backs off after its `failures`-th consecutive wrong password: nothing
/// for the first four, then 30 s, doubling each time, up to 15 minutes. A right password from
/// an address the operator has signed in from passes it (services::access), so a stranger's
/// guesses slow the account down for strangers only.
pub fn login_backoff(failures: i64) -> Option<i64> {
    if failures < LOCK_AFTER {
        return None;
    }
    let past = failures - LOCK_AFTER;
    let doublings = u32::try_from(past.clamp(0, 16)).unwrap_or(16);
    Some((BACKOFF_FIRST_MILLIS << doublings).min(BACKOFF_MAX_MILLIS))
}
/// What every API key starts with. A manage secret is 43 base64url characters with no prefix,
/// and a key is this prefix plus 43: prefix and length tell the two apart in `Bearer`.
pub const API_KEY_PREFIX: &str = "ck_";

/// What an API key may do. Sessions may do everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Scope {
    #[serde(rename = "tokens:write")]
    TokensWrite,
    #[serde(rename = "tokens:read")]
    TokensRead,
    #[serde(rename = "alerts:read")]
    AlertsRead,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::TokensWrite, Scope::TokensRead, Scope::AlertsRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokensWrite => "tokens:write",
            Self::TokensRead => "tokens:read",
            Self::AlertsRead => "alerts:read",
        }
    }

    /// Parses a comma- or space-separated list; an unknown name is an error, not ignored.
    pub fn parse_list(text: &str) -> Result<Vec<Scope>, AccessError> {
        let mut out = Vec::new();
        for name in text.split([',', ' ']).filter(|s| !s.is_empty()) {
            let scope = Self::ALL
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| AccessError::Invalid(format!("unknown scope {name:?}")))?;
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        Ok(out)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Operator {
    pub id: String,
    pub name: String,
}

impl From<OperatorRecord> for Operator {
    fn from(r: OperatorRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
        }
    }
}

/// How many tokens an API key may create: per minute, and live at once. Going over answers 429
/// with `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct KeyBudget {
    pub per_minute: u32,
    pub live_tokens: u32,
}

impl KeyBudget {
    pub const DEFAULT: Self = Self {
        per_minute: 60,
        live_tokens: 1000,
    };
}

impl Default for KeyBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An API key as listed: never the key itself.
#[derive(Clone, Debug, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub operator_id: String,
    pub scopes: Vec<Scope>,
    /// Unix ms, like every time here.
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// The key's create budget.
    pub budget: KeyBudget,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("wrong name or password")]
    BadCredentials,
    #[error("too many failed sign-ins; this operator is locked for a while")]
    Locked,
    #[error("too many sign-in attempts from this address; try again in a minute")]
    RateLimited,
    /// Every password-hash slot is busy (a sign-in flood): try again shortly.
    #[error("the server is busy checking other sign-ins; try again in a few seconds")]
    Busy,
    #[error("an operator with that name exists")]
    NameTaken,
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(super) fn info(r: ApiKeyRecord) -> ApiKeyInfo {
    ApiKeyInfo {
        scopes: Scope::parse_list(&r.scopes).unwrap_or_default(),
        id: r.id,
        name: r.name,
        operator_id: r.operator_id,
        created_at: r.created_at,
        revoked_at: r.revoked_at,
        last_used_at: r.last_used_at,
        budget: KeyBudget {
            per_minute: u32::try_from(r.create_per_minute).unwrap_or(0),
            live_tokens: u32::try_from(r.live_tokens_max).unwrap_or(0),
        },
    }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn backoff_starts_at_the_fifth_failure_doubles_and_caps() {
        assert_eq!((1..=4).map(login_backoff).collect::<Vec<_>>(), [None; 4]);
        assert_eq!(login_backoff(5), Some(30_000));
        assert_eq!(login_backoff(6), Some(60_000));
        assert_eq!(login_backoff(9), Some(480_000));
        assert_eq!(login_backoff(10), Some(BACKOFF_MAX_MILLIS));
        assert_eq!(login_backoff(i64::MAX), Some(BACKOFF_MAX_MILLIS));
    }
}
