//! The outbox worker: plans new alerts, then claims lanes of due deliveries, sends them and
//! records the outcome. A lane is one token's deliveries by one channel (or the operator
//! channel's, `[operator_alerts]`, which is never switched off, or a stream's, `[streams]`, sent
//! in `deliver_stream.rs`): its rows go out one
//! after another, in the order they were written, and a retry holds back the rows behind it, so
//! a token's alerts arrive in order even after an outage. Lanes are claimed by when their heads
//! are due, and up to 64 run at once, each on its own task (a round never waits for its
//! slowest), so a flood on one token is one lane and delays no other token's alert. Retries back
//! off exponentially (or as the receiver's `Retry-After` says) until a horizon; permanent
//! failures stop a row, and enough of them in a row switch the channel off, saying why. The loop only sleeps when no
//! work is due, and never past the next due row.

use std::sync::Arc;
use std::time::Duration;

use canarykeys_store::{ChannelKind, DeliveryRecord, Store, StoreError};
use rand::Rng;

use crate::clock::SharedClock;
use crate::notify::{AlertView, Channel, Outcome};
use crate::services::alerts::AlertService;

/// The channels this server can send through.
#[derive(Clone)]
pub struct Channels {
    /// None when no SMTP server is configured.
    pub email: Option<Arc<dyn Channel>>,
    pub webhook: Arc<dyn Channel>,
    /// The operator channel's webhooks (`[operator_alerts] webhook_url`): operator
    /// configuration, so this one lets private addresses through.
    pub operator_webhook: Arc<dyn Channel>,
    /// `[streams]`: each stream's sink, sent in its own lane (`deliver_stream.rs`).
    pub streams: crate::notify::stream::Streams,
}

#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    /// First retry delay; each later one doubles, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// After this long since the row was written, a failing row stops retrying.
    pub horizon: Duration,
    /// How long a claim lasts: a worker that dies mid-send loses it after this.
    pub lease: Duration,
    /// Consecutive permanent failures that switch a token's channel off.
    pub disable_after: u32,
    /// How often to look for new alerts when nothing is due.
    pub poll: Duration,
}

impl DeliveryPolicy {
    pub fn from_config(c: &crate::config::AlertsConfig) -> Self {
        Self {
            base_delay: c.retry_base_delay,
            max_delay: c.retry_max_delay,
            horizon: c.retry_horizon,
            lease: c.claim_lease,
            disable_after: c.disable_after_failures.max(1),
            poll: Duration::from_secs(1),
        }
    }
}

pub struct Deliverer {
    pub store: Arc<dyn Store>,
    pub alerts: AlertService,
    pub channels: Channels,
    pub policy: DeliveryPolicy,
    pub clock: SharedClock,
    /// Told when hits commit (here or, through PostgreSQL, on another replica).
    pub wake: Arc<tokio::sync::Notify>,
    /// When cooldown windows were last looked at (unix ms).
    pub windows_checked: std::sync::atomic::AtomicI64,
    /// Counts each stream's failed sends.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Lanes in flight at once, per worker (one send in flight per lane).
const LANES: u32 = 64;
/// Rows of one lane claimed at once: enough that a long lane drains fast over one kept-alive
/// connection, while the others are served in the same round.
const PER_LANE: u32 = 128;
/// A lane's successes are marked delivered every this many sends: a crash resends at most
/// this many of a lane (at least once), and the commit is shared.
pub(super) const MARK_EVERY: usize = 16;
/// How long a lane keeps sending in one turn (ms), at most, before it goes back in line behind
/// the lanes that wait: a flooded lane must not hold a slot (and `run_once`'s round) for long.
/// Under a flood with cooldown 0, a 2 s budget put the other token's p99 at 326 ms.
const LANE_BUDGET_MS: i64 = 200;
/// The longest a receiver's `Retry-After` may hold its lane back.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);
/// Planning rounds per pass at most. One: a pass that planned a full round comes straight back
/// (the planner takes every token's oldest alert first), so a flood's backlog is planned in
/// turns with sending instead of ahead of it.
const PLAN_ROUNDS: usize = 1;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Deliverer {
    /// The delay before retry number `attempt` (1-based), with ±10 % jitter so that rows that
    /// failed together do not retry together.
    fn backoff(&self, attempt: i64) -> i64 {
        let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let base = millis(self.policy.base_delay).saturating_mul(1_i64 << exp);
        let capped = base.min(millis(self.policy.max_delay)).max(1);
        let jitter = rand::thread_rng().gen_range(-(capped / 10)..=capped / 10);
        capped + jitter
    }

    /// How long one lane may send in a turn (ms).
    pub(super) fn lane_budget(&self) -> i64 {
        (millis(self.policy.lease) / 2).min(LANE_BUDGET_MS)
    }

    /// Plans new alerts and closes due windows, then claims up to `lanes` due lanes. Returns
    /// them with the lease end they were claimed with.
    async fn plan_and_claim(
        &self,
        lanes: u32,
    ) -> Result<(Vec<Vec<DeliveryRecord>>, i64), StoreError> {
        let now = self.clock.now_millis();
        let mut full_rounds = 0;
        while full_rounds < PLAN_ROUNDS {
            let planned = self.alerts.plan_new(now).await?;
            if planned < crate::services::alerts::PLAN_ROUND as usize {
                break;
            }
            full_rounds += 1;
        }
        if full_rounds == PLAN_ROUNDS {
            // More are waiting: come straight back after sending.
            self.wake.notify_one();
        }
        // Windows close on the clock (minutes), not on commits: look once per poll interval,
        // so a stream of commits does not rescan the grouped alerts each time.
        let last = self
            .windows_checked
            .load(std::sync::atomic::Ordering::Relaxed);
        if now - last >= millis(self.policy.poll) {
            self.windows_checked
                .store(now, std::sync::atomic::Ordering::Relaxed);
            self.alerts.close_windows(now).await?;
        }
        if lanes == 0 {
            return Ok((Vec::new(), 0));
        }
        // Each lane's rows in order, the earliest due lanes first.
        let now = self.clock.now_millis();
        let lease = millis(self.policy.lease);
        let claimed = self.store.claim_lanes(now, lease, lanes, PER_LANE).await?;
        Ok((claimed, now.saturating_add(lease)))
    }

    /// Plans, then sends everything due, and waits for it. Returns how many deliveries were
    /// attempted. (Tests drive the worker this way; `run_forever` does not wait for its lanes.)
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let (lanes, until) = self.plan_and_claim(LANES).await?;
        let mut attempted = 0;
        for sent in
            futures_util::future::join_all(lanes.into_iter().map(|l| self.send_lane(l, until)))
                .await
        {
            attempted += sent?;
        }
        Ok(attempted)
    }

