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
    /// The key per-address limits count under: an IPv4 address as it is, an IPv6 address by its
    /// /64 (one host is routinely given a whole /64, so counting single IPv6 addresses would let
    /// one machine pose as 2^64 clients). An IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn bucket(&self) -> IpAddr {
        match self.0 {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mask = u128::MAX << 64;
                    IpAddr::V6((u128::from(v6) & mask).into())
                }
            },
        }
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
        let Some(limiter) = self.limiter else { return };
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClientAddr;
    use std::net::IpAddr;

    fn bucket(s: &str) -> IpAddr {
        ClientAddr(s.parse().unwrap()).bucket()
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_ipv4_as_themselves() {
        assert_eq!(
            bucket("2001:db8:1:2:aaaa::1"),
            bucket("2001:db8:1:2:ffff::9")
        );
        assert_eq!(
            bucket("2001:db8:1:2::1"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(bucket("2001:db8:1:2::1"), bucket("2001:db8:1:3::1"));
        assert_eq!(
            bucket("203.0.113.7"),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(bucket("::ffff:203.0.113.7"), bucket("203.0.113.7"));
        assert_ne!(bucket("203.0.113.7"), bucket("203.0.113.8"));
    }
}
