//! Token ids and manage secrets: random values from the OS CSPRNG, and the stored hash of a secret.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Invalid;

/// A token's public id: 128 random bits as 26 lower-case base32 characters. It appears in URLs,
/// so it carries no meaning and cannot be guessed from another token's id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(String);

impl TokenId {
    pub const LEN: usize = 26;

    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        Self(BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = s.len() == Self::LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
            && BASE32_NOPAD
                .decode(s.to_ascii_uppercase().as_bytes())
                .is_ok_and(|v| v.len() == 16);
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new("not a token id"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({})", self.0)
    }
}

/// Where a page of the token list ends: the last token's creation time (unix ms) and id, in the
/// list's order (newest first, ids ascending within a millisecond). Written `<created_at>.<id>`;
/// the next page starts after it and costs the same however deep it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenCursor {
    pub created_at: i64,
    pub id: TokenId,
}

impl TokenCursor {
    /// The schema's pattern for a cursor: every string it matches parses.
    pub const PATTERN: &'static str = r"^[0-9]{1,18}\.[a-z2-7]{25}[aeimquy4]$";

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new("after is a cursor from `next` of the page before");
        let (time, id) = s.split_once('.').ok_or_else(bad)?;
        if time.is_empty() || time.len() > 18 || !time.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(Self {
            created_at: time.parse().map_err(|_| bad())?,
            id: TokenId::parse(id).map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for TokenCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at, self.id)
    }
}

/// A random 128-bit id for rows that need one (hits, alerts): 26 lower-case base32 characters.
pub fn random_id() -> String {
    TokenId::generate().0
}

/// The id of a row written in bulk (a hit, and its alert, which shares it): 128 bits written as
/// a token id is (26 lower-case base32 characters), the first 48 the write's time in unix ms and
/// the other 80 random. Rows written together then share their first characters and sit
/// together in the primary-key index: with a random id every hit dirtied a random page of two
/// indexes (its own and its alert's), each page written whole to the WAL at every commit and
/// again at the checkpoint. Still not guessable from another id (80 random bits); nothing reads
/// the time back (rows are ordered by their own columns).
pub fn clustered_id(now_ms: i64) -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes[6..]);
    let ms = u64::try_from(now_ms).unwrap_or(0).to_be_bytes();
    bytes[..6].copy_from_slice(&ms[2..]);
    BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
}

/// An id that sorts after every id this process made before it (32 hex characters: a
/// process-wide counter, then 64 random bits). Deliveries written in the same millisecond
/// keep the order they were planned in, since a lane is sent in (`created_at`, `id`) order.
/// Hex sorts the same under any database collation.
pub fn sequential_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{n:016x}{:016x}", OsRng.next_u64())
}

/// The bearer secret that lets a token's owner manage it. 256 random bits, base64url. It is
/// shown once and stored only as a hash; `Debug` and `Display` never print it.
#[derive(Clone)]
pub struct ManageSecret(String);

impl ManageSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(data_encoding::BASE64URL_NOPAD.encode(&bytes))
    }

    /// Accepts what `generate` makes; anything else cannot match a stored hash anyway, and
    /// refusing it early keeps junk out of the hash comparison.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = s.len() == 43
            && data_encoding::BASE64URL_NOPAD
                .decode(s.as_bytes())
                .is_ok_and(|v| v.len() == 32);
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new("not a manage secret"))
        }
    }

    /// The value itself, for the one response that hands it out.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret has 256 bits of entropy, so a plain SHA-256 is enough: there is nothing for a
    /// slow password hash to protect against.
    pub fn hash(&self) -> ManageSecretHash {
        ManageSecretHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// Constant-time comparison with a stored hash.
    pub fn verify(&self, stored: &ManageSecretHash) -> bool {
        self.hash().0.ct_eq(&stored.0).into()
    }
}

impl fmt::Debug for ManageSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ManageSecret(<redacted>)")
    }
}

