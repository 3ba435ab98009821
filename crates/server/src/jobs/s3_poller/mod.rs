//! The S3 path: reads new CloudTrail log files from the trail's bucket. Positions are kept per
//! `AWSLogs/…/CloudTrail/<region>/` prefix in the database, so a restart resumes where the last
//! run stopped. A file is marked done only after its hits are committed (at least once; the
//! eventID dedupe makes a second reading harmless).
//!
//! A file is parsed whole when it is small and read as a stream otherwise (see
//! `IngestService::ingest_file`), so a trail file of any real size is ingested whole; only its
//! compressed size is bounded by `max_object_bytes`. Folders are listed and read 16 at once, and
//! files downloaded 8 at once, since an organisation trail has a folder per account and region.
//!
//! A file that fails (a transient S3 or database error) is retried after 1, 2, 4, … rounds, and
//! the position never moves past it until it is read or given up after [`MAX_ATTEMPTS`] (then it
//! is logged as an error and counted). What the poller remembers is bounded: per folder, the keys
//! read in the position's day (the look-back window) and the files waiting for a retry.

use std::collections::HashMap;
use std::sync::Arc;

use canarykeys_aws::TrailBucket;
use canarykeys_store::Store;
use futures_util::stream::{self, StreamExt};
use tokio::sync::Semaphore;

use crate::services::{DeliveryPath, IngestService};

mod folder;
use folder::Folder;
pub use folder::MAX_ATTEMPTS;

/// How many keys one listing asks for.
const PAGE: i32 = 1000;
/// How deep below the configured prefix the region folders may be
/// (`AWSLogs/[o-org/]<account>/CloudTrail/<region>/`).
const MAX_DEPTH: usize = 4;
/// Folders listed and read at once. An S3 call takes tens of milliseconds, and an organisation
/// trail writes one folder per account and region: walked one at a time, a round over a
/// thousand accounts spends minutes in round trips before the newest file is read.
const FOLDERS_AT_ONCE: usize = 16;
/// Files downloaded and ingested at once, over all folders. Each is held whole while it is read,
/// so this bounds the poller's memory to this many `max_object_bytes`.
const FILES_AT_ONCE: usize = 8;

/// The part of the poller that folders share while they are read at once.
struct Reader {
    bucket_api: Arc<dyn TrailBucket>,
    store: Arc<dyn Store>,
    ingest: IngestService,
    bucket: String,
    max_object_bytes: u64,
    files: Semaphore,
}

