//! Who may use the console and the operator API: operators with argon2id passwords, sessions,
//! scoped API keys, and the audit log. HTTP-free, so the CLI bootstraps operators the same way.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use canarykeys_store::{ApiKeyRecord, AuditedWrite, OperatorRecord, Store, StoreError};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

mod credentials;
mod hasher;
mod model;

use credentials::{dummy_hash, hash_password, random_43, sha256_hex, verify_password_in};
use hasher::{with_blocks, Hasher};
use model::info;
pub use model::*;

use super::audit::{Actor, AuditAction};
use crate::clock::{SharedClock, SystemClock};
use crate::config::AccessConfig;

#[derive(Clone)]
pub struct AccessService {
    store: Arc<dyn Store>,
    session_ttl_ms: i64,
    login_limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    /// Password hashes running at once (argon2id takes 19 MiB each): a flood of sign-ins from
    /// any number of addresses cannot hold more memory than this many hashes.
    hasher: Hasher,
    open_create: bool,
    proxy_header: Option<String>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    clock: SharedClock,
    /// Under the free-disk watermark an API key's last-used time is not written.
    disk: super::disk::DiskWatch,
    /// `[streams]` that take audit entries get each one in its transaction.
    streams: super::streams::StreamRouting,
}

impl AccessService {
    pub fn new(store: Arc<dyn Store>, cfg: &AccessConfig) -> Self {
        let login_limiter = NonZeroU32::new(cfg.login_per_minute)
            .map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))));
        Self {
            store,
            session_ttl_ms: i64::try_from(cfg.session_ttl.as_millis()).unwrap_or(i64::MAX / 2),
            login_limiter,
            hasher: Hasher::new(cfg.hashing_slots()),
            open_create: cfg.open(),
            proxy_header: cfg.proxy_header.clone(),
            // `Config::check` has parsed these already.
            trusted_proxies: cfg.proxy_nets().unwrap_or_default().into(),
            clock: SystemClock::shared(),
            disk: super::disk::DiskWatch::off(),
            streams: Default::default(),
        }
    }

    /// Streams audit entries (`[streams.*] include = ["audit"]`).
    pub fn with_streams(mut self, streams: super::streams::StreamRouting) -> Self {
        self.streams = streams;
        self
    }

    /// Stamps sessions, keys and audit entries by `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Skips the last-used write of API keys while `disk` is under its watermark.
    pub fn with_disk(mut self, disk: super::disk::DiskWatch) -> Self {
        self.disk = disk;
        self
    }

    /// Whether anyone may create tokens (`[access] create = "open"`).
    pub fn create_is_open(&self) -> bool {
        self.open_create
    }

    pub fn proxy_header(&self) -> Option<&str> {
        self.proxy_header.as_deref()
    }

    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }

    pub fn session_ttl_secs(&self) -> u64 {
        u64::try_from(self.session_ttl_ms / 1000).unwrap_or(0)
    }

    /// Ends a session without an audit line: the browser is signing in again.
    pub async fn end_session_quietly(&self, session_id: &str) {
        let _ = self.store.delete_session(&sha256_hex(session_id)).await;
    }

    pub async fn create_operator(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Operator, AccessError> {
        self.create_operator_by(&Actor::System, name, password)
            .await
    }

    /// Creates an operator, recording `actor` in the audit log.
    #[tracing::instrument(skip_all, fields(actor = actor.as_str(), operator = name))]
    pub async fn create_operator_by(
        &self,
        actor: &Actor,
        name: &str,
        password: &str,
    ) -> Result<Operator, AccessError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(AccessError::Invalid(
                "a name is 1 to 100 printable characters".into(),
            ));
        }
        if password.chars().count() < 12 {
            return Err(AccessError::Invalid(
                "a password has at least 12 characters".into(),
            ));
        }
        let password = password.to_owned();
        let password_hash = self.hasher.run(move || hash_password(&password)).await?;
        let record = OperatorRecord {
            id: format!("op_{}", &random_43()[..16]),
            name: name.to_owned(),
            password_hash,
            failed_logins: 0,
            locked_until: None,
            created_at: self.clock.now_millis(),
        };
        let write = AuditedWrite::InsertOperator(&record);
        match self
            .audited(write, actor, AuditAction::OperatorCreate, &record.name, "")
            .await
        {
            Err(StoreError::Conflict) => return Err(AccessError::NameTaken),
            other => other?,
        };
        Ok(record.into())
    }

    /// Checks a password and opens a NEW session: the id is never one the browser brought, so a
    /// planted session id (fixation) is worthless. Returns the session id for the cookie.
    #[tracing::instrument(skip_all, fields(operator = name, %client))]
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<(Operator, String), AccessError> {
        let key = canarykeys_core::netaddr::rate_key(client);
        if let Some(l) = &self.login_limiter {
            if l.check_key(&key).is_err() {
                return Err(AccessError::RateLimited);
            }
        }
        let now = self.clock.now_millis();
        let op = self.store.operator_by_name(name.trim()).await?;
        let Some(op) = op else {
            let password = password.to_owned();
            self.hasher
                .try_run(move || with_blocks(|b| verify_password_in(&password, dummy_hash(), b)))
                .await
                .ok_or(AccessError::Busy)?;
            return Err(AccessError::BadCredentials);
        };
        let key = key.to_string();
        // A lockout stops guesses from strangers; the operator's own address still signs in
        // with the right password, so nobody can lock an operator out from elsewhere.
        if op.locked_until.is_some_and(|t| t > now)
            && !self.store.is_known_login_address(&op.id, &key).await?
        {
            return Err(AccessError::Locked);
        }
        let (pw, hash) = (password.to_owned(), op.password_hash.clone());
        // A hashing thread now or a 429 now: waiting in line would hold the request (and its
        // connection) for as long as a flood lasts.
        let good = self
            .hasher
            .try_run(move || with_blocks(|b| verify_password_in(&pw, &hash, b)))
            .await
            .ok_or(AccessError::Busy)?;
        if !good {
            let locked = self
                .store
                .record_login_failure(&op.id, now, &login_backoff)
                .await?;
            self.audit(
                &Actor::Operator(op.name.clone()),
                AuditAction::LoginFailed,
                &op.name,
                &format!("from {client}"),
            )
            .await;
            if locked.is_some() {
                self.audit(
                    &Actor::System,
                    AuditAction::OperatorLockout,
                    &op.name,
                    "backs off (30 s, doubling to 15 minutes), except from addresses it has signed in from",
                )
                .await;
                return Err(AccessError::Locked);
            }
            return Err(AccessError::BadCredentials);
        }
        self.store.clear_login_failures(&op.id).await?;
        self.store.remember_login_address(&op.id, &key, now).await?;
        // Housekeeping where it costs nothing extra: sign-ins are rare.
        let _ = self.store.delete_expired_sessions(now).await;
        let session = random_43();
        let id_hash = sha256_hex(&session);
        let write = AuditedWrite::InsertSession {
            id_hash: &id_hash,
            operator_id: &op.id,
            created_at: now,
            expires_at: now + self.session_ttl_ms,
        };
        self.audited(
            write,
            &Actor::Operator(op.name.clone()),
            AuditAction::Login,
            &op.name,
            &format!("from {client}"),
        )
        .await?;
        Ok((op.into(), session))
    }

    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, session_id: &str) {
        let hash = sha256_hex(session_id);
        let result = match self
            .store
            .session_operator(&hash, self.clock.now_millis())
            .await
        {
            // A live session: its end and the entry saying so are one write.
            Ok(Some(op)) => self
                .audited(
                    AuditedWrite::DeleteSession(&hash),
                    &Actor::Operator(op.name.clone()),
                    AuditAction::Logout,
                    &op.name,
                    "",
                )
                .await
                .map(drop),
            _ => self.store.delete_session(&hash).await,
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "could not delete a session");
        }
    }

    pub async fn operator_for_session(&self, session_id: &str) -> Option<Operator> {
        if session_id.len() != 43 {
            return None;
        }
        self.store
            .session_operator(&sha256_hex(session_id), self.clock.now_millis())
            .await
            .map_err(|e| tracing::error!(error = %e, "session lookup failed"))
            .ok()
            .flatten()
            .map(Operator::from)
    }

    /// The operator a trusted SSO proxy names. Operators seen first this way are created
    /// without a usable password: they can only come in through the proxy.
    pub async fn operator_for_proxy(&self, name: &str) -> Option<Operator> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return None;
        }
        if let Ok(Some(op)) = self.store.operator_by_name(name).await {
            return Some(op.into());
        }
        let record = OperatorRecord {
            id: format!("op_{}", &random_43()[..16]),
            name: name.to_owned(),
            password_hash: "!proxy".into(),
            failed_logins: 0,
            locked_until: None,
            created_at: self.clock.now_millis(),
        };
        let write = AuditedWrite::InsertOperator(&record);
        let created = self
            .audited(
                write,
                &Actor::Proxy,
                AuditAction::OperatorCreate,
                name,
                "first seen via proxy header",
            )
            .await;
        match created {
            Ok(_) => Some(record.into()),
            // Two first requests at once: the other one created it.
            Err(_) => self
                .store
                .operator_by_name(name)
                .await
                .ok()
                .flatten()
                .map(Into::into),
        }
    }

    pub async fn operator_by_name(&self, name: &str) -> Result<Operator, AccessError> {
        self.store
            .operator_by_name(name)
            .await?
            .map(Operator::from)
            .ok_or(AccessError::NotFound)
    }

    /// Makes a key with the default create budget and returns it once; only its SHA-256 is
    /// kept.
    pub async fn create_api_key(
        &self,
        owner: &Operator,
        name: &str,
        scopes: &[Scope],
    ) -> Result<(ApiKeyInfo, String), AccessError> {
        self.create_api_key_with_budget(owner, name, scopes, KeyBudget::DEFAULT)
            .await
    }

    /// Makes a key that may create `budget` tokens (per minute, live), and returns it once.
    #[tracing::instrument(skip_all, fields(operator = %owner.name, key_name = name))]
    pub async fn create_api_key_with_budget(
        &self,
        owner: &Operator,
        name: &str,
        scopes: &[Scope],
        budget: KeyBudget,
    ) -> Result<(ApiKeyInfo, String), AccessError> {
        if budget.per_minute == 0 || budget.live_tokens == 0 {
            return Err(AccessError::Invalid(
                "a key's create budget is at least 1 a minute and 1 live token".into(),
            ));
        }
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(AccessError::Invalid(
                "a key's name is 1 to 100 characters".into(),
            ));
        }
        if scopes.is_empty() {
            return Err(AccessError::Invalid(
                "give the key at least one scope".into(),
            ));
        }
        let key = format!("{API_KEY_PREFIX}{}", random_43());
        let record = ApiKeyRecord {
            id: format!("key_{}", &random_43()[..16]),
            operator_id: owner.id.clone(),
            name: name.to_owned(),
            key_hash: sha256_hex(&key),
            scopes: scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            created_at: self.clock.now_millis(),
            revoked_at: None,
            last_used_at: None,
            create_per_minute: i64::from(budget.per_minute),
            live_tokens_max: i64::from(budget.live_tokens),
        };
        self.audited(
            AuditedWrite::InsertApiKey(&record),
            &Actor::Operator(owner.name.clone()),
            AuditAction::ApiKeyCreate,
            &record.id,
            &format!(
                "{name} [{}] budget {}/min {} live",
                record.scopes, budget.per_minute, budget.live_tokens
            ),
        )
        .await?;
        Ok((info(record), key))
    }

    #[tracing::instrument(skip_all, fields(operator = %actor.name, key = %id))]
    pub async fn revoke_api_key(&self, actor: &Operator, id: &str) -> Result<(), AccessError> {
        let write = AuditedWrite::RevokeApiKey {
            id,
            now: self.clock.now_millis(),
        };
        let revoked = self
            .audited(
                write,
                &Actor::Operator(actor.name.clone()),
                AuditAction::ApiKeyRevoke,
                id,
                "",
            )
            .await?;
        if !revoked {
            return Err(AccessError::NotFound);
        }
        Ok(())
    }

    pub async fn list_api_keys(&self) -> Vec<ApiKeyInfo> {
        match self.store.list_api_keys().await {
            Ok(keys) => keys.into_iter().map(info).collect(),
            Err(e) => {
                tracing::error!(error = %e, "could not list API keys");
                Vec::new()
            }
        }
    }

    /// The owner and scopes of a presented key; `None` for an unknown or revoked key (the
    /// revocation is read on every request, so it takes effect at once).
    pub async fn api_key(&self, presented: &str) -> Option<(Operator, Vec<Scope>)> {
        self.api_key_actor(presented)
            .await
            .map(|(op, scopes, _)| (op, scopes))
    }

    /// `api_key`, also naming the key as the actor of what it does.
    pub async fn api_key_actor(
        &self,
        presented: &str,
    ) -> Option<(Operator, Vec<Scope>, super::audit::KeyActor)> {
        if !presented.starts_with(API_KEY_PREFIX) || presented.len() != API_KEY_PREFIX.len() + 43 {
            return None;
        }
        let key = self
            .store
            .api_key_by_hash(&sha256_hex(presented))
            .await
            .ok()
            .flatten()?;
        if key.revoked_at.is_some() {
            return None;
        }
        let op = self
            .store
            .operator_by_id(&key.operator_id)
            .await
            .ok()
            .flatten()?;
        // A convenience for operators, written on every call: the first thing to go when the
        // disk runs low.
        if !self.disk.is_low() {
            let _ = self
                .store
                .touch_api_key(&key.id, self.clock.now_millis())
                .await;
        }
        let actor = super::audit::KeyActor {
            key_id: key.id.clone(),
            key_name: key.name.clone(),
            operator_id: op.id.clone(),
            operator: op.name.clone(),
        };
        Some((
            op.into(),
            Scope::parse_list(&key.scopes).unwrap_or_default(),
            actor,
        ))
    }

    /// Records who did what. Failing to write it is logged, not fatal: the action happened.
    /// Writes an entry for an access action (sign-in, operators, keys); token actions are
    /// logged by `TokenService`, in the change's own transaction.
    pub async fn audit(&self, actor: &Actor, action: AuditAction, target: &str, details: &str) {
        let entry = super::audit::entry(self.clock.as_ref(), actor, action, target, details);
        let rows = self.streams.audit_rows(&entry, entry.at);
        // Without an audit stream, the one insert of before (sign-in floods write many).
        let written = if rows.is_empty() {
            self.store.insert_audit(&entry).await
        } else {
            self.store
                .write_audited_alerting(AuditedWrite::Nothing, &entry, &rows)
                .await
                .map(|_| ())
        };
        if let Err(e) = written {
            tracing::error!(error = %e, action = action.as_str(), "could not write the audit log");
        }
    }

    /// Applies `write` and its audit entry in one transaction; whether the write applied.
    async fn audited(
        &self,
        write: AuditedWrite<'_>,
        actor: &Actor,
        action: AuditAction,
        target: &str,
        details: &str,
    ) -> Result<bool, StoreError> {
        let entry = super::audit::entry(self.clock.as_ref(), actor, action, target, details);
        let rows = self.streams.audit_rows(&entry, entry.at);
        self.store
            .write_audited_alerting(write, &entry, &rows)
            .await
    }

    pub async fn list_audit(&self, limit: u32, offset: u32) -> Vec<AuditEntry> {
        match self.store.list_audit(limit, offset).await {
            Ok(rows) => rows
                .into_iter()
                .map(|r| AuditEntry {
                    id: r.id,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    target: r.target,
                    details: r.details,
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "could not read the audit log");
                Vec::new()
            }
        }
    }

    /// Forgets addresses whose login quota has refilled, so memory stays bounded.
    pub async fn prune_forever(self) {
        let Some(limiter) = self.login_limiter else {
            return;
        };
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}
