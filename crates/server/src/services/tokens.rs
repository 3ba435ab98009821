//! Token use cases: mint a key and store the token (or nothing at all), authorise a manage secret,
//! hand out credentials, switch channels, delete.

use std::sync::Arc;

use canarykeys_aws::{KeyRef, LocalSessions, MintRequest, Minter, SessionIssuer};
use canarykeys_core::ids;
use canarykeys_core::{
    AwsCredentials, ExpectedUse, FieldError, ManageSecret, NewToken, OutputFormat, Region,
    SessionDuration, TokenId,
};
use canarykeys_store::{
    AuditRecord, AuditedWrite, ChannelSwitches, CreateBudget, HitRecord, MintedRef, NewDelivery,
    Store, TokenOwner, TokenRecord,
};

use super::alerts::AlertService;
use super::audit::{Actor, AuditAction};
use super::tamper::{self, RequestOrigin, TamperChange};
use super::ServiceError;
use crate::clock::{SharedClock, SystemClock};
use crate::crypto::Sealer;

mod manage_secret;
mod reconcile;
mod session;

pub use reconcile::ReconcileReport;
pub use session::OpenedSession;

/// What a create hands back: the stored token, the one-time manage secret and the credentials
/// (for a session token: its first session, and its refresh secret, also shown once).
pub struct CreatedToken {
    pub token: TokenRecord,
    pub manage_secret: ManageSecret,
    pub credentials: AwsCredentials,
    pub refresh_secret: Option<ManageSecret>,
}

