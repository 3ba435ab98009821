//! The server's use cases, independent of HTTP or CLI: what creating, reading, changing and
//! deleting a token means.

pub mod access;
pub mod alerts;
pub mod audit;
pub mod backup;
pub mod console;
pub mod detection_health;
pub mod disk;
mod error;
pub mod exposures;
pub mod heartbeat;
pub mod ingest;
pub mod key_index;
pub mod operator_alerts;
pub mod sealing;
pub mod sensor;
pub mod streams;
pub mod tamper;
pub mod tokens;

pub use access::{AccessError, AccessService, Operator, Scope};
pub use audit::{Actor, AuditAction, KeyActor};
pub use console::ConsoleService;
pub use error::ServiceError;
pub use exposures::{ExposureItem, ExposureService, HealthReport};
pub use ingest::{DeliveryPath, IngestError, IngestReport, IngestService};
pub use key_index::LateEvents;
pub use tokens::{CreatedToken, TokenService};
