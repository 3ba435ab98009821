//! What a token or console use case can fail with; `http::error` maps each case to one status.

use canarykeys_aws::MintError;
use canarykeys_core::FieldError;
use canarykeys_store::StoreError;

use crate::crypto::CryptoError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Unknown token, or a secret that does not match: deliberately one case.
    #[error("no such token")]
    NotFound,
    #[error("could not mint a key")]
    Mint(#[from] MintError),
    #[error("storage failed")]
    Store(#[from] StoreError),
    #[error("sealing failed")]
    Crypto(#[from] CryptoError),
    /// An API key's create budget is spent (per minute, or live tokens): 429 with
    /// `Retry-After`.
    #[error("{why}")]
    CreateBudget { why: String, retry_after_secs: u64 },
}
