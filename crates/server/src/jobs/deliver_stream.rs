//! A stream's lane (`stream/<type>`): its claimed rows sent through the stream's sink, in
//! batches of what the sink takes at once (one at a time for syslog and PagerDuty, so every
//! token's order is kept). A batch that failed in part marks its delivered items and retries
//! only the others; the lane then waits for its new head, so a batch may be reordered, and its
//! records carry their own times.

use canarykeys_store::{ChannelKind, DeliveryRecord, Lane, StoreError, StreamKind};

use super::deliver::{Deliverer, Sent, MARK_EVERY};
use crate::notify::stream::StreamRecord;
use crate::notify::Outcome;

impl Deliverer {
    /// Sends a claimed stream lane; returns how many rows were tried.
    pub(super) async fn send_stream_lane(
        &self,
        kind: StreamKind,
        lane: Vec<DeliveryRecord>,
        until: i64,
    ) -> Result<usize, StoreError> {
        let channel = ChannelKind::Stream(kind);
        let Some(sink) = self.channels.streams.get(kind) else {
            // The stream was removed from the configuration: its rows can never be sent.
            for d in &lane {
                self.store
                    .mark_failed(&d.id, "this stream is not configured on this server")
                    .await?;
            }
            self.store
                .release_lanes(&[Lane::Stream(kind)], until)
                .await?;
            return Ok(lane.len());
        };
        let started = self.clock.now_millis();
        let budget = self.lane_budget();
        let mut rows = lane.into_iter().peekable();
        let mut tried = 0;
        // Successes are marked together, as a token's lane does: one commit per few sends.
        let mut delivered = Vec::new();
        while rows.peek().is_some() {
            if tried > 0 && self.clock.now_millis() - started >= budget {
                break;
            }
            // The next batch, each row read back into its record.
            let mut batch: Vec<(DeliveryRecord, StreamRecord)> = Vec::new();
            while batch.len() < sink.batch().max(1) {
                let Some(d) = rows.next() else { break };
                tried += 1;
                match serde_json::from_str::<StreamRecord>(&d.payload) {
                    Ok(r) => batch.push((d, r)),
                    Err(e) => {
                        self.store
                            .mark_failed(&d.id, &format!("unreadable payload: {e}"))
                            .await?;
                    }
                }
            }
            if batch.is_empty() {
                continue;
            }
            let records: Vec<StreamRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
            let mut outcomes = sink.send(&records).await;
            outcomes.resize(
                batch.len(),
                Outcome::Retry("the stream said nothing".into()),
            );
            let mut retry = false;
            for ((d, _), outcome) in batch.into_iter().zip(outcomes) {
                match self.settle(d, channel, outcome).await? {
                    Sent::Delivered(done) => delivered.push(done),
                    Sent::Failed => {}
                    Sent::Retry => retry = true,
                }
            }
            if delivered.len() >= MARK_EVERY {
                self.store
                    .mark_delivered_many(&delivered, self.clock.now_millis())
                    .await?;
                delivered.clear();
            }
            if retry {
                // The rows behind wait for the failed one(s): the receiver is failing now.
                break;
            }
        }
        if !delivered.is_empty() {
            self.store
                .mark_delivered_many(&delivered, self.clock.now_millis())
                .await?;
        }
        self.store
            .release_lanes(&[Lane::Stream(kind)], until)
            .await?;
        Ok(tried)
    }
}
