//! Detection's one pipeline: CloudTrail data from any path is decoded and parsed, each record is
//! matched to a token by its key (or account and user name), and matches are stored as hits,
//! deduplicated by eventID, with an alert row each, in one transaction.

mod cadence;
mod file;
mod stream;
mod window_log;
mod writer;

use std::collections::HashSet;
use std::sync::Arc;

use canarykeys_core::cloudtrail::{self, Format, Limits, ParseError, Record, Skip};
use canarykeys_core::TokenId;
use canarykeys_core::{ids, AccessKeyId, AccountId, IamUserName};
use canarykeys_store::{HitRecord, Receipt, Store, StoreError};

use super::key_index::{KeyIndex, LateEvents, Match};
pub use file::WHOLE_FILE_BYTES;
use serde::Serialize;
pub use writer::{HitWriter, Stored};

use crate::clock::{SharedClock, SystemClock};
use crate::metrics::Metrics;

/// How a record reached us. Kept with each hit, so a responder sees which path is fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryPath {
    CloudwatchLogs,
    Eventbridge,
    S3,
    Api,
    Cli,
    SafetyNet,
    /// The built-in AWS-compatible endpoint.
    Sensor,
}

impl DeliveryPath {
    pub const ALL: [Self; 7] = [
        Self::CloudwatchLogs,
        Self::Eventbridge,
        Self::S3,
        Self::Api,
        Self::Cli,
        Self::SafetyNet,
        Self::Sensor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CloudwatchLogs => "cloudwatch-logs",
            Self::Eventbridge => "eventbridge",
            Self::S3 => "s3",
            Self::Api => "api",
            Self::Cli => "cli",
            Self::SafetyNet => "safety-net",
            Self::Sensor => "sensor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The path a format implies when the sender did not say.
    pub fn for_format(format: Format) -> Self {
        match format {
            Format::EventBridge => Self::Eventbridge,
            Format::LogsSubscription | Format::LogsLambdaEvent | Format::KinesisLogs => {
                Self::CloudwatchLogs
            }
            _ => Self::Api,
        }
    }
}

/// What one ingest did, as the endpoint and `canarykeys ingest --json` report it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestReport {
    pub format: Option<Format>,
    /// Records found in the input, parsed or not.
    pub records: usize,
    pub parsed: usize,
    pub skipped: usize,
    /// Why records were skipped (the first few).
    pub skip_reasons: Vec<Skip>,
    pub matched: usize,
    /// Records of keys that belong to no token: counted, never alerted.
    pub unknown_keys: usize,
    pub new_hits: usize,
    /// Matched records already stored (same eventID). Records whose token is gone altogether
    /// are counted in `unknown_keys`, never here.
    pub duplicates: usize,
    /// Matched records of retired keys: made after their token was deleted or expired (plus
    /// `[detection] clock_skew`), or with no usable time, as this server's key index knew the
    /// token's end. Stored and alerted as such; someone still holds the key.
    pub retired: usize,
    /// Records of heartbeat keys: stored as receipts of the path, never as hits.
    #[serde(skip_serializing_if = "is_zero")]
    pub heartbeats: usize,
    /// The server's own `GetSessionToken` calls issuing session decoys: noted with the session,
    /// never hits.
    #[serde(skip_serializing_if = "is_zero")]
    pub session_issues: usize,
    /// AWS Health events, when the input was Health events rather than CloudTrail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::services::HealthReport>,
}

const MAX_SKIP_REASONS: usize = 20;

fn is_zero(n: &usize) -> bool {
    *n == 0
}
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("storage failed")]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct IngestService {
    store: Arc<dyn Store>,
    limits: Limits,
    metrics: Arc<Metrics>,
    /// Where AWS Health events go; without it they are left to the CloudTrail parser, which
    /// skips them.
    exposures: Option<crate::services::ExposureService>,
    clock: SharedClock,
    /// The fast path, when the server set it up: key lookups from memory, group commit.
    index: Option<KeyIndex>,
    writer: Option<HitWriter>,
    /// How late records are judged (without an index: `[detection]` defaults).
    late: LateEvents,
    /// Uses counted into open windows get a line per token per interval, not one each.
    window_log: Arc<window_log::WindowLog>,
    /// The free-disk watermark: under it, hits are stored without their raw record.
    disk: super::disk::DiskWatch,
    /// The operator channel, whose state `/healthz/detail` shows.
    operator: super::operator_alerts::OperatorAlerts,
}

