//! `canarykeys doctor`: checks the configuration for what would break detection or give the
//! decoys away, and says what to fix. Exits non-zero when it finds anything.

use canarykeys_core::{names, AccountId};

use canarykeys_core::detection::PathState;

use crate::config::Config;
use crate::services::heartbeat::PathStatus;

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

/// Prints the proof-of-life table (`GET /api/v1/detection`'s paths) and returns a finding per
/// path that is not delivering. Reads the database only when it exists: doctor creates nothing.
async fn detection(config: &Config) -> Vec<String> {
    let url = config.database_url();
    if let Some(file) = url.strip_prefix("sqlite:") {
        let file = file.split('?').next().unwrap_or_default();
        if !std::path::Path::new(file).exists() {
            println!("detection paths: no database yet, so no heartbeat receipts");
            return Vec::new();
        }
    }
    let services = match crate::Services::open(config).await {
        Ok(s) => s,
        Err(e) => return vec![format!("cannot read the detection paths: {e}")],
    };
    let paths = services.heartbeat.paths().await;
    let backup = match services.last_backup().await {
        Ok(last) => backup_finding(
            last,
            services.clock.now_millis(),
            config.backup.warn_after,
            config.database_url().starts_with("postgres"),
        ),
        Err(e) => Some(format!("cannot read when the last backup ran: {e}")),
    };
    services.close().await;
    let mut found: Vec<String> = backup.into_iter().collect();
    let paths = match paths {
        Ok(p) => p,
        Err(e) => {
            found.push(format!("cannot read the detection paths: {e}"));
            return found;
        }
    };
    if paths.is_empty() {
        println!("detection paths: no heartbeat receipts yet (see [heartbeat] in the book: docs/book/src/detection.md)");
        return found;
    }
    print!("{}", table(&paths));
    found.extend(
        paths
            .iter()
            .filter(|p| matches!(p.state, PathState::Silent | PathState::Never))
            .map(|p| {
                format!(
                "detection path {} in {} (account {}) is {}: its heartbeat events do not arrive",
                p.path, p.region, p.account_id, p.state
            )
            }),
    );
    found
}

/// A warning when no `canarykeys backup` ran within `warn_after` (on PostgreSQL it sees only
/// `--key-only` backups: pg_dump's are the operator's to watch).
fn backup_finding(
    last: Option<i64>,
    now: i64,
    warn_after: std::time::Duration,
    postgres: bool,
) -> Option<String> {
    let what = if postgres {
        "canarykeys backup --key-only (and pg_dump for the data)"
    } else {
        "canarykeys backup"
    };
    let limit = i64::try_from(warn_after.as_millis()).unwrap_or(i64::MAX);
    match last {
        None => Some(format!(
            "no backup has been taken: run {what}; losing the sealing key loses every credential"
        )),
        Some(at) if now.saturating_sub(at) > limit => Some(format!(
            "the last backup is {} old (more than [backup] warn_after, {}): run {what}",
            humantime_serde::re::humantime::format_duration(std::time::Duration::from_secs(
                u64::try_from(now.saturating_sub(at) / 1000).unwrap_or(0)
            )),
            humantime_serde::re::humantime::format_duration(warn_after)
        )),
        Some(_) => None,
    }
}

/// The paths as aligned text columns.
fn table(paths: &[PathStatus]) -> String {
    let ms =
        |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.1}s", v as f64 / 1000.0));
    let mut rows = vec![[
        "ACCOUNT".to_owned(),
        "REGION".into(),
        "PATH".into(),
        "STATE".into(),
        "LAST RECEIPT".into(),
        "LATENCY".into(),
        "P50".into(),
        "P95".into(),
    ]];
    for p in paths {
        rows.push([
            p.account_id.clone(),
            p.region.clone(),
            p.path.clone(),
            p.state.to_string(),
            p.last_seen_at.clone().unwrap_or_else(|| "never".into()),
            ms(p.latency_ms),
            ms(p.latency_p50_ms),
            ms(p.latency_p95_ms),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub async fn run(config: &Config, send_test: bool) -> anyhow::Result<()> {
    let mut found = findings(config).await;
    found.extend(detection(config).await);
    let (lines, streams) = super::doctor_streams::check(config, send_test).await;
    for line in &lines {
        println!("{line}");
    }
    found.extend(streams);
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
    fn an_old_or_missing_backup_is_a_finding() {
        let week = std::time::Duration::from_secs(7 * 86_400);
        let day = 86_400_000;
        assert!(backup_finding(None, 10 * day, week, false)
            .unwrap()
            .contains("no backup"));
        assert_eq!(backup_finding(Some(4 * day), 10 * day, week, false), None);
        let old = backup_finding(Some(day), 10 * day, week, true).unwrap();
        assert!(old.contains("9days") && old.contains("--key-only"), "{old}");
    }

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