    /// Sends a claimed lane in order and returns how many sends were tried. It stops at a send
    /// to retry (the rows behind it wait for it) and when its budget is spent; then the lane is
    /// given back (its time was set by the last row marked). A permanent failure ends only its
    /// own row: it will never be sent, so the next can go.
    async fn send_lane(&self, lane: Vec<DeliveryRecord>, until: i64) -> Result<usize, StoreError> {
        let Some(key) = lane.first().map(|d| d.lane.clone()) else {
            return Ok(0);
        };
        if let canarykeys_store::Lane::Stream(kind) = key {
            return self.send_stream_lane(kind, lane, until).await;
        }
        let started = self.clock.now_millis();
        let budget = self.lane_budget();
        let mut delivered = Vec::new();
        let mut sent = 0;
        for d in lane {
            if sent > 0 && self.clock.now_millis() - started >= budget {
                break;
            }
            sent += 1;
            match self.deliver(d).await? {
                Sent::Delivered(done) => delivered.push(done),
                Sent::Failed => {}
                Sent::Retry => break,
            }
            if delivered.len() >= MARK_EVERY {
                self.store
                    .mark_delivered_many(&delivered, self.clock.now_millis())
                    .await?;
                delivered.clear();
            }
        }
        if !delivered.is_empty() {
            self.store
                .mark_delivered_many(&delivered, self.clock.now_millis())
                .await?;
        }
        // The rows not sent stay pending; marking set the lane's time to its new head's.
        self.store.release_lanes(&[key], until).await?;
        Ok(sent)
    }

    /// Runs until the task is aborted. Errors (a database outage) are logged and retried.
    /// Lanes run as tasks of their own, up to `LANES` at once: a round never waits for its
    /// slowest lane, and while one receiver hangs, the next wake claims and sends other lanes.
    /// The tasks end with this one (the set aborts them when dropped).
    pub async fn run_forever(self: Arc<Self>) {
        let mut running: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let free = LANES.saturating_sub(u32::try_from(running.len()).unwrap_or(LANES));
            match self.plan_and_claim(free).await {
                Ok((lanes, until)) if !lanes.is_empty() => {
                    for lane in lanes {
                        let me = self.clone();
                        running.spawn(async move {
                            if let Err(e) = me.send_lane(lane, until).await {
                                tracing::error!(error = format!("{e:#}"), "alert lane failed");
                            }
                        });
                    }
                    // More may be due behind them.
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = format!("{e:#}"), "alert delivery round failed"),
            }
            let now = self.clock.now_millis();
            let next_due = self.store.next_due().await.ok().flatten();
            let poll = millis(self.policy.poll);
            let wait = next_due.map_or(poll, |t| (t - now).clamp(0, poll));
            let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            // A commit wakes the worker at once, and so does a lane that ends (its slot is
            // free, and its lane may have more); the timer is for retries and window closes.
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
    }