impl IngestService {
    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn new(store: Arc<dyn Store>, limits: Limits, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            limits,
            metrics,
            exposures: None,
            clock: SystemClock::shared(),
            index: None,
            writer: None,
            late: LateEvents::default(),
            window_log: Arc::default(),
            disk: super::disk::DiskWatch::off(),
            operator: Default::default(),
        }
    }

    /// Stores only what detection needs while `disk` is under its watermark.
    pub fn with_disk(mut self, disk: super::disk::DiskWatch) -> Self {
        self.disk = disk;
        self
    }

    pub fn disk(&self) -> &super::disk::DiskWatch {
        &self.disk
    }

    /// Shows the operator channel's state in `/healthz/detail`.
    pub fn with_operator_alerts(
        mut self,
        operator: super::operator_alerts::OperatorAlerts,
    ) -> Self {
        self.operator = operator;
        self
    }

    pub(crate) fn operator_alerts(&self) -> &super::operator_alerts::OperatorAlerts {
        &self.operator
    }

    /// Recognises AWS Health events in ingest input and records them as exposures.
    pub fn with_exposures(mut self, exposures: crate::services::ExposureService) -> Self {
        self.exposures = Some(exposures);
        self
    }

    /// Stamps received hits by `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Matches keys from `index` and stores hits through the group-commit `writer`.
    pub fn with_fast_path(mut self, index: KeyIndex, writer: HitWriter) -> Self {
        self.late = index.late_events();
        self.index = Some(index);
        self.writer = Some(writer);
        self
    }

    /// The key index of the fast path, when the server set one up (the sensor looks keys up
    /// in it too).
    pub(crate) fn key_index(&self) -> Option<&KeyIndex> {
        self.index.as_ref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Parses any CloudTrail data and records its hits (unless `dry_run`). Answers only after
    /// the hits are committed.
    #[tracing::instrument(skip_all, fields(bytes = bytes.len(), ?path, dry_run))]
    pub async fn ingest(
        &self,
        bytes: &[u8],
        path: Option<DeliveryPath>,
        dry_run: bool,
    ) -> Result<IngestReport, IngestError> {
        if let (Some(exposures), Some(events)) =
            (&self.exposures, canarykeys_core::health::recognise(bytes))
        {
            let health = exposures.record_health(events, dry_run).await?;
            return Ok(IngestReport {
                records: health.events,
                parsed: health.events - health.skipped,
                skipped: health.skipped,
                matched: health.matched,
                unknown_keys: health.unknown_keys,
                health: Some(health),
                ..IngestReport::default()
            });
        }
        let parsed = cloudtrail::parse_gated(bytes, &self.limits, &*self.gate())?;
        let path = path.unwrap_or_else(|| DeliveryPath::for_format(parsed.format));
        self.ingest_parsed(parsed, path, dry_run).await
    }

    /// Records the hits of an input parsed whole, and reports on it.
    async fn ingest_parsed(
        &self,
        parsed: cloudtrail::Parsed,
        path: DeliveryPath,
        dry_run: bool,
    ) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport {
            format: Some(parsed.format),
            records: parsed.records.len() + parsed.gated + parsed.skipped.len(),
            parsed: parsed.records.len() + parsed.gated,
            skipped: parsed.skipped.len(),
            skip_reasons: parsed
                .skipped
                .iter()
                .take(MAX_SKIP_REASONS)
                .cloned()
                .collect(),
            ..IngestReport::default()
        };
        self.metrics.add(
            "canarykeys_ingest_skipped_total",
            path.as_str(),
            report.skipped as u64,
        );
        let outcome = self.record(&parsed.records, path, None, dry_run).await?;
        report.matched = outcome.matched;
        report.unknown_keys = outcome.unknown_keys + self.count_gated(parsed.gated, path);
        report.new_hits = outcome.new_hits;
        report.duplicates = outcome.duplicates;
        report.retired = outcome.retired;
        report.heartbeats = outcome.heartbeats;
        report.session_issues = outcome.session_issues;
        Ok(report)
    }

    /// What the parser builds: with a key index, only the records matching could use (see
    /// `key_index/gate.rs`); without one, every record.
    fn gate(&self) -> Box<dyn cloudtrail::Gate> {
        match &self.index {
            Some(index) => Box::new(index.clone()),
            None => Box::new(cloudtrail::Open),
        }
    }

    /// Counts records the gate kept from being built: each is one of an unknown key, as
    /// `record` would have found. Returns `gated`.
    fn count_gated(&self, gated: usize, path: DeliveryPath) -> usize {
        for name in [
            "canarykeys_ingest_records_total",
            "canarykeys_ingest_unknown_key_total",
        ] {
            self.metrics.add(name, path.as_str(), gated as u64);
        }
        gated
    }

    /// Matches parsed records to tokens and stores the hits. `note` is kept with every hit.
    #[tracing::instrument(skip_all, fields(records = records.len(), path = path.as_str(), dry_run))]
    pub async fn record(
        &self,
        records: &[Record],
        path: DeliveryPath,
        note: Option<&str>,
        dry_run: bool,
    ) -> Result<IngestReport, StoreError> {
        let received_at = self.clock.now_millis();
        // Under the watermark a hit keeps every field an alert or the dedupe uses; only the raw
        // record (most of a row's bytes) is left out, and the note says so.
        let low_disk = self.disk.is_low();
        // Database misses within this call only: never kept, so never stale.
        let mut misses = HashSet::new();
        let mut hits = Vec::new();
        let mut report = IngestReport {
            parsed: records.len(),
            records: records.len(),
            ..Default::default()
        };
        let mut receipts = Vec::new();
        for record in records {
            // A heartbeat's event is proof that this path delivers: a receipt, never a hit.
            if let Some(account) = self.heartbeat_account(record).await? {
                receipts.push(Receipt {
                    account_id: account.to_string(),
                    region: receipt_region(record.aws_region.as_deref()),
                    path: path.as_str().to_owned(),
                    event_id: record.event_id.clone(),
                    event_time: record.event_time.unwrap_or(received_at),
                    received_at,
                });
                continue;
            }
            // The server's own GetSessionToken (issuing a decoy session) is no use of the decoy:
            // recorded with its session, never a hit.
            if let Some(issued) = canarykeys_core::session::issued_session_key(record) {
                let ours = if dry_run {
                    self.store.find_token_session(&issued).await?.is_some()
                } else {
                    self.store
                        .note_session_issue(&issued, &record.event_id)
                        .await?
                };
                if ours {
                    report.session_issues += 1;
                    continue;
                }
            }
            match self.match_record(record, &mut misses).await? {
                Some(m) => {
                    if m.died_at
                        .is_some_and(|d| self.late.is_retired(d, record.event_time))
                    {
                        report.retired += 1;
                    }
                    let mut hit = hit_from(record, m.token, path, note, received_at);
                    if low_disk {
                        hit.raw = String::new();
                        hit.note = hit_note(hit.note.as_deref(), &[super::disk::RAW_DROPPED_NOTE]);
                    }
                    hits.push(hit)
                }
                None => report.unknown_keys += 1,
            }
        }
        report.matched = hits.len();
        report.heartbeats = receipts.len();
        if !dry_run && !receipts.is_empty() {
            let new = self.full_is_low(self.store.record_receipts(&receipts).await)?;
            for (r, _) in receipts.iter().zip(new).filter(|(_, n)| *n) {
                self.metrics.observe_latency(r.latency_ms());
            }
        }
        if !dry_run && !hits.is_empty() {
            let (
                Stored {
                    new,
                    gone,
                    windowed,
                    folded,
                },
                hits,
            ) = match &self.writer {
                Some(writer) => {
                    // The writer takes the hits; keep what the log line needs.
                    let names: Vec<(TokenId, String)> = hits
                        .iter()
                        .map(|h| (h.token_id.clone(), h.event_name.clone()))
                        .collect();
                    (self.full_is_low(writer.record(hits).await)?, names)
                }
                None => {
                    let group = self.full_is_low(self.store.record_group(&hits).await)?;
                    let names = hits.into_iter().map(|h| (h.token_id, h.event_name));
                    let stored = Stored {
                        new: group.new,
                        gone: group.gone,
                        windowed: group.windowed,
                        folded: group.folded,
                    };
                    (stored, names.collect())
                }
            };
            // A token gone altogether (its tombstone pruned since the match) makes the record
            // one of an unknown key: never a duplicate.
            let gone = gone.iter().filter(|g| **g).count();
            report.matched -= gone;
            report.unknown_keys += gone;
            report.new_hits = new.iter().filter(|n| **n).count();
            report.duplicates = hits.len() - gone - report.new_hits;
            // One line per use that may alert; a use counted into an open window adds to its
            // token's line per interval instead (see `window_log`). Every use is counted in the
            // metrics. Under the disk watermark the alert and the metrics carry each hit: a log
            // line per hit would spend the disk an attacker is filling.
            let mut in_window = 0u64;
            for (i, (token_id, event_name)) in hits.iter().enumerate() {
                if !new[i] {
                    continue;
                }
                if !windowed.get(i).copied().unwrap_or(false) {
                    if !low_disk {
                        tracing::warn!(token = %token_id, event = ?event_name, path = path.as_str(), "decoy key used");
                    }
                    continue;
                }
                in_window += 1;
                let is_folded = folded.get(i).copied().unwrap_or(false);
                if let Some(line) = self.window_log.note(token_id, is_folded, received_at) {
                    window_log::WindowLog::emit(&line, path.as_str());
                }
            }
            let folded_n = folded.iter().filter(|f| **f).count() as u64;
            self.metrics
                .add("canarykeys_ingest_windowed_total", path.as_str(), in_window);
            self.metrics
                .add("canarykeys_ingest_folded_total", path.as_str(), folded_n);
        }
        let p = path.as_str();
        self.metrics
            .add("canarykeys_ingest_records_total", p, records.len() as u64);
        self.metrics.add(
            "canarykeys_ingest_unknown_key_total",
            p,
            report.unknown_keys as u64,
        );
        self.metrics
            .add("canarykeys_ingest_matched_total", p, report.matched as u64);
        self.metrics.add(
            "canarykeys_ingest_new_hits_total",
            p,
            report.new_hits as u64,
        );
        self.metrics.add(
            "canarykeys_ingest_duplicates_total",
            p,
            report.duplicates as u64,
        );
        Ok(report)
    }

    /// A write that met a full disk puts the watermark on at once, before the next check.
    fn full_is_low<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result {
            if e.is_storage_full() {
                self.disk.note_full();
            }
        }
        result
    }

    /// The account of the record's key when it is a heartbeat key.
    async fn heartbeat_account(&self, r: &Record) -> Result<Option<AccountId>, StoreError> {
        let Some(key) = r
            .identity
            .access_key_id
            .as_deref()
            .and_then(|k| AccessKeyId::parse(k).ok())
        else {
            return Ok(None);
        };
        match &self.index {
            Some(index) => index.heartbeat(&*self.store, &key).await,
            None => Ok(self
                .store
                .find_heartbeat_key(&key)
                .await?
                .map(|k| k.account_id)),
        }
    }

    /// The key id is the join key; events that name only the user (temporary credentials made
    /// from a decoy key) match by account and user name.
    async fn match_record(
        &self,
        r: &Record,
        misses: &mut HashSet<String>,
    ) -> Result<Option<Match>, StoreError> {
        if let Some(key) = r
            .identity
            .access_key_id
            .as_deref()
            .and_then(|k| AccessKeyId::parse(k).ok())
        {
            if let Some(token) = self.by_key(&key, misses).await? {
                return Ok(Some(token));
            }
            // Any session key ever issued for a session decoy is its token's, expired or not.
            if key.is_session() && self.may_be_ours(r) {
                if let Some(token) = self.by_session(&key, misses).await? {
                    return Ok(Some(token));
                }
            }
        }
        let account = r
            .identity
            .account_id
            .as_deref()
            .or(r.recipient_account_id.as_deref());
        let (Some(account), Some(user)) = (account, r.identity.user_name.as_deref()) else {
            return Ok(None);
        };
        let (Ok(account), Ok(user)) = (AccountId::parse(account), IamUserName::parse(user)) else {
            return Ok(None);
        };
        let miss = format!("u:{account}:{user}");
        if misses.contains(&miss) {
            return Ok(None);
        }
        let found = match &self.index {
            Some(index) => index.by_user(&*self.store, account, &user).await?,
            None => {
                self.lookup(canarykeys_store::KeyLookup::User(&account, &user))
                    .await?
            }
        };
        if found.is_none() {
            misses.insert(miss);
        }
        Ok(found)
    }

    /// Without an index: live tokens and tombstones inside the window, from the database.
    async fn lookup(
        &self,
        by: canarykeys_store::KeyLookup<'_>,
    ) -> Result<Option<Match>, StoreError> {
        let since = self.clock.now_millis().saturating_sub(self.late.window_ms);
        Ok(self.store.find_key_entry(by, since).await?.map(|e| Match {
            token: e.token_id,
            died_at: e.died_at,
        }))
    }

    /// Whether a session key's record may be a session decoy's (see
    /// `KeyIndex::session_may_be_ours`; without an index, always).
    fn may_be_ours(&self, r: &Record) -> bool {
        self.index
            .as_ref()
            .is_none_or(|index| index.session_may_be_ours(r.identity.account_id.as_deref()))
    }

    /// The token a session key was issued for. The index does not hold session keys: one
    /// primary-key read per session key a batch names that `may_be_ours` lets through (STS may
    /// issue ids that do not encode the account, so the key's own account cannot gate it; the
    /// record's caller account does).
    async fn by_session(
        &self,
        key: &AccessKeyId,
        misses: &mut HashSet<String>,
    ) -> Result<Option<Match>, StoreError> {
        let miss = format!("s:{key}");
        if misses.contains(&miss) {
            return Ok(None);
        }
        let Some(session) = self.store.find_token_session(key).await? else {
            misses.insert(miss);
            return Ok(None);
        };
        // Its token's fate (live, or a tombstone) is the token key's.
        let token = self.store.get_token(&session.token_id).await?;
        match token {
            Some(t) => self.by_key(&t.access_key_id, misses).await,
            None => Ok(None),
        }
    }

    async fn by_key(
        &self,
        key: &AccessKeyId,
        misses: &mut HashSet<String>,
    ) -> Result<Option<Match>, StoreError> {
        let miss = format!("k:{key}");
        if misses.contains(&miss) {
            return Ok(None);
        }
        let found = match &self.index {
            Some(index) => index.by_key(&*self.store, key).await?,
            None => self.lookup(canarykeys_store::KeyLookup::Key(key)).await?,
        };
        if found.is_none() {
            misses.insert(miss);
        }
        Ok(found)
    }
}

