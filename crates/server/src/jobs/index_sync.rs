//! Keeps the key index exact whoever changes the tokens: another replica, or the CLI.
//!
//! PostgreSQL: every create, delete, expiry and prune is announced with NOTIFY on
//! `canarykeys_tokens` in its own transaction (`canarykeys_store`), and applied here. sqlx's
//! `PgListener` reconnects on its own and drops what was sent meanwhile without an error, so
//! this uses `try_recv`, which does say when the connection was lost, and then listens anew and
//! re-reads the whole index: nothing missed stays missed.
//!
//! SQLite: one server, plus the CLI in other processes, and no notifications. Every change moves
//! a version number in the settings table; it is read every second (one indexed row) and a new
//! value re-reads the index.

use std::sync::Arc;
use std::time::Duration;

use canarykeys_store::{SqlStore, Store, TokenChange, TokenStore};

use crate::services::key_index::KeyIndex;

/// How often SQLite's version is read, and how long to wait before listening again after a
/// failure.
const PACE: Duration = Duration::from_secs(1);

/// Follows token changes until the task is aborted.
pub async fn follow_tokens(store: Arc<SqlStore>, index: KeyIndex) {
    loop {
        let mut listener = match store.listen_tokens().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return poll_version(store, index).await,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot listen for token changes; retrying"
                );
                tokio::time::sleep(PACE).await;
                continue;
            }
        };
        // Listening now: whatever changed before is in this read, whatever changes after is
        // announced.
        if let Err(e) = index.resync(store.as_ref()).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "cannot re-read the key index; retrying"
            );
            tokio::time::sleep(PACE).await;
            continue;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let Some(change) = TokenChange::parse(n.payload()) else {
                        continue;
                    };
                    if let Err(e) = index.apply(store.as_ref() as &dyn Store, &change).await {
                        // A change not applied is a change missed: listen anew and re-read.
                        tracing::warn!(error = format!("{e:#}"), "cannot apply a token change");
                        break;
                    }
                }
                Ok(None) => {
                    tracing::warn!("token listener lost its connection; listening anew");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "token listener failed; listening anew");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SQLite: whenever the version moves, applies the journalled changes since the index's version
/// (a whole re-read only when the journal does not reach back).
async fn poll_version(store: Arc<SqlStore>, index: KeyIndex) {
    loop {
        // Against the version the index holds (the start's load included): a million tokens
        // take seconds to read, so nothing is read twice for one version.
        match store.tokens_version().await {
            Ok(v) if index.synced_version() != Some(v) => {
                if let Err(e) = index.catch_up(store.as_ref()).await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "cannot bring the key index up to date"
                    );
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the tokens' version"),
        }
        tokio::time::sleep(PACE).await;
    }
}
