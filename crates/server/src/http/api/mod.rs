//! The JSON API under `/api/v1`: tokens (each managed with its own secret, sent as
//! `Authorization: Bearer <manage_secret>`; an unknown id and a wrong secret both answer 404),
//! their hits and deliveries, and the operator lists (API keys or a console session). The
//! OpenAPI document is generated from these handlers (`openapi`).

mod deliveries;
mod detection;
mod hits;
mod manage_secret;
mod openapi;
mod operator;
mod session;
mod tokens;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(document))
        .merge(tokens::routes())
        .merge(hits::routes())
        .merge(manage_secret::routes())
        .merge(session::routes())
        .merge(deliveries::routes())
        .merge(operator::routes())
        .merge(detection::routes())
}

async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::DOCUMENT.as_str(),
    )
        .into_response()
}
