//! Cleaning up after interrupted mints. `create` writes an intent before calling the minter and
//! notes the key as soon as the minter answers; a crash before the token is stored leaves that
//! intent behind. The reconciler revokes such keys, and only them: a key named by an intent is
//! one our minter made moments before, so no other IAM user is ever touched.

use canarykeys_aws::KeyRef;
use canarykeys_store::MintedRef;

use super::{ServiceError, TokenService};

/// What one reconciler round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Keys (and their users) revoked: minted, never stored.
    pub revoked: usize,
    /// Intents whose token was stored after all (a crash after the insert).
    pub owned: usize,
    /// Intents the minter never answered: nothing to identify (see the README).
    pub unanswered: usize,
    /// Revokes that failed; the intent stays for the next round.
    pub errors: usize,
}

impl TokenService {
    /// Forgets an intent; a failure only means the reconciler looks at it later.
    pub(super) async fn forget_mint(&self, intent: &str) {
        if let Err(e) = self.store.end_mint(intent).await {
            tracing::warn!(error = %e, intent, "could not clear a mint intent; the reconciler will");
        }
    }

    /// Revokes a key whose token could not be stored.
    pub(super) async fn undo_mint(&self, minted: &MintedRef) {
        if let Err(undo) = self.minter.revoke(&key_ref(minted)).await {
            tracing::error!(error = %undo, key = %minted.access_key_id, "could not revoke a key after a failed create");
        }
    }

    /// Handles every intent begun before `before` (older than any mint can take).
    pub async fn reconcile_mints(&self, before: i64) -> Result<ReconcileReport, ServiceError> {
        let mut report = ReconcileReport::default();
        for intent in self.store.stale_mints(before).await? {
            let Some(minted) = &intent.minted else {
                // The minter's own rollback runs unless the process died inside the call; the
                // user it may have made has no name we know, so it is reported, not guessed.
                tracing::warn!(intent = %intent.id, minter = %intent.minter, "a mint was interrupted before the minter answered; check the decoy accounts for a user without a token");
                report.unanswered += 1;
                self.forget_mint(&intent.id).await;
                continue;
            };
            if self
                .store
                .find_token_by_key(&minted.access_key_id)
                .await?
                .is_some()
            {
                report.owned += 1;
                self.forget_mint(&intent.id).await;
                continue;
            }
            if intent.minter != self.minter.name() {
                tracing::error!(intent = %intent.id, minter = %intent.minter, key = %minted.access_key_id, "an orphaned key was made by another minter; revoke it by hand");
                report.errors += 1;
                continue;
            }
            match self.minter.revoke(&key_ref(minted)).await {
                Ok(()) => {
                    tracing::info!(key = %minted.access_key_id, account = %minted.account_id, "revoked a key an interrupted create left behind");
                    report.revoked += 1;
                    self.forget_mint(&intent.id).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, key = %minted.access_key_id, "could not revoke an orphaned key; will retry");
                    report.errors += 1;
                }
            }
        }
        Ok(report)
    }
}

fn key_ref(m: &MintedRef) -> KeyRef<'_> {
    KeyRef {
        access_key_id: &m.access_key_id,
        username: &m.username,
        account_id: m.account_id,
    }
}
