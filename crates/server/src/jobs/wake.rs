//! Wake-ups for the delivery worker: it sleeps until hits commit, not on a clock. In-process
//! commits notify it directly (the group-commit writer); this relays other replicas' commits,
//! which PostgreSQL announces with NOTIFY in the committing transaction.

use std::sync::Arc;
use std::time::Duration;

use canarykeys_store::SqlStore;
use tokio::sync::Notify;

/// Relays commit notices to `wake` until the task is aborted. Returns at once on SQLite.
pub async fn relay_commits(store: Arc<SqlStore>, wake: Arc<Notify>) {
    loop {
        let mut listener = match store.listen_commits().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot listen for commits; retrying"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Notices may have been missed while (re)connecting: look once anyway.
        wake.notify_one();
        loop {
            match listener.recv().await {
                Ok(_) => wake.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "commit listener lost its connection; reconnecting");
                    break;
                }
            }
        }
    }
}
