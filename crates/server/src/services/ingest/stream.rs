//! Inputs of any size (trail files from S3, files given to the CLI): the parser reads them on a
//! blocking thread and hands on chunks of at most 1,000 records through a short queue, while
//! this task matches and stores the chunk before. Memory is a few chunks whatever the file's
//! size, and parsing one chunk overlaps storing the last.
//!
//! Each chunk is committed on its own. An input that breaks off part-way (a truncated gzip)
//! fails after the chunks before the break were stored; reading it again is harmless, since
//! hits are deduplicated by eventID.

use std::io::Read;
use std::ops::ControlFlow;

use canarykeys_core::cloudtrail::{self, Chunk, ParseError};
use tokio::sync::mpsc;

use super::{DeliveryPath, IngestError, IngestReport, IngestService, MAX_SKIP_REASONS};
use canarykeys_core::cloudtrail::Skip;

/// Chunks parsed ahead of the one being stored: enough to keep both sides busy.
const AHEAD: usize = 2;

impl IngestService {
    /// Parses an input from the readers `open` makes (each read starts at the beginning; a
    /// second one is made only to read a non-JSON input again as NDJSON) and records its hits
    /// chunk by chunk (unless `dry_run`). Returns once every chunk is committed.
    #[tracing::instrument(skip_all, fields(path = path.as_str(), dry_run))]
    pub async fn ingest_stream<R, F>(
        &self,
        open: F,
        path: DeliveryPath,
        dry_run: bool,
    ) -> Result<IngestReport, IngestError>
    where
        R: Read,
        F: FnMut() -> std::io::Result<R> + Send + 'static,
    {
        let (chunks, mut queue) = mpsc::channel::<Chunk>(AHEAD);
        let limits = self.limits;
        let gate = self.gate();
        let parser = tokio::task::spawn_blocking(move || {
            cloudtrail::parse_stream_gated(open, &limits, &*gate, &mut |chunk| {
                // The receiver is gone only when storing failed; stop reading then.
                match chunks.blocking_send(chunk) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            })
        });
        let mut report = IngestReport::default();
        let mut stored = Ok(());
        while let Some(chunk) = queue.recv().await {
            report.skips(&chunk.skipped);
            self.metrics.add(
                "canarykeys_ingest_skipped_total",
                path.as_str(),
                chunk.skipped.len() as u64,
            );
            report.unknown_keys += self.count_gated(chunk.gated, path);
            match self.record(&chunk.records, path, None, dry_run).await {
                Ok(part) => report.add(&part),
                Err(e) => {
                    stored = Err(e);
                    break;
                }
            }
        }
        drop(queue);
        let parsed = match parser.await {
            Ok(parsed) => parsed,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(ParseError::Interrupted),
        };
        stored?;
        let summary = parsed.inspect_err(|e| {
            if report.matched > 0 {
                tracing::warn!(error = %e, new_hits = report.new_hits, duplicates = report.duplicates,
                    "input broke off after some of its hits were stored");
            }
        })?;
        report.format = Some(summary.format);
        report.records = summary.records + summary.skipped;
        report.parsed = summary.records;
        Ok(report)
    }
}

impl IngestReport {
    /// Adds the totals of a part of the same input (a chunk of a stream).
    fn add(&mut self, part: &IngestReport) {
        self.matched += part.matched;
        self.unknown_keys += part.unknown_keys;
        self.new_hits += part.new_hits;
        self.duplicates += part.duplicates;
        self.retired += part.retired;
        self.heartbeats += part.heartbeats;
        self.session_issues += part.session_issues;
    }

    /// Counts skips, keeping the first few reasons.
    fn skips(&mut self, skipped: &[Skip]) {
        self.skipped += skipped.len();
        let room = MAX_SKIP_REASONS.saturating_sub(self.skip_reasons.len());
        self.skip_reasons.extend(skipped.iter().take(room).cloned());
    }
}