pub struct S3Poller {
    reader: Reader,
    prefix: String,
    folders: HashMap<String, Folder>,
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

impl RoundReport {
    fn add(&mut self, other: &RoundReport) {
        self.objects += other.objects;
        self.new_hits += other.new_hits;
        self.failed_objects += other.failed_objects;
        self.abandoned_objects += other.abandoned_objects;
    }
}

/// What a round does with one listed file.
enum Step {
    /// Read before, in the look-back window.
    Seen,
    /// Failed before and not due again yet.
    Waiting,
    /// To download and ingest.
    Read,
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
            reader: Reader {
                bucket_api,
                store,
                ingest,
                bucket,
                max_object_bytes,
                files: Semaphore::new(FILES_AT_ONCE),
            },
            prefix,
            folders: HashMap::new(),
            round_no: 0,
        }
    }

    /// The region folders that hold log files, found by walking the folder tree, each level's
    /// folders listed at once.
    async fn leaves(&self) -> anyhow::Result<Vec<String>> {
        let mut frontier = vec![self.prefix.clone()];
        let mut leaves = Vec::new();
        for _ in 0..MAX_DEPTH {
            let reader = &self.reader;
            // Owned items: a stream over borrowed ones makes the round's future fail the
            // `Send` check of the task it runs in (a higher-ranked lifetime).
            let listed: Vec<_> = stream::iter(std::mem::take(&mut frontier))
                .map(|p| async move {
                    let children = reader.bucket_api.list_prefixes(&reader.bucket, &p).await;
                    (p, children)
                })
                .buffered(FOLDERS_AT_ONCE)
                .collect()
                .await;
            let mut next = Vec::new();
            for (p, children) in listed {
                for child in children? {
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

    /// Lists every region folder and reads its new files, several folders at once. A folder
    /// that fails (S3 or the database away) does not stop the others; the round then returns
    /// the first such error after every folder had its turn.
    pub async fn round(&mut self) -> anyhow::Result<RoundReport> {
        let leaves = self.leaves().await?;
        let mut report = RoundReport {
            prefixes: leaves.len(),
            ..Default::default()
        };
        let round_no = self.round_no;
        let taken: Vec<(String, Folder)> = leaves
            .into_iter()
            .map(|leaf| {
                let folder = self.folders.remove(&leaf).unwrap_or_default();
                (leaf, folder)
            })
            .collect();
        let reader = &self.reader;
        let done: Vec<_> = stream::iter(taken)
            .map(|(leaf, mut folder)| async move {
                let result = reader.folder_round(&leaf, &mut folder, round_no).await;
                (leaf, folder, result)
            })
            .buffer_unordered(FOLDERS_AT_ONCE)
            .collect()
            .await;
        let mut first_error = None;
        for (leaf, folder, result) in done {
            match result {
                Ok(part) => report.add(&part),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            self.folders.insert(leaf, folder);
        }
        self.round_no += 1;
        report.waiting_objects = self.folders.values().map(Folder::waiting_files).sum();
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

impl Reader {
    fn cursor_key(&self, leaf: &str) -> String {
        format!("s3_poller:{}:{leaf}", self.bucket)
    }

    /// Reads one region folder's new files, and moves its position past the files read, up to
    /// the first one that failed. Files of a page are read several at once; their outcomes are
    /// taken in key order, so the position moves as it would one file at a time. It is written
    /// once a page: a crash reads that page's files again, and the eventID dedupe makes that
    /// harmless.
    async fn folder_round(
        &self,
        leaf: &str,
        folder: &mut Folder,
        round_no: u64,
    ) -> anyhow::Result<RoundReport> {
        let mut report = RoundReport::default();
        let key = self.cursor_key(leaf);
        let mut cursor = self.store.get_setting(&key).await?;
        // Files of one delivery window can land out of name order, so each round looks back
        // over the position's day; what was read since start is skipped. On the first round
        // after a start, everything up to the position counts as read.
        let mut after = match &cursor {
            Some(c) if folder.listed => Some(day_folder(c).unwrap_or(c).to_owned()),
            c => c.clone(),
        };
        folder.listed = true;
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
            let files: Vec<(String, Step)> = page
                .into_iter()
                .filter(|o| is_log_file(&o.key))
                .map(|o| {
                    let step = if folder.seen.contains(&o.key) {
                        Step::Seen
                    } else if folder.waiting(&o.key, round_no) {
                        Step::Waiting
                    } else {
                        Step::Read
                    };
                    (o.key, step)
                })
                .collect();
            let reads: Vec<String> = files
                .iter()
                .filter(|(_, step)| matches!(step, Step::Read))
                .map(|(k, _)| k.clone())
                .collect();
            let mut outcomes = std::pin::pin!(stream::iter(reads)
                .map(|k| async move { self.read(&k).await })
                .buffered(FILES_AT_ONCE));
            let mut moved = None;
            for (object, step) in &files {
                let read = match step {
                    Step::Seen => true,
                    Step::Waiting => false,
                    Step::Read => {
                        let outcome = outcomes.next().await.expect("one outcome per read");
                        folder.settle(object, outcome, round_no, &mut report)
                    }
                };
                if !read {
                    blocked = true;
                    continue;
                }
                folder.seen.insert(object.clone());
                if !blocked && cursor.as_deref().is_none_or(|c| object.as_str() > c) {
                    cursor = Some(object.clone());
                    moved = Some(object);
                }
            }
            if let Some(object) = moved {
                self.store.put_setting(&key, object).await?;
            }
            if !full {
                break;
            }
        }
        // Forget what the next look-back will not list again.
        if let Some(c) = &cursor {
            let window = day_folder(c).unwrap_or(c).to_owned();
            folder.seen.retain(|k| *k >= window);
        }
        Ok(report)
    }

    /// Downloads a file (compressed, within `max_object_bytes`) and ingests it: parsed whole
    /// when it is small, streamed otherwise (`IngestService::ingest_file`), so its decompressed
    /// size is not bounded by the HTTP decompression budget, only each record by the parser's
    /// per-record cap.
    async fn read(&self, key: &str) -> anyhow::Result<usize> {
        let _turn = self.files.acquire().await?;
        let bytes: Arc<[u8]> = self
            .bucket_api
            .get(&self.bucket, key, self.max_object_bytes)
            .await?
            .into();
        let report = self.ingest.ingest_file(bytes, DeliveryPath::S3).await?;
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
