//! Where password hashes run: a few threads of their own, at most one hash each.
//!
//! argon2id allocates 19 MiB per hash. Run on tokio's blocking pool, hashes land on whichever of
//! its (up to 512) threads is free, and glibc gives busy threads their own malloc arenas, each
//! of which keeps freed chunks: memory then grows with the threads that ever hashed, not with
//! the hashes running. A fixed set of threads, each verifying in one buffer it keeps
//! (`with_blocks`), bounds both the hashes at once and the memory they hold.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The hashing thread's argon2 working memory, kept between hashes.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's kept argon2 memory (call it on a hashing thread).
pub(super) fn with_blocks<T>(f: impl FnOnce(&mut Vec<argon2::Block>) -> T) -> T {
    BLOCKS.with(|b| f(&mut b.borrow_mut()))
}

#[derive(Clone)]
pub(super) struct Hasher {
    jobs: mpsc::Sender<Job>,
    slots: Arc<Semaphore>,
}

impl Hasher {
    /// `threads` hashing threads (at least 1). They end when the last clone is dropped.
    pub(super) fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hash-{i}"))
                .spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password-hashing thread");
            }
        }
        Self {
            jobs,
            slots: Arc::new(Semaphore::new(threads)),
        }
    }

    /// Runs `f` on a hashing thread now, or `None` at once when every thread is busy.
    pub(super) async fn try_run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        Some(self.run_with(permit, f).await)
    }

    /// Runs `f` on a hashing thread, waiting for one to be free.
    pub(super) async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the hashing slots are never closed");
        self.run_with(permit, f).await
    }

    /// The permit travels with the job: a caller that goes away mid-hash does not free its slot
    /// until the hash (which cannot be stopped) has ended.
    async fn run_with<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let out = f();
            // The slot is free before the caller hears back, so a caller that got its answer and
            // tries again finds it free (dropped after the send, a quick retry could see 429).
            drop(permit);
            let _ = reply.send(out);
        });
        self.jobs
            .send(job)
            .expect("the hashing threads live as long as the service");
        answer.await.expect("password hashing does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::Hasher;

    #[tokio::test]
    async fn runs_jobs_and_refuses_at_once_when_every_thread_is_busy() {
        let hasher = Hasher::new(1);
        assert_eq!(hasher.run(|| 2 + 2).await, 4);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                hasher
                    .run(move || {
                        let _ = wait.recv();
                        1
                    })
                    .await
            }
        });
        // Once the one slot is taken, try_run answers None without waiting.
        loop {
            if hasher.slots.available_permits() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(hasher.try_run(|| 3).await.is_none());
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), 1);
        assert_eq!(hasher.try_run(|| 5).await, Some(5));
    }
}
