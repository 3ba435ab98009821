//! The operator API: every token and the feed of every alert, for an API key with the right
//! scope or a signed-in operator. Token items carry no secrets: those stay behind the manage
//! secret and the one-time create response.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use canarykeys_store::TokenRecord;
use serde_json::{json, Value};

use crate::http::extract::caller::ApiCaller;
use crate::http::extract::{PageParams, RawPageQuery};
use crate::http::{ApiError, AppState};
use crate::render::rfc3339;
use crate::services::Scope;

pub fn routes() -> Router<AppState> {
    Router::new().route("/tokens", get(list_tokens))
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
    page: Result<Query<RawPageQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::TokensRead)?;
    let PageParams { limit, offset } = PageParams::checked(page)?;
    let (tokens, total) = state.console.tokens_page(limit, offset).await?;
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
