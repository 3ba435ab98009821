//! Hits in the JSON API: one token's (with its manage secret) and every token's (operators,
//! `alerts:read`). The `alerts` paths are older names of the same lists.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::http::extract::caller::ApiCaller;
use crate::http::extract::manage::{authorized, Bearer};
use crate::http::extract::{PageParams, RawPageQuery};
use crate::http::{ApiError, AppState};
use crate::services::Scope;
use crate::views::{ExposuresPage, HitView, HitsPage};

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

/// `kind=hit` (the default) or `kind=exposure`.
#[derive(Deserialize)]
struct KindQuery {
    kind: Option<String>,
}

/// Every token's alerts, newest first, with each token's memo: hits, or with `kind=exposure`
/// the exposures.
async fn all_hits(
    State(state): State<AppState>,
    caller: ApiCaller,
    page: Result<Query<RawPageQuery>, QueryRejection>,
    kind: Result<Query<KindQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::AlertsRead)?;
    let PageParams { limit, offset } = PageParams::checked(page)?;
    match kind
        .map_err(|_| ApiError::BadRequest("kind is hit or exposure".into()))?
        .0
        .kind
        .as_deref()
    {
        None | Some("hit") => {}
        Some("exposure") => {
            let (alerts, total) = state.exposures.feed(None, limit, offset).await?;
            let page = ExposuresPage {
                total,
                limit,
                offset,
                alerts,
            };
            return Ok(axum::Json(page).into_response());
        }
        Some(_) => return Err(ApiError::BadRequest("kind is hit or exposure".into())),
    }
    let (hits, total) = state.console.hits_page(limit, offset).await?;
    let hits = hits
        .iter()
        .map(|(hit, memo)| HitView::with_token(hit, memo))
        .collect();
    Ok(axum::Json(HitsPage::new(total, limit, offset, hits)).into_response())
}
