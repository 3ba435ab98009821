//! Session decoys (`aws_session` tokens): the token's key is the decoy user's long-term key,
//! kept sealed and never handed out; what is handed out is a session issued for it, fresh on
//! create and on every refresh. A refresh takes the token's refresh secret, which can do
//! nothing else: at worst its holder mints more decoy sessions, which alert too.

use std::time::{Duration, SystemTime};

use canarykeys_aws::{IssuedSession, SessionCall};
use canarykeys_core::{
    AccessKeyId, AwsCredentials, ManageSecret, ManageSecretHash, SecretAccessKey, SessionPart,
    SessionToken, TokenId,
};
use canarykeys_store::{SessionRecord, TokenRecord};

use super::{ServiceError, TokenService};
use crate::crypto::CryptoError;

/// A session's key, as the sensor checks a request signed with it.
pub struct OpenedSession {
    pub token: TokenRecord,
    pub session: SessionRecord,
    /// The secret and session token; `None` when they do not open with this server's key.
    pub secret: Option<(SecretAccessKey, SessionPart)>,
}

/// What a session token is sealed under: its token and its key, so a sealed token copied to
/// another session's row does not open.
/// Spelled again as SQL in `canarykeys_store::SEALED_COLUMNS`, for `rekey`.
fn session_aad(token: &TokenId, key: &AccessKeyId) -> String {
    format!("session-token:{token}:{key}")
}

impl TokenService {
    /// Issues a session for `token` (an `aws_session` token) and stores it; with `refresh`, the
    /// first one, the refresh secret's hash goes in the same transaction.
    pub(super) async fn issue_session(
        &self,
        token: &TokenRecord,
        refresh: Option<&ManageSecretHash>,
    ) -> Result<AwsCredentials, ServiceError> {
        // Seal the new session with the database's key, even if `canarykeys rekey` moved it
        // since this process started (a refresh comes here without going through create).
        crate::services::sealing::follow_database_key(&self.sealer, self.store.as_ref()).await?;
        let key_secret = self.sealer.open(&token.id, &token.secret_sealed)?;
        let now = self.clock.now_millis();
        let issued: IssuedSession = self
            .sessions
            .issue(SessionCall {
                access_key_id: &token.access_key_id,
                secret_access_key: &key_secret,
                account_id: token.account_id,
                duration: self.session_duration,
                now: SystemTime::UNIX_EPOCH
                    + Duration::from_millis(u64::try_from(now).unwrap_or(0)),
            })
            .await?;
        let record = SessionRecord {
            access_key_id: issued.access_key_id.clone(),
            token_id: token.id.clone(),
            account_id: token.account_id,
            secret_sealed: self.sealer.seal(&token.id, &issued.secret_access_key),
            session_sealed: self.sealer.seal_text(
                &session_aad(&token.id, &issued.access_key_id),
                issued.session.token.expose(),
            ),
            issued_at: now,
            expires_at: issued.session.expires_at,
            issue_event_id: None,
        };
        self.store.insert_token_session(&record, refresh).await?;
        tracing::info!(token = %token.id, key = %record.access_key_id, expires_at = record.expires_at, "session issued");
        Ok(AwsCredentials {
            access_key_id: issued.access_key_id,
            secret_access_key: issued.secret_access_key,
            region: token.region.clone(),
            output: token.output,
            username: token.username.clone(),
            account_id: token.account_id,
            session: Some(issued.session),
        })
    }

    /// Fresh session credentials for the `aws_session` token `id`, if `secret` is its refresh
    /// secret. An unknown id, a token of another kind and a wrong secret look the same.
    #[tracing::instrument(skip_all, fields(token = id))]
    pub async fn refresh_session(
        &self,
        id: &str,
        secret: &str,
    ) -> Result<(TokenRecord, AwsCredentials), ServiceError> {
        let id = TokenId::parse(id).map_err(|_| ServiceError::NotFound)?;
        let secret = ManageSecret::parse(secret).map_err(|_| ServiceError::NotFound)?;
        let stored = self.store.refresh_hash(&id).await?;
        let token = match (stored, self.store.get_token(&id).await?) {
            (Some(hash), Some(token)) if secret.verify(&hash) && token.kind.is_session() => token,
            _ => return Err(ServiceError::NotFound),
        };
        let credentials = self.issue_session(&token, None).await?;
        Ok((token, credentials))
    }

    /// What the token's holder is shown: its newest session for a session token (the long-term
    /// key stays sealed), its key otherwise.
    pub async fn credentials(&self, token: &TokenRecord) -> Result<AwsCredentials, ServiceError> {
        if !token.kind.is_session() {
            return self.key_credentials(token);
        }
        let session = self
            .store
            .latest_token_session(&token.id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(AwsCredentials {
            access_key_id: session.access_key_id.clone(),
            secret_access_key: self.sealer.open(&token.id, &session.secret_sealed)?,
            region: token.region.clone(),
            output: token.output,
            username: token.username.clone(),
            account_id: token.account_id,
            session: Some(self.session_part(&token.id, &session)?),
        })
    }

    /// The session token and expiry of a stored session.
    fn session_part(
        &self,
        token: &TokenId,
        session: &SessionRecord,
    ) -> Result<SessionPart, ServiceError> {
        let text = self.sealer.open_text(
            &session_aad(token, &session.access_key_id),
            &session.session_sealed,
        )?;
        Ok(SessionPart {
            token: SessionToken::parse(&text).map_err(|_| CryptoError::Open)?,
            expires_at: session.expires_at,
        })
    }

    /// The session whose key is `key`, with its token (live) and opened secret.
    pub async fn open_session(
        &self,
        key: &AccessKeyId,
    ) -> Result<Option<OpenedSession>, ServiceError> {
        let Some(session) = self.store.find_token_session(key).await? else {
            return Ok(None);
        };
        let Some(token) = self.store.get_token(&session.token_id).await? else {
            return Ok(None);
        };
        let opened = self
            .sealer
            .open(&token.id, &session.secret_sealed)
            .and_then(|s| {
                let part = self
                    .session_part(&token.id, &session)
                    .map_err(|_| CryptoError::Open)?;
                Ok((s, part))
            });
        let secret = match opened {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "a session's secret does not open with the sealing key");
                None
            }
        };
        Ok(Some(OpenedSession {
            token,
            session,
            secret,
        }))
    }

    /// Closes the token's expected-use window: the uses held so far go out as one digest on the
    /// next outbox round, and later ones alert as any token's. `false`: no window was open
    /// (none asked for, already confirmed, or past the expiry, which sent the digest).
    #[tracing::instrument(skip_all, fields(token = %token.id, actor = %actor))]
    pub async fn confirm(
        &self,
        token: &TokenRecord,
        actor: &crate::services::Actor,
    ) -> Result<bool, ServiceError> {
        let now = self.clock.now_millis();
        let closed = self.store.confirm_hold(&token.id, now).await?;
        if closed {
            self.record_action(
                actor,
                crate::services::audit::AuditAction::TokenConfirm,
                token.id.as_str(),
                "expected-use window closed",
            )
            .await?;
        }
        Ok(closed)
    }

    /// Every session issued for `token`, oldest first.
    pub async fn sessions(&self, token: &TokenRecord) -> Result<Vec<SessionRecord>, ServiceError> {
        Ok(self.store.list_token_sessions(&token.id).await?)
    }
}
