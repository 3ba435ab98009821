//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations and the typed
//! views, so it cannot drift from what the server answers. What the derives cannot say (the
//! security schemes, "an email or a webhook", the older alias paths, ingest's own server) is
//! added by `Extras`.

use std::sync::LazyLock;

use canarykeys_core::NewTokenInput;
use serde_json::json;
use utoipa::openapi::path::PathItem;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Deprecated, RefOr};
use utoipa::{Modify, OpenApi};

use super::{deliveries, detection, hits, manage_secret, operator, session, tokens};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "canarykeys API",
        version = "1",
        description = "Create and manage decoy AWS key tokens. Each token is managed with its own \
            manage secret, sent as `Authorization: Bearer <manage_secret>`; an unknown token id and \
            a wrong secret both answer 404. Operator routes take an API key \
            (`Authorization: Bearer ck_…`) or a console session. Every error has the `ErrorBody` shape."
    ),
    servers((url = "/api/v1")),
    paths(
        tokens::create,
        operator::list_tokens,
        tokens::show,
        tokens::update,
        tokens::remove,
        tokens::credentials,
        manage_secret::rotate,
        session::refresh,
        session::confirm,
        hits::token_hits,
        hits::all_hits,
        deliveries::test_alert,
        deliveries::deliveries,
        deliveries::export_history,
        detection::detection,
    ),
    components(schemas(NewTokenInput)),
    modifiers(&Extras),
)]
struct ApiDoc;

/// The document as served, built once.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    follow_links(&mut doc);
    serde_json::to_string_pretty(&doc).expect("the OpenAPI document serialises")
});

struct Extras;

