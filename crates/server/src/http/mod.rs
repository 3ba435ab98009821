//! The HTTP side: shared state, the router, and the layers every response passes through
//! (security headers, body limit, request logging that never records query strings).
//!
//! Layout, by one rule (route modules never import each other):
//! - `extract/` and `html/` are shared pieces (who is calling, CSRF, pages, the chart); they
//!   import no router;
//! - `home` (the create form), `manage/` (the secret-link pages), `console/` (operators),
//!   `api/` (JSON) and `ingest` (CloudTrail in) are routers, grouped by audience;
//! - `assets` serves static files and `ops` health and metrics; this module only assembles them.

mod api;
mod assets;
mod console;
pub mod error;
pub mod extract;
mod home;
pub mod html;
mod ingest;
mod manage;
mod ops;
pub mod respond;
pub mod state;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use state::{AppState, State};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router(state: AppState, max_body_bytes: usize, ingest_max_body_bytes: usize) -> Router {
    let headers = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    let mut app = Router::new()
        .merge(ops::routes())
        .merge(home::routes())
        .merge(manage::routes())
        .merge(assets::routes())
        .merge(console::routes())
        .nest("/api/v1", api::routes())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // After the general limit, so the ingest route's own (larger) limit wins.
        .merge(ingest::routes(state.clone(), ingest_max_body_bytes))
        .fallback(|| async { ApiError::NoRoute })
        .with_state(state);
    for (name, value) in headers {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    // Log the path only: manage links carry their secret in the query string.
    app.layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
        tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
    }))
}
