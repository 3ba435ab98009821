//! Group commit: one writer task takes the hits of every concurrent request and stores them
//! together, in one transaction of multi-row statements. While commits run (one on SQLite, a
//! few on PostgreSQL: `HitStore::concurrent_groups`), new requests queue; the next group takes
//! all of them (up to a bound), so the group grows with the load and a lone request waits for
//! nobody. Each request is answered after its own group commits (a 2xx always
//! means committed). If the database refuses a group, each request is retried alone, so one bad
//! row fails only its own request; if the database is unreachable, every request gets the error.
//!
//! Every wait has a deadline (`[database] request_timeout`), kept on this side because a frozen
//! link delivers no error: a request gets `TimedOut` by its deadline even if the writer is stuck,
//! and the writer drops a commit past the same deadline and moves on to the next group.

use std::sync::Arc;
use std::time::Duration;

use canarykeys_store::{HitRecord, Store, StoreError};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use super::cadence::Cadence;

/// Hits in one group at most: bounds a transaction's size and a request's wait behind others.
const MAX_GROUP_HITS: usize = 4096;
/// Requests waiting for the writer at most; more wait to enqueue (back-pressure, not memory).
const QUEUE: usize = 4096;
/// How long a group waits for requests it expects (`Cadence`): about one commit. tokio's timer
/// rounds a deadline up to the end of its millisecond, so the wait is 0.5 ms to about 1.5 ms.
const LINGER: Duration = Duration::from_micros(500);

struct Job {
    hits: Vec<HitRecord>,
    /// How many of the group's results are this job's (its hits move into the group).
    len: usize,
    reply: oneshot::Sender<Result<Stored, StoreError>>,
}

/// What became of one request's hits, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Whether each hit was new (not a repeat of a stored event id).
    pub new: Vec<bool>,
    /// Whether each was left out because its token is gone altogether (neither new nor a
    /// repeat).
    pub gone: Vec<bool>,
    /// Whether each was new and counted into its token's open cooldown window (no alert of
    /// its own).
    pub windowed: Vec<bool>,
    /// Whether each was new and folded (counted, with no hit row of its own).
    pub folded: Vec<bool>,
}

/// The handle requests submit through. Cloning shares the one writer task.
#[derive(Clone)]
pub struct HitWriter {
    jobs: mpsc::Sender<Job>,
    deadline: Duration,
}

impl HitWriter {
    /// Starts the writer task. `committed` is told after every commit that left a new alert for
    /// the planner, so the delivery worker plans at once instead of on a clock. A commit whose
    /// hits all went into open cooldown windows wakes nobody: the worker would find nothing.
    /// `deadline` bounds one commit of up to `MAX_GROUP_HITS` hits (more get one per bundle).
    pub fn start(store: Arc<dyn Store>, committed: Arc<Notify>, deadline: Duration) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, queue, committed, deadline));
        Self { jobs, deadline }
    }

    /// Stores `hits` in the next group; returns per hit whether it was new, and whether its
    /// token was gone.
    pub async fn record(&self, hits: Vec<HitRecord>) -> Result<Stored, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Closed;
        let len = hits.len();
        // The queue, the group ahead and our own commit, all inside one deadline: past it the
        // request is answered whatever the writer is doing. Hits that commit later anyway are
        // only repeats to the sender's retry (same eventIDs).
        let wait = async {
            self.jobs
                .send(Job { hits, len, reply })
                .await
                .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        };
        tokio::time::timeout(deadline_for(self.deadline, len), wait)
            .await
            .unwrap_or(Err(StoreError::TimedOut))
    }
}

/// One `deadline` per bundle of up to `MAX_GROUP_HITS` hits, so a large file (the CLI, the S3
/// poller) is not refused for its size alone while a request's group keeps the plain deadline.
fn deadline_for(deadline: Duration, hits: usize) -> Duration {
    let bundles = u32::try_from(hits.div_ceil(MAX_GROUP_HITS).max(1)).unwrap_or(u32::MAX);
    deadline.saturating_mul(bundles)
}

/// `record_group` within the deadline. Past it the call's future is dropped, and with it the
/// transaction and its pooled connection: sqlx does not hand such a connection out again until
/// a ping has drained what the dropped call left (the rollback included), in a task of its own,
/// so a frozen connection is never reused half-way and holds only its own pool slot until
/// PostgreSQL answers again or the link is declared dead.
async fn store_within(
    store: &dyn Store,
    hits: &[HitRecord],
    deadline: Duration,
) -> Result<canarykeys_store::RecordedGroup, StoreError> {
    tokio::time::timeout(deadline_for(deadline, hits.len()), store.record_group(hits))
        .await
        .unwrap_or(Err(StoreError::TimedOut))
}

