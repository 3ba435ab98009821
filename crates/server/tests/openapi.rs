//! The OpenAPI document against the server's real answers: every documented JSON endpoint is
//! called, and each body is validated with `jsonschema` against the schema the document gives for
//! that path, method and status. A view that changes without its schema fails here.

use canarykeys_server::config::Secret;
use canarykeys_server::services::Scope;
use canarykeys_testkit::access::{services, PASSWORD};
use canarykeys_testkit::{id_and_secret, spawn_app_with, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const INGEST: &str = "openapi-test-ingest-secret";

/// Checks that `doc` documents `status` for `method path` and that `body` matches its schema.
fn conforms(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = &op["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path} does not document {status}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status} has no JSON schema"
    );
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).expect("the document's schema compiles");
    let problems: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        problems.is_empty(),
        "{method} {path} {status} does not match its schema: {problems:#?}\nbody: {body:#}"
    );
}

struct Call<'a> {
    app: &'a TestApp,
    doc: &'a Value,
}

impl Call<'_> {
    /// Sends the request, asserts the status, validates the body, and returns it.
    async fn check(
        &self,
        req: reqwest::RequestBuilder,
        method: &str,
        path: &str,
        want: StatusCode,
    ) -> Value {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), want, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        conforms(self.doc, method, path, want, &body);
        body
    }

    fn req(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.app.http.request(method, self.app.url(url))
    }
}

fn cloudtrail(key: &str) -> Value {
    json!({
        "eventVersion": "1.09", "eventID": "openapi-1", "eventTime": "2026-11-28T08:00:00Z",
        "userIdentity": {"type": "IAMUser", "accessKeyId": key},
        "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2"
    })
}

fn health_event(key: &str) -> Value {
    json!({
        "version": "0", "id": "eb-openapi", "detail-type": "AWS Health Event",
        "source": "aws.health", "account": "123456789012", "time": "2026-11-28T09:12:44Z",
        "region": "us-east-1", "resources": [],
        "detail": {
            "eventArn": "arn:aws:health:global::event/RISK/A/openapi", "service": "RISK",
            "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED", "eventTypeCategory": "issue",
            "eventScopeCode": "ACCOUNT_SPECIFIC", "startTime": "Sat, 28 Nov 2026 09:05:00 GMT",
            "eventRegion": "global",
            "eventDescription": [{"language": "en_US", "latestDescription": "found online"}],
            "affectedEntities": [{"entityValue": key}],
        }
    })
}

