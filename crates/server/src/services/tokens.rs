//! Token use cases: mint a key and store the token (or nothing at all), authorise a manage secret,
//! hand out credentials, switch channels, delete.

use std::sync::Arc;

use canarykeys_aws::{KeyRef, MintError, MintRequest, Minter};
use canarykeys_core::{
    AwsCredentials, FieldError, ManageSecret, NewToken, OutputFormat, Region, TokenId,
};
use canarykeys_store::{ChannelSwitches, HitRecord, Store, StoreError, TokenRecord};

use crate::clock::now_millis;
use crate::crypto::{CryptoError, Sealer};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Unknown token, or a secret that does not match: deliberately one case.
    #[error("no such token")]
    NotFound,
    #[error("could not mint a key")]
    Mint(#[from] MintError),
    #[error("storage failed")]
    Store(#[from] StoreError),
    #[error("sealing failed")]
    Crypto(#[from] CryptoError),
}

/// What a create hands back: the stored token, the one-time manage secret and the credentials.
pub struct CreatedToken {
    pub token: TokenRecord,
    pub manage_secret: ManageSecret,
    pub credentials: AwsCredentials,
}

#[derive(Clone)]
pub struct TokenService {
    store: Arc<dyn Store>,
    minter: Arc<dyn Minter>,
    sealer: Sealer,
    region: Region,
    output: OutputFormat,
    allow_private_webhooks: bool,
    /// Ingest's in-memory key index, kept exact on create and delete.
    index: Option<super::key_index::KeyIndex>,
}

impl TokenService {
    pub fn new(
        store: Arc<dyn Store>,
        minter: Arc<dyn Minter>,
        sealer: Sealer,
        region: Region,
        output: OutputFormat,
    ) -> Self {
        Self {
            store,
            minter,
            sealer,
            region,
            output,
            allow_private_webhooks: false,
            index: None,
        }
    }

    /// Keeps ingest's key index in step with this service's creates and deletes.
    pub fn with_key_index(mut self, index: super::key_index::KeyIndex) -> Self {
        self.index = Some(index);
        self
    }

    /// Whether new tokens may alert webhooks on loopback and private addresses.
    pub fn with_webhook_policy(mut self, allow_private: bool) -> Self {
        self.allow_private_webhooks = allow_private;
        self
    }

    pub fn minter(&self) -> &dyn Minter {
        self.minter.as_ref()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Mints a key and stores the token. If storing fails the key is revoked again, so a failed
    /// create leaves no key and no row behind.
    pub async fn create(&self, new: NewToken) -> Result<CreatedToken, ServiceError> {
        if let Some(hook) = &new.webhook {
            crate::notify::webhook::check_new_webhook(hook.url(), self.allow_private_webhooks)
                .await
                .map_err(|e| ServiceError::Invalid(vec![FieldError::new("webhook_url", e)]))?;
        }
        let request = MintRequest {
            username: new.username.clone(),
            account: new.account_id,
        };
        let key = self.minter.mint(&request).await?;
        let id = TokenId::generate();
        let manage_secret = ManageSecret::generate();
        let record = TokenRecord {
            id: id.clone(),
            kind: new.kind,
            memo: new.memo,
            email_enabled: new.email.is_some(),
            email: new.email,
            webhook_enabled: new.webhook.is_some(),
            webhook: new.webhook,
            manage_hash: manage_secret.hash(),
            minter: self.minter.name().to_owned(),
            access_key_id: key.access_key_id.clone(),
            secret_sealed: self.sealer.seal(&id, &key.secret_access_key),
            username: key.username.clone(),
            account_id: key.account_id,
            region: self.region.clone(),
            output: self.output,
            created_at: now_millis(),
            expires_at: new.expires_in.map(|e| {
                now_millis() + i64::try_from(e.as_secs()).unwrap_or(i64::MAX / 1000) * 1000
            }),
            alerting: Default::default(),
        };
        if let Err(e) = self.store.insert_token(&record).await {
            let undo_ref = KeyRef {
                access_key_id: &key.access_key_id,
                username: &key.username,
                account_id: key.account_id,
            };
            if let Err(undo) = self.minter.revoke(&undo_ref).await {
                tracing::error!(error = %undo, key = %key.access_key_id, "could not revoke a key after a failed create");
            }
            return Err(e.into());
        }
        if let Some(index) = &self.index {
            index.insert(&record);
        }
        let credentials = AwsCredentials {
            access_key_id: key.access_key_id,
            secret_access_key: key.secret_access_key,
            region: record.region.clone(),
            output: record.output,
            username: key.username,
            account_id: key.account_id,
        };
        tracing::info!(token = %record.id, key = %record.access_key_id, minter = %record.minter, "token created");
        Ok(CreatedToken {
            token: record,
            manage_secret,
            credentials,
        })
    }

    /// The token, if `secret` is its manage secret. Unknown id and wrong secret look the same.
    pub async fn authorize(&self, id: &str, secret: &str) -> Result<TokenRecord, ServiceError> {
        let id = TokenId::parse(id).map_err(|_| ServiceError::NotFound)?;
        let secret = ManageSecret::parse(secret).map_err(|_| ServiceError::NotFound)?;
        let token = self
            .store
            .get_token(&id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if secret.verify(&token.manage_hash) {
            Ok(token)
        } else {
            Err(ServiceError::NotFound)
        }
    }

    /// A token by id, for the operator's CLI, which works on the database directly.
    pub async fn get(&self, id: &str) -> Result<TokenRecord, ServiceError> {
        let id = TokenId::parse(id).map_err(|_| ServiceError::NotFound)?;
        self.store
            .get_token(&id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    pub async fn list(&self) -> Result<Vec<TokenRecord>, ServiceError> {
        Ok(self.store.list_tokens().await?)
    }

    pub fn credentials(&self, token: &TokenRecord) -> Result<AwsCredentials, ServiceError> {
        Ok(AwsCredentials {
            access_key_id: token.access_key_id.clone(),
            secret_access_key: self.sealer.open(&token.id, &token.secret_sealed)?,
            region: token.region.clone(),
            output: token.output,
            username: token.username.clone(),
            account_id: token.account_id,
        })
    }

    /// Switches channels; switching on a channel the token does not have is refused.
    pub async fn set_channels(
        &self,
        token: &TokenRecord,
        switches: ChannelSwitches,
    ) -> Result<TokenRecord, ServiceError> {
        let mut errors = Vec::new();
        if switches.email == Some(true) && token.email.is_none() {
            errors.push(FieldError::new(
                "email_enabled",
                "this token has no email address",
            ));
        }
        if switches.webhook == Some(true) && token.webhook.is_none() {
            errors.push(FieldError::new(
                "webhook_enabled",
                "this token has no webhook URL",
            ));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        if !self.store.set_channels(&token.id, switches).await? {
            return Err(ServiceError::NotFound);
        }
        self.store
            .get_token(&token.id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Revokes the key first, then forgets the token: if revoking fails the token stays, so
    /// the operator can retry and no live key is left without a record.
    pub async fn delete(&self, token: &TokenRecord) -> Result<(), ServiceError> {
        let key = KeyRef {
            access_key_id: &token.access_key_id,
            username: &token.username,
            account_id: token.account_id,
        };
        self.minter.revoke(&key).await?;
        self.store.delete_token(&token.id).await?;
        if let Some(index) = &self.index {
            index.remove(token);
        }
        tracing::info!(token = %token.id, "token deleted");
        Ok(())
    }

    /// Replaces the token's ignore list after checking every entry.
    pub async fn set_ignore_sources(
        &self,
        token: &TokenRecord,
        sources: &[String],
    ) -> Result<TokenRecord, ServiceError> {
        const MAX: usize = 100;
        let mut errors = Vec::new();
        if sources.len() > MAX {
            errors.push(FieldError::new(
                "ignore_sources",
                format!("at most {MAX} entries"),
            ));
        }
        let mut clean = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            match super::alerts::parse_source(s) {
                Some(net) => clean.push(net.to_string()),
                None => errors.push(FieldError::new(
                    "ignore_sources",
                    format!("entry {} is not an IP address or CIDR range", i + 1),
                )),
            }
        }
        if !errors.is_empty() {
            return Err(ServiceError::Invalid(errors));
        }
        if !self.store.set_ignore_sources(&token.id, &clean).await? {
            return Err(ServiceError::NotFound);
        }
        self.store
            .get_token(&token.id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    pub async fn deliveries(
        &self,
        token: &TokenRecord,
        limit: u32,
    ) -> Result<Vec<canarykeys_store::DeliveryRecord>, ServiceError> {
        Ok(self.store.list_deliveries(&token.id, limit).await?)
    }

    /// Deletes every token whose expiry has come (key and user first, then the row). Returns
    /// the ones that went; one that cannot be revoked now is tried again on the next round.
    pub async fn delete_expired(&self, now: i64) -> Result<Vec<TokenRecord>, ServiceError> {
        let mut deleted = Vec::new();
        for token in self.store.expired_tokens(now).await? {
            match self.delete(&token).await {
                Ok(()) => deleted.push(token),
                Err(e) => {
                    tracing::warn!(token = %token.id, error = %e, "expired token not deleted yet")
                }
            }
        }
        Ok(deleted)
    }

    pub async fn hits_per_day(
        &self,
        token: &TokenRecord,
        since_day: i64,
    ) -> Result<Vec<(i64, u64)>, ServiceError> {
        Ok(self.store.hits_per_day(&token.id, since_day).await?)
    }

    pub async fn hit_count(&self, token: &TokenRecord) -> Result<u64, ServiceError> {
        Ok(self.store.count_hits(&token.id).await?)
    }

    pub async fn hits(
        &self,
        token: &TokenRecord,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<HitRecord>, u64), ServiceError> {
        let hits = self.store.list_hits(&token.id, limit, offset).await?;
        let total = self.store.count_hits(&token.id).await?;
        Ok((hits, total))
    }
}

#[cfg(test)]
mod tests;
