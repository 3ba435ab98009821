//! The S3 path: reads new CloudTrail log files from the trail's bucket. Positions are kept per
//! `AWSLogs/…/CloudTrail/<region>/` prefix in the database, so a restart resumes where the last
//! run stopped. A file is marked done only after its hits are committed (at least once; the
//! eventID dedupe makes a second reading harmless).
//!
//! A file is read as a stream (see `IngestService::ingest_stream`), so a trail file of any real
//! size is ingested whole, in chunks; only its compressed size is bounded by `max_object_bytes`.
//!
//! A file that fails (a transient S3 or database error) is retried after 1, 2, 4, … rounds, and
//! the position never moves past it until it is read or given up after [`MAX_ATTEMPTS`] (then it
//! is logged as an error and counted). What the poller remembers is bounded: per folder, the keys
//! read in the position's day (the look-back window) and the files waiting for a retry.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use canarykeys_aws::TrailBucket;
use canarykeys_store::Store;

use crate::services::{DeliveryPath, IngestService};

/// How many keys one listing asks for.
const PAGE: i32 = 1000;
/// How deep below the configured prefix the region folders may be
/// (`AWSLogs/[o-org/]<account>/CloudTrail/<region>/`).
const MAX_DEPTH: usize = 4;
/// Reads of one file before it is given up (spread over about 2^MAX_ATTEMPTS rounds).
pub const MAX_ATTEMPTS: u32 = 10;
/// The longest wait between two reads of a failing file, in rounds.
const MAX_WAIT_ROUNDS: u64 = 64;

/// A file that failed: how often through its own fault, how many reads in a row failed for any
/// reason (for the backoff), and the round it may be read again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    failures: u32,
    due_round: u64,
}

/// Whether a failed read was the world's fault, not the file's: the database or S3 unreachable,
/// or AWS throttling. Such a file is retried for as long as it takes and never given up, so a
/// long outage cannot make the poller skip good files. Only the file's own faults (gone,
/// unreadable to us, over the size limit, not decodable) count toward `MAX_ATTEMPTS`.
fn is_outage(error: &anyhow::Error) -> bool {
    use crate::services::IngestError;
    use canarykeys_aws::AwsError;
    if let Some(e) = error.downcast_ref::<AwsError>() {
        return matches!(e, AwsError::Throttled { .. } | AwsError::Unavailable { .. });
    }
    match error.downcast_ref::<IngestError>() {
        // A store error is never the file's: a bad row is retried alone by the writer, and the
        // rest is the database being away.
        Some(IngestError::Store(_)) => true,
        Some(IngestError::Parse(_)) => false,
        None => false,
    }
}

pub struct S3Poller {
    pub bucket_api: Arc<dyn TrailBucket>,
    pub store: Arc<dyn Store>,
    pub ingest: IngestService,
    pub bucket: String,
    pub prefix: String,
    pub max_object_bytes: u64,
    /// Per region folder, keys read since start within the look-back window (the position's
    /// day), so the look-back does not fetch them again. Older keys are forgotten.
    seen: HashMap<String, BTreeSet<String>>,
    /// Files that failed and wait for another read. The position stays before them.
    retries: HashMap<String, Retry>,
    round_no: u64,
}

/// What one round did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    pub prefixes: usize,
    pub objects: usize,
    pub new_hits: usize,
    pub failed_objects: usize,
    /// Failing files left waiting for a later round (the position stays before them).
    pub waiting_objects: usize,
    /// Files given up after [`MAX_ATTEMPTS`] failed reads.
    pub abandoned_objects: usize,
}

impl S3Poller {
    pub fn new(
        bucket_api: Arc<dyn TrailBucket>,
        store: Arc<dyn Store>,
        ingest: IngestService,
        bucket: String,
        prefix: String,
        max_object_bytes: u64,
    ) -> Self {
        Self {
            bucket_api,
            store,
            ingest,
            bucket,
            prefix,
            max_object_bytes,
            seen: HashMap::new(),
            retries: HashMap::new(),
            round_no: 0,
        }
    }

    fn cursor_key(&self, leaf: &str) -> String {
        format!("s3_poller:{}:{leaf}", self.bucket)
    }

