//! The canarykeys mint service: a Lambda behind API Gateway that creates and deletes decoy IAM
//! users and their access keys when the canarykeys server asks, so the server itself never holds
//! IAM credentials. It keeps no state beyond IAM; the server's database links users to tokens.
//!
//! [`Mint::handle`] is the whole service as one function of (method, path, signature, body), so
//! the Lambda glue ([`apigw`]) and any local HTTP adapter in tests call the same code. The routes
//! and the signature scheme are in [`protocol`].

pub mod apigw;
pub mod config;
pub mod iam;
/// The wire protocol, shared with the server's client (`canarykeys_aws::GatewayMinter`).
pub use canarykeys_core::mint_protocol as protocol;

use std::time::{SystemTime, UNIX_EPOCH};

use canarykeys_core::{names, AccessKeyId, IamUserName};
use serde::Serialize;

pub use config::{Config, ConfigError, MintSecret};
use iam::{IamFailure, Kind};
use protocol::{codes, CreateUser, ErrorBody};

/// The largest request body read. A create body is under 200 bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// How often the service itself picks another generated name when one is taken.
const GENERATED_NAME_TRIES: usize = 5;
/// What a 503 tells the caller to wait, in seconds. The SDK has already retried IAM by then.
const RETRY_AFTER_SECS: u64 = 2;

/// One request, as the HTTP layer (API Gateway or a test adapter) hands it over.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The route path from the service's root (stage and query string removed).
    pub path: &'a str,
    /// The `X-Canarykeys-Signature` header, if sent.
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// The answer: a status, a JSON body (none for 204) and, for 503, a Retry-After.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<String>,
    pub retry_after: Option<u64>,
    /// For 405: the methods the route takes.
    pub allow: Option<&'static str>,
}

impl Reply {
    fn json(status: u16, body: &impl Serialize) -> Self {
        Self {
            status,
            body: Some(serde_json::to_string(body).expect("plain structs serialise")),
            retry_after: None,
            allow: None,
        }
    }

    fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self::json(status, &ErrorBody::new(code, message))
    }

    fn from_iam(failure: &IamFailure) -> Self {
        let (status, code) = match failure.kind {
            Kind::NameTaken => (409, codes::NAME_TAKEN),
            Kind::Unavailable => (503, codes::IAM_UNAVAILABLE),
            // Retrying cannot help until the role is fixed, so this is a 4xx the client gives up on.
            Kind::Denied => (403, codes::IAM_DENIED),
            Kind::Limit => (422, codes::IAM_LIMIT),
            Kind::Invalid => (422, codes::IAM_INVALID),
            Kind::DeleteConflict => (409, codes::DELETE_CONFLICT),
            Kind::NotFound | Kind::Other => (502, codes::IAM_ERROR),
        };
        let mut reply = Self::error(status, code, failure.message.clone());
        if status == 503 {
            reply.retry_after = Some(RETRY_AFTER_SECS);
        }
        reply
    }

    /// The content type, when there is a body.
    pub fn content_type(&self) -> Option<&'static str> {
        self.body.as_ref().map(|_| "application/json")
    }
}

/// The service, built once per cold start and shared by every invocation.
#[derive(Clone, Debug)]
pub struct Mint {
    iam: aws_sdk_iam::Client,
    config: Config,
}

