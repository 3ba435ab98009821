//! Backups: the database (a consistent copy taken while the server runs) and the sealing key,
//! as one tar archive inside an age envelope under a passphrase. The database alone tells which
//! planted keys are decoys (SECURITY.md), so nothing of it is written in the clear anywhere but
//! beside the data it copies (the staging directory lives in the data directory).
//!
//! Layout inside the envelope: `manifest.json` first, then `canarykeys.db` (absent from a
//! key-only backup) and `secret.key` (absent from `--without-key`). Restore reads the manifest
//! before anything else and refuses a format or schema this build does not know.

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// What the archive says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// `canarykeys-backup/1`.
    pub format: String,
    /// The version and commit of the binary that took it.
    pub made_by: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// `sqlite`, or `none` for a key-only backup.
    pub database: String,
    /// The newest migration the copied database holds (0 without a database).
    pub schema: i64,
    /// Whether `secret.key` is inside.
    pub key_included: bool,
    /// The database's key check: a restore with a key file from elsewhere is checked against it.
    pub key_check: Option<String>,
}

pub const FORMAT: &str = "canarykeys-backup/1";
pub const MANIFEST: &str = "manifest.json";
pub const DATABASE: &str = "canarykeys.db";
pub const KEY: &str = "secret.key";

/// The passphrase's floor: the archive is offline-guessable by whoever holds it.
pub const MIN_PASSPHRASE: usize = 12;

/// A passphrase long enough to be worth the envelope.
pub fn passphrase(text: &str) -> anyhow::Result<SecretString> {
    let text = text.trim_end_matches(['\n', '\r']);
    if text.chars().count() < MIN_PASSPHRASE {
        bail!("the backup passphrase must be at least {MIN_PASSPHRASE} characters");
    }
    Ok(SecretString::from(text.to_owned()))
}

/// Writes `files` (name, path on disk) after the manifest into `to`, a new file (mode 0600),
/// encrypted under `pass`. Written to `<to>.partial` and renamed, so `to` is whole or absent.
pub fn write_archive(
    to: &Path,
    manifest: &Manifest,
    files: &[(&str, &Path)],
    pass: SecretString,
) -> anyhow::Result<u64> {
    if to.exists() {
        bail!("{} exists already: choose a new file", to.display());
    }
    let partial = PathBuf::from(format!("{}.partial", to.display()));
    // create_new: never through a link or into someone else's file, and always mode 0600.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let result = (|| {
        let sealed = age::Encryptor::with_user_passphrase(pass)
            .wrap_output(BufWriter::new(file))
            .context("cannot start the age envelope")?;
        let mut tar = tar::Builder::new(sealed);
        let json = serde_json::to_vec_pretty(manifest)?;
        append_bytes(&mut tar, MANIFEST, &json)?;
        for (name, path) in files {
            tar.append_path_with_name(path, name)
                .with_context(|| format!("cannot add {}", path.display()))?;
        }
        let sealed = tar.into_inner()?;
        let mut out = sealed.finish()?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok::<_, anyhow::Error>(file.metadata()?.len())
    })();
    match result {
        Ok(len) => {
            // A hard link fails if `to` appeared meanwhile, where a rename would replace it.
            // Where links are not supported (FAT), a rename after one more look.
            let moved = match std::fs::hard_link(&partial, to) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&partial);
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
                Err(_) if to.exists() => Err(std::io::ErrorKind::AlreadyExists.into()),
                Err(_) => std::fs::rename(&partial, to),
            };
            if let Err(e) = moved {
                let _ = std::fs::remove_file(&partial);
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot move {} to {}",
                    partial.display(),
                    to.display()
                )));
            }
            Ok(len)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)?;
    Ok(())
}

/// Opens `from` under `pass` and reads its manifest; `check` decides whether to go on, then
/// each further member is written into `into` (an empty directory) with mode 0600.
pub fn read_archive(
    from: &Path,
    pass: SecretString,
    into: &Path,
    check: impl FnOnce(&Manifest) -> anyhow::Result<()>,
) -> anyhow::Result<(Manifest, Vec<String>)> {
    let file =
        std::fs::File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
    let decryptor = age::Decryptor::new(BufReader::new(file))
        .context("not a canarykeys backup (no age envelope)")?;
    if !decryptor.is_scrypt() {
        bail!("this age file is not sealed with a passphrase: not a canarykeys backup");
    }
    let identity = age::scrypt::Identity::new(pass);
    let reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| anyhow::anyhow!("cannot open the backup: {e} (wrong passphrase?)"))?;
    let mut tar = tar::Archive::new(reader);
    let mut entries = tar.entries()?;
    let mut first = entries
        .next()
        .context("the backup is empty")?
        .context("cannot read the backup")?;
    if first.path()?.to_str() != Some(MANIFEST) {
        bail!("the backup does not start with its manifest");
    }
    let mut json = Vec::new();
    first.by_ref().take(1 << 20).read_to_end(&mut json)?;
    let manifest: Manifest =
        serde_json::from_slice(&json).context("the backup's manifest is unreadable")?;
    if manifest.format != FORMAT {
        bail!(
            "unknown backup format {:?} (this build reads {FORMAT})",
            manifest.format
        );
    }
    check(&manifest)?;
    let mut written = Vec::new();
    for entry in entries {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        // Only the names this format writes: never a path out of the directory.
        if name != DATABASE && name != KEY {
            bail!("unexpected member {name:?} in the backup");
        }
        let path = into.join(&name);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::io::copy(&mut entry, &mut out)?;
        out.sync_all()?;
        written.push(name);
    }
    Ok((manifest, written))
}
