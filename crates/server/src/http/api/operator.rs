//! The operator API: every token and the feed of every alert, for an API key with the right
//! scope or a signed-in operator. Token items carry no secrets: those stay behind the manage
//! secret and the one-time create response.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;

use canarykeys_core::TokenCursor;

use crate::http::extract::caller::ApiCaller;
use crate::http::extract::{RawTokensQuery, TokensParams};
use crate::http::{ApiError, AppState};
use crate::services::Scope;
use crate::views::{ErrorBody, TokenView, TokensPage};

pub fn routes() -> Router<AppState> {
    Router::new().route("/tokens", get(list_tokens))
}

/// Every token, newest first, without secrets.
#[utoipa::path(
    get,
    path = "/tokens",
    operation_id = "listTokens",
    tag = "tokens",
    params(RawTokensQuery),
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "A page of tokens", body = TokensPage),
        (status = 400, description = "A limit or offset out of range, or a bad cursor", body = ErrorBody),
        (status = 401, description = "No API key or session", body = ErrorBody),
        (status = 403, description = "The API key lacks tokens:read", body = ErrorBody),
    )
)]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    caller: ApiCaller,
    page: Result<Query<RawTokensQuery>, QueryRejection>,
) -> Result<axum::Json<TokensPage>, ApiError> {
    caller.require(Scope::TokensRead)?;
    let TokensParams { page, after } = TokensParams::checked(page)?;
    let (tokens, total) = match &after {
        Some(cursor) => {
            state
                .console
                .tokens_page_after(cursor, page.limit, page.offset)
                .await?
        }
        None => state.console.tokens_page(page.limit, page.offset).await?,
    };
    // A full page may have more after it; a short one is the end.
    let next = (tokens.len() == page.limit as usize)
        .then(|| tokens.last())
        .flatten()
        .map(|t| {
            TokenCursor {
                created_at: t.created_at,
                id: t.id.clone(),
            }
            .to_string()
        });
    let minter = state.tokens.minter();
    let tokens = tokens
        .iter()
        .map(|t| TokenView::listed(t, minter))
        .collect();
    Ok(axum::Json(TokensPage {
        total,
        limit: page.limit,
        offset: page.offset,
        next,
        tokens,
    }))
}
