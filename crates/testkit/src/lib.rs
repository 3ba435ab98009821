//! The one harness every canarykeys test binary uses. Each piece is a module here rather than a
//! file included with `#[path]`, so a test imports what it needs and nothing is dead code:
//!
//! | module | what |
//! |---|---|
//! | [`app`] | the real application on a free port with a temp data directory ([`spawn_app`]) |
//! | [`postgres`] | a uniquely named PostgreSQL database per test, dropped afterwards |
//! | [`backends`] | [`on_both_backends!`]: one store test as a SQLite and a PostgreSQL test |
//! | [`cli`] | the `canarykeys` binary run as a script would run it |
//! | [`wait`] | waiting for a condition with a deadline, never for a fixed time |
//! | [`smtp_sink`] | a real SMTP server (aiosmtpd) writing a Maildir |
//! | [`receiver`] | a webhook receiver that records alerts and can go down and come back |
//! | [`access`], [`console`] | operators, sign-in and hits for the access and console tests |
//! | [`gzip`] | gzip bytes, as CloudTrail and CloudWatch Logs deliver them |
//! | [`pollers`] | trail files in moto's S3 and the pipeline a poller needs |

pub mod backends;
pub mod postgres;
pub mod wait;

#[cfg(feature = "app")]
pub mod access;
#[cfg(feature = "app")]
pub mod app;
#[cfg(feature = "app")]
pub mod cli;
#[cfg(feature = "app")]
pub mod console;
#[cfg(feature = "app")]
pub mod pollers;
#[cfg(feature = "app")]
pub mod receiver;
#[cfg(feature = "app")]
pub mod smtp_sink;

#[cfg(feature = "app")]
pub use app::{
    id_and_secret, spawn_app, spawn_app_in, spawn_app_with, start_config, start_config_with_clock,
    test_config, TestApp,
};
pub use postgres::TestDatabase;
pub use wait::{wait_for, wait_for_file, WAIT};

// For `on_both_backends!`, which expands in the calling crate.
#[doc(hidden)]
pub use tempfile;

/// Gzips `bytes` (CloudTrail files in S3 and CloudWatch Logs payloads arrive gzipped).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}
