//! What the S3 poller keeps per region folder between rounds: the files read in the look-back
//! window, and the files that failed with their backoff, booked by [`Folder::settle`].

use std::collections::{BTreeSet, HashMap};

use super::RoundReport;

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

/// What the poller remembers of one region folder between rounds.
#[derive(Debug, Default)]
pub(super) struct Folder {
    /// Keys read since start within the look-back window (the position's day), so the
    /// look-back does not fetch them again. Older keys are forgotten.
    pub(super) seen: BTreeSet<String>,
    /// Files that failed and wait for another read. The position stays before them.
    retries: HashMap<String, Retry>,
    /// Whether a round has listed this folder since start (the first one does not look back).
    pub(super) listed: bool,
}

impl Folder {
    /// Whether a file failed before and is not due for another read in this round.
    pub(super) fn waiting(&self, key: &str, round_no: u64) -> bool {
        self.retries
            .get(key)
            .is_some_and(|r| r.due_round > round_no)
    }

    /// Files that failed and wait for a later round.
    pub(super) fn waiting_files(&self) -> usize {
        self.retries.len()
    }

    /// Books a read's outcome. True when the file is done with: read now, or given up after
    /// too many failures.
    pub(super) fn settle(
        &mut self,
        key: &str,
        outcome: anyhow::Result<usize>,
        round_no: u64,
        report: &mut RoundReport,
    ) -> bool {
        let retry = self.retries.get(key).copied();
        report.objects += 1;
        let error = match outcome {
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
                due_round: round_no + wait,
            },
        );
        tracing::warn!(key = %key, attempts, outage, wait_rounds = wait, error = format!("{error:#}"), "cannot ingest trail file; will retry");
        false
    }
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
}
