//! The HTTP side: shared state, the router, and the layers every response passes through
//! (security headers, body limit, request logging that never records query strings).

pub mod api;
pub mod api_alerts;
pub mod api_console;
pub mod auth;
pub mod client;
pub mod console;
pub mod csrf;
pub mod error;
pub mod ingest;
pub mod ui;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::config::Secret;
use crate::services::{IngestService, TokenService};
pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub tokens: TokenService,
    pub access: crate::services::AccessService,
    pub ingest: IngestService,
    pub alerts: crate::services::alerts::AlertService,
    pub ingest_secret: Option<Secret>,
    pub templates: Arc<minijinja::Environment<'static>>,
    pub public_url: Arc<str>,
    pub limiter: client::CreateLimiter,
    /// Cookies get `Secure` when the public URL is https.
    pub secure_cookies: bool,
}

impl AppState {
    pub fn manage_url(&self, id: &canarykeys_core::TokenId, secret: &str) -> String {
        format!("{}/manage/{id}?s={secret}", self.public_url)
    }
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.ingest.metrics().render(),
    )
}

/// Per-path detail for operators and monitoring; plain `/healthz` stays "ok" for load balancers.
/// It names the decoy accounts, so it needs an operator (session or API key with `alerts:read`).
async fn health_detail(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: auth::ApiCaller,
) -> Result<axum::Json<crate::services::detection_health::HealthDetail>, ApiError> {
    caller.require(crate::services::Scope::AlertsRead)?;
    let detail = state
        .ingest
        .detection_health()
        .await
        .map_err(|e| ApiError::Service(crate::services::ServiceError::Store(e)))?;
    Ok(axum::Json(detail))
}

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
        .route("/healthz", get(|| async { "ok" }))
        .route("/healthz/detail", get(health_detail))
        .route("/metrics", get(metrics))
        .merge(ui::routes())
        .merge(auth::routes())
        .merge(console::routes())
        .nest("/api/v1", api::routes())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // After the general limit, so the ingest route's own (larger) limit wins.
        .merge(ingest::routes(ingest_max_body_bytes))
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