    /// Sends one delivery. A success is returned for the caller to mark with others; failures
    /// are recorded here.
    async fn deliver(&self, d: DeliveryRecord) -> Result<Sent, StoreError> {
        let channel_kind = ChannelKind::parse(&d.channel);
        let channel = match (channel_kind, &d.token_id) {
            (Some(ChannelKind::Email), _) => self.channels.email.clone(),
            (Some(ChannelKind::Webhook), Some(_)) => Some(self.channels.webhook.clone()),
            (Some(ChannelKind::Webhook), None) => Some(self.channels.operator_webhook.clone()),
            // Streams' rows are sent by their lanes (`send_stream_lane`), never one by one here.
            (Some(ChannelKind::Stream(_)) | None, _) => None,
        };
        let (Some(kind), Some(channel)) = (channel_kind, channel) else {
            return self
                .store
                .mark_failed(&d.id, "this server has no such channel configured")
                .await
                .map(|()| Sent::Failed);
        };
        // A token's alert, or (no token) an operator alert in its own schema.
        let message = match &d.token_id {
            Some(_) => serde_json::from_str(&d.payload).map(Message::Token),
            None => serde_json::from_str(&d.payload).map(Message::Operator),
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                return self
                    .store
                    .mark_failed(&d.id, &format!("unreadable payload: {e}"))
                    .await
                    .map(|()| Sent::Failed)
            }
        };
        // The same key on every attempt, so a receiver can drop a second copy.
        let key = format!("{}-{}", d.message_id, d.channel);
        let outcome = match &message {
            Message::Token(view) => channel.send(view, &d.target, &key).await,
            Message::Operator(alert) => channel.send_operator(alert, &d.target, &key).await,
        };
        self.settle(d, kind, outcome).await
    }

    /// Records how the send of `d` (by `kind`) went, and says what that means for its lane.
    pub(super) async fn settle(
        &self,
        d: DeliveryRecord,
        kind: ChannelKind,
        outcome: Outcome,
    ) -> Result<Sent, StoreError> {
        let failed_stream = match (kind, outcome == Outcome::Delivered) {
            (ChannelKind::Stream(stream), false) => Some(stream),
            _ => None,
        };
        let sent = self.record(d, kind, outcome).await?;
        // Counted once the store holds the failure, so a reader who sees the count sees the
        // row's next attempt too.
        if let Some(stream) = failed_stream {
            self.metrics
                .add("canarykeys_stream_failures_total", stream.as_str(), 1);
        }
        Ok(sent)
    }

    /// Writes what `outcome` means for `d`: its next attempt, its failure, or nothing yet
    /// (a success is marked by the caller together with others).
    async fn record(
        &self,
        d: DeliveryRecord,
        kind: ChannelKind,
        outcome: Outcome,
    ) -> Result<Sent, StoreError> {
        let now = self.clock.now_millis();
        let asked = match &outcome {
            Outcome::RetryAfter(_, after) => Some(*after),
            _ => None,
        };
        match outcome {
            Outcome::Delivered => Ok(Sent::Delivered((d.id, d.token_id, kind))),
            Outcome::Retry(error) | Outcome::RetryAfter(error, _) => {
                let attempt = d.attempts + 1;
                // The receiver's own `Retry-After`, within bounds: at least a second (no
                // tight loop on `0`), at most `RETRY_AFTER_CAP`; else our backoff.
                let delay = asked.map_or_else(
                    || self.backoff(attempt),
                    |after| millis(after.clamp(Duration::from_secs(1), RETRY_AFTER_CAP)),
                );
                let next = now + delay;
                if next > d.created_at.saturating_add(millis(self.policy.horizon)) {
                    let why = format!("gave up after {attempt} attempts: {error}");
                    self.store.mark_failed(&d.id, &why).await?;
                    tracing::error!(delivery = %d.id, channel = %d.channel, error = ?why, "alert not delivered");
                } else {
                    self.store.mark_retry(&d.id, next, &error).await?;
                    tracing::warn!(delivery = %d.id, channel = %d.channel, attempt, error = ?error, "alert delivery will be retried");
                }
                // Given up or not, the channel is failing now: the rows behind wait their turn.
                Ok(Sent::Retry)
            }
            Outcome::Permanent(error) => {
                self.store.mark_failed(&d.id, &error).await?;
                tracing::error!(delivery = %d.id, channel = %d.channel, error = ?error, "alert delivery failed permanently");
                // The operator channel is configuration: it is never switched off, and its
                // failures show in `/healthz/detail`.
                let Some(token) = &d.token_id else {
                    return Ok(Sent::Failed);
                };
                let count = self.store.channel_result(token, kind, true).await?;
                if count >= i64::from(self.policy.disable_after) {
                    let reason = format!(
                        "switched off after {count} permanent failures in a row; the last: {error}"
                    );
                    self.store.disable_channel(token, kind, &reason).await?;
                    tracing::error!(token = %token, channel = %d.channel, "alert channel switched off");
                }
                Ok(Sent::Failed)
            }
        }
    }
}

/// What a row carries, read from its payload.
enum Message {
    Token(Box<AlertView>),
    Operator(Box<crate::notify::operator::OperatorAlert>),
}

/// How one send of a lane went, for the rest of the lane.
pub(super) enum Sent {
    /// Sent: (id, token, channel), to be marked with the lane's other successes.
    Delivered((String, Option<canarykeys_core::TokenId>, ChannelKind)),
    /// This row will never be sent; the next may go.
    Failed,
    /// This row waits for a retry, and the rows behind it with it.
    Retry,
}
