//! `canarykeys doctor`: checks the configuration for what would break detection or give the
//! decoys away, and says what to fix. Exits non-zero when it finds anything.

use canarykeys_core::{names, AccountId};

use crate::config::Config;

/// Account ids that secret scanners ship as known canary hosts, with their sources.
const KNOWN_CANARY_ACCOUNTS: &str = include_str!("../../data/known-canary-accounts.txt");

/// The listed account ids.
pub fn known_canary_accounts() -> Vec<AccountId> {
    KNOWN_CANARY_ACCOUNTS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| AccountId::parse(l).ok())
        .collect()
}

/// The problems found, each a line for a person. Empty: all good.
pub async fn findings(config: &Config) -> Vec<String> {
    let mut found = Vec::new();
    let known = known_canary_accounts();
    let mut accounts: Vec<(String, &str)> = Vec::new();
    if let Some(a) = &config.minter.account_id {
        accounts.push((a.clone(), "minter.account_id"));
    }
    for a in &config.minter.accounts {
        if let Some(id) = &a.account_id {
            accounts.push((id.clone(), "minter.accounts"));
        }
        if let Err(e) = names::check_no_tells(&a.path) {
            found.push(format!("minter.accounts path {:?}: {e}", a.path));
        }
    }
    for (id, key) in &accounts {
        match AccountId::parse(id) {
            Ok(parsed) if known.contains(&parsed) => found.push(format!(
                "{key}: account {id} is on the public list of known canary accounts that secret \
                 scanners ship; keys from it are flagged before anyone uses them. Mint in an account of your own."
            )),
            Ok(_) => {}
            Err(e) => found.push(format!("{key}: {e}")),
        }
    }
    if config.ingest.secret.is_none() {
        found.push("ingest.secret is not set: the ingest endpoint is off, so the relay Lambda and EventBridge cannot report uses.".into());
    }
    if config.smtp.host.is_none() {
        found.push(
            "smtp.host is not set: tokens with an email address cannot be alerted by email.".into(),
        );
    }
    if config.minter.kind == crate::config::MinterKind::Local {
        found.push("minter.kind is \"local\": the keys are not valid at AWS, so only the sensor sees their use.".into());
    }
    match &config.public_url {
        Some(url) if url.starts_with("https://") => {}
        Some(url) => found.push(format!(
            "public_url {url} is not https: manage links and cookies travel in the clear."
        )),
        None => {
            found.push("public_url is not set: links in alerts point at the listen address.".into())
        }
    }
    found
}

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let found = findings(config).await;
    if found.is_empty() {
        println!("no problems found");
        return Ok(());
    }
    for f in &found {
        println!("warning: {f}");
    }
    anyhow::bail!("{} problem(s) found", found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_parses() {
        let known = known_canary_accounts();
        assert!(known.len() >= 26);
        assert!(known.contains(&AccountId::parse("052310077262").unwrap()));
    }

    #[tokio::test]
    async fn listed_accounts_are_reported() {
        let mut config = Config::default();
        config.minter.account_id = Some("052310077262".into());
        let found = findings(&config).await;
        assert!(
            found.iter().any(|f| f.contains("known canary accounts")),
            "{found:?}"
        );
        config.minter.account_id = Some("123456789012".into());
        assert!(!findings(&config)
            .await
            .iter()
            .any(|f| f.contains("known canary")));
    }
}