impl Modify for Extras {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        components.add_security_scheme("manageSecret", bearer("The token's manage secret"));
        components.add_security_scheme(
            "refreshSecret",
            bearer("An aws_session token's refresh secret (issues sessions, nothing else)"),
        );
        components.add_security_scheme("apiKey", bearer("An operator API key (`ck_…`)"));
        components.add_security_scheme(
            "ingestBearer",
            bearer("The ingest secret ([ingest] secret)"),
        );
        components.add_security_scheme(
            "ingestSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                canarykeys_core::signing::HEADER,
                "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">` with the ingest secret",
            ))),
        );
        need_a_channel(components);
        alias(
            doc,
            "/tokens/{id}/hits",
            "/tokens/{id}/alerts",
            "listTokenAlerts",
        );
        alias(doc, "/hits", "/alerts", "listAlerts");
        for (path, id) in [
            ("/ingest/v1/cloudtrail", "ingestCloudTrail"),
            ("/ingest/v1/events", "ingestEvents"),
        ] {
            doc.paths.paths.insert(path.to_owned(), ingest_path(id));
        }
        doc.paths
            .paths
            .insert("/openapi.json".to_owned(), self_path());
    }
}

/// `NewToken` needs an email or a webhook URL (or both): an `anyOf` of two `required` lists. And
/// `until_confirm` holds uses until the expiry at the latest, so it needs `expires_in`: a second
/// `anyOf`, "not until_confirm" or "an expiry given".
fn need_a_channel(components: &mut utoipa::openapi::Components) {
    let Some(fields) = components.schemas.remove("NewToken") else {
        return;
    };
    // Present is not enough: `null` or blanks count as not given, so the branch asks for a
    // string with something besides spaces in it.
    let needs = |field: &str| {
        ObjectBuilder::new()
            .required(field)
            .property(
                field,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"\S")),
            )
            .build()
    };
    let schema = AllOfBuilder::new()
        .item(fields)
        .item(
            AnyOfBuilder::new()
                .item(needs("email"))
                .item(needs("webhook_url")),
        )
        .item(
            AnyOfBuilder::new()
                .item(
                    ObjectBuilder::new().property(
                        "expected_use",
                        ObjectBuilder::new()
                            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                            .pattern(Some(r"^\s*(none)?\s*$")),
                    ),
                )
                .item(needs("expires_in")),
        )
        .description(Some(
            "A token to create. `memo` and an email or a webhook URL (or both) are required; \
             `expected_use: until_confirm` needs `expires_in`.",
        ))
        .build();
    components
        .schemas
        .insert("NewToken".to_owned(), RefOr::T(Schema::AllOf(schema)));
}

/// Where a created token (or its new manage secret) leads: every route of that token, with its
/// id and its manage secret as the `Authorization: Bearer` those routes take. Clients (and
/// schemathesis' stateful phase) follow these instead of guessing ids. Written as JSON: utoipa's
/// `Link` serialises `operation_id` in snake case, which no reader understands.
fn follow_links(doc: &mut serde_json::Value) {
    const TARGETS: [&str; 9] = [
        "getToken",
        "updateToken",
        "downloadCredentials",
        "listTokenHits",
        "listDeliveries",
        "exportHits",
        "sendTestAlert",
        "rotateManageSecret",
        "deleteToken",
    ];
    let links: serde_json::Map<String, serde_json::Value> = TARGETS
        .iter()
        .map(|target| {
            let link = json!({
                "operationId": target,
                "parameters": {
                    "path.id": "$response.body#/id",
                    "header.Authorization": "Bearer {$response.body#/manage_secret}",
                },
                "description": format!("`{target}` on this token, with its manage secret"),
            });
            ((*target).to_owned(), link)
        })
        .collect();
    for (path, status) in [("/tokens", "201"), ("/tokens/{id}/manage-secret", "200")] {
        let mut links = links.clone();
        if path == "/tokens" {
            // Only a create shows the refresh secret (an `aws_session` token's), and only the
            // session route takes it.
            links.insert(
                "refreshSession".to_owned(),
                json!({
                    "operationId": "refreshSession",
                    "parameters": {
                        "path.id": "$response.body#/id",
                        "header.Authorization": "Bearer {$response.body#/refresh_secret}",
                    },
                    "description": "new session credentials for an `aws_session` token, with its refresh secret",
                }),
            );
        }
        if let Some(response) = doc
            .pointer_mut(&format!(
                "/paths/{}/post/responses/{status}",
                path.replace('/', "~1")
            ))
            .and_then(serde_json::Value::as_object_mut)
        {
            response.insert("links".to_owned(), links.into());
        }
    }
}

/// Serves `from`'s operations again at `to`, marked deprecated: older clients' names.
fn alias(doc: &mut utoipa::openapi::OpenApi, from: &str, to: &str, operation_id: &str) {
    let Some(mut item) = doc.paths.paths.get(from).cloned() else {
        return;
    };
    if let Some(op) = item.get.as_mut() {
        op.operation_id = Some(operation_id.to_owned());
        op.deprecated = Some(Deprecated::True);
        op.description = Some(format!("The older name of `{from}`."));
    }
    doc.paths.paths.insert(to.to_owned(), item);
}

/// An ingest route. It lives at the server root, not under `/api/v1`, hence its own `servers`.
fn ingest_path(operation_id: &str) -> PathItem {
    let error = json!({"description": "See `error.code`", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}});
    serde_json::from_value(json!({
        "servers": [{"url": "/", "description": "Ingest is at the server root, not under /api/v1."}],
        "post": {
            "operationId": operation_id,
            "tags": ["ingest"],
            "summary": "CloudTrail data in any wrapper: a log file, an array, one record, NDJSON, \
                EventBridge or a CloudWatch Logs subscription; gzip is fine.",
            "security": [{"ingestSignature": []}, {"ingestBearer": []}],
            "parameters": [{
                "name": "x-canarykeys-path", "in": "header", "required": false,
                "description": "Which path the data came by, for the hit's `path`",
                "schema": {"type": "string", "enum": ["cloudwatch-logs", "eventbridge", "s3", "api", "cli", "safety-net"]}
            }],
            "requestBody": {"required": true, "content": {
                "application/json": {"schema": {"type": ["object", "array"]}},
                "application/gzip": {"schema": {"type": "string", "format": "binary"}}
            }},
            "responses": {
                "200": {"description": "What was found", "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["records", "parsed", "skipped", "matched", "new_hits", "duplicates"],
                    "properties": {
                        "records": {"type": "integer", "minimum": 0},
                        "parsed": {"type": "integer", "minimum": 0},
                        "skipped": {"type": "integer", "minimum": 0},
                        "matched": {"type": "integer", "minimum": 0},
                        "unknown_keys": {"type": "integer", "minimum": 0},
                        "new_hits": {"type": "integer", "minimum": 0},
                        "duplicates": {"type": "integer", "minimum": 0},
                        "retired": {"type": "integer", "minimum": 0, "description": "matched records of retired keys: used after their token was deleted or expired"},
                        "heartbeats": {"type": "integer", "minimum": 0, "description": "records of the server's heartbeat keys, stored as receipts of the path, never as hits (absent when 0)"},
                        "session_issues": {"type": "integer", "minimum": 0, "description": "the server's own GetSessionToken calls issuing session decoys (the issued key is one of ours): noted, never hits (absent when 0)"}
                    }
                }}}},
                "400": error, "401": error, "408": error, "411": error, "413": error,
                "429": error, "503": error
            }
        }
    }))
    .expect("the ingest path item is well formed")
}

fn self_path() -> PathItem {
    serde_json::from_value(json!({"get": {
        "operationId": "getOpenApi",
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}
    }}))
    .expect("the openapi path item is well formed")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_builds() {
        let doc: serde_json::Value = serde_json::from_str(&super::DOCUMENT).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        // A create leads to the token's routes with its id and manage secret.
        let link = &doc["paths"]["/tokens"]["post"]["responses"]["201"]["links"]["getToken"];
        assert_eq!(link["operationId"], "getToken", "{link}");
        assert_eq!(link["parameters"]["path.id"], "$response.body#/id");
        let rotated = &doc["paths"]["/tokens/{id}/manage-secret"]["post"]["responses"]["200"];
        assert_eq!(
            rotated["links"]["deleteToken"]["operationId"],
            "deleteToken"
        );
        // Only a create leads to the session route, with the refresh secret it shows.
        let session =
            &doc["paths"]["/tokens"]["post"]["responses"]["201"]["links"]["refreshSession"];
        assert_eq!(
            session["parameters"]["header.Authorization"],
            "Bearer {$response.body#/refresh_secret}"
        );
        assert!(rotated["links"].get("refreshSession").is_none());
    }
}
