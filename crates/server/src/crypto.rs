//! Sealing secret access keys at rest with ChaCha20-Poly1305. The key lives in a file created with
//! mode 0600 on first start (or comes from config), never in the database it protects.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use canarykeys_core::{SecretAccessKey, TokenId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::{rngs::OsRng, RngCore};

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
}

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
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        })
    }

    /// Reads the key file, creating it (mode 0600, 32 random bytes in base64) when absent.
    /// `create_new` makes two processes starting at once agree on one key.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
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
                Self::from_bytes(&key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::from_base64(&fs::read_to_string(path).map_err(io_err)?)
            }
            Err(e) => Err(io_err(e)),
        }
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
}
