//! API Gateway glue: a Lambda proxy event (HTTP API payload format 2.0, or a REST API / format
//! 1.0 event) in, [`Mint::handle`] on it, a proxy response out. The response shape
//! (`statusCode`, `headers`, `body`, `isBase64Encoded`) is the one both formats accept.

use std::collections::BTreeMap;
use std::convert::Infallible;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::http::HeaderMap;
use base64::Engine;
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use crate::protocol::{codes, ErrorBody, SIGNATURE_HEADER};
use crate::{Mint, Reply, Request};

/// What the function returns to API Gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyResponse {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub is_base64_encoded: bool,
}

impl From<Reply> for ProxyResponse {
    fn from(reply: Reply) -> Self {
        let mut headers = BTreeMap::new();
        if let Some(content_type) = reply.content_type() {
            headers.insert("content-type".into(), content_type.into());
        }
        // A 201 carries a secret access key: no cache on the way may keep it.
        headers.insert("cache-control".into(), "no-store".into());
        if let Some(secs) = reply.retry_after {
            headers.insert("retry-after".into(), secs.to_string());
        }
        if let Some(allow) = reply.allow {
            headers.insert("allow".into(), allow.into());
        }
        Self {
            status_code: reply.status,
            headers,
            body: reply.body.unwrap_or_default(),
            is_base64_encoded: false,
        }
    }
}

/// A proxy event reduced to what the service reads.
#[derive(Debug, PartialEq, Eq)]
pub struct Incoming {
    pub method: String,
    pub path: String,
    pub signature: Option<String>,
    pub body: Vec<u8>,
    pub request_id: String,
}

/// Reads either payload format. Format 2.0 says `"version": "2.0"`; REST APIs and HTTP APIs on
/// format 1.0 send `httpMethod` instead.
pub fn parse_event(event: Value) -> Result<Incoming, String> {
    if event.get("version").and_then(Value::as_str) == Some("2.0") {
        let e: ApiGatewayV2httpRequest =
            serde_json::from_value(event).map_err(|e| format!("not an HTTP API event: {e}"))?;
        let ctx = e.request_context;
        let raw = e.raw_path.or(ctx.http.path).unwrap_or_default();
        Ok(Incoming {
            method: ctx.http.method.as_str().to_owned(),
            path: strip_stage(&raw, ctx.stage.as_deref()).to_owned(),
            signature: header(&e.headers),
            body: body(e.body, e.is_base64_encoded)?,
            request_id: ctx.request_id.unwrap_or_default(),
        })
    } else if event.get("httpMethod").is_some() {
        let e: ApiGatewayProxyRequest =
            serde_json::from_value(event).map_err(|e| format!("not a REST API event: {e}"))?;
        Ok(Incoming {
            method: e.http_method.as_str().to_owned(),
            // A REST API's `path` is already without the stage.
            path: e.path.unwrap_or_default(),
            signature: header(&e.headers).or_else(|| header(&e.multi_value_headers)),
            body: body(e.body, e.is_base64_encoded)?,
            request_id: e.request_context.request_id.unwrap_or_default(),
        })
    } else {
        Err("not an API Gateway proxy event".into())
    }
}

/// An HTTP API on a named stage puts the stage in `rawPath` (`/live/users`); the `$default`
/// stage does not. Routes and signatures use the path without it.
fn strip_stage<'a>(raw: &'a str, stage: Option<&str>) -> &'a str {
    let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default") else {
        return raw;
    };
    match raw.strip_prefix('/').and_then(|r| r.strip_prefix(stage)) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => raw,
    }
}

fn header(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(SIGNATURE_HEADER)?;
    value.to_str().ok().map(str::to_owned)
}

/// API Gateway base64-encodes bodies it takes for binary; the signature is over the raw bytes.
fn body(body: Option<String>, base64: bool) -> Result<Vec<u8>, String> {
    let body = body.unwrap_or_default();
    if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("isBase64Encoded, but the body is not base64: {e}"))
    } else {
        Ok(body.into_bytes())
    }
}

/// The Lambda handler: `service_fn(|event| handler(&mint, event))`. It never fails the
/// invocation: every problem is an HTTP answer, which API Gateway passes on as is (a failed
/// invocation would become an opaque 500).
pub async fn handler(mint: &Mint, event: LambdaEvent<Value>) -> Result<ProxyResponse, Infallible> {
    let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
    // Boxed: the IAM SDK's futures nest deep enough to exceed the compiler's layout recursion
    // limit inside the runtime's loop, and on the heap they cost nothing that matters.
    Ok(Box::pin(respond(mint, event.payload))
        .instrument(span)
        .await)
}

/// Answers one proxy event; what [`handler`] does, without the Lambda context, for local
/// adapters that play API Gateway.
pub async fn respond(mint: &Mint, event: Value) -> ProxyResponse {
    let incoming = match parse_event(event) {
        Ok(incoming) => incoming,
        Err(why) => {
            tracing::error!(error = %why, "unreadable event");
            return Reply::json(400, &ErrorBody::new(codes::BAD_REQUEST, why)).into();
        }
    };
    let reply = mint
        .handle(Request {
            method: &incoming.method,
            path: &incoming.path,
            signature: incoming.signature.as_deref(),
            body: &incoming.body,
        })
        .await;
    tracing::info!(
        method = %incoming.method,
        path = %incoming.path,
        api_request_id = %incoming.request_id,
        status = reply.status,
        "answered"
    );
    reply.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stages_are_stripped_from_http_api_paths_only_when_present() {
        assert_eq!(strip_stage("/users", Some("$default")), "/users");
        assert_eq!(strip_stage("/live/users", Some("live")), "/users");
        assert_eq!(strip_stage("/live", Some("live")), "/");
        assert_eq!(strip_stage("/lively/users", Some("live")), "/lively/users");
        assert_eq!(strip_stage("/users", Some("live")), "/users");
        assert_eq!(strip_stage("/users", None), "/users");
    }

    #[test]
    fn base64_bodies_are_decoded_and_other_events_refused() {
        let e = json!({
            "version": "2.0", "rawPath": "/users", "isBase64Encoded": true, "body": "e30=",
            "headers": {"x-canarykeys-signature": "t=1,v1=00"},
            "requestContext": {"http": {"method": "POST"}, "stage": "$default", "requestId": "r"}
        });
        let got = parse_event(e).unwrap();
        assert_eq!(
            (got.method.as_str(), got.body.as_slice()),
            ("POST", &b"{}"[..])
        );
        assert_eq!(got.signature.as_deref(), Some("t=1,v1=00"));
        assert!(parse_event(json!({"Records": []})).is_err());
        let r: ProxyResponse = Reply::json(201, &json!({})).into();
        assert_eq!(r.headers["cache-control"], "no-store");
        assert_eq!(r.headers["content-type"], "application/json");
    }
}
