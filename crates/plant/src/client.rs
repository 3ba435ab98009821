//! The HTTP client `plant` uses: create and delete tokens with the planting API key, and retire
//! a manage secret an older version left on disk. Every answer is parsed into typed values
//! before anything is written to disk.

use std::fmt;
use std::time::Duration;

use canarykeys_core::{
    AccessKeyId, Invalid, ManageSecret, OutputFormat, Region, SecretAccessKey, SessionToken,
    TokenId,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use url::Url;

use super::PlantError;

/// The server's base URL: http or https, nothing after the path.
#[derive(Clone, Debug)]
pub struct ServerUrl(Url);

impl ServerUrl {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let url = Url::parse(s.trim()).map_err(|_| Invalid::new("not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Invalid::new(
                "the server URL starts with http:// or https://",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(Invalid::new(
                "the server URL has no query, fragment or user name",
            ));
        }
        Ok(Self(url))
    }

    /// `path` under the base, keeping a base path such as `https://host/canarykeys/`.
    fn join(&self, path: &str) -> Url {
        let mut url = self.0.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        url
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

/// An API key (`ck_…`). Never printed.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        if !s.starts_with("ck_") || s.len() < 10 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Invalid::new("an API key starts with `ck_`"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

/// What a create asks for.
#[derive(Serialize)]
pub struct CreateRequest {
    kind: &'static str,
    pub memo: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_use: Option<String>,
}

impl CreateRequest {
    /// Session credentials (`aws_session`) instead of a long-term key.
    pub fn session(mut self) -> Self {
        self.kind = "aws_session";
        self
    }

    pub fn new(memo: String) -> Self {
        Self {
            kind: "aws_keys",
            memo,
            email: None,
            webhook_url: None,
            expires_in: None,
            expected_use: None,
        }
    }
}

/// The keys of a token, parsed.
#[derive(Clone, Debug)]
pub struct Keys {
    pub access_key_id: AccessKeyId,
    pub secret_access_key: SecretAccessKey,
    pub region: Region,
    pub output: OutputFormat,
    /// For session credentials: the session token and when it expires (RFC 3339).
    pub session: Option<(SessionToken, String)>,
}

/// A token the server just made. Its manage secret is not kept: nothing on the machine may
/// silence the token, and the API key deletes it.
#[derive(Debug)]
pub struct CreatedToken {
    pub id: TokenId,
    pub expires_at: Option<String>,
    pub keys: Keys,
    /// A session token's refresh secret: it issues sessions and does nothing else, so the
    /// state may keep it for `--refresh`.
    pub refresh_secret: Option<String>,
}

#[derive(Deserialize)]
struct CreatedJson {
    id: String,
    expires_at: Option<String>,
    aws: AwsJson,
    #[serde(default)]
    refresh_secret: Option<String>,
}

#[derive(Deserialize)]
struct SessionJson {
    aws: AwsJson,
}

#[derive(Deserialize)]
pub struct AwsJson {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub output: String,
    #[serde(default)]
    pub session_token: Option<String>,
    #[serde(default)]
    pub expiration: Option<String>,
}

impl AwsJson {
    pub fn parse(&self) -> Result<Keys, Invalid> {
        let session = match (&self.session_token, &self.expiration) {
            (Some(t), Some(e)) => {
                time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| Invalid::new("the expiration is not an RFC 3339 time"))?;
                Some((SessionToken::parse(t)?, e.clone()))
            }
            (None, None) => None,
            _ => return Err(Invalid::new("a session token comes with its expiration")),
        };
        Ok(Keys {
            access_key_id: AccessKeyId::parse(&self.access_key_id)?,
            secret_access_key: SecretAccessKey::parse(&self.secret_access_key)?,
            region: Region::parse(&self.region)?,
            output: self.output.parse()?,
            session,
        })
    }
}

#[derive(Deserialize)]
struct ErrorJson {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
    #[serde(default)]
    fields: Vec<FieldJson>,
}

#[derive(Deserialize)]
struct FieldJson {
    field: String,
    message: String,
}

pub struct Client {
    http: reqwest::Client,
    pub server: ServerUrl,
}

impl Client {
    pub fn new(server: ServerUrl) -> Result<Self, PlantError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PlantError::Unreachable(server.to_string(), e.to_string()))?;
        Ok(Self { http, server })
    }

    pub async fn create(
        &self,
        key: &ApiKey,
        req: &CreateRequest,
    ) -> Result<CreatedToken, PlantError> {
        let resp = self
            .http
            .post(self.server.join("/api/v1/tokens"))
            .bearer_auth(&key.0)
            .json(req)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status() != StatusCode::CREATED {
            return Err(refusal(resp).await);
        }
        let body: CreatedJson = resp.json().await.map_err(|_| self.garbled())?;
        let parse = || -> Result<CreatedToken, Invalid> {
            Ok(CreatedToken {
                id: TokenId::parse(&body.id)?,
                expires_at: body.expires_at.clone(),
                keys: body.aws.parse()?,
                refresh_secret: body.refresh_secret.clone(),
            })
        };
        parse().map_err(|_| self.garbled())
    }

    /// A fresh session for a session token, with its refresh secret (no API key).
    pub async fn refresh(&self, id: &TokenId, secret: &str) -> Result<Keys, PlantError> {
        let resp = self
            .http
            .post(self.server.join(&format!("/api/v1/tokens/{id}/session")))
            .bearer_auth(secret)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status() != StatusCode::OK {
            return Err(refusal(resp).await);
        }
        let body: SessionJson = resp.json().await.map_err(|_| self.garbled())?;
        match body.aws.parse() {
            Ok(keys) if keys.session.is_some() => Ok(keys),
            _ => Err(self.garbled()),
        }
    }

    /// Deletes a token with the planting API key. A token already gone (expired, deleted in the
    /// console) counts as deleted.
    pub async fn delete(&self, id: &TokenId, key: &ApiKey) -> Result<(), PlantError> {
        let resp = self
            .http
            .delete(self.server.join(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(&key.0)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match resp.status() {
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(refusal(resp).await),
        }
    }

    /// Closes a token's expected-use window with the planting API key. `true`: one was open.
    pub async fn confirm(&self, id: &TokenId, key: &ApiKey) -> Result<bool, PlantError> {
        #[derive(Deserialize)]
        struct Confirmed {
            confirmed: bool,
        }
        let resp = self
            .http
            .post(self.server.join(&format!("/api/v1/tokens/{id}/confirm")))
            .bearer_auth(&key.0)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status() != StatusCode::OK {
            return Err(refusal(resp).await);
        }
        let body: Confirmed = resp.json().await.map_err(|_| self.garbled())?;
        Ok(body.confirmed)
    }

    /// Has the server replace a token's manage secret, so the copy an older version kept on
    /// this machine stops working; the new secret is not kept. A 404 means the old secret
    /// works no longer already (the token is gone, or the secret was replaced).
    pub async fn retire_secret(&self, id: &TokenId, old: &ManageSecret) -> Result<(), PlantError> {
        let resp = self
            .http
            .post(
                self.server
                    .join(&format!("/api/v1/tokens/{id}/manage-secret")),
            )
            .bearer_auth(old.expose())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match resp.status() {
            StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(refusal(resp).await),
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> PlantError {
        // reqwest's text names the URL and the cause (connection refused, DNS, TLS).
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why = format!("{why}: {s}");
            source = s.source();
        }
        PlantError::Unreachable(self.server.to_string(), why)
    }

    fn garbled(&self) -> PlantError {
        PlantError::Server(format!(
            "{} answered with something that is not a canarykeys token",
            self.server
        ))
    }
}

/// The server's refusal in its own words (control characters removed: the text came over the
/// network and goes to a terminal).
async fn refusal(resp: reqwest::Response) -> PlantError {
    let status = resp.status();
    let body: Option<ErrorJson> = resp.json().await.ok();
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
    let message = body.as_ref().map(|b| {
        let mut m = clean(&b.error.message);
        for f in &b.error.fields {
            m.push_str(&format!("; {}: {}", clean(&f.field), clean(&f.message)));
        }
        m
    });
    let message = message.unwrap_or_else(|| status.to_string());
    match status {
        StatusCode::UNAUTHORIZED => PlantError::KeyRefused,
        StatusCode::FORBIDDEN => PlantError::Forbidden(message),
        s if s.is_client_error() => PlantError::Rejected(message),
        _ => PlantError::Server(format!("the server failed ({status}): {message}")),
    }
}
