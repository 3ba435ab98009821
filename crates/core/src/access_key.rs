//! AWS identity values: account ids, access key ids (with the account id they encode), secret
//! keys that never print, IAM user names and regions.

use std::fmt;

use data_encoding::{BASE32_NOPAD, BASE64};
use rand::{rngs::OsRng, RngCore};

use crate::Invalid;

/// A 12-digit AWS account id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(u64);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.parse().expect("12 ASCII digits fit in u64")))
        } else {
            Err(Invalid::new("an AWS account id is 12 digits"))
        }
    }

    /// A random id, for an installation that has not been told which account it stands for.
    /// It never starts with 0, because real account ids rarely do.
    pub fn random() -> Self {
        Self(100_000_000_000 + OsRng.next_u64() % 900_000_000_000)
    }

    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012}", self.0)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self})")
    }
}

/// An access key id: a four-letter prefix (`AKIA` for long-term keys, `ASIA` for temporary ones)
/// and 16 base32 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessKeyId(String);

/// Bits 1..=40 of the first six decoded bytes hold the account id (the published layout:
/// mask `0x7fff_ffff_ff80`, shift right by 7).
const ACCOUNT_MASK: u64 = 0x7fff_ffff_ff80;

impl AccessKeyId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = s.len() == 20
            && (s.starts_with("AKIA") || s.starts_with("ASIA"))
            && s[4..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new(
                "an access key id is AKIA or ASIA followed by 16 base32 characters",
            ))
        }
    }

    /// Makes a long-term key id that encodes `account` exactly as AWS does, with random bits
    /// everywhere else, so decoders (and attackers) read the configured account from it.
    pub fn generate_for(account: AccountId) -> Self {
        Self::generate_with("AKIA", account)
    }

    /// Makes a temporary (`ASIA`) key id encoding `account`, as STS issues for a session.
    pub fn generate_session_for(account: AccountId) -> Self {
        Self::generate_with("ASIA", account)
    }

    /// Whether this is a temporary key id (`ASIA`), one of an STS session.
    pub fn is_session(&self) -> bool {
        self.0.starts_with("ASIA")
    }

    fn generate_with(prefix: &str, account: AccountId) -> Self {
        let mut bytes = [0u8; 10];
        OsRng.fill_bytes(&mut bytes);
        let random_low = u64::from(bytes[5] & 0x7f);
        let head = (account.as_u64() << 7) | random_low;
        bytes[..6].copy_from_slice(&head.to_be_bytes()[2..]);
        Self(format!("{prefix}{}", BASE32_NOPAD.encode(&bytes)))
    }

    /// The account id encoded in the key id.
    pub fn account_id(&self) -> AccountId {
        let bytes = BASE32_NOPAD
            .decode(&self.0.as_bytes()[4..])
            .expect("parse checked 16 base32 characters");
        let mut head = [0u8; 8];
        head[2..].copy_from_slice(&bytes[..6]);
        AccountId((u64::from_be_bytes(head) & ACCOUNT_MASK) >> 7)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessKeyId({})", self.0)
    }
}

/// A secret access key: 40 characters of the standard base64 alphabet. Never printed by
/// `Debug`; there is deliberately no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretAccessKey(String);

impl SecretAccessKey {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = s.len() == 40
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new("a secret access key is 40 base64 characters"))
        }
    }

    /// A secret STS issued with a session: STS documents no fixed length (AWS's are 40
    /// characters today, stand-ins differ), so any base64 text of a sane length.
    pub fn parse_issued(s: &str) -> Result<Self, Invalid> {
        let ok = (16..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/+=".contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new("a secret access key is base64 text"))
        }
    }

    /// 30 bytes from the OS CSPRNG encode to exactly 40 base64 characters without padding.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 30];
        OsRng.fill_bytes(&mut bytes);
        Self(BASE64.encode(&bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey(<redacted>)")
    }
}

/// An IAM user name under IAM's own rules: 1 to 64 of `[A-Za-z0-9+=,.@_-]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IamUserName(String);

impl IamUserName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new(
                "an IAM user name is 1 to 64 of A-Z a-z 0-9 + = , . @ _ -",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IamUserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IamUserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IamUserName({})", self.0)
    }
}

/// An AWS region name such as `us-east-1` or `us-gov-west-1`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let parts: Vec<&str> = s.split('-').collect();
        let ok = s.len() <= 32
            && parts.len() >= 3
            && parts[0].len() == 2
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && !parts[parts.len() - 1].is_empty();
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new("not an AWS region name such as us-east-1"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_published_example() {
        // A key id from the write-up that published the layout, and the account it names.
        let key = AccessKeyId::parse("ASIAY34FZKBOKMUTVV7A").unwrap();
        assert_eq!(key.account_id().to_string(), "609629065308");
    }

    #[test]
    fn generated_key_encodes_its_account() {
        for _ in 0..200 {
            let account = AccountId::random();
            let key = AccessKeyId::generate_for(account);
            assert!(key.as_str().starts_with("AKIA"));
            assert_eq!(AccessKeyId::parse(key.as_str()).unwrap(), key);
            assert_eq!(key.account_id(), account);
        }
        for edge in ["000000000000", "999999999999", "123456789012"] {
            let account = AccountId::parse(edge).unwrap();
            assert_eq!(AccessKeyId::generate_for(account).account_id(), account);
            let session = AccessKeyId::generate_session_for(account);
            assert!(session.is_session() && session.as_str().starts_with("ASIA"));
            assert_eq!(AccessKeyId::parse(session.as_str()).unwrap(), session);
            assert_eq!(session.account_id(), account);
        }
    }

    #[test]
    fn key_ids_differ() {
        let a = AccountId::parse("123456789012").unwrap();
        assert_ne!(AccessKeyId::generate_for(a), AccessKeyId::generate_for(a));
    }

    #[test]
    fn rejects_bad_key_ids() {
        for bad in [
            "",
            "AKIA",
            "AKIAIOSFODNN7EXAMPL",
            "AKIAIOSFODNN7EXAMPLE1",
            "akiaiosfodnn7example",
            "AKIA0OSFODNN7EXAMPLE",
            "XKIAIOSFODNN7EXAMPLE",
        ] {
            assert!(AccessKeyId::parse(bad).is_err(), "{bad}");
        }
        assert!(AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").is_ok());
    }

    #[test]
    fn secrets_are_40_chars_and_never_print() {
        let s = SecretAccessKey::generate();
        assert_eq!(s.expose().len(), 40);
        assert!(SecretAccessKey::parse(s.expose()).is_ok());
        assert!(!format!("{s:?}").contains(s.expose()));
        assert!(SecretAccessKey::parse("short").is_err());
    }

    #[test]
    fn account_ids() {
        assert_eq!(
            AccountId::parse("012345678901").unwrap().to_string(),
            "012345678901"
        );
        for bad in ["", "12345678901", "1234567890123", "12345678901a"] {
            assert!(AccountId::parse(bad).is_err());
        }
        for _ in 0..100 {
            assert_eq!(AccountId::random().to_string().len(), 12);
        }
    }

    #[test]
    fn user_names_follow_iam_rules() {
        assert!(IamUserName::parse("svc-backup_prod.2=a,b@c+d").is_ok());
        assert!(IamUserName::parse("").is_err());
        assert!(IamUserName::parse(&"a".repeat(65)).is_err());
        assert!(IamUserName::parse("a b").is_err());
        assert!(IamUserName::parse("a/b").is_err());
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "us", "us-east", "US-EAST-1", "us-east-x", "us--1"] {
            assert!(Region::parse(bad).is_err(), "{bad}");
        }
    }
}