impl Mint {
    pub fn new(iam: aws_sdk_iam::Client, config: Config) -> Self {
        Self { iam, config }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Answers one request at the current time.
    pub async fn handle(&self, request: Request<'_>) -> Reply {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.handle_at(request, now).await
    }

    /// Answers one request as if at `now` (unix seconds). The signature is checked before the
    /// route, so an unsigned caller learns nothing about what exists.
    pub async fn handle_at(&self, request: Request<'_>, now: i64) -> Reply {
        let Request {
            method,
            path,
            signature,
            body,
        } = request;
        if body.len() > MAX_BODY_BYTES {
            return Reply::error(413, codes::TOO_LARGE, "the body is over 16 KiB");
        }
        let Some(signature) = signature else {
            return Reply::error(401, codes::UNAUTHORIZED, "no X-Canarykeys-Signature header");
        };
        let secret = self.config.secret.expose();
        if let Err(why) = protocol::verify(secret, signature, method, path, body, now) {
            tracing::warn!(%method, %path, reason = %why.0, "refused an unsigned or badly signed request");
            return Reply::error(401, codes::UNAUTHORIZED, why.0);
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method.to_ascii_uppercase().as_str(), segments.as_slice()) {
            ("POST", ["users"]) => self.create(body).await,
            ("DELETE", ["users", user, "keys", key]) => self.delete(user, key).await,
            (_, ["users"]) => method_not_allowed("POST"),
            (_, ["users", _, "keys", _]) => method_not_allowed("DELETE"),
            _ => Reply::error(404, codes::NOT_FOUND, format!("no route {path}")),
        }
    }

    async fn create(&self, body: &[u8]) -> Reply {
        let input: CreateUser = match serde_json::from_slice(body) {
            Ok(input) => input,
            Err(e) => return Reply::error(400, codes::BAD_REQUEST, format!("body: {e}")),
        };
        let path = input.path.unwrap_or_else(|| self.config.user_path.clone());
        if let Err(why) = config::check_iam_path(&path) {
            return Reply::error(422, codes::INVALID, format!("path: {why}"));
        }
        if !path.starts_with(&self.config.user_path) {
            let allowed = &self.config.user_path;
            return Reply::error(
                422,
                codes::INVALID,
                format!("path: must lie under {allowed}"),
            );
        }
        let given = match input.username.as_deref().map(checked_name).transpose() {
            Ok(given) => given,
            Err(why) => return Reply::error(422, codes::INVALID, format!("username: {why}")),
        };
        // A caller's name is tried once: its taking is the caller's to handle. A name of our own
        // making is replaced when taken.
        let tries = if given.is_some() {
            1
        } else {
            GENERATED_NAME_TRIES
        };
        let mut last = None;
        for _ in 0..tries {
            let name = given.clone().unwrap_or_else(names::ordinary_user_name);
            match iam::create_user_with_key(&self.iam, &name, &path).await {
                Ok(created) => {
                    tracing::info!(user = %created.username, key = %created.access_key_id, "created");
                    return Reply::json(201, &created);
                }
                Err(failure) if failure.kind == Kind::NameTaken => last = Some(failure),
                Err(failure) => {
                    tracing::error!(user = %name, error = %failure, "create failed");
                    return Reply::from_iam(&failure);
                }
            }
        }
        Reply::from_iam(&last.expect("at least one try"))
    }

    async fn delete(&self, user: &str, key: &str) -> Reply {
        let user = match IamUserName::parse(user) {
            Ok(user) => user,
            Err(why) => return Reply::error(422, codes::INVALID, format!("username: {}", why.0)),
        };
        if let Err(why) = AccessKeyId::parse(key) {
            return Reply::error(422, codes::INVALID, format!("access key id: {}", why.0));
        }
        match iam::delete_user_and_key(&self.iam, &user, key).await {
            Ok(()) => {
                tracing::info!(%user, %key, "deleted");
                Reply {
                    status: 204,
                    body: None,
                    retry_after: None,
                    allow: None,
                }
            }
            Err(failure) => {
                tracing::error!(%user, %key, error = %failure, "delete failed");
                Reply::from_iam(&failure)
            }
        }
    }
}

/// IAM's rules and the decoy-tells check: the server generates ordinary names, but the service
/// checks again rather than trusting any caller.
fn checked_name(raw: &str) -> Result<IamUserName, String> {
    let name = IamUserName::parse(raw).map_err(|e| e.0)?;
    names::check_no_tells(name.as_str()).map_err(|e| e.0)?;
    Ok(name)
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let mut reply = Reply::error(
        405,
        codes::METHOD_NOT_ALLOWED,
        format!("this route takes {allow}"),
    );
    reply.allow = Some(allow);
    reply
}
