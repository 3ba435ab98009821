//! Proof of life. Each decoy account holds one heartbeat identity (an IAM user with no
//! permissions and a key, minted like a decoy, sealed, never planted or shown). Every
//! `[heartbeat] interval` it calls `sts:GetCallerIdentity` in each configured region; CloudTrail
//! logs that like an intruder's call, so the event travels every detection path and comes back
//! as a receipt (`IngestService` diverts it before any token match). From the receipts, each
//! (account, region, path) is judged `ok`, `late`, `silent` or `never` (`states`), and the
//! operator channel hears of every change.
//!
//! Replicas share the work through the store: a region's call is due once per interval, and the
//! replica that takes the due slot (compare-and-set) makes it.

pub mod states;

use std::sync::Arc;
use std::time::Duration;

use canarykeys_aws::{AwsError, CallerIdentityApi, IdentityCall, KeyRef, MintRequest, Minter};
use canarykeys_core::{AccessKeyId, AccountId, TokenId};
use canarykeys_store::{HeartbeatKey, Store};

use super::key_index::KeyIndex;
use super::operator_alerts::{Condition, OperatorAlerts};
use super::ServiceError;
use crate::clock::SharedClock;
use crate::crypto::Sealer;
use crate::metrics::Metrics;
pub use states::{DetectionOverview, HeartbeatInfo, HeartbeatKeyInfo, PathStatus};

/// How long one call may take before it counts as refused (AWS unreachable).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `[heartbeat]` as the service uses it.
#[derive(Clone, Debug)]
pub struct HeartbeatSettings {
    pub enabled: bool,
    pub interval: Duration,
    pub regions: Vec<String>,
    pub expect: Vec<String>,
    pub silent_after: Duration,
    pub endpoint_url: Option<String>,
    /// The accounts to hold an identity in: the minter's decoy accounts.
    pub accounts: Vec<AccountId>,
}

/// What one round of calls did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BeatReport {
    /// Calls made (slots this replica took).
    pub calls: usize,
    /// Calls AWS refused or that failed.
    pub refused: usize,
    /// Identities made (first need, or a refused one replaced).
    pub minted: usize,
}

#[derive(Clone)]
pub struct HeartbeatService {
    store: Arc<dyn Store>,
    minter: Arc<dyn Minter>,
    sealer: Sealer,
    api: Arc<dyn CallerIdentityApi>,
    settings: Arc<HeartbeatSettings>,
    index: KeyIndex,
    clock: SharedClock,
    alerts: OperatorAlerts,
    metrics: Arc<Metrics>,
}

/// A heartbeat key opened for use: its record and secret.
pub struct OpenedKey {
    pub key: HeartbeatKey,
    pub secret: canarykeys_core::SecretAccessKey,
}

