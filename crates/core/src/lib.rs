//! Domain types and rules of canarykeys. Nothing here does I/O: every value that crosses the
//! system's edge is parsed into one of these types once, so the rest of the code can trust it.

pub mod access_key;
pub mod aws_files;
pub mod cloudtrail;
pub mod contact;
pub mod credentials;
pub mod detection;
pub mod health;
pub mod ids;
pub mod mint_protocol;
pub mod names;
pub mod netaddr;
pub mod sensor;
pub mod session;
pub mod signing;
pub mod ssrf;
pub mod text;
pub mod token;

use std::fmt;

pub use access_key::{AccessKeyId, AccountId, IamUserName, Region, SecretAccessKey};
pub use contact::{Email, Memo, WebhookUrl};
pub use credentials::{AwsCredentials, CredentialsFormat, OutputFormat};
pub use ids::{ManageSecret, ManageSecretHash, TokenCursor, TokenId};
pub use session::{SessionDuration, SessionPart, SessionToken};
pub use token::{ExpectedUse, ExpiresIn, NewToken, NewTokenInput, TokenKind};

/// Why a value was refused. The message is safe to show to the person who sent the value:
/// it never echoes the value itself, which may be attacker-controlled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// A refusal tied to the input field that caused it, so forms and the API can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: &'static str, problem: impl fmt::Display) -> Self {
        Self {
            field,
            problem: problem.to_string(),
        }
    }
}
