//! Hits in the JSON API: one token's (with its manage secret) and every token's (operators,
//! `alerts:read`). The `alerts` paths are older names of the same lists.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;

use crate::http::extract::caller::ApiCaller;
use crate::http::extract::manage::{authorized, Bearer};
use crate::http::extract::{PageParams, RawPageQuery};
use crate::http::{ApiError, AppState};
use crate::services::Scope;
use crate::views::{HitView, HitsPage};

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
) -> Result<axum::Json<HitsPage>, ApiError> {
    let PageParams { limit, offset } = PageParams::checked(page)?;
    let token = authorized(&state, &id, &bearer).await?;
    let (hits, total) = state.tokens.hits(&token, limit, offset).await?;
    let hits = hits.iter().map(HitView::of).collect();
    Ok(axum::Json(HitsPage::new(total, limit, offset, hits)))
}

/// Every token's hits, newest first, with each token's memo.
async fn all_hits(
    State(state): State<AppState>,
    caller: ApiCaller,
    page: Result<Query<RawPageQuery>, QueryRejection>,
) -> Result<axum::Json<HitsPage>, ApiError> {
    caller.require(Scope::AlertsRead)?;
    let PageParams { limit, offset } = PageParams::checked(page)?;
    let (hits, total) = state.console.hits_page(limit, offset).await?;
    let hits = hits
        .iter()
        .map(|(hit, memo)| HitView::with_token(hit, memo))
        .collect();
    Ok(axum::Json(HitsPage::new(total, limit, offset, hits)))
}
