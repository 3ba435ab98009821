//! `canarykeys backup`, `restore` and `rekey`: the operations, on the configured database and
//! key, while a server may be running. The archive format is in `archive`.

pub mod archive;

use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use anyhow::{bail, Context};
use canarykeys_store::{Backend, SettingsStore, SqlStore};

use self::archive::{Manifest, DATABASE, FORMAT, KEY};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::Sealer;
use crate::services::sealing::open_sealer;

/// The setting that holds when the last backup finished (ms since the epoch).
pub const LAST_BACKUP_SETTING: &str = "last_backup_at";

/// What to back up.
pub struct BackupRequest {
    pub to: PathBuf,
    pub passphrase: SecretString,
    /// Leave the sealing key out (it is kept elsewhere).
    pub without_key: bool,
    /// Only the sealing key (PostgreSQL, whose data `pg_dump` backs up).
    pub key_only: bool,
}

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub manifest: Manifest,
}

/// The line a PostgreSQL operator runs instead (the command refuses and prints it).
pub const PG_DUMP_HINT: &str = "PostgreSQL data is backed up with pg_dump, e.g. \
    `pg_dump --format=custom --file canarykeys.pgdump \"$DATABASE_URL\"`, and restored with \
    pg_restore; back up the sealing key with `canarykeys backup --key-only --to key.age`";

/// The sealing key's text: the setting's, or the key file's.
fn key_text(config: &Config) -> anyhow::Result<String> {
    match &config.encryption_key {
        Some(key) => Ok(key.expose().trim().to_owned()),
        None => {
            let path = config.encryption_key_file();
            Ok(std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the sealing key file {}", path.display()))?
                .trim()
                .to_owned())
        }
    }
}

/// Takes a backup of `config`'s database and key.
pub async fn backup(
    config: &Config,
    req: BackupRequest,
    clock: SharedClock,
) -> anyhow::Result<BackupReport> {
    let store = SqlStore::connect(&config.database_url()).await?;
    let result = backup_with(config, &store, req, clock).await;
    store.close().await;
    result
}

async fn backup_with(
    config: &Config,
    store: &SqlStore,
    req: BackupRequest,
    clock: SharedClock,
) -> anyhow::Result<BackupReport> {
    if store.backend() == Backend::Postgres && !req.key_only {
        bail!("{PG_DUMP_HINT}");
    }
    if req.key_only && req.without_key {
        bail!("--key-only and --without-key leave nothing to back up");
    }
    // The key must be the database's: a backup of a key that opens nothing is worse than none.
    let sealer = open_sealer(config, store).await?;
    // The clear copies are staged beside the data they copy (the data directory, or the key
    // file's), never beside the backup: that may be a share or a removable disk, where even a
    // deleted clear copy of the database and key could be read back.
    let key_dir = config.encryption_key_file();
    let dir = [Some(config.data_dir.as_path()), key_dir.parent()]
        .into_iter()
        .flatten()
        .find(|d| !d.as_os_str().is_empty() && d.is_dir())
        .unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".canarykeys-backup")
        .tempdir_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    let mut schema = 0;
    if !req.key_only {
        let copy = work.path().join(DATABASE);
        store
            .snapshot_into(&copy)
            .await
            .context("cannot copy the database")?;
        schema = store.schema_version().await?;
        files.push((DATABASE, copy));
    }
    if !req.without_key {
        let path = work.path().join(KEY);
        write_private(&path, key_text(config)?.as_bytes())?;
        files.push((KEY, path));
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        made_by: format!("canarykeys {}", crate::cli::VERSION),
        created_at: rfc3339(clock.now_millis()),
        database: if req.key_only { "none" } else { "sqlite" }.into(),
        schema,
        key_included: !req.without_key,
        key_check: Some(sealer.key_check()),
    };
    let to = req.to.clone();
    let m = manifest.clone();
    let pass = req.passphrase;
    let bytes = tokio::task::spawn_blocking(move || {
        let files: Vec<(&str, &Path)> = files.iter().map(|(n, p)| (*n, p.as_path())).collect();
        archive::write_archive(&to, &m, &files, pass)
    })
    .await??;
    drop(work);
    store
        .put_setting(LAST_BACKUP_SETTING, &clock.now_millis().to_string())
        .await?;
    Ok(BackupReport {
        path: req.to,
        bytes,
        manifest,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Restores `from` into `data_dir`, which must be absent or empty.
pub async fn restore(
    from: PathBuf,
    data_dir: PathBuf,
    pass: SecretString,
) -> anyhow::Result<(Manifest, Vec<String>)> {
    tokio::task::spawn_blocking(move || restore_blocking(&from, &data_dir, pass)).await?
}

fn restore_blocking(
    from: &Path,
    data_dir: &Path,
    pass: SecretString,
) -> anyhow::Result<(Manifest, Vec<String>)> {
    use std::os::unix::fs::DirBuilderExt;
    let created = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: restore into a new or empty directory",
                    data_dir.display()
                );
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)?;
            true
        }
        Err(e) => return Err(e).context(format!("cannot read {}", data_dir.display())),
    };
    let newest = SqlStore::newest_schema(Backend::Sqlite);
    let result = archive::read_archive(from, pass, data_dir, |m| {
        if m.schema > newest {
            bail!(
                "the backup holds schema {} and this build knows up to {newest}: restore it with \
                 {} or newer",
                m.schema,
                m.made_by
            );
        }
        Ok(())
    })
    .and_then(|(manifest, written)| {
        if manifest.key_included {
            let key = Sealer::load(&data_dir.join(KEY))?
                .context("the backup says it holds the key, but none was restored")?;
            if !manifest
                .key_check
                .as_ref()
                .is_some_and(|c| key.key_checks().contains(c))
            {
                bail!("the key in the backup does not match the database's key check");
            }
        }
        Ok((manifest, written))
    });
    if result.is_err() {
        // Leave nothing half-restored for a server to start on.
        for name in [DATABASE, KEY] {
            let _ = std::fs::remove_file(data_dir.join(name));
        }
        if created {
            let _ = std::fs::remove_dir(data_dir);
        }
    }
    result
}