#[derive(Clone)]
pub struct TokenService {
    store: Arc<dyn Store>,
    minter: Arc<dyn Minter>,
    sealer: Sealer,
    region: Region,
    output: OutputFormat,
    allow_private_webhooks: bool,
    clock: SharedClock,
    /// Ingest's in-memory key index, kept exact on create and delete.
    index: Option<super::key_index::KeyIndex>,
    /// Plans tamper alerts' deliveries; without it (tools that send nothing) none are written.
    tamper: Option<AlertService>,
    /// Issues the sessions of `aws_session` tokens, and how long each lasts.
    sessions: Arc<dyn SessionIssuer>,
    session_duration: SessionDuration,
    /// `[streams]` that take audit entries get each one in its transaction.
    streams: super::streams::StreamRouting,
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
            clock: SystemClock::shared(),
            index: None,
            tamper: None,
            sessions: Arc::new(LocalSessions),
            session_duration: SessionDuration::DEFAULT,
            streams: Default::default(),
        }
    }

    /// Issues `aws_session` tokens' sessions with `issuer`, each lasting `duration`.
    pub fn with_sessions(
        mut self,
        issuer: Arc<dyn SessionIssuer>,
        duration: SessionDuration,
    ) -> Self {
        self.sessions = issuer;
        self.session_duration = duration;
        self
    }

    /// Streams audit entries (`[streams.*] include = ["audit"]`).
    pub fn with_streams(mut self, streams: super::streams::StreamRouting) -> Self {
        self.streams = streams;
        self
    }

    /// `rows` (a tamper alert's, or none), plus the audit streams' rows for `audit`.
    fn with_audit_rows(&self, audit: &AuditRecord, mut rows: Vec<NewDelivery>) -> Vec<NewDelivery> {
        rows.extend(self.streams.audit_rows(audit, audit.at));
        rows
    }

    /// Writes a tamper alert with every change the manage secret or an API key makes.
    pub fn with_tamper_alerts(mut self, alerts: AlertService) -> Self {
        self.tamper = Some(alerts);
        self
    }

    /// The outbox rows of the tamper alert about `change`, on the channels `token` has now
    /// (before the change); none for an actor that raises no tamper alert.
    async fn tamper_rows(
        &self,
        token: &TokenRecord,
        change: Option<TamperChange>,
        actor: &Actor,
        origin: &RequestOrigin,
    ) -> Result<Vec<NewDelivery>, canarykeys_store::StoreError> {
        let (Some(alerts), Some(change)) = (&self.tamper, change) else {
            return Ok(Vec::new());
        };
        if !tamper::alerts_on(actor) {
            return Ok(Vec::new());
        }
        let now = self.clock.now_millis();
        let view = tamper::view(alerts.public_url(), token, &change, actor, origin, now);
        tracing::warn!(token = %token.id, actor = %actor, action = view.event_name,
            "tamper alert: a decoy was changed with its manage secret or an API key");
        alerts.all_deliveries(token, &view, now).await
    }

    /// The live token `id` if operator `operator_id` created it (by session or any of its API
    /// keys); otherwise, like an unknown id, `NotFound`.
    #[tracing::instrument(skip_all, fields(token = id))]
    pub async fn get_owned(
        &self,
        id: &str,
        operator_id: &str,
    ) -> Result<TokenRecord, ServiceError> {
        let token = self.get(id).await?;
        match self.store.token_owner(&token.id).await? {
            Some(owner) if owner.operator_id == operator_id => Ok(token),
            _ => Err(ServiceError::NotFound),
        }
    }

    /// Who a new token belongs to, after counting it against an API key's budget.
    async fn owner_for(&self, actor: &Actor) -> Result<Option<TokenOwner>, ServiceError> {
        match actor {
            Actor::ApiKey(k) => {
                let now = self.clock.now_millis();
                match self.store.reserve_create(&k.key_id, now).await? {
                    CreateBudget::Granted | CreateBudget::UnknownKey => {}
                    CreateBudget::PerMinute { limit, retry_at } => {
                        let secs = u64::try_from((retry_at - now + 999) / 1000).unwrap_or(1);
                        return Err(ServiceError::CreateBudget {
                            why: format!(
                                "this API key may create {limit} tokens a minute; try again in \
                                 {secs} s"
                            ),
                            retry_after_secs: secs.max(1),
                        });
                    }
                    CreateBudget::LiveTokens { limit } => {
                        return Err(ServiceError::CreateBudget {
                            why: format!(
                                "this API key has {limit} live tokens, its limit; delete some \
                                 first"
                            ),
                            retry_after_secs: 60,
                        });
                    }
                }
                Ok(Some(TokenOwner {
                    operator_id: k.operator_id.clone(),
                    api_key_id: Some(k.key_id.clone()),
                }))
            }
            Actor::Operator(name) => {
                Ok(self
                    .store
                    .operator_by_name(name)
                    .await?
                    .map(|op| TokenOwner {
                        operator_id: op.id,
                        api_key_id: None,
                    }))
            }
            _ => Ok(None),
        }
    }

    /// Stamps and expires tokens by `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
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

    fn audit(
        &self,
        actor: &Actor,
        action: AuditAction,
        token: &TokenId,
        details: &str,
    ) -> AuditRecord {
        super::audit::entry(self.clock.as_ref(), actor, action, token.as_str(), details)
    }

    /// Records that `actor` did `action` to `target` (token ids) where nothing else changes here
    /// (a test alert, a bulk summary).
    #[tracing::instrument(skip_all, fields(actor = actor.as_str(), action = action.as_str(), target))]
    pub async fn record_action(
        &self,
        actor: &Actor,
        action: AuditAction,
        target: &str,
        details: &str,
    ) -> Result<(), ServiceError> {
        let audit = super::audit::entry(self.clock.as_ref(), actor, action, target, details);
        self.store
            .write_audited_alerting(
                AuditedWrite::Nothing,
                &audit,
                &self.with_audit_rows(&audit, Vec::new()),
            )
            .await?;
        Ok(())
    }

    /// How many tokens have email alerts switched on (startup warns when no SMTP server would
    /// carry them).
    pub async fn email_alerting_tokens(&self) -> Result<u64, ServiceError> {
        // Counted by the database: a start must not read a million tokens to say one line.
        Ok(self.store.count_email_alerting().await?)
    }

    /// The token whose key this is, if any.
    pub async fn find_by_key(
        &self,
        key: &canarykeys_core::AccessKeyId,
    ) -> Result<Option<TokenRecord>, ServiceError> {
        Ok(self.store.find_token_by_key(key).await?)
    }

    /// Mints a key and stores the token. If storing fails the key is revoked again, so a failed
    /// create leaves no key and no row behind.
    #[tracing::instrument(skip_all, fields(actor = %actor))]
    pub async fn create(&self, new: NewToken, actor: &Actor) -> Result<CreatedToken, ServiceError> {
        if let Some(hook) = &new.webhook {
            crate::notify::webhook::check_new_webhook(hook.url(), self.allow_private_webhooks)
                .await
                .map_err(|e| ServiceError::Invalid(vec![FieldError::new("webhook_url", e)]))?;
        }
        // Counted before the mint: a key over its budget makes nothing, not even an IAM call.
        let owner = self.owner_for(actor).await?;
        // Seal with the database's key, even if `canarykeys rekey` changed it since we started.
        crate::services::sealing::follow_database_key(&self.sealer, self.store.as_ref()).await?;
        let request = MintRequest {
            username: new.username.clone(),
            account: new.account_id,
        };
        // The intent comes first: a crash from here to the token's insert leaves a row the
        // reconciler finds, instead of a key nothing tracks.
        let intent = ids::random_id();
        self.store
            .begin_mint(&intent, self.minter.name(), self.clock.now_millis())
            .await?;
        let key = match self.minter.mint(&request).await {
            Ok(key) => key,
            Err(e) => {
                // A failed mint undoes its own steps: nothing is left to track.
                self.forget_mint(&intent).await;
                return Err(e.into());
            }
        };
        let minted = MintedRef {
            account_id: key.account_id,
            username: key.username.clone(),
            access_key_id: key.access_key_id.clone(),
        };
        if let Err(e) = self.store.note_minted(&intent, &minted).await {
            self.undo_mint(&minted).await;
            self.forget_mint(&intent).await;
            return Err(e.into());
        }
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
            created_at: self.clock.now_millis(),
            expires_at: new.expires_in.map(|e| {
                self.clock.now_millis()
                    + i64::try_from(e.as_secs()).unwrap_or(i64::MAX / 1000) * 1000
            }),
            alerting: Default::default(),
        };
        let audit = self.audit(
            actor,
            AuditAction::TokenCreate,
            &record.id,
            record.memo.as_str(),
        );
        let write = match &owner {
            Some(owner) => AuditedWrite::InsertOwnedToken(&record, owner),
            None => AuditedWrite::InsertToken(&record),
        };
        let rows = self.with_audit_rows(&audit, Vec::new());
        if let Err(e) = self
            .store
            .write_audited_alerting(write, &audit, &rows)
            .await
        {
            self.undo_mint(&minted).await;
            self.forget_mint(&intent).await;
            return Err(e.into());
        }
        // Stored: the token owns the key now (the reconciler checks that before any revoke).
        self.forget_mint(&intent).await;
        if let (ExpectedUse::UntilConfirm, Some(until)) = (new.expected_use, record.expires_at) {
            if let Err(e) = self.store.hold_alerts(&record.id, until).await {
                if let Err(undo) = self.delete_with(&record, actor, None).await {
                    tracing::warn!(token = %record.id, error = %undo, "held create: undo failed");
                }
                return Err(e.into());
            }
        }
        if let Some(index) = &self.index {
            index.insert(&record);
        }
        let (credentials, refresh_secret) = if record.kind.is_session() {
            // The long-term key stays sealed here; the holder gets a session of it. Without
            // one the token is of no use, so a failed issue undoes the create.
            let refresh = ManageSecret::generate();
            match self.issue_session(&record, Some(&refresh.hash())).await {
                Ok(c) => (c, Some(refresh)),
                Err(e) => {
                    if let Err(undo) = self.delete_with(&record, actor, None).await {
                        tracing::warn!(token = %record.id, error = %undo, "session create: undo failed");
                    }
                    return Err(e);
                }
            }
        } else {
            let credentials = AwsCredentials {
                access_key_id: key.access_key_id,
                secret_access_key: key.secret_access_key,
                region: record.region.clone(),
                output: record.output,
                username: key.username,
                account_id: key.account_id,
                session: None,
            };
            (credentials, None)
        };
        tracing::info!(token = %record.id, key = %record.access_key_id, minter = %record.minter, "token created");
        Ok(CreatedToken {
            token: record,
            manage_secret,
            credentials,
            refresh_secret,
        })
    }

    /// Creates every token or none: when one fails, those made so far are deleted again (keys
    /// revoked), so a retry does not double them. The log gets each create, and a summary.
    #[tracing::instrument(skip_all, fields(count = news.len(), actor = %actor))]
    pub async fn create_all(
        &self,
        news: Vec<NewToken>,
        actor: &Actor,
        summary: &str,
    ) -> Result<Vec<CreatedToken>, ServiceError> {
        let mut created: Vec<CreatedToken> = Vec::with_capacity(news.len());
        for new in news {
            match self.create(new, actor).await {
                Ok(c) => created.push(c),
                Err(e) => {
                    for c in &created {
                        // Undoing our own create is no tamper: no alert.
                        if let Err(undo) = self.delete_with(&c.token, actor, None).await {
                            tracing::warn!(token = %c.token.id, error = %undo, "bulk create: undo failed");
                        }
                    }
                    return Err(e);
                }
            }
        }
        let ids: Vec<String> = created.iter().map(|c| c.token.id.to_string()).collect();
        self.record_action(
            actor,
            AuditAction::TokensBulkCreate,
            &ids.join(" "),
            summary,
        )
        .await?;
        Ok(created)
    }

    /// The token, if `secret` is its manage secret. Unknown id and wrong secret look the same.
    #[tracing::instrument(skip_all, fields(token = id))]
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
    #[tracing::instrument(skip_all, fields(token = id))]
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

    /// The next page of every token, newest first, after `after` (the last token of the page
    /// before; `None` for the first). `token list` prints page by page.
    pub async fn page_after(
        &self,
        after: Option<&TokenRecord>,
        limit: u32,
    ) -> Result<Vec<TokenRecord>, ServiceError> {
        let after = after.map(|t| (t.created_at, &t.id));
        Ok(self.store.tokens_after(after, limit, 0).await?)
    }

    /// The token's own key: what an `aws_keys` token hands out, and what the sensor checks a
    /// signature of that key with. (`credentials` is what a holder is shown.)
    pub fn key_credentials(&self, token: &TokenRecord) -> Result<AwsCredentials, ServiceError> {
        Ok(AwsCredentials {
            access_key_id: token.access_key_id.clone(),
            secret_access_key: self.sealer.open(&token.id, &token.secret_sealed)?,
            region: token.region.clone(),
            output: token.output,
            username: token.username.clone(),
            account_id: token.account_id,
            session: None,
        })
    }

    /// Switches channels; switching on a channel the token does not have is refused.
    pub async fn set_channels(
        &self,
        token: &TokenRecord,
        switches: ChannelSwitches,
        actor: &Actor,
    ) -> Result<TokenRecord, ServiceError> {
        self.set_channels_from(token, switches, actor, &RequestOrigin::unknown())
            .await
    }

    /// `set_channels` by a caller from `origin`. Switching a channel off with the manage secret
    /// or an API key sends a tamper alert on the channels the token had before (`token`).
    #[tracing::instrument(skip_all, fields(token = %token.id, actor = %actor))]
    pub async fn set_channels_from(
        &self,
        token: &TokenRecord,
        switches: ChannelSwitches,
        actor: &Actor,
        origin: &RequestOrigin,
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
        // Nothing asked, nothing changed: no entry either.
        if switches.email.is_none() && switches.webhook.is_none() {
            return self.get(token.id.as_str()).await;
        }
        let details = format!("email={:?} webhook={:?}", switches.email, switches.webhook);
        let audit = self.audit(actor, AuditAction::TokenChannels, &token.id, &details);
        let write = AuditedWrite::SetChannels(&token.id, switches);
        let change = TamperChange::channels_off(token, switches);
        let rows = self.tamper_rows(token, change, actor, origin).await?;
        let rows = self.with_audit_rows(&audit, rows);
        if !self
            .store
            .write_audited_alerting(write, &audit, &rows)
            .await?
        {
            return Err(ServiceError::NotFound);
        }
        self.store
            .get_token(&token.id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Revokes the key first, then forgets the token: if revoking fails the token stays, so
    /// the operator can retry and no live key is left without a record.
    pub async fn delete(&self, token: &TokenRecord, actor: &Actor) -> Result<(), ServiceError> {
        self.delete_with(token, actor, Some(&RequestOrigin::unknown()))
            .await
    }

    /// `delete` by a caller from `origin`: with the manage secret or an API key, a tamper alert
    /// goes to the token's channels in the delete's transaction.
    pub async fn delete_from(
        &self,
        token: &TokenRecord,
        actor: &Actor,
        origin: &RequestOrigin,
    ) -> Result<(), ServiceError> {
        self.delete_with(token, actor, Some(origin)).await
    }

    /// Deletes; `origin` `None` raises no tamper alert (undoing a failed bulk create).
    #[tracing::instrument(skip_all, fields(token = %token.id, actor = %actor))]
    async fn delete_with(
        &self,
        token: &TokenRecord,
        actor: &Actor,
        origin: Option<&RequestOrigin>,
    ) -> Result<(), ServiceError> {
        let key = KeyRef {
            access_key_id: &token.access_key_id,
            username: &token.username,
            account_id: token.account_id,
        };
        self.minter.revoke(&key).await?;
        let audit = self.audit(
            actor,
            AuditAction::TokenDelete,
            &token.id,
            token.memo.as_str(),
        );
        let rows = match origin {
            Some(origin) => {
                self.tamper_rows(token, Some(TamperChange::Delete), actor, origin)
                    .await?
            }
            None => Vec::new(),
        };
        let rows = self.with_audit_rows(&audit, rows);
        self.store
            .write_audited_alerting(AuditedWrite::DeleteToken(&token.id), &audit, &rows)
            .await?;
        // The entry's time is the tombstone's time of death; the key stays matched, as a
        // tombstone's, for records that arrive late.
        if let Some(index) = &self.index {
            index.retire(token, audit.at);
        }
        tracing::info!(token = %token.id, "token deleted");
        Ok(())
    }

    /// Replaces the token's ignore list after checking every entry.
    pub async fn set_ignore_sources(
        &self,
        token: &TokenRecord,
        sources: &[String],
        actor: &Actor,
    ) -> Result<TokenRecord, ServiceError> {
        self.set_ignore_sources_from(token, sources, actor, &RequestOrigin::unknown())
            .await
    }

    /// `set_ignore_sources` by a caller from `origin`. Any change of the list made with the
    /// manage secret or an API key sends a tamper alert: an intruder needs to ignore only his
    /// own address.
    #[tracing::instrument(skip_all, fields(token = %token.id, actor = %actor))]
    pub async fn set_ignore_sources_from(
        &self,
        token: &TokenRecord,
        sources: &[String],
        actor: &Actor,
        origin: &RequestOrigin,
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
        let details = sources.join(" ");
        let audit = self.audit(actor, AuditAction::TokenIgnoreSources, &token.id, &details);
        let write = AuditedWrite::SetIgnoreSources(&token.id, &clean);
        let change = (clean != token.alerting.ignore_sources).then(|| TamperChange::IgnoreList {
            after: clean.clone(),
        });
        let rows = self.tamper_rows(token, change, actor, origin).await?;
        let rows = self.with_audit_rows(&audit, rows);
        if !self
            .store
            .write_audited_alerting(write, &audit, &rows)
            .await?
        {
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
    #[tracing::instrument(skip_all, fields(now))]
    pub async fn delete_expired(&self, now: i64) -> Result<Vec<TokenRecord>, ServiceError> {
        let mut deleted = Vec::new();
        for token in self.store.expired_tokens(now).await? {
            match self.delete(&token, &Actor::Expiry).await {
                Ok(()) => deleted.push(token),
                Err(e) => {
                    tracing::warn!(token = %token.id, error = %e, "expired token not deleted yet")
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes tombstones whose late-event window has passed and that nothing refers to any
    /// more, then re-reads the key index (its tombstones age out with the window). Returns how
    /// many went.
    #[tracing::instrument(skip_all, fields(died_before))]
    pub async fn prune_tombstones(&self, died_before: i64) -> Result<u64, ServiceError> {
        let pruned = self.store.prune_tombstones(died_before).await?;
        if let Some(index) = &self.index {
            index.resync(self.store.as_ref()).await?;
        }
        Ok(pruned)
    }

    /// Deletes hits received before `before` (history retention). Returns how many.
    #[tracing::instrument(skip_all, fields(before))]
    pub async fn delete_hits_before(&self, before: i64) -> Result<u64, ServiceError> {
        Ok(self.store.delete_hits_before(before).await?)
    }

    /// Retention: delivered and failed deliveries written before `before`.
    pub async fn delete_deliveries_before(&self, before: i64) -> Result<u64, ServiceError> {
        Ok(self.store.delete_deliveries_before(before).await?)
    }

    /// Retention: audit entries written before `before`.
    pub async fn delete_audit_before(&self, before: i64) -> Result<u64, ServiceError> {
        Ok(self.store.delete_audit_before(before).await?)
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

    #[tracing::instrument(skip_all, fields(token = %token.id, limit, offset))]
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
