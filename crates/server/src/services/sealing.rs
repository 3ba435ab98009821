//! Opening the sealing key against the database it protects. The database keeps a key check
//! (`Sealer::key_check`: an HMAC of a fixed label, not the key); every process that opens the
//! database (`serve`, each CLI command) must bring the key that matches it, or it does not start.
//! A new key is made only for a database that has neither tokens nor a check: a server that
//! quietly made one would seal new tokens with it and could open none of the old ones.

use std::path::PathBuf;

use canarykeys_store::{SettingsStore, Store, StoreError};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::crypto::{write_key_file, CryptoError, Sealer};

/// The setting that holds the key check.
pub const KEY_CHECK_SETTING: &str = "sealing_key_check";

/// Why the sealing key could not be opened for this database. Each message names the key's
/// source and the database (without its password), so the operator knows which two disagree.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error(
        "the sealing key file {path} does not exist, but the database {database} already holds \
         {what}: restore the key file from your backup (or set encryption_key). A new key would \
         open none of its secrets, so none was made"
    )]
    Missing {
        path: String,
        database: String,
        what: String,
    },
    #[error(
        "{key} does not match the database {database}: its key check (or its tokens) says its \
         secrets were sealed with another key. Start with the key file or encryption_key \
         setting this database was first used with (see \"Backing up the sealing key\" in the \
         book, docs/book/src/security.md)"
    )]
    Mismatch { key: String, database: String },
    #[error("{key}: {source}")]
    Key {
        key: String,
        #[source]
        source: CryptoError,
    },
    #[error("cannot read or write the sealing key check in the database {database}")]
    Store {
        database: String,
        #[source]
        source: StoreError,
    },
}

/// Where the key came from, for messages.
enum KeySource {
    Setting,
    File(PathBuf),
}

impl KeySource {
    fn describe(&self) -> String {
        match self {
            Self::Setting => "the encryption_key setting".into(),
            Self::File(path) => format!("the sealing key file {}", path.display()),
        }
    }
}

/// The sealer for `config`'s key, checked against (and, on first start, recorded in) `store`.
pub async fn open_sealer(config: &Config, store: &dyn Store) -> Result<Sealer, KeyCheckError> {
    let database = describe_database(&config.database_url());
    let db_err = |source| KeyCheckError::Store {
        database: database.clone(),
        source,
    };
    let stored = store.get_setting(KEY_CHECK_SETTING).await.map_err(db_err)?;
    let (sealer, source, created) = match &config.encryption_key {
        Some(key) => (
            Sealer::from_base64(key.expose()).map_err(|source| KeyCheckError::Key {
                key: KeySource::Setting.describe(),
                source,
            })?,
            KeySource::Setting,
            false,
        ),
        None => {
            let path = config.encryption_key_file();
            let key_err = |source| KeyCheckError::Key {
                key: KeySource::File(path.clone()).describe(),
                source,
            };
            match Sealer::load(&path).map_err(key_err)? {
                Some(sealer) => (sealer, KeySource::File(path), false),
                None => {
                    refuse_new_key(store, stored.is_some(), &path, &database).await?;
                    let (sealer, created) = Sealer::create(&path).map_err(key_err)?;
                    (sealer, KeySource::File(path), created)
                }
            }
        }
    };
    let mismatch = || {
        // A key this call made for nothing would only confuse the next start: take it back.
        if let (true, KeySource::File(path)) = (created, &source) {
            let _ = std::fs::remove_file(path);
        }
        KeyCheckError::Mismatch {
            key: source.describe(),
            database: database.clone(),
        }
    };
    let check = match stored {
        Some(check) => check,
        None => {
            if !opens_existing_tokens(store, &sealer)
                .await
                .map_err(db_err)?
            {
                return Err(mismatch());
            }
            // Insert-if-absent: of two processes starting at once with different keys, the
            // second reads the first one's check and stops.
            store
                .setting_or_insert(KEY_CHECK_SETTING, &sealer.key_check())
                .await
                .map_err(db_err)?
        }
    };
    // Any key the file holds may be the database's: after a rekey that wrote the file but
    // never committed, the old key (now second) still is, and seals until the rekey is re-run.
    let held = sealer
        .key_checks()
        .iter()
        .any(|k| bool::from(check.as_bytes().ct_eq(k.as_bytes())));
    if held && sealer.seal_with(&check) {
        Ok(sealer)
    } else {
        Err(mismatch())
    }
}

