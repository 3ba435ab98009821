//! Who is asking: the client address (the peer, or the last `X-Forwarded-For` hop behind a
//! trusted proxy) and the per-address limit on token creation.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitConfig;
use crate::http::{ApiError, AppState};

/// The client's address as far as this server can tell.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The key per-address limits count under (`canarykeys_core::netaddr::rate_key`): an IPv6
    /// client by its /64.
    pub fn bucket(&self) -> IpAddr {
        canarykeys_core::netaddr::rate_key(self.0)
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.limiter.trust_forwarded_for {
            // Only the last hop was written by our proxy; anything before it is the client's
            // word. An unreadable last hop falls back to the peer, never to an earlier entry.
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|s| s.trim().parse::<IpAddr>().ok());
            if let Some(ip) = forwarded {
                return Ok(Self(ip));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(Self(peer))
    }
}

/// Limits token creation per client address, so an open form cannot be used to fill the
/// database (or, with a real minter, the decoy account).
#[derive(Clone)]
pub struct CreateLimiter {
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    pub trust_forwarded_for: bool,
    /// Test alerts, per token and per address (kept here, beside the other per-address limit).
    pub test_alerts: super::test_alerts::TestAlertLimiter,
}

impl CreateLimiter {
    pub fn new(cfg: &RateLimitConfig) -> Self {
        let limiter = NonZeroU32::new(cfg.create_per_minute).map(|per_minute| {
            let burst = NonZeroU32::new(cfg.create_burst).unwrap_or(NonZeroU32::MIN);
            Arc::new(RateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ))
        });
        Self {
            limiter,
            trust_forwarded_for: cfg.trust_forwarded_for,
            test_alerts: super::test_alerts::TestAlertLimiter::default(),
        }
    }

    pub fn check(&self, client: ClientAddr) -> Result<(), ApiError> {
        match &self.limiter {
            Some(l) if l.check_key(&client.bucket()).is_err() => Err(ApiError::RateLimited),
            _ => Ok(()),
        }
    }

    /// Forgets addresses whose quota has refilled, so memory stays bounded. Runs for the life of
    /// the server.
    pub async fn prune_forever(self) {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            self.test_alerts.prune();
            if let Some(limiter) = &self.limiter {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}
