//! The server's use cases, independent of HTTP or CLI: what creating, reading, changing and
//! deleting a token means.

pub mod access;
pub mod alerts;
pub mod ingest;
pub mod key_index;
pub mod tokens;

pub use access::{AccessError, AccessService, Operator, Scope};
pub use ingest::{DeliveryPath, IngestError, IngestReport, IngestService};
pub use tokens::{CreatedToken, ServiceError, TokenService};
