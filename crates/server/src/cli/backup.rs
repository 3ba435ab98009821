//! `canarykeys backup` and `canarykeys restore`: an encrypted copy of the database and the
//! sealing key, taken while the server runs, and put back into an empty data directory.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use age::secrecy::SecretString;
use anyhow::Context;
use clap::Args;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::services::backup::{self, archive, BackupRequest};

/// Where the passphrase comes from: `CANARYKEYS_BACKUP_PASSPHRASE`, `--passphrase-file`, else
/// standard input (one line).
#[derive(Args, Debug)]
pub struct PassphraseArgs {
    /// Read the passphrase from this file (its first line).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    fn read(&self) -> anyhow::Result<SecretString> {
        if let Ok(text) = std::env::var("CANARYKEYS_BACKUP_PASSPHRASE") {
            return archive::passphrase(&text);
        }
        if let Some(path) = &self.passphrase_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            return archive::passphrase(text.lines().next().unwrap_or(""));
        }
        if std::io::stdin().is_terminal() {
            eprint!("backup passphrase: ");
        }
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the passphrase from standard input")?;
        archive::passphrase(&line)
    }
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The backup file to write (must not exist).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Leave the sealing key out: the backup alone then restores no credential.
    #[arg(long)]
    pub without_key: bool,
    /// Only the sealing key (PostgreSQL: pg_dump backs up the data).
    #[arg(long, conflicts_with = "without_key")]
    pub key_only: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file to read.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

pub async fn backup(args: BackupArgs, config: &Config) -> anyhow::Result<()> {
    let req = BackupRequest {
        to: args.to,
        passphrase: args.passphrase.read()?,
        without_key: args.without_key,
        key_only: args.key_only,
    };
    let report = backup::backup(config, req, SystemClock::shared()).await?;
    println!(
        "backup written: {} ({} bytes; database: {}, schema {}, key: {})",
        report.path.display(),
        report.bytes,
        report.manifest.database,
        report.manifest.schema,
        if report.manifest.key_included {
            "included"
        } else {
            "NOT included"
        }
    );
    if !report.manifest.key_included {
        eprintln!(
            "NOTICE: this backup does not hold the sealing key. Restored alone, the server \
             refuses to start until {} is put back; keep the key's own backup safe.",
            config.encryption_key_file().display()
        );
    }
    Ok(())
}

pub async fn restore(args: RestoreArgs, config: &Config) -> anyhow::Result<()> {
    let pass = args.passphrase.read()?;
    let dir = config.data_dir.clone();
    let (manifest, written) = backup::restore(args.from, dir.clone(), pass).await?;
    println!(
        "restored into {}: {} (taken {} by {})",
        dir.display(),
        written.join(", "),
        manifest.created_at,
        manifest.made_by
    );
    if !manifest.key_included {
        eprintln!(
            "NOTICE: the backup holds no sealing key: put the key file at {} (or set \
             encryption_key) before starting the server, which refuses to start without it.",
            dir.join(archive::KEY).display()
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct RekeyArgs {
    /// Make no new key: re-seal everything with the current one and remove older keys from
    /// the key file (after every server has restarted or created a token since the rekey).
    #[arg(long)]
    pub drop_previous: bool,
}

pub async fn rekey(args: RekeyArgs, config: &Config) -> anyhow::Result<()> {
    let store = canarykeys_store::SqlStore::connect(&config.database_url()).await?;
    let done = crate::services::sealing::rekey(config, &store, args.drop_previous).await;
    store.close().await;
    let done = done?;
    println!(
        "re-sealed {} secrets; {} now holds {} key(s), the sealing key first",
        done.resealed,
        done.file.display(),
        done.keys
    );
    if !args.drop_previous {
        println!(
            "the previous key stays in the file so running servers keep opening what they \
             sealed; back up the key file now, then run `canarykeys rekey --drop-previous`"
        );
    }
    Ok(())
}