/// The SHA-256 of a manage secret, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ManageSecretHash([u8; 32]);

impl ManageSecretHash {
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self, Invalid> {
        let bytes = data_encoding::HEXLOWER
            .decode(s.as_bytes())
            .map_err(|_| Invalid::new("not a secret hash"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Invalid::new("not a secret hash"))?;
        Ok(Self(arr))
    }
}

impl fmt::Debug for ManageSecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ManageSecretHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_match_their_pattern() {
        let pattern = regex_lite_match;
        for _ in 0..200 {
            let c = TokenCursor {
                created_at: 1_700_000_000_000,
                id: TokenId::generate(),
            };
            let text = c.to_string();
            assert!(pattern(&text), "{text}");
            assert_eq!(TokenCursor::parse(&text).unwrap(), c);
        }
        for bad in [
            "",
            ".",
            "1.",
            "x.abc",
            "-1.aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "1234567890123456789.a",
        ] {
            assert!(TokenCursor::parse(bad).is_err(), "{bad}");
        }
    }

    /// `TokenCursor::PATTERN` by hand (core has no regex): 1-18 digits, a dot, 25 base32
    /// characters and one whose two low bits are zero.
    fn regex_lite_match(s: &str) -> bool {
        let Some((time, id)) = s.split_once('.') else {
            return false;
        };
        let b32 = |c: u8| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c);
        (1..=18).contains(&time.len())
            && time.bytes().all(|c| c.is_ascii_digit())
            && id.len() == 26
            && id.bytes().take(25).all(b32)
            && id.bytes().last().is_some_and(|c| b"aeimquy4".contains(&c))
    }

    #[test]
    fn sequential_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..100).map(|_| sequential_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids.iter().all(|id| id.len() == 32));
    }

    #[test]
    fn clustered_ids_share_their_time_and_nothing_else() {
        let now = 1_796_000_000_123;
        let (a, b) = (clustered_id(now), clustered_id(now));
        // The shape of every other row id (an alert's id is its hit's, and is parsed as one).
        assert!(
            TokenId::parse(&a).is_ok() && TokenId::parse(&b).is_ok(),
            "{a}"
        );
        assert_ne!(a, b);
        // 48 bits of time are the first 9.6 characters: nine are shared within a millisecond.
        assert_eq!(a[..9], b[..9]);
        assert_eq!(a[..9], clustered_id(now)[..9]);
        assert_ne!(a[..9], clustered_id(now + 1_000_000)[..9]);
        // A time before 1970 (a clock gone wrong) still makes a valid id.
        assert!(TokenId::parse(&clustered_id(-5)).is_ok());
    }

    #[test]
    fn token_ids_round_trip_and_differ() {
        let a = TokenId::generate();
        let b = TokenId::generate();
        assert_ne!(a, b);
        assert_eq!(TokenId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), TokenId::LEN);
    }

    #[test]
    fn token_id_rejects_junk() {
        for bad in [
            "",
            "abc",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "aaaaaaaaaaaaaaaaaaaaaaaaa1",
            "../../etc/passwd",
        ] {
            assert!(TokenId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manage_secret_verifies_only_itself() {
        let s = ManageSecret::generate();
        let h = s.hash();
        assert!(s.verify(&h));
        assert!(!ManageSecret::generate().verify(&h));
        let parsed = ManageSecret::parse(s.expose()).unwrap();
        assert!(parsed.verify(&ManageSecretHash::from_hex(&h.to_hex()).unwrap()));
    }

    #[test]
    fn manage_secret_never_prints() {
        let s = ManageSecret::generate();
        assert!(!format!("{s:?}").contains(s.expose()));
    }

    #[test]
    fn manage_secret_rejects_junk() {
        assert!(ManageSecret::parse("short").is_err());
        assert!(ManageSecret::parse(&"a".repeat(44)).is_err());
    }
}
