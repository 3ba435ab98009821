//! Sealing secret access keys at rest with ChaCha20-Poly1305. The key lives in a file created with
//! mode 0600 on first start (or comes from config), never in the database it protects. The
//! database keeps only a key check (an HMAC of a fixed label under the key), so a start with
//! another key is refused instead of sealing new tokens with it (`services::sealing`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use canarykeys_core::{SecretAccessKey, TokenId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
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

/// Seals and opens secret access keys. Each sealed value is bound to its token id (as associated
/// data), so a ciphertext copied onto another row does not open.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    /// `v1:` and the base64 HMAC-SHA256 of [`CHECK_LABEL`] under the key: says which key this
    /// is without revealing it.
    check: String,
}

/// What the key check authenticates. Fixed: the check of one key is the same on every start.
const CHECK_LABEL: &[u8] = b"canarykeys sealing key check v1";

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

const NONCE_LEN: usize = 12;

impl Sealer {
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
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
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
            check: format!("v1:{}", B64.encode(mac.finalize().into_bytes())),
        })
    }

    /// The key check the database keeps: equal for equal keys, and no help in finding the key.
    pub fn key_check(&self) -> &str {
        &self.check
    }

    /// Reads the key file; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, CryptoError> {
        match fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text).map(Some),
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
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                file.write_all(B64.encode(key).as_bytes()).map_err(io_err)?;
                file.sync_all().map_err(io_err)?;
                Ok((Self::from_bytes(&key)?, true))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = fs::read_to_string(path).map_err(io_err)?;
                Ok((Self::from_base64(&text)?, false))
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
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret.expose().as_bytes(),
            aad: token.as_str().as_bytes(),
        };
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("ChaCha20-Poly1305 encryption of a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        B64.encode(out)
    }

    pub fn open(&self, token: &TokenId, sealed: &str) -> Result<SecretAccessKey, CryptoError> {
        let bytes = B64.decode(sealed).map_err(|_| CryptoError::Open)?;
        if bytes.len() <= NONCE_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, ct) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: token.as_str().as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open)?;
        let text = String::from_utf8(plain).map_err(|_| CryptoError::Open)?;
        SecretAccessKey::parse(&text).map_err(|_| CryptoError::Open)
    }
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
}
