//! The JSON API under `/api/v1`: tokens (each managed with its own secret, sent as
//! `Authorization: Bearer <manage_secret>`; an unknown id and a wrong secret both answer 404),
//! their hits and deliveries, and the operator lists (API keys or a console session).

mod deliveries;
mod hits;
mod operator;
mod tokens;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .merge(tokens::routes())
        .merge(hits::routes())
        .merge(deliveries::routes())
        .merge(operator::routes())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