/// Takes groups off the queue while fewer than the store's `concurrent_groups` are committing.
/// A slot is taken before the queue is read, so while every slot is busy requests pile up and
/// the next group takes them all: groups still grow with the load. With one slot (SQLite) this
/// is one group at a time, each taken as the last one's commit ends, and then given up to
/// `LINGER` to reach as many requests as recent groups held (`Cadence`).
async fn run(
    store: Arc<dyn Store>,
    mut queue: mpsc::Receiver<Job>,
    committed: Arc<Notify>,
    deadline: Duration,
) {
    let one_at_a_time = store.concurrent_groups() <= 1;
    let slots = Arc::new(Semaphore::new(store.concurrent_groups().max(1)));
    let mut cadence = Cadence::default();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut size = first.hits.len();
        let mut group = vec![first];
        // Take whatever queued while the slots were busy.
        take_queued(&mut queue, &mut group, &mut size);
        if one_at_a_time {
            let expected = cadence.expected();
            let until = tokio::time::Instant::now() + LINGER;
            while group.len() < expected && size < MAX_GROUP_HITS {
                match tokio::time::timeout_at(until, queue.recv()).await {
                    Ok(Some(job)) => {
                        size += job.hits.len();
                        group.push(job);
                        take_queued(&mut queue, &mut group, &mut size);
                    }
                    // Closed (the next turn of the loop returns) or waited long enough.
                    _ => break,
                }
            }
            cadence.note(group.len());
        }
        let (store, committed) = (store.clone(), committed.clone());
        tokio::spawn(async move {
            commit(&*store, &mut group, size, &committed, deadline).await;
            drop(slot);
        });
    }
}

/// Moves the jobs already queued into `group`, up to `MAX_GROUP_HITS` hits.
fn take_queued(queue: &mut mpsc::Receiver<Job>, group: &mut Vec<Job>, size: &mut usize) {
    while *size < MAX_GROUP_HITS {
        match queue.try_recv() {
            Ok(job) => {
                *size += job.hits.len();
                group.push(job);
            }
            Err(_) => break,
        }
    }
}

async fn commit(
    store: &dyn Store,
    group: &mut Vec<Job>,
    size: usize,
    committed: &Notify,
    deadline: Duration,
) {
    let hits: Vec<HitRecord> = if group.len() == 1 {
        std::mem::take(&mut group[0].hits)
    } else {
        let mut all = Vec::with_capacity(size);
        for job in group.iter_mut() {
            all.append(&mut job.hits);
        }
        all
    };
    let jobs: Vec<Job> = std::mem::take(group);
    match store_within(store, &hits, deadline).await {
        Ok(recorded) => {
            if recorded.to_plan > 0 {
                committed.notify_one();
            }
            let mut new = recorded.new.into_iter();
            let mut gone = recorded.gone.into_iter();
            let mut windowed = recorded.windowed.into_iter();
            let mut folded = recorded.folded.into_iter();
            for job in jobs {
                let mine = Stored {
                    new: new.by_ref().take(job.len).collect(),
                    gone: gone.by_ref().take(job.len).collect(),
                    windowed: windowed.by_ref().take(job.len).collect(),
                    folded: folded.by_ref().take(job.len).collect(),
                };
                // A request that gave up (client gone) does not stop the others.
                let _ = job.reply.send(Ok(mine));
            }
        }
        // One request's bad row must not fail the others that shared its transaction: when the
        // database is up but refused the group, each request is stored alone, and only the one
        // that really cannot be stored gets the error. An outage fails everyone at once instead
        // (retrying each would only wait out the same timeout again).
        Err(e) if jobs.len() > 1 && !e.is_unavailable() => {
            tracing::warn!(
                error = format!("{e:#}"),
                requests = jobs.len(),
                "group commit failed; storing its requests one by one"
            );
            let mut rest = hits.as_slice();
            let mut outage: Option<Arc<StoreError>> = None;
            for job in jobs {
                let (mine, tail) = rest.split_at(job.len);
                rest = tail;
                // Once the database stops answering, the rest would each wait out the deadline.
                if let Some(e) = &outage {
                    let _ = job.reply.send(Err(StoreError::GroupCommit(e.clone())));
                    continue;
                }
                let result = store_within(store, mine, deadline).await;
                if let Err(e) = &result {
                    tracing::error!(error = format!("{e:#}"), hits = job.len, "hits not stored");
                }
                let result = match result {
                    Err(e) if e.is_unavailable() => {
                        let e = Arc::new(e);
                        outage = Some(e.clone());
                        Err(StoreError::GroupCommit(e))
                    }
                    other => other,
                };
                let result = result.map(|recorded| {
                    if recorded.to_plan > 0 {
                        committed.notify_one();
                    }
                    Stored {
                        new: recorded.new,
                        gone: recorded.gone,
                        windowed: recorded.windowed,
                        folded: recorded.folded,
                    }
                });
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), hits = size, "group commit failed");
            let e = Arc::new(e);
            for job in jobs {
                let _ = job.reply.send(Err(StoreError::GroupCommit(e.clone())));
            }
        }
    }
}
