//! `AuditedStore` over SQL: the change and its audit entry in one transaction, so the log never
//! names a change that did not happen, nor misses one that did.

use async_trait::async_trait;

use super::{access, outbox, tokens, SqlStore};
use crate::{AuditRecord, AuditedStore, AuditedWrite, NewDelivery, Result};

#[async_trait]
impl AuditedStore for SqlStore {
    async fn write_audited_alerting(
        &self,
        write: AuditedWrite<'_>,
        audit: &AuditRecord,
        deliveries: &[NewDelivery],
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let applied = match write {
            AuditedWrite::InsertToken(t) => {
                tokens::insert_token(&mut tx, self.backend(), self.journal, t)
                    .await
                    .map(|()| true)?
            }
            // The entry's time is the time of death.
            AuditedWrite::DeleteToken(id) => {
                tokens::delete_token(&mut tx, self.backend(), self.journal, id, audit.at).await?
            }
            AuditedWrite::InsertOwnedToken(t, owner) => {
                tokens::insert_token(&mut tx, self.backend(), self.journal, t).await?;
                tokens::set_owner(&mut *tx, &t.id, owner).await?;
                true
            }
            AuditedWrite::SetChannels(id, s) => tokens::set_channels(&mut *tx, id, s).await?,
            AuditedWrite::SetIgnoreSources(id, sources) => {
                outbox::set_ignore_sources(&mut *tx, id, sources).await?
            }
            AuditedWrite::SetManageHash { id, hash } => {
                tokens::set_manage_hash(&mut *tx, id, hash).await?
            }
            AuditedWrite::InsertOperator(op) => {
                access::insert_operator(&mut *tx, op).await.map(|()| true)?
            }
            AuditedWrite::InsertSession {
                id_hash,
                operator_id,
                created_at,
                expires_at,
            } => access::insert_session(&mut *tx, id_hash, operator_id, created_at, expires_at)
                .await
                .map(|()| true)?,
            AuditedWrite::DeleteSession(id_hash) => access::delete_session(&mut *tx, id_hash)
                .await
                .map(|()| true)?,
            AuditedWrite::InsertApiKey(k) => {
                access::insert_api_key(&mut *tx, k).await.map(|()| true)?
            }
            AuditedWrite::RevokeApiKey { id, now } => {
                access::revoke_api_key(&mut *tx, id, now).await?
            }
            AuditedWrite::Nothing => true,
        };
        // A change that found nothing to change is not logged (and nothing was written).
        if applied {
            access::insert_audit(&mut *tx, audit).await?;
            if !deliveries.is_empty() {
                outbox::insert_deliveries(&mut tx, deliveries).await?;
            }
        }
        tx.commit().await?;
        Ok(applied)
    }
}
