//! Sealing secret access keys at rest with ChaCha20-Poly1305. The key lives in a file created with
//! mode 0600 on first start (or comes from config), never in the database it protects. The
//! database keeps only a key check (an HMAC of a fixed label under the key), so a start with
//! another key is refused instead of sealing new tokens with it (`services::sealing`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use canarykeys_core::{SecretAccessKey, TokenId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key as Key_, Nonce};
use hmac::{Hmac, Mac};
use rand::{rngs::OsRng, RngCore};
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("cannot read or create the encryption key file {path}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the encryption key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a sealed secret does not open with this key (wrong key, or the data was altered)")]
    Open,
}

/// One sealing key: its cipher and its check.
#[derive(Clone)]
struct Key {
    cipher: ChaCha20Poly1305,
    /// `v1:` and the base64 HMAC-SHA256 of [`CHECK_LABEL`] under the key: says which key this
    /// is without revealing it.
    check: String,
}

impl Key {
    fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = B64.decode(key.trim()).map_err(|_| CryptoError::BadKey)?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(bytes).map_err(|_| CryptoError::BadKey)?;
        mac.update(CHECK_LABEL);
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key_::from_slice(bytes)),
            check: format!("v1:{}", B64.encode(mac.finalize().into_bytes())),
        })
    }
}

/// The keys a sealer holds: the one it seals with first, then previous ones (a key file after
/// `canarykeys rekey` lists the new key first and the old ones after it, until
/// `rekey --drop-previous`).
#[derive(Clone)]
struct Ring(Vec<Key>);

/// Seals and opens secret access keys. Each sealed value is bound to its token id (as associated
/// data), so a ciphertext copied onto another row does not open. Clones share one ring: a
/// reload after a rekey is seen by every service.
#[derive(Clone)]
pub struct Sealer {
    ring: Arc<RwLock<Ring>>,
    /// The key file, when the keys came from one: re-read after `canarykeys rekey`.
    file: Option<PathBuf>,
}

/// What the key check authenticates. Fixed: the check of one key is the same on every start.
const CHECK_LABEL: &[u8] = b"canarykeys sealing key check v1";

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

const NONCE_LEN: usize = 12;

/// Reads a key file's keys: one base64 key per line, the sealing key first.
fn parse_ring(text: &str) -> Result<Ring, CryptoError> {
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(Key::from_base64)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(CryptoError::BadKey);
    }
    Ok(Ring(keys))
}