    /// The region folders that hold log files, found by walking the folder tree.
    async fn leaves(&self) -> anyhow::Result<Vec<String>> {
        let mut frontier = vec![self.prefix.clone()];
        let mut leaves = Vec::new();
        for _ in 0..MAX_DEPTH {
            let mut next = Vec::new();
            for p in &frontier {
                for child in self.bucket_api.list_prefixes(&self.bucket, p).await? {
                    if p.ends_with("/CloudTrail/") {
                        leaves.push(child);
                    } else if !child.ends_with("/CloudTrail-Digest/")
                        && !child.ends_with("/CloudTrail-Insight/")
                    {
                        next.push(child);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(leaves)
    }

    pub async fn round(&mut self) -> anyhow::Result<RoundReport> {
        let mut report = RoundReport::default();
        let leaves = self.leaves().await?;
        report.prefixes = leaves.len();
        for leaf in leaves {
            self.leaf_round(&leaf, &mut report).await?;
        }
        self.round_no += 1;
        report.waiting_objects = self.retries.len();
        Ok(report)
    }

    /// Reads one region folder's new files, and moves its position past the files read, up to
    /// the first one that failed.
    async fn leaf_round(&mut self, leaf: &str, report: &mut RoundReport) -> anyhow::Result<()> {
        let key = self.cursor_key(leaf);
        let mut cursor = self.store.get_setting(&key).await?;
        // Files of one delivery window can land out of name order, so each round looks back
        // over the position's day; what was read since start is skipped. On the first round
        // after a start, everything up to the position counts as read.
        let start_after = match (&cursor, self.round_no) {
            (Some(c), 1..) => Some(day_folder(c).unwrap_or(c).to_owned()),
            (c, _) => c.clone(),
        };
        let mut after = start_after;
        // Once a file is not read, the position stays before it.
        let mut blocked = false;
        loop {
            let page = self
                .bucket_api
                .list_after(&self.bucket, leaf, after.as_deref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            let full = page.len() as i32 == PAGE;
            for object in page {
                if !is_log_file(&object.key) {
                    continue;
                }
                let seen = self.seen.get(leaf).is_some_and(|s| s.contains(&object.key));
                if !seen && !self.read_or_retry(&object.key, report).await {
                    blocked = true;
                    continue;
                }
                self.seen
                    .entry(leaf.to_owned())
                    .or_default()
                    .insert(object.key.clone());
                if !blocked && cursor.as_deref().is_none_or(|c| object.key.as_str() > c) {
                    self.store.put_setting(&key, &object.key).await?;
                    cursor = Some(object.key.clone());
                }
            }
            if !full {
                break;
            }
        }
        // Forget what the next look-back will not list again.
        if let (Some(c), Some(seen)) = (&cursor, self.seen.get_mut(leaf)) {
            let window = day_folder(c).unwrap_or(c).to_owned();
            seen.retain(|k| *k >= window);
        }
        Ok(())
    }

    /// Reads a file unless it waits for a retry. True when it is done with: read now, or given
    /// up after too many failures.
    async fn read_or_retry(&mut self, key: &str, report: &mut RoundReport) -> bool {
        let retry = self.retries.get(key).copied();
        if retry.is_some_and(|r| r.due_round > self.round_no) {
            return false;
        }
        report.objects += 1;
        let error = match self.read(key).await {
            Ok(new_hits) => {
                report.new_hits += new_hits;
                self.retries.remove(key);
                return true;
            }
            Err(e) => e,
        };
        report.failed_objects += 1;
        let outage = is_outage(&error);
        let attempts = retry.map_or(0, |r| r.attempts) + u32::from(!outage);
        let failures = retry.map_or(1, |r| r.failures.saturating_add(1));
        if attempts >= MAX_ATTEMPTS {
            // Passed over so one bad file cannot hold the folder forever; the other paths and
            // the safety net still see the calls it held.
            self.retries.remove(key);
            report.abandoned_objects += 1;
            tracing::error!(key = %key, attempts, error = format!("{error:#}"), "giving up on trail file");
            return true;
        }
        let wait = (1_u64 << (failures - 1).min(6)).min(MAX_WAIT_ROUNDS);
        self.retries.insert(
            key.to_owned(),
            Retry {
                attempts,
                failures,
                due_round: self.round_no + wait,
            },
        );
        tracing::warn!(key = %key, attempts, outage, wait_rounds = wait, error = format!("{error:#}"), "cannot ingest trail file; will retry");
        false
    }

    /// Downloads a file (compressed, within `max_object_bytes`) and streams it: gunzip, parse
    /// and store run chunk by chunk, so its decompressed size is not bounded by the HTTP
    /// decompression budget, only each record by the parser's per-record cap.
    async fn read(&self, key: &str) -> anyhow::Result<usize> {
        let bytes: Arc<[u8]> = self
            .bucket_api
            .get(&self.bucket, key, self.max_object_bytes)
            .await?
            .into();
        let open = move || Ok(std::io::Cursor::new(bytes.clone()));
        let report = self
            .ingest
            .ingest_stream(open, DeliveryPath::S3, false)
            .await?;
        Ok(report.new_hits)
    }
}

/// `…/CloudTrail/us-east-1/2026/11/28/file.json.gz` → `…/CloudTrail/us-east-1/2026/11/28/`.
fn day_folder(key: &str) -> Option<&str> {
    key.rfind('/').map(|i| &key[..=i])
}

/// Trail log files; digests and anything else in the bucket are not CloudTrail records.
fn is_log_file(key: &str) -> bool {
    (key.ends_with(".json.gz") || key.ends_with(".json")) && !key.contains("CloudTrail-Digest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_own_faults_count_toward_giving_up() {
        use crate::services::IngestError;
        use canarykeys_aws::AwsError;
        use canarykeys_core::cloudtrail::ParseError;
        use canarykeys_store::StoreError;

        let unavailable = AwsError::Unavailable {
            op: "S3 GetObject",
            detail: Default::default(),
            source: None,
        };
        let throttled = AwsError::Throttled {
            op: "S3 GetObject",
            detail: Default::default(),
            source: None,
        };
        let gone = AwsError::NotFound {
            op: "S3 GetObject",
            detail: Default::default(),
            source: None,
        };
        assert!(is_outage(&unavailable.into()));
        assert!(is_outage(&throttled.into()));
        assert!(is_outage(&IngestError::Store(StoreError::Closed).into()));
        assert!(is_outage(
            &IngestError::Store(StoreError::Corrupt("x".into())).into()
        ));
        assert!(!is_outage(&gone.into()));
        assert!(!is_outage(
            &AwsError::refused("S3 GetObject", "over the size limit").into()
        ));
        assert!(!is_outage(&IngestError::Parse(ParseError::BadGzip).into()));
    }

    #[test]
    fn keys() {
        let k = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/28/123456789012_CloudTrail_us-east-1_20261128T1000Z_abc.json.gz";
        assert_eq!(
            day_folder(k),
            Some("AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/28/")
        );
        assert!(is_log_file(k));
        assert!(!is_log_file(
            "AWSLogs/1/CloudTrail-Digest/us-east-1/2026/11/28/x.json.gz"
        ));
        assert!(!is_log_file(
            "AWSLogs/1/CloudTrail/us-east-1/2026/11/28/notes.txt"
        ));
    }
}
