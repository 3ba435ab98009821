//! The state every handler can reach.

use std::sync::Arc;

use crate::config::Secret;
use crate::services::{IngestService, TokenService};

use super::extract::client::CreateLimiter;

/// What every handler can reach: one `Arc`, since axum clones the state for every request
/// (cloning each service's handles instead was 3-4 % of a loaded server's time in `perf`).
#[derive(Clone)]
pub struct AppState(Arc<State>);

impl AppState {
    pub fn new(state: State) -> Self {
        Self(Arc::new(state))
    }
}

impl std::ops::Deref for AppState {
    type Target = State;

    fn deref(&self) -> &State {
        &self.0
    }
}

/// The services and settings behind `AppState`.
pub struct State {
    pub tokens: TokenService,
    pub access: crate::services::AccessService,
    pub ingest: IngestService,
    pub alerts: crate::services::alerts::AlertService,
    pub exposures: crate::services::ExposureService,
    /// The operators' read side (console pages, operator API lists).
    pub console: crate::services::ConsoleService,
    pub ingest_secret: Option<Secret>,
    pub templates: Arc<minijinja::Environment<'static>>,
    pub public_url: Arc<str>,
    pub limiter: CreateLimiter,
    /// Cookies get `Secure` when the public URL is https.
    pub secure_cookies: bool,
    /// Domain time: stamps, freshness checks, "n minutes ago".
    pub clock: crate::clock::SharedClock,
    /// Who may send an ingest body, and how many are parsed at once.
    pub ingest_admission: crate::http::extract::admission::IngestAdmission,
    /// Proof of life: the heartbeat and each detection path's state.
    pub heartbeat: crate::services::heartbeat::HeartbeatService,
}

impl State {
    pub fn manage_url(&self, id: &canarykeys_core::TokenId, secret: &str) -> String {
        format!("{}/manage/{id}?s={secret}", self.public_url)
    }
}