impl Sealer {
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        Ok(Self::of(Ring(vec![Key::from_base64(key)?]), None))
    }

    fn of(ring: Ring, file: Option<PathBuf>) -> Self {
        Self {
            ring: Arc::new(RwLock::new(ring)),
            file,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The check of the key this sealer seals with: equal for equal keys, and no help in
    /// finding the key.
    pub fn key_check(&self) -> String {
        self.read().0[0].check.clone()
    }

    /// The checks of every key held, the sealing key's first.
    pub fn key_checks(&self) -> Vec<String> {
        self.read().0.iter().map(|k| k.check.clone()).collect()
    }

    /// Seals with the key whose check is `check`, if this sealer holds it (a key file whose
    /// first key is a rekey that never committed): the database's check decides.
    pub fn seal_with(&self, check: &str) -> bool {
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        match ring.0.iter().position(|k| k.check == check) {
            Some(i) => {
                let key = ring.0.remove(i);
                ring.0.insert(0, key);
                true
            }
            None => false,
        }
    }

    /// Re-reads the key file (after a rekey by another process); `false` without a file or
    /// when it cannot be read, keeping the keys held.
    pub fn reload(&self) -> bool {
        let Some(path) = &self.file else {
            return false;
        };
        match fs::read_to_string(path)
            .map_err(|_| CryptoError::BadKey)
            .and_then(|t| parse_ring(&t))
        {
            Ok(ring) => {
                *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
                true
            }
            Err(_) => false,
        }
    }

    /// Makes the database's key (its check is `check`) the sealing key, re-reading the key file
    /// when it is not held: a running server follows `canarykeys rekey`. `false`: no key held
    /// or on file has that check.
    pub fn follow(&self, check: &str) -> bool {
        if self.key_check() == check {
            return true;
        }
        self.seal_with(check) || (self.reload() && self.seal_with(check))
    }

    /// Reads the key file; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, CryptoError> {
        match fs::read_to_string(path) {
            Ok(text) => Ok(Some(Self::of(parse_ring(&text)?, Some(path.to_owned())))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CryptoError::KeyFile {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Creates the key file (mode 0600, 32 random bytes in base64); `true` when this call made
    /// it. `create_new` makes two processes starting at once agree on one key: the second
    /// reads the first one's file.
    pub fn create(path: &Path) -> Result<(Self, bool), CryptoError> {
        let io_err = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let key = new_key();
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                file.write_all(key.as_bytes()).map_err(io_err)?;
                file.sync_all().map_err(io_err)?;
                Ok((Self::of(parse_ring(&key)?, Some(path.to_owned())), true))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = fs::read_to_string(path).map_err(io_err)?;
                Ok((Self::of(parse_ring(&text)?, Some(path.to_owned())), false))
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// Reads the key file, creating it when absent. For tests and tools with a database of
    /// their own; a server opens its key with `services::sealing::open_sealer`, which never
    /// makes a new key for a database that has one.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        Self::create(path).map(|(sealer, _)| sealer)
    }

    pub fn seal(&self, token: &TokenId, secret: &SecretAccessKey) -> String {
        self.seal_text(token.as_str(), secret.expose())
    }

    /// Seals other text (a session token) bound to `aad`, which the opener must give again.
    pub fn seal_text(&self, aad: &str, text: &str) -> String {
        let key = self.read().0[0].clone();
        seal_with(&key, aad, text)
    }

    /// Opens a secret key sealed for `token`.
    pub fn open(&self, token: &TokenId, sealed: &str) -> Result<SecretAccessKey, CryptoError> {
        let text = self.open_text(token.as_str(), sealed)?;
        // What was sealed was checked then; an STS session's secret need not be 40 characters.
        SecretAccessKey::parse_issued(&text).map_err(|_| CryptoError::Open)
    }

    /// Opens what `seal_text` sealed under `aad`: with any key held, the sealing key first;
    /// failing that, once more after re-reading the key file (a rekey by another process
    /// re-sealed this value with a new key).
    pub fn open_text(&self, aad: &str, sealed: &str) -> Result<String, CryptoError> {
        let attempt = || {
            let ring = self.read();
            ring.0.iter().find_map(|k| open_with(k, aad, sealed).ok())
        };
        if let Some(text) = attempt() {
            return Ok(text);
        }
        if self.reload() {
            if let Some(text) = attempt() {
                return Ok(text);
            }
        }
        Err(CryptoError::Open)
    }

    /// Re-seals `sealed` (under `id`) with the sealing key: `canarykeys rekey`.
    pub fn reseal(&self, id: &str, sealed: &str) -> Result<String, CryptoError> {
        let ring = self.read();
        let text = ring
            .0
            .iter()
            .find_map(|k| open_with(k, id, sealed).ok())
            .ok_or(CryptoError::Open)?;
        Ok(seal_with(&ring.0[0], id, &text))
    }
}

/// 32 random bytes, base64: a new key's text.
pub fn new_key() -> String {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    B64.encode(key)
}

/// Writes `keys` (the sealing key first) as the key file at `path`, replacing it whole: a
/// sibling file, synced, renamed over it, and the directory synced.
pub fn write_key_file(path: &Path, keys: &[String]) -> Result<(), CryptoError> {
    let io_err = |source| CryptoError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("key.new");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err)?;
    file.write_all(keys.join("\n").as_bytes()).map_err(io_err)?;
    file.write_all(b"\n").map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err)?;
    }
    Ok(())
}

fn seal_with(key: &Key, aad: &str, text: &str) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let payload = Payload {
        msg: text.as_bytes(),
        aad: aad.as_bytes(),
    };
    let ct = key
        .cipher
        .encrypt(Nonce::from_slice(&nonce), payload)
        .expect("ChaCha20-Poly1305 encryption of a short message cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    B64.encode(out)
}

fn open_with(key: &Key, aad: &str, sealed: &str) -> Result<String, CryptoError> {
    let bytes = B64.decode(sealed).map_err(|_| CryptoError::Open)?;
    if bytes.len() <= NONCE_LEN {
        return Err(CryptoError::Open);
    }
    let (nonce, ct) = bytes.split_at(NONCE_LEN);
    let plain = key
        .cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Open)?;
    String::from_utf8(plain).map_err(|_| CryptoError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn seals_and_opens_bound_to_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let s = Sealer::load_or_create(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let id = TokenId::generate();
        let secret = SecretAccessKey::generate();
        let sealed = s.seal(&id, &secret);
        assert!(!sealed.contains(secret.expose()));
        assert_eq!(s.open(&id, &sealed).unwrap(), secret);
        assert!(
            s.open(&TokenId::generate(), &sealed).is_err(),
            "bound to its token"
        );
        // The same file gives the same key after a restart.
        let again = Sealer::load_or_create(&path).unwrap();
        assert_eq!(again.open(&id, &sealed).unwrap(), secret);
        // Another key does not open it.
        let other = Sealer::load_or_create(&dir.path().join("other")).unwrap();
        assert!(other.open(&id, &sealed).is_err());
        assert!(s.open(&id, "not base64!").is_err());
    }

    #[test]
    fn rejects_short_keys() {
        assert!(Sealer::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn the_key_check_names_the_key_without_revealing_it() {
        let key = B64.encode([7u8; 32]);
        let a = Sealer::from_base64(&key).unwrap();
        assert_eq!(
            a.key_check(),
            Sealer::from_base64(&key).unwrap().key_check()
        );
        assert_ne!(
            a.key_check(),
            Sealer::from_base64(&B64.encode([8u8; 32]))
                .unwrap()
                .key_check()
        );
        assert!(a.key_check().starts_with("v1:"));
        assert!(!a.key_check().contains(&key));
        assert!(!format!("{a:?}").contains(&key));
        let dir = tempfile::tempdir().unwrap();
        assert!(Sealer::load(&dir.path().join("absent")).unwrap().is_none());
        let (made, created) = Sealer::create(&dir.path().join("k")).unwrap();
        let (again, created_again) = Sealer::create(&dir.path().join("k")).unwrap();
        assert!(created && !created_again);
        assert_eq!(made.key_check(), again.key_check());
    }

    #[test]
    fn a_key_file_of_several_keys_seals_with_the_first_and_opens_with_any() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let (old, _) = Sealer::create(&path).unwrap();
        let id = TokenId::generate();
        let secret = SecretAccessKey::generate();
        let under_old = old.seal(&id, &secret);
        let old_text = fs::read_to_string(&path).unwrap();
        write_key_file(&path, &[new_key(), old_text.trim().to_owned()]).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let ring = Sealer::load(&path).unwrap().unwrap();
        assert_eq!(ring.key_checks().len(), 2);
        assert_ne!(ring.key_check(), old.key_check(), "the new key seals");
        let resealed = ring.reseal(id.as_str(), &under_old).unwrap();
        assert!(
            old.open(&id, &resealed).is_ok(),
            "the old sealer re-reads its file"
        );
        assert_eq!(ring.open(&id, &under_old).unwrap(), secret);
        // Following the database's check: the old key first again, then the new.
        let old_check = old_text_check(&old_text);
        assert!(ring.follow(&old_check));
        assert_eq!(ring.key_check(), old_check);
        assert!(!ring.follow("v1:no such key"));
    }

    fn old_text_check(text: &str) -> String {
        Sealer::from_base64(text).unwrap().key_check()
    }
}
