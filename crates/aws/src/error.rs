//! One error type for every AWS call the pollers make, classified by what the caller should do
//! about it (back off, retry later, give up on this object, fix permissions), not by SDK type.

use std::fmt;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What AWS said, in the words of its error response: code, HTTP status and message. Holds no
/// request data, so it can never carry a credential.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: Option<String>,
    pub status: Option<u16>,
    pub message: Option<String>,
}

impl ErrorDetail {
    /// A detail that is only our own explanation (no AWS response behind it).
    pub fn message(msg: impl Into<String>) -> Self {
        Self {
            message: Some(msg.into()),
            ..Self::default()
        }
    }
}

/// Renders as ` (Code, HTTP 403): message`, with each part only when known, so it reads well
/// appended to the operation name.
impl fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, self.status) {
            (Some(c), Some(s)) => write!(f, " ({c}, HTTP {s})")?,
            (Some(c), None) => write!(f, " ({c})")?,
            (None, Some(s)) => write!(f, " (HTTP {s})")?,
            (None, None) => {}
        }
        match &self.message {
            Some(m) => write!(f, ": {m}"),
            None => Ok(()),
        }
    }
}

/// A failed AWS call. `op` names the call (`S3 GetObject`); the source, when there is one, is the
/// SDK's own error, kept for `{:#}`/`DisplayErrorContext`-style logging.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// AWS asked us to slow down (throttling codes, HTTP 429, S3 `SlowDown`). Back off.
    #[error("{op}: throttled by AWS{detail}")]
    Throttled {
        op: &'static str,
        detail: ErrorDetail,
        #[source]
        source: Option<BoxError>,
    },
    /// AWS could not be reached or failed on its side (I/O, timeouts, 5xx). Retry later.
    #[error("{op}: AWS unreachable or failing{detail}")]
    Unavailable {
        op: &'static str,
        detail: ErrorDetail,
        #[source]
        source: Option<BoxError>,
    },
    /// The bucket, object, access key or user does not exist (HTTP 404, `NoSuch*`).
    #[error("{op}: not found{detail}")]
    NotFound {
        op: &'static str,
        detail: ErrorDetail,
        #[source]
        source: Option<BoxError>,
    },
    /// Our credentials are wrong or lack permission (HTTP 401/403, `AccessDenied`, bad keys).
    #[error("{op}: access denied{detail}")]
    Denied {
        op: &'static str,
        detail: ErrorDetail,
        #[source]
        source: Option<BoxError>,
    },
    /// Anything else, including refusals of our own (an object over the size limit).
    #[error("{op}: failed{detail}")]
    Other {
        op: &'static str,
        detail: ErrorDetail,
        #[source]
        source: Option<BoxError>,
    },
}

impl AwsError {
    /// Our own refusal, with no AWS error behind it.
    pub fn refused(op: &'static str, why: impl Into<String>) -> Self {
        Self::Other {
            op,
            detail: ErrorDetail::message(why),
            source: None,
        }
    }

    pub fn detail(&self) -> &ErrorDetail {
        match self {
            Self::Throttled { detail, .. }
            | Self::Unavailable { detail, .. }
            | Self::NotFound { detail, .. }
            | Self::Denied { detail, .. }
            | Self::Other { detail, .. } => detail,
        }
    }

    /// Whether trying again later can help (the SDK has already retried a few times by then).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Throttled,
    Unavailable,
    NotFound,
    Denied,
    Other,
}

// Codes the SDK's standard retry also treats as throttling, plus S3's.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
];
const NOT_FOUND: &[&str] = &[
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchEntity",
    "NotFound",
    "ResourceNotFoundException",
];
// Bad or unknown credentials are "denied" too: for the caller it is the same fix.
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "AllAccessDisabled",
];
const UNAVAILABLE: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Code first (it is the precise signal), then the HTTP status, because some error bodies do not
/// parse into a code: moto's auth errors use the EC2-style `<ErrorResponse><Errors>` shape, for
/// which the SDK reports no code, only the 403.
fn kind_of(code: Option<&str>, status: Option<u16>) -> Kind {
    if let Some(c) = code {
        for (list, kind) in [
            (THROTTLING, Kind::Throttled),
            (NOT_FOUND, Kind::NotFound),
            (DENIED, Kind::Denied),
            (UNAVAILABLE, Kind::Unavailable),
        ] {
            if list.contains(&c) {
                return kind;
            }
        }
    }
    match status {
        Some(429) => Kind::Throttled,
        Some(401 | 403) => Kind::Denied,
        Some(404) => Kind::NotFound,
        Some(500..=599) => Kind::Unavailable,
        _ => Kind::Other,
    }
}

