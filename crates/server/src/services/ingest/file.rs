//! A trail file already in memory (the S3 poller's downloads). Most are small, and parsing one
//! whole from a slice costs about half of streaming it through a reader (serde_json reads a
//! reader byte by byte; `perf` on a 10^6-record firehose put a third of the server's time there).
//! So a file is parsed whole, on a blocking thread, when it gunzips within [`WHOLE_FILE_BYTES`],
//! and streamed otherwise.
//!
//! Anything the whole parse refuses is read again by the stream, which is what decides: it
//! stores the chunks before a break (a truncated gzip) and reports the break, where a whole parse
//! would store nothing of such a file. So a file's hits and errors are those of the stream.

use std::io::Cursor;
use std::sync::Arc;

use canarykeys_core::cloudtrail::{self, Limits};

use super::{DeliveryPath, IngestError, IngestReport, IngestService};

/// The most a file may gunzip to for a whole parse. The poller reads up to eight files at once,
/// and a parsed file holds about its own size again in records, so this bounds the memory of
/// whole parses to about 8 × 2 × 8 MiB. CloudTrail's own files are far smaller.
pub const WHOLE_FILE_BYTES: usize = 8 * 1024 * 1024;

impl IngestService {
    /// Records the hits of a file held in memory; see the module docs. Returns once they are
    /// committed.
    #[tracing::instrument(skip_all, fields(bytes = bytes.len(), path = path.as_str()))]
    pub async fn ingest_file(
        &self,
        bytes: Arc<[u8]>,
        path: DeliveryPath,
    ) -> Result<IngestReport, IngestError> {
        let limits = Limits {
            max_decompressed_bytes: WHOLE_FILE_BYTES.min(self.limits.max_decompressed_bytes),
            ..self.limits
        };
        let whole = bytes.clone();
        let gate = self.gate();
        let parsed =
            tokio::task::spawn_blocking(move || cloudtrail::parse_gated(&whole, &limits, &*gate))
                .await;
        match parsed {
            Ok(Ok(parsed)) => self.ingest_parsed(parsed, path, false).await,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Too large, truncated, not JSON: the stream reads it and decides.
            _ => {
                self.ingest_stream(move || Ok(Cursor::new(bytes.clone())), path, false)
                    .await
            }
        }
    }
}