impl HeartbeatService {
    /// Reports to `alerts` instead (the server rebuilds the channel once it knows its URL).
    pub fn with_operator_alerts(mut self, alerts: OperatorAlerts) -> Self {
        self.alerts = alerts;
        self
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        minter: Arc<dyn Minter>,
        sealer: Sealer,
        api: Arc<dyn CallerIdentityApi>,
        settings: HeartbeatSettings,
        index: KeyIndex,
        clock: SharedClock,
        alerts: OperatorAlerts,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            minter,
            sealer,
            api,
            settings: Arc::new(settings),
            index,
            clock,
            alerts,
            metrics,
        }
    }

    pub fn settings(&self) -> &HeartbeatSettings {
        &self.settings
    }

    fn interval_ms(&self) -> i64 {
        i64::try_from(self.settings.interval.as_millis()).unwrap_or(i64::MAX)
    }

    /// The live identity of `account`, if it has one.
    async fn live_key(&self, account: AccountId) -> Result<Option<HeartbeatKey>, ServiceError> {
        Ok(self
            .store
            .heartbeat_keys()
            .await?
            .into_iter()
            .find(|k| k.account_id == account && k.retired_at.is_none()))
    }

    /// Mints an identity in `account` and makes it the live one, retiring `old`. When another
    /// replica got there first, the new key is revoked again and theirs is used.
    async fn make_identity(
        &self,
        account: AccountId,
        old: Option<&HeartbeatKey>,
    ) -> Result<HeartbeatKey, ServiceError> {
        // An ordinary name from the minter's generator, like any decoy: nothing in AWS says
        // heartbeat. The intent lets the reconciler revoke the key if we crash before storing it.
        crate::services::sealing::follow_database_key(&self.sealer, self.store.as_ref()).await?;
        let intent = canarykeys_core::ids::random_id();
        let now = self.clock.now_millis();
        self.store
            .begin_mint(&intent, self.minter.name(), now)
            .await?;
        let minted = match self
            .minter
            .mint(&MintRequest {
                username: None,
                account: Some(account),
            })
            .await
        {
            Ok(m) => m,
            Err(e) => {
                let _ = self.store.end_mint(&intent).await;
                return Err(e.into());
            }
        };
        let id = TokenId::generate();
        let key = HeartbeatKey {
            access_key_id: minted.access_key_id.clone(),
            id: id.to_string(),
            account_id: minted.account_id,
            username: minted.username.clone(),
            secret_sealed: self.sealer.seal(&id, &minted.secret_access_key),
            minter: self.minter.name().to_owned(),
            created_at: now,
            retired_at: None,
        };
        let stored = self
            .store
            .replace_heartbeat_key(&key, old.map(|o| &o.access_key_id))
            .await;
        let _ = self.store.end_mint(&intent).await;
        let won = match stored {
            Ok(won) => won,
            Err(e) => {
                self.revoke(&key).await;
                return Err(e.into());
            }
        };
        if !won {
            self.revoke(&key).await;
            return self.live_key(account).await?.ok_or_else(|| {
                ServiceError::Mint(canarykeys_aws::MintError::Refused(
                    "another process replaced the heartbeat identity meanwhile".into(),
                ))
            });
        }
        self.index.add_heartbeat(&key);
        if let Some(old) = old {
            // Refused: the user or key is most likely gone already; revoking what is gone is
            // not an error, and anything left of it must not linger.
            self.revoke(old).await;
        }
        tracing::info!(account = %account, key = %key.access_key_id, "heartbeat identity made");
        Ok(key)
    }

    async fn revoke(&self, key: &HeartbeatKey) {
        let r = KeyRef {
            access_key_id: &key.access_key_id,
            username: &key.username,
            account_id: key.account_id,
        };
        if let Err(e) = self.minter.revoke(&r).await {
            tracing::warn!(error = %e, key = %key.access_key_id, "could not revoke a heartbeat key");
        }
    }

    /// The heartbeat key `key` (live or retired) with its secret, if it is one (the sensor
    /// checks a heartbeat call's signature with it).
    pub async fn open(&self, key: &AccessKeyId) -> Result<Option<OpenedKey>, ServiceError> {
        // From memory first: a made-up key costs no query.
        if self
            .index
            .heartbeat(self.store.as_ref(), key)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let Some(k) = self.store.find_heartbeat_key(key).await? else {
            return Ok(None);
        };
        let id = TokenId::parse(&k.id).map_err(|e| {
            ServiceError::Store(canarykeys_store::StoreError::Corrupt(e.to_string()))
        })?;
        let secret = self.sealer.open(&id, &k.secret_sealed)?;
        Ok(Some(OpenedKey { key: k, secret }))
    }

    /// One round: every account's call in every region whose slot is due and that this
    /// replica takes. Identities are made on first need, and replaced when AWS refuses theirs.
    pub async fn beat_once(&self) -> Result<BeatReport, ServiceError> {
        let mut report = BeatReport::default();
        if !self.settings.enabled {
            return Ok(report);
        }
        let interval = self.interval_ms();
        // A tick up to a tenth of the interval early still takes the slot, so two replicas'
        // timers, drifting apart, never skip an interval between them.
        let slack = interval / 10;
        for account in &self.settings.accounts {
            for region in &self.settings.regions {
                let now = self.clock.now_millis();
                let next = now + interval - slack;
                if !self
                    .store
                    .claim_heartbeat(account, region, now, next)
                    .await?
                {
                    continue;
                }
                let key = match self.live_key(*account).await? {
                    Some(k) => Ok(k),
                    None => {
                        report.minted += 1;
                        self.make_identity(*account, None).await
                    }
                };
                let refused = match &key {
                    Ok(key) => {
                        report.calls += 1;
                        self.call(key, region).await
                    }
                    // No identity, no call: said like a refusal, and the other accounts and
                    // regions still go ahead.
                    Err(e) => Some((format!("could not make the heartbeat identity: {e}"), false)),
                };
                self.metrics.add(
                    "canarykeys_heartbeat_calls_total",
                    if refused.is_some() { "refused" } else { "ok" },
                    1,
                );
                if let Some((why, replace)) = &refused {
                    report.refused += 1;
                    tracing::warn!(account = %account, region, reason = %why, "heartbeat call refused");
                    if let (true, Ok(key)) = (*replace, &key) {
                        report.minted += 1;
                        if let Err(e) = self.make_identity(*account, Some(key)).await {
                            tracing::error!(error = %e, account = %account, "could not replace the heartbeat identity");
                        }
                    }
                }
                self.alerts
                    .report(Condition::HeartbeatCall {
                        account_id: account.to_string(),
                        region: region.clone(),
                        refused: refused.map(|(why, _)| why),
                    })
                    .await?;
            }
        }
        Ok(report)
    }

    /// Makes the call. `None` when AWS answered with the heartbeat user; else why not, and
    /// whether the identity should be replaced (the key is unknown or not the user's).
    async fn call(&self, key: &HeartbeatKey, region: &str) -> Option<(String, bool)> {
        let Ok(id) = TokenId::parse(&key.id) else {
            return Some(("the heartbeat identity's stored id is damaged".into(), true));
        };
        let secret = match self.sealer.open(&id, &key.secret_sealed) {
            Ok(s) => s,
            Err(e) => return Some((format!("the heartbeat secret does not open: {e}"), true)),
        };
        let call = IdentityCall {
            access_key_id: key.access_key_id.as_str(),
            secret_access_key: secret.expose(),
            region,
            endpoint_url: self.settings.endpoint_url.as_deref(),
            now: std::time::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(self.clock.now_millis()).unwrap_or(0)),
        };
        match tokio::time::timeout(CALL_TIMEOUT, self.api.get_caller_identity(call)).await {
            Err(_) => Some(("STS GetCallerIdentity timed out".into(), false)),
            Ok(Err(e @ AwsError::Denied { .. })) => Some((e.to_string(), true)),
            Ok(Err(e)) => Some((e.to_string(), false)),
            Ok(Ok(who)) => {
                let user = format!("/{}", key.username);
                match who.arn {
                    Some(arn) if arn.ends_with(&user) => None,
                    // An answer for someone else: the key is not the heartbeat user's (a stand-in
                    // such as moto answers unknown keys with a default identity).
                    other => Some((
                        format!(
                            "STS answered as {} instead of the heartbeat user",
                            other.unwrap_or_else(|| "nobody".into())
                        ),
                        true,
                    )),
                }
            }
        }
    }

    /// Every path's state now, as the API, console and doctor show it.
    pub async fn paths(&self) -> Result<Vec<PathStatus>, ServiceError> {
        let now = self.clock.now_millis();
        let latest = self.store.latest_receipts().await?;
        let recent = self
            .store
            .receipts_since(now - states::LATENCY_WINDOW_MS)
            .await?;
        let accounts: Vec<String> = if self.settings.enabled {
            self.settings
                .accounts
                .iter()
                .map(|a| a.to_string())
                .collect()
        } else {
            Vec::new()
        };
        let judge = states::Judge {
            now,
            interval_ms: self.interval_ms(),
            silent_after_ms: i64::try_from(self.settings.silent_after.as_millis())
                .unwrap_or(i64::MAX),
            accounts: &accounts,
            regions: &self.settings.regions,
            expect: &self.settings.expect,
        };
        Ok(judge.judge(&latest, &recent))
    }

    /// Judges every path, sets the `/metrics` gauges and tells the operator channel each
    /// path's state (it alerts only on a change).
    pub async fn evaluate(&self) -> Result<Vec<PathStatus>, ServiceError> {
        let paths = self.paths().await?;
        self.metrics.set_paths(&paths);
        for p in &paths {
            self.alerts.report(Condition::Detection(p.report())).await?;
        }
        Ok(paths)
    }

    /// `GET /api/v1/detection`.
    pub async fn overview(&self) -> Result<DetectionOverview, ServiceError> {
        let keys = self
            .store
            .heartbeat_keys()
            .await?
            .into_iter()
            .filter(|k| k.retired_at.is_none())
            .map(|k| HeartbeatKeyInfo {
                account_id: k.account_id.to_string(),
                access_key_id: k.access_key_id.to_string(),
            })
            .collect();
        Ok(DetectionOverview {
            heartbeat: HeartbeatInfo {
                interval_seconds: self.settings.interval.as_secs(),
                regions: self.settings.regions.clone(),
                keys,
            },
            paths: self.paths().await?,
        })
    }

    /// Deletes receipts received before `before` (history retention).
    pub async fn delete_receipts_before(&self, before: i64) -> Result<u64, ServiceError> {
        Ok(self.store.delete_receipts_before(before).await?)
    }
}
