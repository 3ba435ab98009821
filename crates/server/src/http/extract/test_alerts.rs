//! The limit on test alerts: each one is a message through the token's channels (in `open`
//! mode, mail with the caller's memo through the operator's SMTP server), so they are counted
//! per token and per client address (an IPv6 /64 as one). Over either: `429` with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::client::ClientAddr;
use crate::http::ApiError;

/// Test alerts per token: a few at once, then one every six minutes (ten an hour).
const PER_TOKEN_BURST: u32 = 3;
const PER_TOKEN_PER_HOUR: u32 = 10;
/// Test alerts per client address, over all tokens: more, for an operator testing many keys.
const PER_ADDRESS_BURST: u32 = 10;
const PER_ADDRESS_PER_HOUR: u32 = 30;

#[derive(Clone)]
pub struct TestAlertLimiter {
    per_token: Arc<DefaultKeyedRateLimiter<String>>,
    per_address: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

fn quota(burst: u32, per_hour: u32) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_hour(NonZeroU32::new(per_hour).unwrap_or(NonZeroU32::MIN)).allow_burst(burst)
}

impl Default for TestAlertLimiter {
    fn default() -> Self {
        Self {
            per_token: Arc::new(RateLimiter::keyed(quota(
                PER_TOKEN_BURST,
                PER_TOKEN_PER_HOUR,
            ))),
            per_address: Arc::new(RateLimiter::keyed(quota(
                PER_ADDRESS_BURST,
                PER_ADDRESS_PER_HOUR,
            ))),
        }
    }
}

impl TestAlertLimiter {
    /// Counts one test alert of `token` from `client`, or says when to come back. The address
    /// is counted first, so a caller cycling through tokens is stopped by it too.
    pub fn check(&self, token: &str, client: ClientAddr) -> Result<(), ApiError> {
        let wait = |not_until: governor::NotUntil<_>| ApiError::TestAlertsLimited {
            retry_after_secs: not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1),
        };
        self.per_address.check_key(&client.bucket()).map_err(wait)?;
        self.per_token.check_key(&token.to_owned()).map_err(wait)?;
        Ok(())
    }

    /// Forgets keys whose quota has refilled, so memory stays bounded.
    pub fn prune(&self) {
        self.per_token.retain_recent();
        self.per_token.shrink_to_fit();
        self.per_address.retain_recent();
        self.per_address.shrink_to_fit();
    }
}