/// Makes the database's current key the one `sealer` seals with (re-reading the key file after
/// a `canarykeys rekey` by another process). A database whose key is neither held nor on file
/// gets no new secret sealed with a key it cannot open.
pub async fn follow_database_key(
    sealer: &Sealer,
    store: &dyn SettingsStore,
) -> Result<(), crate::services::ServiceError> {
    if let Some(check) = store.get_setting(KEY_CHECK_SETTING).await? {
        if !sealer.follow(&check) {
            return Err(CryptoError::BadKey.into());
        }
    }
    Ok(())
}

/// What `replace_lost_key` did: how many tokens the new key opens, of how many.
#[derive(Debug)]
pub struct ReplacedKey {
    pub key: String,
    pub opened: usize,
    pub tokens: usize,
}

/// Makes the configured key (creating the key file when there is none) the database's key from
/// now on, for an operator whose old key is lost for good (`canarykeys admin
/// replace-lost-sealing-key`). Tokens sealed with the old key stay sealed: their uses are still
/// hits, recorded as "signature not checked: key unavailable".
pub async fn replace_lost_key(
    config: &Config,
    store: &dyn Store,
) -> Result<ReplacedKey, KeyCheckError> {
    let database = describe_database(&config.database_url());
    let db_err = |source| KeyCheckError::Store {
        database: database.clone(),
        source,
    };
    let (sealer, source) = match &config.encryption_key {
        Some(key) => (
            Sealer::from_base64(key.expose()).map_err(|source| KeyCheckError::Key {
                key: KeySource::Setting.describe(),
                source,
            })?,
            KeySource::Setting,
        ),
        None => {
            let path = config.encryption_key_file();
            let (sealer, _) = Sealer::create(&path).map_err(|source| KeyCheckError::Key {
                key: KeySource::File(path.clone()).describe(),
                source,
            })?;
            (sealer, KeySource::File(path))
        }
    };
    let tokens = store.list_tokens().await.map_err(db_err)?;
    let opened = tokens
        .iter()
        .filter(|t| sealer.open(&t.id, &t.secret_sealed).is_ok())
        .count();
    store
        .put_setting(KEY_CHECK_SETTING, &sealer.key_check())
        .await
        .map_err(db_err)?;
    Ok(ReplacedKey {
        key: source.describe(),
        opened,
        tokens: tokens.len(),
    })
}

/// A key file is missing: fine for a new database, refused for one that was sealed before.
async fn refuse_new_key(
    store: &dyn Store,
    has_check: bool,
    path: &std::path::Path,
    database: &str,
) -> Result<(), KeyCheckError> {
    let missing = |what: String| KeyCheckError::Missing {
        path: path.display().to_string(),
        database: database.to_owned(),
        what,
    };
    if has_check {
        return Err(missing(
            "a key check (it was used with a key before)".into(),
        ));
    }
    let (_, tokens) = store
        .tokens_page(1, 0)
        .await
        .map_err(|source| KeyCheckError::Store {
            database: database.to_owned(),
            source,
        })?;
    if tokens > 0 {
        return Err(missing(format!("{tokens} tokens sealed with a key")));
    }
    Ok(())
}

