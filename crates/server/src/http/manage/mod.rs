//! The pages a token's secret link opens: the manage page, channel switches, delete, downloads,
//! the test alert, the source ignore list and the history export. Every action checks the secret;
//! every form also checks the CSRF token.

mod hits;
mod page;

use axum::routing::{get, post};
use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/manage/{id}", get(page::manage))
        .route("/manage/{id}/channels", post(page::channels))
        .route("/manage/{id}/delete", post(page::delete))
        .route("/manage/{id}/download", get(page::download))
        .route("/manage/{id}/test-alert", post(hits::test_alert))
        .route("/manage/{id}/ignore", post(hits::ignore))
        .route("/manage/{id}/export", get(hits::export))
}
