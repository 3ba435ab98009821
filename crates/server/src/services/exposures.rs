//! Exposures: a decoy key seen in public before anyone used it. Two sources feed it: AWS Health
//! events (`AWS_RISK_CREDENTIALS_EXPOSED`, `AWS_RISK_IAM_QUARANTINE`) arriving at the ingest
//! endpoint, and the safety net finding AWS's quarantine policy on a decoy user. Each token gets
//! at most one exposure per source; the first writes its alert's outbox rows in the same
//! transaction (no planner, so no cooldown can hold it back), later sightings only add to it.

use std::collections::HashMap;
use std::sync::Arc;

use canarykeys_core::health::HealthEvent;
use canarykeys_core::{ids, Invalid};
use canarykeys_store::{
    ExposureOutcome, ExposureRecord, ExposureSource, Store, StoreError, TokenRecord,
};
use serde::Serialize;

use crate::clock::{SharedClock, SystemClock};
use crate::metrics::Metrics;
use crate::notify::{AlertKind, AlertView};
use crate::render::{http_link, human_time, rfc3339};
use crate::services::alerts::AlertService;
use crate::services::ServiceError;

/// The metrics label of Health input.
const HEALTH: &str = "health";

/// What one batch of Health events did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// Health events in the input.
    pub events: usize,
    /// Events of other types (or unreadable ones): recognised, not exposures.
    pub skipped: usize,
    /// Affected keys that belong to a token (in a dry run: the exposures it would record).
    pub matched: usize,
    /// Affected keys that belong to no token: counted, never alerted.
    pub unknown_keys: usize,
    pub new_exposures: usize,
    /// Sightings added to an existing exposure (or repeated copies of one).
    pub updated_exposures: usize,
}

/// An exposure as pages and the API show it: times as text, the location linked only when it
/// is an http(s) URL.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ExposureItem {
    pub id: String,
    /// Always `exposure`.
    #[schema(value_type = String)]
    pub kind: &'static str,
    pub token_id: String,
    pub token_memo: Option<String>,
    #[schema(value_type = String)]
    pub source: &'static str,
    pub event_type: String,
    pub description: String,
    pub location: Option<String>,
    /// The location as a safe link target, or `None` to show it as text.
    pub location_url: Option<String>,
    pub event_time: String,
    pub first_seen: String,
    pub last_seen: String,
    pub first_seen_human: String,
    pub count: i64,
}

impl ExposureItem {
    pub fn from_record(e: &ExposureRecord, memo: Option<&str>) -> Self {
        Self {
            id: e.id.clone(),
            kind: "exposure",
            token_id: e.token_id.to_string(),
            token_memo: memo.map(str::to_owned),
            source: e.source.as_str(),
            event_type: e.event_type.clone(),
            description: e.description.clone(),
            location: e.location.clone(),
            location_url: e.location.as_deref().and_then(http_link),
            event_time: rfc3339(e.event_time),
            first_seen: rfc3339(e.first_seen),
            last_seen: rfc3339(e.last_seen),
            first_seen_human: human_time(e.first_seen),
            count: e.seen_count,
        }
    }
}

#[derive(Clone)]
pub struct ExposureService {
    store: Arc<dyn Store>,
    alerts: AlertService,
    metrics: Arc<Metrics>,
    clock: SharedClock,
}

