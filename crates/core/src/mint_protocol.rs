//! The wire protocol between the canarykeys server and the mint service: routes, JSON bodies,
//! error codes and the request signature. Both ends use this module: the mint Lambda
//! (`lambdas/mint`) serves it and `canarykeys_aws::GatewayMinter` calls it, so the two cannot
//! drift apart; `crates/aws/tests/gateway.rs` runs the client against the service end to end.
//!
//! | request | answer |
//! |---|---|
//! | `POST /users` `{"username"?, "path"?}` | `201` [`CreatedUser`]; `409` `name_taken` |
//! | `DELETE /users/{username}/keys/{access_key_id}` | `204`, also when either is already gone |
//!
//! Every failure is `{"error":{"code","message"}}` ([`ErrorBody`]).
//!
//! # Signature
//!
//! Every request carries `X-Canarykeys-Signature: t=<unix seconds>,v1=<hex>`, where `<hex>` is
//! HMAC-SHA256 with the shared secret over `"<t>." + payload` (the scheme of
//! [`crate::signing`]) and the payload is
//!
//! ```text
//! <METHOD> <path>\n<body>
//! ```
//!
//! - `METHOD` in upper case (`POST`, `DELETE`);
//! - `path` as the service routes it, from its root: `/users` or
//!   `/users/<username>/keys/<access key id>`, without the API Gateway stage, without a query
//!   string, and not percent-encoded (none is needed: IAM names and key ids use only characters
//!   that are legal in a URL path);
//! - `body` the raw request body, empty for `DELETE`.
//!
//! The service refuses a `t` more than 5 minutes from its clock. Binding method and path into the
//! signature means a captured signed request cannot be turned into a different one: a DELETE of
//! one key does not authorise a DELETE of another, and a POST's signature is no DELETE's.

use std::fmt;

use crate::{signing, Invalid};
use serde::{Deserialize, Serialize};

/// The signature header (lower case, as HTTP/2 and API Gateway v2 deliver it).
pub const SIGNATURE_HEADER: &str = signing::HEADER;
/// The route that creates a user with a key.
pub const USERS_PATH: &str = "/users";

/// Error codes of [`ErrorBody`]. The client acts on `name_taken`; the rest are for people.
pub mod codes {
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const TOO_LARGE: &str = "body_too_large";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const INVALID: &str = "invalid";
    pub const NAME_TAKEN: &str = "name_taken";
    pub const IAM_DENIED: &str = "iam_access_denied";
    pub const IAM_LIMIT: &str = "iam_limit_exceeded";
    pub const IAM_INVALID: &str = "iam_invalid_input";
    pub const DELETE_CONFLICT: &str = "delete_conflict";
    pub const IAM_UNAVAILABLE: &str = "iam_unavailable";
    pub const IAM_ERROR: &str = "iam_error";
}

/// The bytes the signature covers: `<METHOD> <path>\n<body>` (see the module docs).
pub fn signed_payload(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(method.len() + path.len() + 2 + body.len());
    payload.extend_from_slice(method.to_ascii_uppercase().as_bytes());
    payload.push(b' ');
    payload.extend_from_slice(path.as_bytes());
    payload.push(b'\n');
    payload.extend_from_slice(body);
    payload
}

/// The header value for a request, signed at `now` (unix seconds).
pub fn sign(secret: &[u8], now: i64, method: &str, path: &str, body: &[u8]) -> String {
    signing::sign(secret, now, &signed_payload(method, path, body))
}

/// Checks a request's header value at `now` (unix seconds).
pub fn verify(
    secret: &[u8],
    header: &str,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<(), Invalid> {
    signing::verify(secret, header, &signed_payload(method, path, body), now)
}

/// The path that deletes `access_key_id` of `username`.
pub fn key_path(username: &str, access_key_id: &str) -> String {
    format!("{USERS_PATH}/{username}/keys/{access_key_id}")
}

/// Body of `POST /users`. Unknown fields are refused, so a misspelt `"usrename"` is a 400 rather
/// than a user with a generated name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The IAM user name; the service generates an ordinary one when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The IAM path (`/`, `/service/`); the service's configured path when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Body of the `201` answer to `POST /users`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedUser {
    pub username: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The 12-digit account, from the user's ARN.
    pub account_id: String,
    pub arn: String,
}

impl fmt::Debug for CreatedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedUser")
            .field("username", &self.username)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("arn", &self.arn)
            .finish()
    }
}

/// `{"error":{"code","message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000;

    #[test]
    fn the_payload_is_method_path_newline_body() {
        assert_eq!(
            signed_payload("post", "/users", br#"{"a":1}"#),
            b"POST /users\n{\"a\":1}"
        );
        assert_eq!(
            signed_payload("DELETE", &key_path("j.meyer", "AKIA"), b""),
            b"DELETE /users/j.meyer/keys/AKIA\n"
        );
    }

    #[test]
    fn a_known_vector_pins_the_scheme() {
        // The value `printf '%s.POST /users\n%s' 1700000000 "$body" | openssl dgst -sha256 -hmac
        // 0123456789abcdef0123` gives (docs/deploy.md); crates/aws's client is held to the same
        // scheme by its end-to-end test against this service.
        let body = br#"{"username":"svc-check-ops"}"#;
        assert_eq!(
            sign(
                b"0123456789abcdef0123",
                1_700_000_000,
                "POST",
                "/users",
                body
            ),
            "t=1700000000,v1=9d7c5f2c698fc6d3b8c39bef2b9ab57a1ba345b55892fb24e06ba06fb8550b71"
        );
    }

    #[test]
    fn a_signature_is_bound_to_method_path_and_body() {
        let path = key_path("j.meyer", "AKIAAAAAAAAAAAAAAAAA");
        let h = sign(b"secret", NOW, "DELETE", &path, b"");
        verify(b"secret", &h, "DELETE", &path, b"", NOW).unwrap();
        assert!(verify(b"secret", &h, "POST", &path, b"", NOW).is_err());
        let other = key_path("j.meyer", "AKIABBBBBBBBBBBBBBBB");
        assert!(verify(b"secret", &h, "DELETE", &other, b"", NOW).is_err());
        assert!(verify(b"secret", &h, "DELETE", &path, b"x", NOW).is_err());
        assert!(verify(b"wrong", &h, "DELETE", &path, b"", NOW).is_err());
        assert!(verify(b"secret", &h, "DELETE", &path, b"", NOW + 301).is_err());
    }

    #[test]
    fn create_bodies_refuse_unknown_fields_and_secrets_stay_out_of_debug() {
        let ok: CreateUser = serde_json::from_str(r#"{"username":"j.meyer"}"#).unwrap();
        assert_eq!(ok.username.as_deref(), Some("j.meyer"));
        assert_eq!(serde_json::to_string(&CreateUser::default()).unwrap(), "{}");
        assert!(serde_json::from_str::<CreateUser>(r#"{"usrename":"x"}"#).is_err());
        let created = CreatedUser {
            username: "u".into(),
            access_key_id: "AKIA".into(),
            secret_access_key: "very-secret".into(),
            account_id: "123456789012".into(),
            arn: "arn".into(),
        };
        assert!(!format!("{created:?}").contains("very-secret"));
    }
}