/// The path's note and the parser's stand-ins, in one line.
fn hit_note(note: Option<&str>, fallbacks: &[&str]) -> Option<String> {
    let parts: Vec<&str> = note.into_iter().chain(fallbacks.iter().copied()).collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn hit_from(
    r: &Record,
    token: TokenId,
    path: DeliveryPath,
    note: Option<&str>,
    received_at: i64,
) -> HitRecord {
    HitRecord {
        id: ids::clustered_id(received_at),
        token_id: token,
        event_id: r.event_id.clone(),
        // No usable time field: the arrival time stands in, and the note says so.
        event_time: r.event_time.unwrap_or(received_at),
        received_at,
        event_name: r.event_name.clone(),
        event_source: r.event_source.clone(),
        region: r.aws_region.clone().unwrap_or_default(),
        source_ip: r.source_ip.clone().unwrap_or_default(),
        user_agent: r.user_agent.clone().unwrap_or_default(),
        error_code: r.error_code.clone(),
        error_message: r.error_message.clone(),
        account_id: r
            .identity
            .account_id
            .clone()
            .or_else(|| r.recipient_account_id.clone()),
        access_key_id: r.identity.access_key_id.clone(),
        tls_host: r.tls_host.clone(),
        vpc_endpoint_id: r.vpc_endpoint_id.clone(),
        request_id: r.request_id.clone(),
        path: path.as_str().to_owned(),
        note: hit_note(note, &r.fallbacks),
        suppressed: None,
        raw: r.raw.compact(),
    }
}

/// A receipt's region, from the record's `awsRegion`: a region name or `unknown`. The record is
/// input; what it names reaches `/metrics` labels, the console and `doctor`'s terminal table.
fn receipt_region(raw: Option<&str>) -> String {
    raw.and_then(|r| canarykeys_core::Region::parse(r).ok())
        .map_or_else(|| "unknown".to_owned(), |r| r.as_str().to_owned())
}

#[cfg(test)]
mod receipt_region_tests {
    #[test]
    fn a_receipts_region_is_a_region_name_or_unknown() {
        assert_eq!(super::receipt_region(Some("eu-west-1")), "eu-west-1");
        assert_eq!(super::receipt_region(None), "unknown");
        assert_eq!(
            super::receipt_region(Some("us-east-1\u{1b}[2J\"} 1")),
            "unknown"
        );
    }
}