/// AWS messages are short, but a misbehaving endpoint can put anything there; keep logs sane.
fn clip(msg: &str) -> String {
    const MAX: usize = 300;
    match msg.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &msg[..i]),
        None => msg.to_owned(),
    }
}

/// Classifies an SDK error from any client (S3 and IAM share the same `SdkError`).
pub(crate) fn classify<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = ErrorDetail {
        code: err.code().map(str::to_owned),
        status: err.raw_response().map(|r| r.status().as_u16()),
        message: err.message().map(clip),
    };
    let kind = match &err {
        SdkError::TimeoutError(_) => Kind::Unavailable,
        // I/O and timeouts are the network; anything else here is local (no credentials found,
        // a bad endpoint URL), which retrying will not fix.
        SdkError::DispatchFailure(e) if e.is_io() || e.is_timeout() => Kind::Unavailable,
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => Kind::Other,
        // ServiceError, and ResponseError (an answer we could not parse, e.g. an HTML 502).
        _ => kind_of(detail.code.as_deref(), detail.status),
    };
    let source: Option<BoxError> = Some(Box::new(err));
    match kind {
        Kind::Throttled => AwsError::Throttled { op, detail, source },
        Kind::Unavailable => AwsError::Unavailable { op, detail, source },
        Kind::NotFound => AwsError::NotFound { op, detail, source },
        Kind::Denied => AwsError::Denied { op, detail, source },
        Kind::Other => AwsError::Other { op, detail, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_win_over_statuses() {
        // S3 sends SlowDown with a 503: it is throttling, not an outage.
        assert_eq!(kind_of(Some("SlowDown"), Some(503)), Kind::Throttled);
        assert_eq!(kind_of(Some("NoSuchBucket"), Some(404)), Kind::NotFound);
        assert_eq!(kind_of(Some("NoSuchEntity"), Some(404)), Kind::NotFound);
        assert_eq!(
            kind_of(Some("InvalidClientTokenId"), Some(403)),
            Kind::Denied
        );
        assert_eq!(kind_of(Some("InternalError"), Some(500)), Kind::Unavailable);
    }

    #[test]
    fn statuses_classify_errors_without_a_code() {
        assert_eq!(kind_of(None, Some(403)), Kind::Denied);
        assert_eq!(kind_of(None, Some(404)), Kind::NotFound);
        assert_eq!(kind_of(None, Some(429)), Kind::Throttled);
        assert_eq!(kind_of(None, Some(502)), Kind::Unavailable);
        assert_eq!(kind_of(Some("ValidationError"), Some(400)), Kind::Other);
        assert_eq!(kind_of(None, None), Kind::Other);
    }

    #[test]
    fn display_names_the_call_and_what_aws_said() {
        let e = AwsError::Denied {
            op: "IAM GetAccessKeyLastUsed",
            detail: ErrorDetail {
                code: Some("AccessDenied".into()),
                status: Some(403),
                message: Some("not authorized".into()),
            },
            source: None,
        };
        assert_eq!(
            e.to_string(),
            "IAM GetAccessKeyLastUsed: access denied (AccessDenied, HTTP 403): not authorized"
        );
        assert!(!e.is_transient());
        let r = AwsError::refused("S3 GetObject", "too big");
        assert_eq!(r.to_string(), "S3 GetObject: failed: too big");
    }

    #[test]
    fn clip_keeps_short_messages_and_cuts_long_ones_on_a_char_boundary() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(400);
        assert_eq!(clip(&long).chars().count(), 301);
    }
}
