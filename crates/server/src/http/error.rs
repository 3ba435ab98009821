//! The one mapping from every error the server can meet to an HTTP status and a body that reveals
//! nothing internal. Causes of 5xx errors are logged here, once, with their whole chain.

use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use canarykeys_aws::MintError;
use canarykeys_core::FieldError;

use crate::crypto::CryptoError;
use crate::services::{AccessError, IngestError, ServiceError};
use crate::views::{ErrorBody, ErrorDetail, FieldProblem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("send the token's manage secret as `Authorization: Bearer <manage_secret>`")]
    Unauthenticated,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// The operator API without a session or API key.
    #[error("sign in, or send an API key as `Authorization: Bearer ck_…`")]
    NoCredentials,
    /// An API key without the scope the route needs.
    #[error("this API key lacks the {0} scope")]
    MissingScope(&'static str),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("too many tokens created from this address; try again in a minute")]
    RateLimited,
    /// Too many test alerts for this token or from this address: `429` with `Retry-After`.
    #[error("too many test alerts; try again later")]
    TestAlertsLimited { retry_after_secs: u64 },
    /// A pool for unproven requests is full (per client address or in all): try again shortly.
    #[error("too many unverified requests at once; try again shortly")]
    Busy,
    /// A signed ingest request without `Content-Length` (its place in the unverified pool is
    /// reserved by length).
    #[error("send Content-Length with a signed request")]
    LengthRequired,
    /// The body did not arrive within its deadline.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("the form expired or came from another site; reload the page and try again")]
    Csrf,
    #[error("not found")]
    NoRoute,
    #[error("ingest is off: set [ingest] secret (CANARYKEYS_INGEST__SECRET) to turn it on")]
    IngestDisabled,
    #[error("missing or invalid X-Canarykeys-Signature or Authorization: Bearer <ingest secret>")]
    IngestUnauthorized,
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The database is unreachable (down or restarting): answered 503 with `Retry-After`.
    #[error("the database is unavailable")]
    Unavailable(#[source] canarykeys_store::StoreError),
    /// The database's disk is full: nothing was stored. 507 with `Retry-After`, so a sender
    /// (the relay, EventBridge) retries once space is freed.
    #[error("the database's disk is full")]
    StorageFull(#[source] canarykeys_store::StoreError),
    /// A bug of ours (a template that does not render, say). The text is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Exhaustive on purpose: a new error variant does not compile until it has a status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Service(e) => match e {
                ServiceError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ServiceError::NotFound => StatusCode::NOT_FOUND,
                ServiceError::Mint(MintError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
                ServiceError::Mint(MintError::Refused(_)) => StatusCode::BAD_GATEWAY,
                // The client named an account we do not mint in: its mistake, not the minter's.
                ServiceError::Mint(MintError::UnknownAccount(_)) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                ServiceError::Mint(MintError::Conflict(_)) => StatusCode::CONFLICT,
                // The key that sealed this secret is not the server's: no retry will fix it,
                // but it is the server's state, not a bug, and the body says so.
                ServiceError::Crypto(CryptoError::Open) => StatusCode::SERVICE_UNAVAILABLE,
                // The decoy account is (nearly) out of IAM users: 507, nothing was created.
                ServiceError::Mint(MintError::UserQuota { .. }) => StatusCode::INSUFFICIENT_STORAGE,
                ServiceError::CreateBudget { .. } => StatusCode::TOO_MANY_REQUESTS,
                ServiceError::Store(_) | ServiceError::Crypto(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated | Self::NoCredentials => StatusCode::UNAUTHORIZED,
            Self::MissingScope(_) => StatusCode::FORBIDDEN,
            Self::Access(e) => match e {
                AccessError::BadCredentials => StatusCode::UNAUTHORIZED,
                AccessError::Locked | AccessError::RateLimited | AccessError::Busy => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                AccessError::NameTaken => StatusCode::CONFLICT,
                AccessError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                AccessError::NotFound => StatusCode::NOT_FOUND,
                AccessError::Hash(_) | AccessError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited | Self::Busy | Self::TestAlertsLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::IngestDisabled => StatusCode::SERVICE_UNAVAILABLE,
            Self::IngestUnauthorized => StatusCode::UNAUTHORIZED,
            Self::Ingest(IngestError::Parse(e)) if e.is_too_large() => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::Ingest(IngestError::Parse(_)) => StatusCode::BAD_REQUEST,
            Self::Ingest(IngestError::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::IngestDisabled => return "ingest_disabled",
            Self::IngestUnauthorized => return "unauthenticated",
            Self::Unavailable(_) => return "unavailable",
            Self::StorageFull(_) => return "storage_full",
            Self::Busy => return "busy",
            Self::BodyTimeout => return "body_timeout",
            Self::LengthRequired => return "length_required",
            Self::Service(ServiceError::Crypto(CryptoError::Open)) => return "key_unavailable",
            Self::Service(ServiceError::Mint(MintError::UserQuota { .. })) => {
                return "iam_user_quota"
            }
            Self::Ingest(IngestError::Parse(_)) if self.status() == StatusCode::BAD_REQUEST => {
                return "not_cloudtrail"
            }
            _ => {}
        }
        match self.status() {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_input",
            StatusCode::UNAUTHORIZED => "unauthenticated",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::SERVICE_UNAVAILABLE => "minter_unavailable",
            StatusCode::BAD_GATEWAY => "minter_refused",
            StatusCode::CONFLICT => "conflict",
            _ => "internal",
        }
    }

    /// The message a client may see. Server errors say only that something failed.
    pub fn public_message(&self) -> String {
        match self {
            Self::Service(ServiceError::Invalid(_)) | Self::Invalid(_) => {
                "some fields are invalid; see `fields`".into()
            }
            Self::Service(ServiceError::NotFound) | Self::NoRoute => "not found".into(),
            Self::Service(ServiceError::Mint(MintError::Unavailable(_))) => {
                "the key minting service is unavailable; nothing was created, try again later"
                    .into()
            }
            Self::Service(ServiceError::Mint(MintError::Refused(_))) => {
                "the key minting service refused the request; nothing was created".into()
            }
            Self::Service(ServiceError::Mint(e @ MintError::UnknownAccount(_))) => {
                format!("{e}; nothing was created")
            }
            Self::Service(ServiceError::Mint(e @ MintError::UserQuota { .. })) => {
                format!("{e}; nothing was created")
            }
            Self::Service(ServiceError::Mint(MintError::Conflict(_))) => {
                "that user name is already taken in the decoy account; choose another or leave it out".into()
            }
            Self::Service(ServiceError::Crypto(CryptoError::Open)) => {
                "the sealing key is unavailable: this server's key does not open the token's \
                 secret access key (it was sealed with another key). An operator must restore \
                 the key file it was sealed with; see \"Backing up the sealing key\" in the README"
                    .into()
            }
            Self::Service(ServiceError::Store(_) | ServiceError::Crypto(_))
            | Self::Internal(_)
            | Self::Access(AccessError::Hash(_) | AccessError::Store(_))
            | Self::Ingest(IngestError::Store(_)) => "internal error".into(),
            Self::Unavailable(_) => "the server cannot reach its database; try again shortly".into(),
            Self::StorageFull(_) => {
                "the server's disk is full; nothing was stored, try again later".into()
            }
            other => other.to_string(),
        }
    }

    pub fn fields(&self) -> &[FieldError] {
        match self {
            Self::Service(ServiceError::Invalid(f)) | Self::Invalid(f) => f,
            _ => &[],
        }
    }

    /// Logs the full cause chain of server-side failures; client errors are not logged as errors.
    pub fn log(&self) {
        if self.status().is_server_error() {
            let mut chain = self.to_string();
            let mut source = std::error::Error::source(self);
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!(error = %chain, "request failed");
        }
    }
}

/// Seconds a client should wait before retrying while the database is unreachable.
const RETRY_AFTER_SECS: &str = "5";

impl ApiError {
    /// A database outage becomes [`ApiError::Unavailable`] (and a full disk
    /// [`ApiError::StorageFull`]) whichever service met it, so every route answers it alike.
    fn unavailable_first(self) -> Self {
        let store = match &self {
            Self::Service(ServiceError::Store(e))
            | Self::Access(AccessError::Store(e))
            | Self::Ingest(IngestError::Store(e)) => e,
            _ => return self,
        };
        let full = store.is_storage_full();
        if !full && !store.is_unavailable() {
            return self;
        }
        match self {
            Self::Service(ServiceError::Store(e))
            | Self::Access(AccessError::Store(e))
            | Self::Ingest(IngestError::Store(e))
                if full =>
            {
                Self::StorageFull(e)
            }
            Self::Service(ServiceError::Store(e))
            | Self::Access(AccessError::Store(e))
            | Self::Ingest(IngestError::Store(e)) => Self::Unavailable(e),
            other => other,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = self.unavailable_first();
        this.log();
        let fields: Vec<_> = this
            .fields()
            .iter()
            .map(|f| FieldProblem {
                field: f.field.to_string(),
                message: f.problem.to_string(),
            })
            .collect();
        let body = ErrorBody {
            error: ErrorDetail {
                code: this.code(),
                message: this.public_message(),
                fields: (!fields.is_empty()).then_some(fields),
            },
        };
        let mut resp = (this.status(), axum::Json(body)).into_response();
        if matches!(this, Self::Unauthenticated | Self::NoCredentials) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let Self::Service(ServiceError::CreateBudget {
            retry_after_secs, ..
        })
        | Self::TestAlertsLimited { retry_after_secs } = &this
        {
            if let Ok(v) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if matches!(
            this,
            Self::Unavailable(_)
                | Self::StorageFull(_)
                | Self::Busy
                | Self::Access(AccessError::Busy)
        ) {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            JsonRejection::JsonDataError(e) => Self::BadRequest(format!(
                "the JSON does not fit the schema: {}",
                e.body_text()
            )),
            JsonRejection::JsonSyntaxError(_) => {
                Self::BadRequest("the body is not valid JSON".into())
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<FormRejection> for ApiError {
    fn from(r: FormRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge
        } else {
            Self::BadRequest("the form could not be read".into())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::BadRequest(format!("bad query string: {}", r.body_text()))
    }
}
