//! Replacing manage secrets: one token's (its holder, or a `tokens:write` key, retires a secret
//! that may have been copied, as `plant` does for the secrets older versions kept on disk), or
//! every live token's at once, for an operator who wants every secret ever handed out to stop
//! working. The new secret is stored only as its hash.

use canarykeys_core::ManageSecret;
use canarykeys_store::{AuditedWrite, TokenRecord};

use super::{ServiceError, TokenService};
use crate::services::audit::{Actor, AuditAction};

impl TokenService {
    /// Gives `token` a fresh manage secret and returns it; the old one stops working at once.
    #[tracing::instrument(skip_all, fields(token = %token.id, actor = %actor))]
    pub async fn rotate_manage_secret(
        &self,
        token: &TokenRecord,
        actor: &Actor,
    ) -> Result<ManageSecret, ServiceError> {
        let secret = ManageSecret::generate();
        let hash = secret.hash();
        let audit = self.audit(actor, AuditAction::TokenManageSecret, &token.id, "");
        let write = AuditedWrite::SetManageHash {
            id: &token.id,
            hash: &hash,
        };
        let rows = self.with_audit_rows(&audit, Vec::new());
        if !self
            .store
            .write_audited_alerting(write, &audit, &rows)
            .await?
        {
            return Err(ServiceError::NotFound);
        }
        Ok(secret)
    }

    /// Gives every live token a fresh manage secret and forgets the new ones: from then on the
    /// tokens are managed from the console and with API keys only. Returns how many changed.
    #[tracing::instrument(skip_all, fields(actor = %actor))]
    pub async fn reset_all_manage_secrets(&self, actor: &Actor) -> Result<usize, ServiceError> {
        let mut count = 0;
        for token in self.store.list_tokens().await? {
            match self.rotate_manage_secret(&token, actor).await {
                Ok(_) => count += 1,
                // Deleted or expired meanwhile: nothing left to manage.
                Err(ServiceError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        self.record_action(
            actor,
            AuditAction::TokensManageSecretReset,
            "*",
            &format!("{count} manage secrets replaced"),
        )
        .await?;
        Ok(count)
    }
}
