//! A sensor request as a CloudTrail-shaped record, so it takes the same path as every other
//! hit (match, dedupe, store, alert). The record describes the request without repeating it:
//! header names but no values (the `Authorization` header is a credential), query keys but no
//! values, and never the body.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::services::sensor::KeyHolder;
use axum::http::request::Parts;
use canarykeys_core::cloudtrail::{Identity, Record};
use serde_json::{json, Value};
use sha2::Digest;
use url::form_urlencoded;

use super::protocol::Call;
use super::respond::{AwsError, Caller};

/// What the signature check found. Only `Verified` proves anything about the caller; every
/// other verdict is answered as a bad signature, never with the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Verified,
    Failed,
    /// The body was past the size cap, so a signature over it could not be checked.
    BodyTooLarge,
    /// The body did not arrive within the request deadline, so it could not be checked either.
    BodyTooSlow,
    /// Signature Version 2 (S3's, or the query APIs'), which the sensor does not check.
    SignatureV2,
    /// The token's secret does not open with this server's sealing key.
    KeyUnavailable,
}

impl Verdict {
    /// The note a responder reads on the hit: what the request proves about the secret.
    pub fn note(self) -> &'static str {
        match self {
            Self::Verified => "signature verified: the caller holds the secret key",
            Self::Failed => "signature did not verify: the key id leaked; the secret may not have",
            Self::BodyTooLarge => {
                "signature not checked (the body was over the sensor's size limit): the key id \
                 leaked; the secret may have too"
            }
            Self::BodyTooSlow => {
                "signature not checked (the body did not arrive within the request deadline): \
                 the key id leaked; the secret may have too"
            }
            Self::SignatureV2 => {
                "signature not checked (Signature Version 2): the key id leaked; the secret may \
                 have too"
            }
            Self::KeyUnavailable => {
                "signature not checked: key unavailable (the server's sealing key does not open \
                 this token's secret): the key id leaked; the secret may have too"
            }
        }
    }

    /// Whether the signature was compared at all.
    pub fn checked(self) -> bool {
        matches!(self, Self::Verified | Self::Failed)
    }
}

/// A fresh request id in the form the protocol's AWS service uses: S3's 16 hex digits, or a
/// UUID. It is also the hit's event id, so the caller's copy finds the hit.
pub fn request_id(s3: bool) -> String {
    let mut b: [u8; 16] = rand::random();
    if s3 {
        return b[..8].iter().map(|x| format!("{x:02X}")).collect();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The IAM user id (`AIDA…`, 21 characters) AWS would report for the token's user: stable per
/// token, and derived by a hash so it reveals nothing about the token id.
pub fn user_id(token: &KeyHolder) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = sha2::Sha256::digest(format!("canarykeys-sensor-user-id:{}", token.id).as_bytes());
    let tail: String = digest
        .iter()
        .take(17)
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    format!("AIDA{tail}")
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Everything the hit needs that is not in the call itself.
pub struct Context<'a> {
    pub parts: &'a Parts,
    pub peer: SocketAddr,
    pub key_id: &'a str,
    pub token: &'a KeyHolder,
    pub caller: &'a Caller,
    pub request_id: &'a str,
    pub verdict: Verdict,
    pub presigned: bool,
    /// When the call arrived, by the server's clock.
    pub now_millis: i64,
    pub error: Option<&'a AwsError>,
}

pub fn record(call: &Call, cx: &Context<'_>) -> Record {
    let header = |name: &str| {
        cx.parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| truncate(v, 1024))
    };
    Record {
        event_id: cx.request_id.to_owned(),
        event_time: Some(cx.now_millis),
        fallbacks: Vec::new(),
        event_name: call.operation.clone(),
        event_source: format!("{}.amazonaws.com", call.service),
        aws_region: Some(cx.caller.region.clone()),
        source_ip: Some(cx.peer.ip().to_string()),
        user_agent: header("user-agent"),
        error_code: cx.error.map(|e| e.code.to_owned()),
        error_message: cx.error.map(|e| e.message.clone()),
        recipient_account_id: Some(cx.caller.account.clone()),
        identity: Identity {
            kind: Some("IAMUser".into()),
            access_key_id: Some(cx.key_id.to_owned()),
            user_name: Some(cx.token.username.to_string()),
            account_id: Some(cx.caller.account.clone()),
            arn: Some(cx.caller.arn.clone()),
            principal_id: Some(cx.caller.user_id.clone()),
        },
        tls_host: header("host").map(|h| truncate(&h, 255)),
        vpc_endpoint_id: None,
        request_id: Some(cx.request_id.to_owned()),
        event_type: Some("AwsApiCall".into()),
        read_only: None,
        raw: describe(call, cx).into(),
    }
}

/// The small description kept as the hit's raw record.
fn describe(call: &Call, cx: &Context<'_>) -> Value {
    let query_keys: BTreeSet<String> =
        form_urlencoded::parse(cx.parts.uri.query().unwrap_or_default().as_bytes())
            .map(|(k, _)| truncate(&k, 128))
            .take(64)
            .collect();
    let header_names: BTreeSet<&str> = cx
        .parts
        .headers
        .keys()
        .map(|k| k.as_str())
        .take(64)
        .collect();
    let mut raw = json!({
        "method": cx.parts.method.as_str(),
        "path": truncate(cx.parts.uri.path(), 1024),
        "query_keys": query_keys,
        "header_names": header_names,
        "service": call.service,
        "operation": call.operation,
        "protocol": call.protocol.as_str(),
        "signature": match (cx.verdict, cx.presigned) {
            (Verdict::SignatureV2, true) => "v2-presigned-url",
            (Verdict::SignatureV2, false) => "v2-authorization-header",
            (_, true) => "presigned-url",
            (_, false) => "authorization-header",
        },
        // Unverified unless proven: a signature that was not checked is no proof either.
        "verified": cx.verdict == Verdict::Verified,
        "signature_checked": cx.verdict.checked(),
    });
    if let Some(bucket) = &call.bucket {
        raw["request_parameters"] = json!({"bucketName": bucket, "key": call.key});
    }
    raw
}
