//! The operator console: sign-in, overview, every token, the hit feed (live over server-sent events),
//! the audit log and API keys, behind the operator sign-in. Pages are server-rendered with
//! auto-escaping; every state-changing form carries the CSRF token.

mod api_keys;
mod audit;
mod bulk;
mod feed;
mod overview;
mod session;
mod tokens;

use axum::routing::{get, post};
use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(session::routes())
        .route("/console", get(overview::overview))
        .route("/console/tokens", get(tokens::list))
        .route("/console/tokens/bulk-create", post(bulk::create))
        .route("/console/tokens/bulk-delete", post(tokens::bulk_delete))
        .route("/console/alerts", get(feed::feed))
        .route("/console/alerts/stream", get(feed::stream))
        .route("/console/audit", get(audit::page))
        .route("/console/audit/export", get(audit::export))
        .route(
            "/console/api-keys",
            get(api_keys::list).post(api_keys::create),
        )
        .route("/console/api-keys/{id}/revoke", post(api_keys::revoke))
}
