//! Session decoys (`aws_session` tokens): the session token an STS session carries, the part of
//! the credentials only a session has, and how long one lasts.

use std::fmt;

use data_encoding::BASE64;
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Invalid;

/// An STS session token (`aws_session_token`). Never printed by `Debug`; no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

/// What every token STS hands out today starts with (`IQoJb3JpZ2luX2Vj`, the base64 of a
/// protobuf field naming the origin): a made-up token without it would stand out.
const TOKEN_HEAD: &str = "IQoJb3JpZ2luX2Vj";

impl SessionToken {
    /// A token as real sessions carry them: AWS's head, then base64 of random bytes, about as
    /// long as a GetSessionToken answer's.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 270];
        OsRng.fill_bytes(&mut bytes);
        Self(format!("{TOKEN_HEAD}{}", BASE64.encode(&bytes)))
    }

    /// Base64 text of a sane length: what STS returns, and what the sensor compares.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = (16..=4096).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new("a session token is base64 text"))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in constant time (the sensor checks a request's token with it).
    pub fn matches(&self, sent: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(sent.as_bytes());
        a.ct_eq(&b).into()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// What session credentials carry beyond a key and secret.
#[derive(Clone, Debug)]
pub struct SessionPart {
    pub token: SessionToken,
    /// When the session stops working (unix ms).
    pub expires_at: i64,
}

/// How long an issued session lasts: `sts:GetSessionToken`'s range for an IAM user, 15 minutes
/// to 36 hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionDuration(u64);

impl SessionDuration {
    pub const DEFAULT: Self = Self(12 * 3600);
    const MIN: u64 = 15 * 60;
    const MAX: u64 = 36 * 3600;

    pub fn from_secs(secs: u64) -> Result<Self, Invalid> {
        if (Self::MIN..=Self::MAX).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(Invalid::new(
                "a session lasts from 15 minutes to 36 hours (sts:GetSessionToken's range)",
            ))
        }
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }

    pub fn as_millis(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX / 1000) * 1000
    }
}

impl Default for SessionDuration {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Whether a call with these fields may be STS issuing a session (a successful
/// `GetSessionToken`), whose response names the key it issued: the one shape of record whose
/// meaning depends on more than who made it. `None` fields are missing ones.
pub fn may_issue_session(
    event_name: Option<&str>,
    event_source: Option<&str>,
    failed: bool,
) -> bool {
    event_name == Some("GetSessionToken") && event_source == Some("sts.amazonaws.com") && !failed
}

/// The session key a CloudTrail record of a successful `sts:GetSessionToken` says was issued
/// (`responseElements.credentials.accessKeyId`). The server's own issues are told from uses by
/// this key being one it issued, never by source address or user agent (both can be forged).
pub fn issued_session_key(r: &crate::cloudtrail::Record) -> Option<crate::AccessKeyId> {
    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(rename = "responseElements")]
        response: Option<Response>,
    }
    #[derive(serde::Deserialize)]
    struct Response {
        credentials: Option<Credentials>,
    }
    #[derive(serde::Deserialize)]
    struct Credentials {
        #[serde(rename = "accessKeyId")]
        access_key_id: Option<String>,
    }
    if !may_issue_session(
        Some(&r.event_name),
        Some(&r.event_source),
        r.error_code.is_some(),
    ) {
        return None;
    }
    let event: Event = serde_json::from_str(r.raw.get()).ok()?;
    let key = event.response?.credentials?.access_key_id?;
    // Not only `ASIA`: whether the key is one the server issued is the database's to say.
    crate::AccessKeyId::parse(&key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_look_like_sts_and_parse() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("IQoJb3JpZ2luX2Vj"));
        assert_eq!(SessionToken::parse(a.expose()).unwrap(), a);
        assert!(a.matches(a.expose()) && !a.matches(b.expose()));
        assert!(!format!("{a:?}").contains(&a.expose()[20..40]));
        assert!(SessionToken::parse("not a token!").is_err());
    }

    #[test]
    fn reads_the_issued_key_of_get_session_token() {
        let event = |name: &str, key: &str| {
            format!(
                r#"{{"Records":[{{"eventVersion":"1.08","eventID":"e1","eventTime":"2026-01-01T00:00:00Z","eventName":"{name}","eventSource":"sts.amazonaws.com","awsRegion":"us-east-1","userIdentity":{{"type":"IAMUser","accessKeyId":"AKIAIOSFODNN7EXAMPLE","userName":"svc"}},"responseElements":{{"credentials":{{"accessKeyId":"{key}","expiration":"Jan 1, 2026 12:00:00 PM"}}}}}}]}}"#
            )
        };
        let parse = |text: String| {
            crate::cloudtrail::parse(text.as_bytes(), &crate::cloudtrail::Limits::DEFAULT)
                .unwrap()
                .records
                .remove(0)
        };
        let r = parse(event("GetSessionToken", "ASIAY34FZKBOKMUTVV7A"));
        assert_eq!(
            issued_session_key(&r).unwrap().as_str(),
            "ASIAY34FZKBOKMUTVV7A"
        );
        assert!(
            issued_session_key(&parse(event("GetCallerIdentity", "ASIAY34FZKBOKMUTVV7A")))
                .is_none()
        );
        assert!(issued_session_key(&parse(event("GetSessionToken", "not a key"))).is_none());
    }

    #[test]
    fn durations_are_in_sts_range() {
        assert_eq!(SessionDuration::default().as_secs(), 43_200);
        assert!(SessionDuration::from_secs(899).is_err());
        assert!(SessionDuration::from_secs(36 * 3600 + 1).is_err());
        assert_eq!(
            SessionDuration::from_secs(900).unwrap().as_millis(),
            900_000
        );
    }
}
