//! Builds the minter the configuration names: `local`, `iam` (the server calls IAM in the decoy
//! accounts) or `gateway` (the minting service does, and the server holds no IAM credentials).

use std::sync::Arc;
use std::time::Duration;

use canarykeys_aws::{
    DecoyAccount, GatewayMinter, IamMinter, LocalMinter, LocalSessions, Minter, SessionIssuer,
    StsSessions,
};
use canarykeys_core::names::NameGenerator;
use canarykeys_core::AccountId;
use canarykeys_store::{SettingsStore, SqlStore};

use crate::config::{Config, MinterKind};
use crate::StartError;

fn setting(key: &'static str) -> impl Fn(canarykeys_core::Invalid) -> StartError {
    move |e| StartError::Setting {
        key,
        problem: e.to_string(),
    }
}

/// The user-name generator: the operator's file, or the built-in set.
fn names(config: &Config) -> Result<NameGenerator, StartError> {
    match &config.minter.names_file {
        None => Ok(NameGenerator::default_set()),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| StartError::Setting {
                key: "minter.names_file",
                problem: format!("cannot read {}: {e}", path.display()),
            })?;
            NameGenerator::from_toml(&text).map_err(setting("minter.names_file"))
        }
    }
}

/// The `[[minter.accounts]]` entries as the `iam` minter (and the safety net, which asks each
/// account with the same credentials) use them.
pub fn decoy_accounts(config: &Config) -> Result<Vec<DecoyAccount>, StartError> {
    let mut accounts = Vec::new();
    for a in &config.minter.accounts {
        let id = a.account_id.as_deref().unwrap_or_default();
        let mut account = DecoyAccount::new(
            AccountId::parse(id).map_err(setting("minter.accounts.account_id"))?,
            a.region.clone(),
        );
        account.role_arn = a.role_arn.clone();
        account.weight = a.weight;
        account.path = a.path.clone();
        account.permissions_boundary = a.permissions_boundary.clone();
        account.endpoint_url = a.endpoint_url.clone();
        account.user_headroom = a.user_headroom;
        account.access_key_id = a.access_key_id.clone();
        account.secret_access_key = a.secret_access_key.as_ref().map(|s| s.expose().to_owned());
        accounts.push(account);
    }
    Ok(accounts)
}

pub async fn build(config: &Config, store: &SqlStore) -> Result<Arc<dyn Minter>, StartError> {
    let m = &config.minter;
    match m.kind {
        MinterKind::Iam => {
            let accounts = decoy_accounts(config)?;
            let minter = IamMinter::new(accounts, names(config)?)
                .await
                .map_err(|e| StartError::Setting {
                    key: "minter.accounts",
                    problem: e.to_string(),
                })?;
            Ok(Arc::new(minter))
        }
        MinterKind::Gateway => {
            let url = m.gateway.url.as_deref().unwrap_or_default();
            let url = url::Url::parse(url).map_err(|e| StartError::Setting {
                key: "minter.gateway.url",
                problem: e.to_string(),
            })?;
            let secret = m
                .gateway
                .secret
                .as_ref()
                .map(|s| s.expose().to_owned())
                .unwrap_or_default();
            let account = AccountId::parse(m.account_id.as_deref().unwrap_or_default())
                .map_err(setting("minter.account_id"))?;
            let minter = GatewayMinter::new(url, secret, account, Duration::from_secs(10))
                .map_err(setting("minter.gateway"))?;
            Ok(Arc::new(minter))
        }
        MinterKind::Local => {
            let account = match &m.account_id {
                Some(id) => AccountId::parse(id).map_err(setting("minter.account_id"))?,
                // Chosen once per installation, so every local key encodes the same account
                // and no two installations share one.
                None => {
                    let stored = store
                        .setting_or_insert(
                            "local_minter_account_id",
                            &AccountId::random().to_string(),
                        )
                        .await?;
                    AccountId::parse(&stored).map_err(setting("minter.account_id"))?
                }
            };
            Ok(Arc::new(LocalMinter::new(account)))
        }
    }
}

/// What issues `aws_session` tokens' sessions: STS, with the decoy user's key, where keys are
/// real (an `[[minter.accounts]]` `endpoint_url` serves that account's STS calls too); the
/// server itself with the `local` minter.
pub fn session_issuer(config: &Config) -> Result<Arc<dyn SessionIssuer>, StartError> {
    let m = &config.minter;
    if m.kind == MinterKind::Local {
        return Ok(Arc::new(LocalSessions));
    }
    let mut sts = StsSessions::new(m.region.clone());
    for a in &m.accounts {
        if let (Some(id), Some(url)) = (&a.account_id, &a.endpoint_url) {
            let id = AccountId::parse(id).map_err(setting("minter.accounts.account_id"))?;
            sts = sts.with_endpoint(id, url.clone());
        }
    }
    Ok(Arc::new(sts))
}

/// The decoy accounts this configuration mints in: a key of one of them that no indexed token
/// holds is worth a database look (another process may have made it); any other is not ours.
pub async fn decoy_account_ids(
    config: &Config,
    store: &SqlStore,
) -> Result<Vec<AccountId>, StartError> {
    let m = &config.minter;
    let mut ids: Vec<String> = m.account_id.iter().cloned().collect();
    ids.extend(m.accounts.iter().filter_map(|a| a.account_id.clone()));
    ids.extend(store.get_setting("local_minter_account_id").await?);
    Ok(ids
        .iter()
        .filter_map(|id| AccountId::parse(id).ok())
        .collect())
}

/// The accounts the heartbeat holds an identity in: those this minter mints in.
pub async fn heartbeat_accounts(
    config: &Config,
    store: &SqlStore,
) -> Result<Vec<AccountId>, StartError> {
    let m = &config.minter;
    let ids: Vec<String> = match m.kind {
        MinterKind::Iam => m
            .accounts
            .iter()
            .filter_map(|a| a.account_id.clone())
            .collect(),
        MinterKind::Gateway => m.account_id.iter().cloned().collect(),
        MinterKind::Local => match &m.account_id {
            Some(id) => vec![id.clone()],
            None => store
                .get_setting("local_minter_account_id")
                .await?
                .into_iter()
                .collect(),
        },
    };
    Ok(ids
        .iter()
        .filter_map(|id| AccountId::parse(id).ok())
        .collect())
}
