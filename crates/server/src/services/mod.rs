//! The server's use cases, independent of HTTP or CLI: what creating, reading, changing and
//! deleting a token means.

pub mod tokens;

pub use tokens::{CreatedToken, ServiceError, TokenService};
