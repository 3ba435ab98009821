//! The operator API: every token and the feed of every alert, for an API key with the right
//! scope or a signed-in operator. Token items carry no secrets: those stay behind the manage
//! secret and the one-time create response.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use canarykeys_store::TokenRecord;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::ApiCaller;
use super::{ApiError, AppState};
use crate::export::hit_json;
use crate::render::rfc3339;
use crate::services::{Scope, ServiceError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list_tokens))
        .route("/alerts", get(list_alerts))
}

#[derive(Deserialize)]
struct Page {
    limit: Option<u32>,
    offset: Option<u32>,
}

impl Page {
    fn checked(page: Result<Query<Page>, QueryRejection>) -> Result<(u32, u32), ApiError> {
        let Query(page) = page?;
        let limit = page.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::BadRequest("limit is between 1 and 500".into()));
        }
        Ok((limit, page.offset.unwrap_or(0)))
    }
}

/// A token as the operator API lists it: `token_json` without the secret access key.
fn token_item(t: &TokenRecord, keys_valid_at_aws: bool) -> Value {
    json!({
        "id": t.id.as_str(),
        "kind": t.kind.as_str(),
        "memo": t.memo.as_str(),
        "created_at": rfc3339(t.created_at),
        "expires_at": t.expires_at.map(rfc3339),
        "minter": t.minter,
        "keys_valid_at_aws": keys_valid_at_aws,
        "channels": {
            "email": t.email.as_ref().map(|e| json!({
                "address": e.as_str(), "enabled": t.email_enabled,
                "disabled_reason": t.alerting.email_disabled_reason,
            })),
            "webhook": t.webhook.as_ref().map(|w| json!({
                "url": w.as_str(), "enabled": t.webhook_enabled,
                "disabled_reason": t.alerting.webhook_disabled_reason,
            })),
        },
        "ignore_sources": t.alerting.ignore_sources,
        "aws": {
            "access_key_id": t.access_key_id.as_str(),
            "region": t.region.as_str(),
            "output": t.output.as_str(),
            "username": t.username.as_str(),
            "account_id": t.account_id.to_string(),
            "arn": format!("arn:aws:iam::{}:user/{}", t.account_id, t.username),
        },
    })
}

async fn list_tokens(
    State(state): State<AppState>,
    caller: ApiCaller,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::TokensRead)?;
    let (limit, offset) = Page::checked(page)?;
    let store = state.tokens.store();
    let (tokens, total) = store
        .tokens_page(limit, offset)
        .await
        .map_err(ServiceError::from)?;
    let minter = state.tokens.minter();
    let items: Vec<_> = tokens
        .iter()
        .map(|t| token_item(t, t.minter == minter.name() && minter.keys_valid_at_aws()))
        .collect();
    Ok(axum::Json(json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "tokens": items,
    })))
}

/// `kind=hit` (the default) or `kind=exposure`.
#[derive(Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

async fn list_alerts(
    State(state): State<AppState>,
    caller: ApiCaller,
    page: Result<Query<Page>, QueryRejection>,
    kind: Result<Query<KindQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::AlertsRead)?;
    let (limit, offset) = Page::checked(page)?;
    match kind?.0.kind.as_deref() {
        None | Some("hit") => {}
        Some("exposure") => {
            let (items, total) = state
                .exposures
                .feed(None, limit, offset)
                .await
                .map_err(ServiceError::from)?;
            return Ok(axum::Json(
                json!({"total": total, "limit": limit, "offset": offset, "alerts": items}),
            ));
        }
        Some(_) => return Err(ApiError::BadRequest("kind is hit or exposure".into())),
    }
    let (hits, total) = state
        .tokens
        .store()
        .hits_feed(limit, offset)
        .await
        .map_err(ServiceError::from)?;
    let items: Vec<_> = hits
        .iter()
        .map(|(hit, memo)| {
            let mut v = hit_json(hit);
            v["token_id"] = json!(hit.token_id.as_str());
            v["token_memo"] = json!(memo);
            v["kind"] = json!("hit");
            v
        })
        .collect();
    Ok(axum::Json(json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "alerts": items,
    })))
}
