//! The audit log's vocabulary: who acted (`Actor`) and what they did (`AuditAction`), typed so a
//! caller cannot misspell either, and the one way an entry is made.

use std::fmt;

use canarykeys_store::AuditRecord;
use rand::distributions::{Alphanumeric, DistString};

use crate::clock::Clock;

/// Who did it, as the log names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in operator (or, before API keys were told apart, a key's owner), by name.
    Operator(String),
    /// An API key, acting for its operator. The log names the operator, as for a session.
    ApiKey(KeyActor),
    /// Someone holding a token's manage secret.
    ManageSecret,
    /// Creation through the open form or API, without an operator.
    Anonymous,
    /// The command line on the server host.
    Cli,
    /// The expiry job.
    Expiry,
    /// The trusted SSO proxy, naming an operator for the first time.
    Proxy,
    /// The server itself (a lockout).
    System,
}

impl Actor {
    /// `Operator` for `Some(name)`, `Anonymous` otherwise.
    pub fn operator_or_anonymous(name: Option<String>) -> Self {
        name.map_or(Self::Anonymous, Self::Operator)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Operator(name) => name,
            Self::ApiKey(key) => &key.operator,
            Self::ManageSecret => "manage-secret",
            Self::Anonymous => "anonymous",
            Self::Cli => "cli",
            Self::Expiry => "expiry",
            Self::Proxy => "proxy",
            Self::System => "system",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API key as the actor of a change: which key, and whose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyActor {
    pub key_id: String,
    pub key_name: String,
    pub operator_id: String,
    /// The operator's name.
    pub operator: String,
}

/// What was done, as the log (and its CSV export) spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    TokenCreate,
    TokenDelete,
    TokenChannels,
    TokenIgnoreSources,
    TokenManageSecret,
    TokenTestAlert,
    TokenConfirm,
    TokensBulkCreate,
    TokensBulkDelete,
    TokensManageSecretReset,
    OperatorCreate,
    OperatorLockout,
    Login,
    LoginFailed,
    Logout,
    ApiKeyCreate,
    ApiKeyRevoke,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenCreate => "token.create",
            Self::TokenDelete => "token.delete",
            Self::TokenChannels => "token.channels",
            Self::TokenIgnoreSources => "token.ignore_sources",
            Self::TokenManageSecret => "token.manage_secret",
            Self::TokenTestAlert => "token.test_alert",
            Self::TokenConfirm => "token.confirm",
            Self::TokensBulkCreate => "tokens.bulk_create",
            Self::TokensBulkDelete => "tokens.bulk_delete",
            Self::TokensManageSecretReset => "tokens.manage_secret_reset",
            Self::OperatorCreate => "operator.create",
            Self::OperatorLockout => "operator.lockout",
            Self::Login => "login",
            Self::LoginFailed => "login.failed",
            Self::Logout => "logout",
            Self::ApiKeyCreate => "api_key.create",
            Self::ApiKeyRevoke => "api_key.revoke",
        }
    }
}

/// A new entry stamped by `clock`; ids sort by time, then at random.
pub fn entry(
    clock: &dyn Clock,
    actor: &Actor,
    action: AuditAction,
    target: &str,
    details: &str,
) -> AuditRecord {
    let at = clock.now_millis();
    let suffix = Alphanumeric.sample_string(&mut rand::thread_rng(), 8);
    AuditRecord {
        id: format!("{at:013}-{suffix}"),
        at,
        actor: actor.as_str().to_owned(),
        action: action.as_str().to_owned(),
        target: target.to_owned(),
        details: details.to_owned(),
    }
}
