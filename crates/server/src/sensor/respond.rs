//! The sensor's answers, shaped as AWS shapes them for each protocol, so that SDKs and the CLI
//! show the caller exactly what real AWS would show an identity without permissions. Nothing
//! the caller sent is echoed except what AWS echoes too (the path's bucket and key), escaped.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::freshness::{self, Stale};
use super::protocol::{Call, Protocol};

/// Who the key belongs to, as AWS would name the caller.
pub struct Caller {
    pub arn: String,
    pub account: String,
    pub user_id: String,
    pub region: String,
}

/// What the sensor decided to answer.
pub enum Outcome<'a> {
    /// `sts:GetCallerIdentity`, which AWS answers for any valid key.
    Identity(&'a Caller),
    /// Everything else a valid key asks for.
    Denied(&'a Caller),
    /// A signature that did not verify, or that was not checked (Signature Version 2, a body
    /// past the cap or the deadline, a secret the key does not open): never the identity.
    SignatureMismatch,
    /// A presigned URL whose `X-Amz-Expires` is over a week, which AWS refuses outright.
    ExpiresTooLong,
    /// A replayed or expired request: dated too far from now, or a presigned URL past its expiry.
    Stale(&'a Stale),
    /// A session key's request after the session expired.
    ExpiredToken,
    UnknownKey,
    Unsigned,
    Internal,
}

/// An error as its code, HTTP status and message; the protocol decides the wire format.
pub struct AwsError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

const SIGNATURE: &str = "The request signature we calculated does not match the signature you \
     provided. Check your AWS Secret Access Key and signing method. Consult the service \
     documentation for details.";
const BAD_TOKEN: &str = "The security token included in the request is invalid.";
const EXPIRED_TOKEN: &str = "The security token included in the request is expired";

/// The error for an outcome, or `None` for a success.
pub fn error(call: &Call, outcome: &Outcome<'_>) -> Option<AwsError> {
    use Protocol::*;
    let p = call.protocol;
    let e = |status: u16, code, message: &str| {
        Some(AwsError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            code,
            message: message.to_owned(),
        })
    };
    // The JSON protocol reports client errors as 400; the others as 403 (EC2: 401 for keys).
    match (outcome, p) {
        (Outcome::Identity(_), _) => None,
        (Outcome::Denied(caller), _) => {
            let (status, code) = match p {
                Ec2 => (403, "UnauthorizedOperation"),
                Json => (400, "AccessDeniedException"),
                RestJson => (403, "AccessDeniedException"),
                Query | S3 => (403, "AccessDenied"),
            };
            e(status, code, &denied_message(call, caller))
        }
        (Outcome::SignatureMismatch, Ec2)
        | (Outcome::UnknownKey, Ec2)
        | (Outcome::Unsigned, Ec2) => e(
            401,
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
        ),
        (Outcome::SignatureMismatch, Json) => e(400, "InvalidSignatureException", SIGNATURE),
        (Outcome::SignatureMismatch, RestJson) => e(403, "InvalidSignatureException", SIGNATURE),
        (Outcome::SignatureMismatch, _) => e(403, "SignatureDoesNotMatch", SIGNATURE),
        (Outcome::UnknownKey, S3) => e(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ),
        (Outcome::UnknownKey, Query) => e(403, "InvalidClientTokenId", BAD_TOKEN),
        (Outcome::UnknownKey, Json) => e(400, "UnrecognizedClientException", BAD_TOKEN),
        (Outcome::UnknownKey, RestJson) => e(403, "UnrecognizedClientException", BAD_TOKEN),
        (Outcome::Unsigned, S3) => e(403, "AccessDenied", "Access Denied"),
        (Outcome::Unsigned, Query) => e(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ),
        (Outcome::Unsigned, _) => e(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        // Each protocol's words for a session past its expiry.
        (Outcome::ExpiredToken, S3) => e(400, "ExpiredToken", "The provided token has expired."),
        (Outcome::ExpiredToken, Ec2) => e(400, "RequestExpired", "Request has expired."),
        (Outcome::ExpiredToken, Json) => e(400, "ExpiredTokenException", EXPIRED_TOKEN),
        (Outcome::ExpiredToken, RestJson) => e(403, "ExpiredTokenException", EXPIRED_TOKEN),
        (Outcome::ExpiredToken, Query) => e(403, "ExpiredToken", EXPIRED_TOKEN),
        // S3's answer (400); the other protocols get the same code in their own format.
        (Outcome::ExpiresTooLong, _) => e(
            400,
            "AuthorizationQueryParametersError",
            freshness::EXPIRES_TOO_LONG,
        ),
        // S3 has its own codes for time; EC2 its RequestExpired; the others answer a signature
        // error saying "Signature expired", as the SDKs have long reported it.
        (Outcome::Stale(s), S3) if s.presign_expired => {
            e(403, "AccessDenied", "Request has expired")
        }
        (Outcome::Stale(_), S3) => e(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        ),
        (Outcome::Stale(_), Ec2) => e(400, "RequestExpired", "Request has expired."),
        (Outcome::Stale(s), Json) => e(400, "InvalidSignatureException", &s.message),
        (Outcome::Stale(s), RestJson) => e(403, "InvalidSignatureException", &s.message),
        (Outcome::Stale(s), Query) => e(403, "SignatureDoesNotMatch", &s.message),
        (Outcome::Internal, S3 | Ec2) => e(
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        (Outcome::Internal, _) => e(
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        ),
    }
}

/// "User: arn:… is not authorized to perform: s3:GetObject on resource: arn:aws:s3:::b/k
/// because no identity-based policy allows the s3:GetObject action", as IAM words it today.
fn denied_message(call: &Call, caller: &Caller) -> String {
    let Some(action) = &call.action else {
        return format!(
            "User: {} is not authorized to perform this operation",
            caller.arn
        );
    };
    let resource = match call.resource.as_deref() {
        // Lambda functions are named by ARN in the region and account of the caller.
        Some(f) if f.starts_with("function:") => {
            format!(
                " on resource: arn:aws:lambda:{}:{}:{f}",
                caller.region, caller.account
            )
        }
        Some(r) => format!(" on resource: {r}"),
        None if call.service == "iam" => {
            format!(" on resource: arn:aws:iam::{}:user/", caller.account)
        }
        None => " on resource: *".to_owned(),
    };
    let resource = if action == "s3:ListAllMyBuckets" {
        String::new()
    } else {
        resource
    };
    let pre = if call.protocol == Protocol::Ec2 {
        "You are not authorized to perform this operation. "
    } else {
        ""
    };
    format!(
        "{pre}User: {} is not authorized to perform: {action}{resource} because no \
         identity-based policy allows the {action} action",
        caller.arn
    )
}

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The XML namespace a query service's documents carry.
fn namespace(service: &str) -> String {
    let version = match service {
        "sts" => "2011-06-15",
        "iam" => "2010-05-08",
        "sns" => "2010-03-31",
        "sqs" => "2012-11-05",
        _ => return String::new(),
    };
    format!(" xmlns=\"https://{service}.amazonaws.com/doc/{version}/\"")
}

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Renders the answer in the call's protocol, with the request id headers of that protocol.
pub fn render(call: &Call, outcome: &Outcome<'_>, request_id: &str, head: bool) -> Response {
    let err = error(call, outcome);
    let (status, content_type, body) = match (&err, outcome) {
        (None, Outcome::Identity(c)) => identity(call, c, request_id),
        (None, _) => (StatusCode::OK, "text/xml", String::new()),
        (Some(err), _) => error_body(call, err, request_id),
    };
    let mut resp = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("0"));
    headers.insert("content-type", value(content_type));
    if call.protocol == Protocol::S3 {
        headers.insert("x-amz-request-id", value(request_id));
        headers.insert("x-amz-id-2", value(&host_id(request_id)));
    } else {
        headers.insert("x-amzn-requestid", value(request_id));
    }
    if let (Protocol::RestJson, Some(err)) = (call.protocol, &err) {
        headers.insert("x-amzn-errortype", value(err.code));
    }
    resp
}

fn identity(call: &Call, c: &Caller, request_id: &str) -> (StatusCode, &'static str, String) {
    if call.protocol == Protocol::Json {
        let body = json!({"UserId": c.user_id, "Account": c.account, "Arn": c.arn});
        return (
            StatusCode::OK,
            "application/x-amz-json-1.1",
            body.to_string(),
        );
    }
    let body = format!(
        "<GetCallerIdentityResponse{ns}>\n  <GetCallerIdentityResult>\n    <Arn>{arn}</Arn>\n    \
         <UserId>{user}</UserId>\n    <Account>{account}</Account>\n  </GetCallerIdentityResult>\n  \
         <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n\
         </GetCallerIdentityResponse>\n",
        ns = namespace("sts"),
        arn = xml_escape(&c.arn),
        user = xml_escape(&c.user_id),
        account = xml_escape(&c.account),
    );
    (StatusCode::OK, "text/xml", body)
}

fn error_body(call: &Call, err: &AwsError, request_id: &str) -> (StatusCode, &'static str, String) {
    let (code, msg) = (err.code, xml_escape(&err.message));
    let (content_type, body) = match call.protocol {
        Protocol::Query => (
            "text/xml",
            format!(
                "<ErrorResponse{}>\n  <Error>\n    <Type>Sender</Type>\n    <Code>{code}</Code>\n    \
                 <Message>{msg}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
                namespace(&call.service)
            ),
        ),
        Protocol::Ec2 => (
            "text/xml;charset=UTF-8",
            format!(
                "{XML_DECL}<Response><Errors><Error><Code>{code}</Code><Message>{msg}</Message>\
                 </Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
        ),
        Protocol::S3 => (
            "application/xml",
            format!(
                "{XML_DECL}<Error><Code>{code}</Code><Message>{msg}</Message><RequestId>{request_id}\
                 </RequestId><HostId>{}</HostId></Error>",
                host_id(request_id)
            ),
        ),
        Protocol::Json => (
            "application/x-amz-json-1.1",
            json!({"__type": code, "message": err.message}).to_string(),
        ),
        Protocol::RestJson => (
            "application/json",
            json!({"Type": "User", "Message": err.message}).to_string(),
        ),
    };
    (err.status, content_type, body)
}

/// S3's `x-amz-id-2`: opaque base64; derived from the request id so it needs no state.
fn host_id(request_id: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("host-id:{request_id}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}
