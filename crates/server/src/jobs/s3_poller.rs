//! The S3 path: reads new CloudTrail log files from the trail's bucket. Positions are kept per
//! `AWSLogs/…/CloudTrail/<region>/` prefix in the database, so a restart resumes where the last
//! run stopped. A file is marked done only after its hits are committed (at least once; the
//! eventID dedupe makes a second reading harmless).

use std::collections::HashSet;
use std::sync::Arc;

use canarykeys_aws::TrailBucket;
use canarykeys_store::Store;

use crate::services::{DeliveryPath, IngestService};

/// How many keys one listing asks for.
const PAGE: i32 = 1000;
/// How deep below the configured prefix the region folders may be
/// (`AWSLogs/[o-org/]<account>/CloudTrail/<region>/`).
const MAX_DEPTH: usize = 4;

pub struct S3Poller {
    pub bucket_api: Arc<dyn TrailBucket>,
    pub store: Arc<dyn Store>,
    pub ingest: IngestService,
    pub bucket: String,
    pub prefix: String,
    pub max_object_bytes: u64,
    /// Keys read since start, so the same-day look-back does not fetch them again.
    seen: HashSet<String>,
    first_round: bool,
}

/// What one round did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    pub prefixes: usize,
    pub objects: usize,
    pub new_hits: usize,
    pub failed_objects: usize,
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
            seen: HashSet::new(),
            first_round: true,
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
            let key = self.cursor_key(&leaf);
            let cursor = self.store.get_setting(&key).await?;
            // Files of one delivery window can land out of name order, so each round looks back
            // over the cursor's day; what was read since start is skipped. On the first round
            // after a start, everything up to the cursor counts as read.
            let start_after = match (&cursor, self.first_round) {
                (Some(c), false) => Some(day_folder(c).unwrap_or(c).to_owned()),
                (c, _) => c.clone(),
            };
            let mut after = start_after;
            loop {
                let page = self
                    .bucket_api
                    .list_after(&self.bucket, &leaf, after.as_deref(), PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.key.clone());
                let full = page.len() as i32 == PAGE;
                for object in page {
                    if !is_log_file(&object.key) || self.seen.contains(&object.key) {
                        continue;
                    }
                    report.objects += 1;
                    match self.read(&object.key).await {
                        Ok(new_hits) => report.new_hits += new_hits,
                        Err(e) => {
                            // A file we cannot read is logged and passed over, not retried
                            // forever: the other paths and the safety net still see the calls.
                            report.failed_objects += 1;
                            tracing::warn!(key = %object.key, error = format!("{e:#}"), "cannot ingest trail file");
                        }
                    }
                    self.seen.insert(object.key.clone());
                    if cursor.as_deref().is_none_or(|c| object.key.as_str() > c) {
                        self.store.put_setting(&key, &object.key).await?;
                    }
                }
                if !full {
                    break;
                }
            }
        }
        self.first_round = false;
        Ok(report)
    }

    async fn read(&self, key: &str) -> anyhow::Result<usize> {
        let bytes = self
            .bucket_api
            .get(&self.bucket, key, self.max_object_bytes)
            .await?;
        let report = self
            .ingest
            .ingest(&bytes, Some(DeliveryPath::S3), false)
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
