//! The sensor's use case: a request signed with some access key id is looked up, checked with
//! the token's secret and recorded as a hit, in that order, in one call. The sensor module only
//! reads the wire format and writes AWS's answer; what a request means for storage is decided here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canarykeys_core::cloudtrail::Record;
use canarykeys_core::{AccessKeyId, AccountId, IamUserName, SessionPart, TokenId};
use canarykeys_store::{StoreError, TokenRecord};

use crate::clock::SharedClock;
use crate::services::{DeliveryPath, IngestService, ServiceError, TokenService};

/// Whose key signed a request: a token's, or a heartbeat identity's (whose calls are
/// answered like any other and recorded as receipts).
#[derive(Clone, Debug)]
pub struct KeyHolder {
    /// Stable per key holder; the IAM user id the sensor reports is derived from it.
    pub id: String,
    pub account_id: AccountId,
    pub username: IamUserName,
    /// For a session key (`ASIA`): the session token a request must carry, and its expiry.
    pub session: Option<SessionPart>,
}

impl From<&TokenRecord> for KeyHolder {
    fn from(t: &TokenRecord) -> Self {
        Self {
            id: t.id.to_string(),
            account_id: t.account_id,
            username: t.username.clone(),
            session: None,
        }
    }
}

/// One signed request, as the sensor parsed it. The service asks it for the key id, then (with
/// the token's secret in hand) for the hit to record and the answer to give.
pub trait SignedCall {
    /// What the caller is eventually told (AWS's answer, in the sensor's terms).
    type Answer;

    /// The access key id the signature names, as sent.
    fn key_id(&self) -> &str;

    /// Checks the signature with `secret` and describes the call as a hit at `now_millis`.
    /// `secret` is `None` when the token's secret does not open with the sealing key: the call
    /// is still a hit, its signature unchecked.
    fn examine(
        &self,
        token: &KeyHolder,
        secret: Option<&str>,
        now_millis: i64,
    ) -> Examined<Self::Answer>;
}

/// A call checked against its token: the hit to record, its note, and the answer to give once
/// the hit is committed.
pub struct Examined<A> {
    pub record: Record,
    pub note: String,
    pub answer: A,
}

/// What became of a signed request.
pub enum Observed<A> {
    /// No token has that key: counted, never alerted (scanners try made-up keys).
    UnknownKey,
    /// The hit is committed; give the caller `A`.
    Recorded(A),
}

/// Turns signed requests to the AWS-compatible listener into hits.
#[derive(Clone)]
pub struct SensorService {
    tokens: TokenService,
    ingest: IngestService,
    clock: SharedClock,
    /// How long one observation may wait on the database (`[database] request_timeout`).
    deadline: Duration,
    /// Live tokens' records by id, for their sealed secret and the fields a signature check
    /// reads (key, account, user: none of them ever changes). Whether a token is live is asked
    /// of the key index on every request, so a deleted token stops matching at once.
    records: Arc<Mutex<HashMap<TokenId, TokenRecord>>>,
    /// Heartbeat keys: their calls are checked with their own secret and become receipts.
    heartbeat: Option<crate::services::heartbeat::HeartbeatService>,
}

/// Records kept at most; past it the cache starts again (a read by id refills it).
const RECORDS: usize = 4096;

impl SensorService {
    pub fn new(tokens: TokenService, ingest: IngestService, clock: SharedClock) -> Self {
        Self {
            tokens,
            ingest,
            clock,
            deadline: Duration::from_secs(5),
            records: Arc::default(),
            heartbeat: None,
        }
    }

    /// Answers heartbeat keys too (the heartbeat's `endpoint_url` may point here).
    pub fn with_heartbeat(
        mut self,
        heartbeat: crate::services::heartbeat::HeartbeatService,
    ) -> Self {
        self.heartbeat = Some(heartbeat);
        self
    }

