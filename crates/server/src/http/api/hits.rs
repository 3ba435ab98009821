//! Hits in the JSON API: one token's (with its manage secret) and every token's (operators,
//! `alerts:read`). The `alerts` paths are older names of the same lists.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::http::extract::caller::ApiCaller;
use crate::http::extract::manage::{authorized, Bearer};
use crate::http::extract::{PageParams, RawPageQuery};
use crate::http::{ApiError, AppState};
use crate::services::Scope;
use crate::views::{AlertsPage, ErrorBody, ExposuresPage, HitView, HitsPage};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens/{id}/hits", get(token_hits))
        .route("/tokens/{id}/alerts", get(token_hits))
        .route("/hits", get(all_hits))
        .route("/alerts", get(all_hits))
}

/// One token's hits, newest first.
#[utoipa::path(
    get,
    path = "/tokens/{id}/hits",
    operation_id = "listTokenHits",
    tag = "hits",
    params(("id" = String, Path, description = "The token id"), RawPageQuery),
    security(("manageSecret" = [])),
    responses(
        (status = 200, description = "A page of hits", body = HitsPage),
        (status = 400, description = "A limit or offset out of range", body = ErrorBody),
        (status = 401, description = "No manage secret sent", body = ErrorBody),
        (status = 404, description = "No such token, or a wrong secret", body = ErrorBody),
    )
)]
pub(super) async fn token_hits(
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
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct KindQuery {
    /// Which alerts: `hit` (the default) or `exposure`.
    #[param(value_type = Option<AlertKind>, inline)]
    kind: Option<String>,
}

/// The two kinds of alert, for the schema only: the handler matches the text itself, so a bad
/// value answers the API's 400 rather than serde's.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
enum AlertKind {
    #[schema(rename = "hit")]
    Hit,
    #[schema(rename = "exposure")]
    Exposure,
}

/// Every token's alerts, newest first, with each token's memo: hits, or with `kind=exposure`
/// the exposures.
#[utoipa::path(
    get,
    path = "/hits",
    operation_id = "listHits",
    tag = "hits",
    params(RawPageQuery, KindQuery),
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "A page of hits, or with `kind=exposure` of exposures", body = AlertsPage),
        (status = 400, description = "A limit, offset or kind out of range", body = ErrorBody),
        (status = 401, description = "No API key or session", body = ErrorBody),
        (status = 403, description = "The API key lacks alerts:read", body = ErrorBody),
    )
)]
pub(super) async fn all_hits(
    State(state): State<AppState>,
    caller: ApiCaller,
    page: Result<Query<RawPageQuery>, QueryRejection>,
    kind: Result<Query<KindQuery>, QueryRejection>,
) -> Result<axum::Json<AlertsPage>, ApiError> {
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
            return Ok(axum::Json(AlertsPage::Exposures(page)));
        }
        Some(_) => return Err(ApiError::BadRequest("kind is hit or exposure".into())),
    }
    let (hits, total) = state.console.hits_page(limit, offset).await?;
    let hits = hits
        .iter()
        .map(|(hit, memo)| HitView::with_token(hit, memo))
        .collect();
    Ok(axum::Json(AlertsPage::Hits(HitsPage::new(
        total, limit, offset, hits,
    ))))
}