impl ExposureService {
    pub fn new(store: Arc<dyn Store>, alerts: AlertService, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            alerts,
            metrics,
            clock: SystemClock::shared(),
        }
    }

    /// Stamps exposures by `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Records the exposures in a batch of Health events (unless `dry_run`).
    #[tracing::instrument(skip_all, fields(events = events.len(), dry_run))]
    pub async fn record_health(
        &self,
        events: Vec<Result<HealthEvent, Invalid>>,
        dry_run: bool,
    ) -> Result<HealthReport, StoreError> {
        let mut report = HealthReport {
            events: events.len(),
            ..HealthReport::default()
        };
        let mut tokens: HashMap<String, Option<TokenRecord>> = HashMap::new();
        for event in events {
            let event = match event {
                Ok(e) if e.is_exposure() => e,
                _ => {
                    report.skipped += 1;
                    continue;
                }
            };
            for key in &event.keys {
                if !tokens.contains_key(key.as_str()) {
                    let found = self.store.find_token_by_key(key).await?;
                    tokens.insert(key.to_string(), found);
                }
                let Some(Some(token)) = tokens.get(key.as_str()) else {
                    report.unknown_keys += 1;
                    continue;
                };
                report.matched += 1;
                if dry_run {
                    continue;
                }
                let now = self.clock.now_millis();
                let record = ExposureRecord {
                    id: ids::random_id(),
                    token_id: token.id.clone(),
                    source: ExposureSource::Health,
                    event_type: event.event_type_code.clone(),
                    last_ref: event.event_arn.clone(),
                    description: event.description.clone(),
                    location: event.location.clone(),
                    event_time: event.start_time.or(event.sent_at).unwrap_or(now),
                    first_seen: now,
                    last_seen: now,
                    seen_count: 1,
                    raw: event.raw.to_string(),
                };
                match self.record(token, &record).await? {
                    ExposureOutcome::New => report.new_exposures += 1,
                    ExposureOutcome::Updated | ExposureOutcome::Repeat => {
                        report.updated_exposures += 1
                    }
                }
            }
        }
        self.metrics.add(
            "canarykeys_exposure_events_total",
            HEALTH,
            report.events as u64,
        );
        self.metrics.add(
            "canarykeys_exposure_unknown_key_total",
            HEALTH,
            report.unknown_keys as u64,
        );
        Ok(report)
    }

    /// Records that AWS's quarantine policy is attached to the token's user. Returns whether
    /// this was the token's first quarantine exposure.
    #[tracing::instrument(skip_all, fields(token = %token.id, policy_name))]
    pub async fn record_quarantine(
        &self,
        token: &TokenRecord,
        policy_name: &str,
        policy_arn: &str,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_millis();
        let record = ExposureRecord {
            id: ids::random_id(),
            token_id: token.id.clone(),
            source: ExposureSource::Quarantine,
            event_type: policy_name.to_owned(),
            last_ref: policy_arn.to_owned(),
            description: "AWS quarantined this key: it was found in public.".into(),
            location: None,
            event_time: now,
            first_seen: now,
            last_seen: now,
            seen_count: 1,
            raw: serde_json::json!({
                "source": "iam:ListAttachedUserPolicies",
                "userName": token.username.as_str(),
                "policyName": policy_name,
                "policyArn": policy_arn,
            })
            .to_string(),
        };
        Ok(self.record(token, &record).await? == ExposureOutcome::New)
    }

    async fn record(
        &self,
        token: &TokenRecord,
        record: &ExposureRecord,
    ) -> Result<ExposureOutcome, StoreError> {
        let view = self.view(token, record);
        let deliveries = self
            .alerts
            .all_deliveries(token, &view, record.first_seen)
            .await?;
        let outcome = self.store.record_exposure(record, &deliveries).await?;
        let source = record.source.as_str();
        if outcome == ExposureOutcome::New {
            tracing::warn!(token = %token.id, source, "decoy key exposed in public");
        }
        self.metrics.add(
            match outcome {
                ExposureOutcome::New => "canarykeys_exposure_new_total",
                _ => "canarykeys_exposure_repeat_total",
            },
            source,
            1,
        );
        Ok(outcome)
    }

    /// What the alert about a new exposure says.
    fn view(&self, token: &TokenRecord, e: &ExposureRecord) -> AlertView {
        let public_url = self.alerts.public_url();
        let headline = match &e.location {
            Some(l) => format!("AWS found the key in public at {l}"),
            None => match e.source {
                ExposureSource::Health => "AWS reports the key was found in public".to_owned(),
                ExposureSource::Quarantine => {
                    "AWS quarantined this key: it was found in public".to_owned()
                }
            },
        };
        AlertView {
            kind: AlertKind::Exposure {
                source: e.source.as_str().to_owned(),
                event_type: e.event_type.clone(),
                description: e.description.clone(),
                location: e.location.clone(),
                first_seen: rfc3339(e.first_seen),
                last_seen: rfc3339(e.last_seen),
                count: u64::try_from(e.seen_count).unwrap_or(1),
            },
            alert_id: e.id.clone(),
            token_id: token.id.to_string(),
            memo: token.memo.to_string(),
            headline,
            event_name: e.event_type.clone(),
            event_source: match e.source {
                ExposureSource::Health => "health.amazonaws.com".into(),
                ExposureSource::Quarantine => "iam.amazonaws.com".into(),
            },
            region: String::new(),
            source_ip: String::new(),
            user_agent: String::new(),
            error_code: None,
            error_message: None,
            event_time: rfc3339(e.event_time),
            received_at: rfc3339(e.first_seen),
            account_id: Some(token.account_id.to_string()),
            access_key_id: Some(token.access_key_id.to_string()),
            path: match e.source {
                ExposureSource::Health => "aws-health".into(),
                ExposureSource::Quarantine => "safety-net".into(),
            },
            note: None,
            source_labels: Vec::new(),
            country: None,
            asn: None,
            manage_url: format!("{public_url}/manage/{}", token.id),
            history_url: format!("{public_url}/manage/{}#history", token.id),
            retired: false,
        }
    }

    /// A token's exposures, newest first, for its banner.
    #[tracing::instrument(skip_all, fields(token = %token.id))]
    pub async fn for_token(&self, token: &TokenRecord) -> Result<Vec<ExposureItem>, ServiceError> {
        Ok(self
            .store
            .list_exposures(&token.id)
            .await?
            .iter()
            .map(|e| ExposureItem::from_record(e, Some(token.memo.as_str())))
            .collect())
    }

    /// A page of exposures across tokens (or of one), newest first, with the total.
    #[tracing::instrument(skip_all, fields(limit, offset))]
    pub async fn feed(
        &self,
        token: Option<&canarykeys_core::TokenId>,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<ExposureItem>, u64), ServiceError> {
        let (rows, total) = self.store.exposures_feed(token, limit, offset).await?;
        Ok((
            rows.iter()
                .map(|(e, memo)| ExposureItem::from_record(e, Some(memo)))
                .collect(),
            total,
        ))
    }

    /// Deletes exposures last seen before `before` (history retention). Returns how many.
    pub async fn delete_before(&self, before: i64) -> Result<u64, ServiceError> {
        Ok(self.store.delete_exposures_before(before).await?)
    }
}