/// When the last backup finished, if ever (for `doctor`).
pub async fn last_backup(store: &dyn SettingsStore) -> anyhow::Result<Option<i64>> {
    Ok(store
        .get_setting(LAST_BACKUP_SETTING)
        .await?
        .and_then(|v| v.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(schema: i64) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            made_by: "canarykeys 9.9.9 (commit future)".into(),
            created_at: "2026-12-05T00:00:00Z".into(),
            database: "sqlite".into(),
            schema,
            key_included: false,
            key_check: None,
        }
    }

    fn pass() -> SecretString {
        archive::passphrase("a test passphrase, long enough").unwrap()
    }

    #[test]
    fn a_backup_from_a_newer_schema_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::write(&db, b"not really a database").unwrap();
        let file = dir.path().join("future.backup");
        let newest = SqlStore::newest_schema(Backend::Sqlite);
        archive::write_archive(&file, &manifest(newest + 1), &[(DATABASE, &db)], pass()).unwrap();
        let into = dir.path().join("restored");
        let err = restore_blocking(&file, &into, pass())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("knows up to {newest}")), "{err}");
        assert!(
            err.contains("canarykeys 9.9.9"),
            "names the version to use: {err}"
        );
        assert!(!into.exists(), "nothing left behind");

        // The same schema restores, and the file it wrote is the one put in.
        let file = dir.path().join("same.backup");
        archive::write_archive(&file, &manifest(newest), &[(DATABASE, &db)], pass()).unwrap();
        let (m, written) = restore_blocking(&file, &into, pass()).unwrap();
        assert_eq!((m.schema, written), (newest, vec![DATABASE.to_owned()]));
        assert_eq!(
            std::fs::read(into.join(DATABASE)).unwrap(),
            b"not really a database"
        );
    }

    #[test]
    fn a_member_the_format_does_not_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let evil = dir.path().join("passwd");
        std::fs::write(&evil, b"x").unwrap();
        let file = dir.path().join("odd.backup");
        archive::write_archive(&file, &manifest(1), &[("passwd", &evil)], pass()).unwrap();
        let err = restore_blocking(&file, &dir.path().join("r"), pass())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unexpected member") || err.contains(".."),
            "{err}"
        );
        assert!(!dir.path().join("r").exists());
    }

    #[test]
    fn a_backup_never_writes_through_a_planted_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::write(&db, b"the database").unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let file = dir.path().join("b.backup");
        std::os::unix::fs::symlink(&victim, dir.path().join("b.backup.partial")).unwrap();
        let err = archive::write_archive(&file, &manifest(1), &[(DATABASE, &db)], pass());
        assert!(err.is_err(), "a .partial already there is refused");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert!(!file.exists());

        // A clean name: the backup is written, mode 0600, and no .partial is left.
        use std::os::unix::fs::PermissionsExt;
        let file = dir.path().join("c.backup");
        archive::write_archive(&file, &manifest(1), &[(DATABASE, &db)], pass()).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join("c.backup.partial").exists());
        assert!(archive::write_archive(&file, &manifest(1), &[(DATABASE, &db)], pass()).is_err());
    }

    #[test]
    fn a_short_passphrase_is_refused() {
        assert!(archive::passphrase("short").is_err());
        assert!(
            archive::passphrase("twelve chars\n").is_ok(),
            "the newline is not counted"
        );
    }
}
