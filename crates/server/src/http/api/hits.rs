//! Hits in the JSON API: one token's (with its manage secret) and every token's (operators,
//! `alerts:read`). The `alerts` paths are older names of the same lists.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::export::hit_json;
use crate::http::extract::caller::ApiCaller;
use crate::http::extract::manage::{authorized, Bearer};
use crate::http::extract::{PageParams, RawPageQuery};
use crate::http::{ApiError, AppState};
use crate::services::Scope;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens/{id}/hits", get(token_hits))
        .route("/tokens/{id}/alerts", get(token_hits))
        .route("/hits", get(all_hits))
        .route("/alerts", get(all_hits))
}

/// One token's hits, newest first.
async fn token_hits(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
    page: Result<Query<RawPageQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let PageParams { limit, offset } = PageParams::checked(page)?;
    let token = authorized(&state, &id, &bearer).await?;
    let (hits, total) = state.tokens.hits(&token, limit, offset).await?;
    Ok(axum::Json(json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "alerts": hits.iter().map(hit_json).collect::<Vec<_>>(),
    })))
}

/// Every token's hits, newest first, with each token's memo.
async fn all_hits(
    State(state): State<AppState>,
    caller: ApiCaller,
    page: Result<Query<RawPageQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    caller.require(Scope::AlertsRead)?;
    let PageParams { limit, offset } = PageParams::checked(page)?;
    let (hits, total) = state.console.hits_page(limit, offset).await?;
    let items: Vec<_> = hits
        .iter()
        .map(|(hit, memo)| {
            let mut v = hit_json(hit);
            v["token_id"] = json!(hit.token_id.as_str());
            v["token_memo"] = json!(memo);
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