#[tokio::test]
async fn every_documented_json_answer_matches_its_schema() {
    let app = spawn_app_with(|c| c.ingest.secret = Some(Secret::new(INGEST))).await;
    let doc: Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    for ingest in ["/ingest/v1/cloudtrail", "/ingest/v1/events"] {
        assert_eq!(doc["paths"][ingest]["servers"][0]["url"], "/", "{ingest}");
    }
    let call = Call {
        app: &app,
        doc: &doc,
    };
    let api = "/api/v1";

    // Tokens: create, show, update.
    let created = call
        .check(
            call.req(Method::POST, &format!("{api}/tokens"))
                .json(&json!({"memo": "ci runner", "email": "soc@example.com"})),
            "post",
            "/tokens",
            StatusCode::CREATED,
        )
        .await;
    let (id, secret) = id_and_secret(&created);
    let key = created["aws"]["access_key_id"].as_str().unwrap().to_owned();
    let token = format!("{api}/tokens/{id}");
    call.check(
        call.req(Method::GET, &token).bearer_auth(&secret),
        "get",
        "/tokens/{id}",
        StatusCode::OK,
    )
    .await;
    call.check(
        call.req(Method::PATCH, &token)
            .bearer_auth(&secret)
            .json(&json!({"ignore_sources": ["198.51.100.0/24"]})),
        "patch",
        "/tokens/{id}",
        StatusCode::OK,
    )
    .await;

    // A hit and an exposure, through ingest (its own server in the document).
    for (path, body) in [
        ("/ingest/v1/cloudtrail", cloudtrail(&key)),
        ("/ingest/v1/events", health_event(&key)),
    ] {
        call.check(
            call.req(Method::POST, path).bearer_auth(INGEST).json(&body),
            "post",
            path,
            StatusCode::OK,
        )
        .await;
    }
    let hits = call
        .check(
            call.req(Method::GET, &format!("{token}/hits"))
                .bearer_auth(&secret),
            "get",
            "/tokens/{id}/hits",
            StatusCode::OK,
        )
        .await;
    assert_eq!(hits["total"], 1, "{hits}");
    call.check(
        call.req(Method::GET, &format!("{token}/alerts"))
            .bearer_auth(&secret),
        "get",
        "/tokens/{id}/alerts",
        StatusCode::OK,
    )
    .await;
    call.check(
        call.req(Method::POST, &format!("{token}/test-alert"))
            .bearer_auth(&secret),
        "post",
        "/tokens/{id}/test-alert",
        StatusCode::ACCEPTED,
    )
    .await;
    let deliveries = call
        .check(
            call.req(Method::GET, &format!("{token}/deliveries"))
                .bearer_auth(&secret),
            "get",
            "/tokens/{id}/deliveries",
            StatusCode::OK,
        )
        .await;
    assert!(!deliveries["deliveries"].as_array().unwrap().is_empty());
    call.check(
        call.req(Method::GET, &format!("{token}/alerts/export?format=json"))
            .bearer_auth(&secret),
        "get",
        "/tokens/{id}/alerts/export",
        StatusCode::OK,
    )
    .await;

    // The operator lists, with an API key.
    let svc = services(&app).await;
    let op = svc
        .access
        .create_operator("auditor", PASSWORD)
        .await
        .unwrap();
    let (_, all) = svc
        .access
        .create_api_key(&op, "all", &[Scope::TokensRead, Scope::AlertsRead])
        .await
        .unwrap();
    let (_, narrow) = svc
        .access
        .create_api_key(&op, "narrow", &[Scope::TokensWrite])
        .await
        .unwrap();
    call.check(
        call.req(Method::GET, &format!("{api}/tokens"))
            .bearer_auth(&all),
        "get",
        "/tokens",
        StatusCode::OK,
    )
    .await;
    for path in ["/hits", "/alerts"] {
        let page = call
            .check(
                call.req(Method::GET, &format!("{api}{path}"))
                    .bearer_auth(&all),
                "get",
                path,
                StatusCode::OK,
            )
            .await;
        assert_eq!(page["hits"].as_array().unwrap().len(), 1, "{page}");
    }
    let exposures = call
        .check(
            call.req(Method::GET, &format!("{api}/alerts?kind=exposure"))
                .bearer_auth(&all),
            "get",
            "/alerts",
            StatusCode::OK,
        )
        .await;
    assert_eq!(exposures["alerts"][0]["kind"], "exposure", "{exposures}");

    // Errors, each in the documented error body.
    let errors: Vec<(reqwest::RequestBuilder, &str, &str, StatusCode)> = vec![
        (
            call.req(Method::GET, &format!("{api}/tokens?limit=0"))
                .bearer_auth(&all),
            "get",
            "/tokens",
            StatusCode::BAD_REQUEST,
        ),
        (
            call.req(Method::GET, &format!("{api}/alerts?kind=other"))
                .bearer_auth(&all),
            "get",
            "/alerts",
            StatusCode::BAD_REQUEST,
        ),
        (
            call.req(Method::GET, &token),
            "get",
            "/tokens/{id}",
            StatusCode::UNAUTHORIZED,
        ),
        (
            call.req(Method::GET, &format!("{api}/tokens"))
                .bearer_auth(&narrow),
            "get",
            "/tokens",
            StatusCode::FORBIDDEN,
        ),
        (
            call.req(Method::GET, &token).bearer_auth("wrong"),
            "get",
            "/tokens/{id}",
            StatusCode::NOT_FOUND,
        ),
        (
            call.req(Method::POST, &format!("{api}/tokens"))
                .header("content-type", "application/json")
                .body(format!(r#"{{"memo":"{}"}}"#, "x".repeat(200_000))),
            "post",
            "/tokens",
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            call.req(Method::POST, &format!("{api}/tokens"))
                .body(r#"{"memo":"m"}"#),
            "post",
            "/tokens",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            call.req(Method::POST, &format!("{api}/tokens"))
                .json(&json!({"memo": "no channel"})),
            "post",
            "/tokens",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            call.req(Method::PATCH, &token)
                .bearer_auth(&secret)
                .json(&json!({"colour": "red"})),
            "patch",
            "/tokens/{id}",
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (req, method, path, status) in errors {
        let body = call.check(req, method, path, status).await;
        assert!(body["error"]["code"].is_string(), "{body}");
    }

    // Deleting answers no body; the token is gone after.
    let resp = call
        .req(Method::DELETE, &token)
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(doc["paths"]["/tokens/{id}"]["delete"]["responses"]["204"].is_object());
}

/// The request schema states the server's rules a schema can say.
#[tokio::test]
async fn the_create_schema_states_its_limits() {
    let app = spawn_app_with(|_| {}).await;
    let doc: Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_token = &doc["components"]["schemas"]["NewToken"];
    let text = new_token.to_string();
    assert!(text.contains(r#""maxLength":1000"#), "{new_token:#}");
    let any_of = &new_token["allOf"][1]["anyOf"];
    assert_eq!(any_of[0]["required"], json!(["email"]), "{new_token:#}");
    assert_eq!(
        any_of[1]["required"],
        json!(["webhook_url"]),
        "{new_token:#}"
    );
    let params = doc["paths"]["/tokens"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 500);
    let kind = doc["paths"]["/alerts"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "kind")
        .unwrap()
        .to_string();
    assert!(kind.contains("exposure") && kind.contains("hit"), "{kind}");
}
