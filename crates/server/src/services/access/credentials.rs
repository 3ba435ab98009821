//! The secrets of access control: argon2id password hashes, random session ids and keys, and
//! the SHA-256 under which sessions and keys are stored.

use std::sync::OnceLock;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher, Version};
use canarykeys_core::ManageSecret;
use sha2::{Digest, Sha256};

use super::AccessError;

pub(super) fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 256 random bits, 43 base64url characters (the manage secret's generator).
pub(super) fn random_43() -> String {
    ManageSecret::generate().expose().to_owned()
}

pub(super) fn hash_password(password: &str) -> Result<String, AccessError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccessError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. argon2's working memory (19 MiB at our
/// parameters) comes from `blocks`, which the caller keeps across checks: allocating it anew
/// for every check makes glibc keep freed chunks in each hashing thread's arena, far above the
/// hashes running.
pub(super) fn verify_password_in(password: &str, phc: &str, blocks: &mut Vec<Block>) -> bool {
    use subtle::ConstantTimeEq;
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(h.algorithm) else {
        return false;
    };
    let version = match h.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&h) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    blocks.resize(params.block_count(), Block::default());
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut blocks[..])
        .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// A real hash to verify against when the name is unknown, so a wrong name costs as much time
/// as a wrong password and names cannot be found by timing.
pub(super) fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_43()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    /// The crate's own check, to compare with.
    fn verify_password(password: &str, phc: &str) -> bool {
        PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }

    #[test]
    fn verifying_in_kept_memory_agrees_with_the_crate() {
        let phc = hash_password("correct horse").unwrap();
        let mut blocks = Vec::new();
        assert!(verify_password_in("correct horse", &phc, &mut blocks));
        assert!(!verify_password_in("correct horsf", &phc, &mut blocks));
        assert!(!verify_password_in(
            "correct horse",
            "not a hash",
            &mut blocks
        ));
        assert!(verify_password("correct horse", &phc));
        // The memory is kept and reused.
        let kept = blocks.capacity();
        assert!(kept > 0);
        assert!(verify_password_in("correct horse", &phc, &mut blocks));
        assert_eq!(blocks.capacity(), kept);
    }
}
