//! The server's use cases, independent of HTTP or CLI: what creating, reading, changing and
//! deleting a token means.

pub mod alerts;
pub mod ingest;
pub mod tokens;

pub use ingest::{DeliveryPath, IngestError, IngestReport, IngestService};
pub use tokens::{CreatedToken, ServiceError, TokenService};