    /// Bounds each `observe` by `deadline`.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The live token of `key`. With the server's key index (always, in the server), a replay
    /// of one signed request costs no query: the index says the key is a live token's, and the
    /// token's record comes from memory after its first read.
    async fn live_token(&self, key: &AccessKeyId) -> Result<Option<TokenRecord>, ServiceError> {
        let Some(index) = self.ingest.key_index() else {
            return self.tokens.find_by_key(key).await;
        };
        let Some(m) = index.by_key(self.ingest.store(), key).await? else {
            return Ok(None);
        };
        // A tombstone's key is a retired decoy: the sensor answers it as an unknown key.
        if m.died_at.is_some() {
            return Ok(None);
        }
        let cached = self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&m.token)
            .cloned();
        if let Some(t) = cached {
            return Ok(Some(t));
        }
        let token = match self.tokens.get(m.token.as_str()).await {
            Ok(t) => t,
            // Deleted since the index was read.
            Err(ServiceError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= RECORDS {
            records.clear();
        }
        records.insert(token.id.clone(), token.clone());
        Ok(Some(token))
    }

    /// Looks the key up, lets `call` check its signature with the token's secret, and records
    /// the hit before returning the answer, so a failure lets the caller's retry be recorded.
    /// The whole observation has a deadline: a database that stops answering costs the caller
    /// an error (`StoreError::TimedOut`) by then, never a hung request.
    #[tracing::instrument(skip_all, fields(token))]
    pub async fn observe<C: SignedCall>(
        &self,
        call: &C,
    ) -> Result<Observed<C::Answer>, ServiceError> {
        tokio::time::timeout(self.deadline, self.observe_now(call))
            .await
            .unwrap_or(Err(ServiceError::Store(StoreError::TimedOut)))
    }

    async fn observe_now<C: SignedCall>(
        &self,
        call: &C,
    ) -> Result<Observed<C::Answer>, ServiceError> {
        let key = AccessKeyId::parse(call.key_id()).ok();
        let token = match &key {
            Some(key) => self.live_token(key).await?,
            None => None,
        };
        if let (None, Some(key), Some(heartbeat)) = (&token, &key, &self.heartbeat) {
            if let Some(opened) = heartbeat.open(key).await? {
                let holder = KeyHolder {
                    id: opened.key.id.clone(),
                    account_id: opened.key.account_id,
                    username: opened.key.username.clone(),
                    session: None,
                };
                let examined = call.examine(
                    &holder,
                    Some(opened.secret.expose()),
                    self.clock.now_millis(),
                );
                // The pipeline sees the heartbeat key and stores a receipt, not a hit.
                self.ingest
                    .record(&[examined.record], DeliveryPath::Sensor, None, false)
                    .await?;
                return Ok(Observed::Recorded(examined.answer));
            }
        }
        if let (None, Some(key)) = (&token, &key) {
            if key.is_session() {
                if let Some(opened) = self.tokens.open_session(key).await? {
                    return self.observe_session(call, opened).await;
                }
            }
        }
        let Some(token) = token else {
            let metrics = self.ingest.metrics();
            metrics.add("canarykeys_ingest_unknown_key_total", "sensor", 1);
            return Ok(Observed::UnknownKey);
        };
        tracing::Span::current().record("token", tracing::field::display(&token.id));
        // A secret the key cannot open must not cost the hit: the key id alone says the decoy
        // was found. The hit says the signature went unchecked; the caller is told nothing more
        // than a bad signature would tell it.
        let credentials = match self.tokens.key_credentials(&token) {
            Ok(c) => Some(c),
            Err(ServiceError::Crypto(e)) => {
                tracing::error!(error = %e, "sensor: the token's secret does not open with the sealing key; recording the hit unchecked");
                None
            }
            Err(e) => return Err(e),
        };
        let examined = call.examine(
            &KeyHolder::from(&token),
            credentials.as_ref().map(|c| c.secret_access_key.expose()),
            self.clock.now_millis(),
        );
        self.ingest
            .record(
                &[examined.record],
                DeliveryPath::Sensor,
                Some(&examined.note),
                false,
            )
            .await?;
        Ok(Observed::Recorded(examined.answer))
    }

    /// A request signed with a session key of an `aws_session` token: checked with the
    /// session's secret and token, a hit of the token even after the session expired (the
    /// caller is then told `ExpiredToken`, as by AWS).
    async fn observe_session<C: SignedCall>(
        &self,
        call: &C,
        opened: crate::services::tokens::OpenedSession,
    ) -> Result<Observed<C::Answer>, ServiceError> {
        tracing::Span::current().record("token", tracing::field::display(&opened.token.id));
        let mut holder = KeyHolder::from(&opened.token);
        let secret = opened.secret.map(|(secret, part)| {
            holder.session = Some(part);
            secret
        });
        let examined = call.examine(
            &holder,
            secret.as_ref().map(|s| s.expose()),
            self.clock.now_millis(),
        );
        self.ingest
            .record(
                &[examined.record],
                DeliveryPath::Sensor,
                Some(&examined.note),
                false,
            )
            .await?;
        Ok(Observed::Recorded(examined.answer))
    }
}