/// A database from before key checks: the key must open the tokens it already has (at least
/// one, when there are any). Tokens it cannot open were sealed with another key (a CLI run from
/// another directory, say); they are named in a warning, and the sensor records their hits as
/// "signature not checked: key unavailable".
async fn opens_existing_tokens(store: &dyn Store, sealer: &Sealer) -> Result<bool, StoreError> {
    let tokens = store.list_tokens().await?;
    let closed: Vec<&str> = tokens
        .iter()
        .filter(|t| sealer.open(&t.id, &t.secret_sealed).is_err())
        .map(|t| t.id.as_str())
        .collect();
    if tokens.is_empty() || closed.is_empty() {
        return Ok(true);
    }
    if closed.len() == tokens.len() {
        return Ok(false);
    }
    tracing::warn!(
        tokens = closed.len(),
        first = ?closed.iter().take(10).collect::<Vec<_>>(),
        "these tokens' secrets do not open with this sealing key (sealed with another key): \
         their credentials cannot be downloaded, and the sensor cannot check their signatures"
    );
    Ok(true)
}

/// The database URL for a message: no password, no query string (it may carry one).
pub fn describe_database(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("<redacted>"));
            }
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => "(the configured database_url)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_carry_no_password() {
        assert_eq!(
            describe_database("sqlite:data/canarykeys.db"),
            "sqlite:data/canarykeys.db"
        );
        let pg = describe_database("postgres://ck:hunter2@db.internal:5432/ck?password=x");
        assert!(
            !pg.contains("hunter2") && !pg.contains("password=x"),
            "{pg}"
        );
        assert!(pg.contains("db.internal:5432/ck"), "{pg}");
    }
}

/// What `rekey` did.
#[derive(Debug)]
pub struct Rekeyed {
    /// Sealed values now under the new (or, with `drop_previous`, the current) key.
    pub resealed: usize,
    /// Keys the key file holds now.
    pub keys: usize,
    pub file: PathBuf,
}

/// `canarykeys rekey`: a new sealing key. The key file gets the new key first and keeps the old
/// ones after it, then every sealed value is re-sealed and the key check moved in one
/// transaction. A server that is running follows: it re-reads the key file when a value does
/// not open or the database's check moves. If the transaction fails, the file is put back.
/// With `drop_previous`, no new key: everything is re-sealed with the current key (a server
/// running through the rekey may have sealed a token with the old one) and the older keys
/// leave the file.
pub async fn rekey(
    config: &Config,
    store: &canarykeys_store::SqlStore,
    drop_previous: bool,
) -> anyhow::Result<Rekeyed> {
    if config.encryption_key.is_some() {
        anyhow::bail!(
            "rekey rotates the sealing key file; this configuration sets encryption_key instead. \
             Move the key into a file (encryption_key_file) first"
        );
    }
    let path = config.encryption_key_file();
    let sealer = open_sealer(config, store).await?;
    let text = std::fs::read_to_string(&path)?;
    // The database's key first (open_sealer made it the sealing key), then the rest.
    let current = sealer.key_check();
    let mut old: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    old.sort_by_key(|k| {
        Sealer::from_base64(k)
            .map(|s| s.key_check() != current)
            .unwrap_or(true)
    });
    let keys = if drop_previous {
        vec![old[0].clone()]
    } else {
        let mut keys = vec![crate::crypto::new_key()];
        keys.extend(old.iter().cloned());
        write_key_file(&path, &keys)?;
        keys
    };
    let ring = Sealer::from_base64(&keys[0])?;
    // The new ring opens anything sealed under any key in the file.
    let all = Sealer::load(&path)?.ok_or_else(|| anyhow::anyhow!("the key file vanished"))?;
    all.seal_with(&ring.key_check());
    let resealed = store
        .reseal_all(
            &|v| all.reseal(&v.aad, &v.sealed).map_err(|e| e.to_string()),
            KEY_CHECK_SETTING,
            &ring.key_check(),
        )
        .await;
    // On an error the file keeps the new key first. The commit may have landed even so (a
    // connection lost after COMMIT was sent), and putting the old file back would then lose the
    // only copy of the key the database is sealed with. If it did not land, the database's key
    // is still in the file and open_sealer seals with it; re-running rekey finishes the job.
    let resealed = resealed?;
    if drop_previous {
        write_key_file(&path, &keys)?;
    }
    Ok(Rekeyed {
        resealed,
        keys: keys.len(),
        file: path,
    })
}
