//! Admission for work a stranger can start before proving who they are: at most `per_address`
//! at once from one client (an IPv6 /64 counts as one, see `ClientAddr::bucket`), `total` in
//! all, and `max_bytes` of declared body in all (so memory is bounded whatever the bodies
//! hold). A full pool answers at once (429 with `Retry-After`); nobody queues behind it, so a
//! crowd of forgers can neither hold a slot that proven callers need nor grow a queue.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::client::ClientAddr;
use crate::config::IngestConfig;

/// The ingest endpoint's doors: the pool for bodies not yet proven, the parse slots for proven
/// ones, and the deadline and bound of a body.
#[derive(Clone)]
pub struct IngestAdmission {
    pub unverified: AddressPool,
    pub slots: Arc<tokio::sync::Semaphore>,
    pub body_timeout: std::time::Duration,
    pub max_body_bytes: usize,
}

impl IngestAdmission {
    pub fn new(cfg: &IngestConfig) -> Self {
        Self {
            unverified: AddressPool::new(
                cfg.unverified_per_address,
                cfg.unverified_total,
                cfg.unverified_bytes,
            ),
            slots: Arc::new(tokio::sync::Semaphore::new(cfg.parse_slots.max(1))),
            body_timeout: cfg.body_timeout,
            max_body_bytes: cfg.max_body_bytes,
        }
    }
}

#[derive(Clone)]
pub struct AddressPool {
    inner: Arc<Mutex<Counts>>,
    per_address: usize,
    total: usize,
    max_bytes: u64,
}

#[derive(Default)]
struct Counts {
    total: usize,
    bytes: u64,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted request; its place is given back when it is dropped, however the request ends.
pub struct Permit {
    inner: Arc<Mutex<Counts>>,
    address: IpAddr,
    bytes: u64,
}

impl AddressPool {
    /// A pool of `total` places, at most `per_address` of them held by one client. Zero in either
    /// is read as 1, so a misconfiguration narrows the door instead of closing it.
    pub fn new(per_address: usize, total: usize, max_bytes: u64) -> Self {
        Self {
            inner: Arc::default(),
            per_address: per_address.max(1),
            total: total.max(1),
            max_bytes,
        }
    }

    /// A place for `client` sending a body of `bytes`, or `None` when the client or the pool is
    /// at a bound.
    pub fn try_admit(&self, client: ClientAddr, bytes: u64) -> Option<Permit> {
        let address = client.bucket();
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.total || counts.bytes.saturating_add(bytes) > self.max_bytes {
            return None;
        }
        let held = counts.by_address.entry(address).or_default();
        if *held >= self.per_address {
            return None;
        }
        *held += 1;
        counts.total += 1;
        counts.bytes += bytes;
        Some(Permit {
            inner: self.inner.clone(),
            address,
            bytes,
        })
    }

    /// Places held now (for `/metrics` and tests).
    pub fn held(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        counts.bytes -= self.bytes;
        // Forget an address with nothing held, so the map holds only current clients.
        if let Some(held) = counts.by_address.get_mut(&self.address) {
            *held -= 1;
            if *held == 0 {
                counts.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(s: &str) -> ClientAddr {
        ClientAddr(s.parse().unwrap())
    }

    #[test]
    fn bounds_per_address_and_in_all_and_gives_places_back() {
        let pool = AddressPool::new(2, 3, 1000);
        let a1 = pool.try_admit(client("192.0.2.1"), 10).unwrap();
        let _a2 = pool.try_admit(client("192.0.2.1"), 10).unwrap();
        assert!(
            pool.try_admit(client("192.0.2.1"), 10).is_none(),
            "per address"
        );
        let _b1 = pool.try_admit(client("2001:db8::1"), 10).unwrap();
        assert!(
            pool.try_admit(client("192.0.2.9"), 10).is_none(),
            "the pool is full"
        );
        drop(a1);
        assert_eq!(pool.held(), 2);
        let _b2 = pool.try_admit(client("2001:db8::ffff"), 10).unwrap();
        assert!(
            pool.try_admit(client("2001:db8::2"), 10).is_none(),
            "the pool is full again"
        );
    }

    #[test]
    fn declared_bytes_are_bounded_in_all() {
        let pool = AddressPool::new(10, 10, 100);
        let a = pool.try_admit(client("192.0.2.1"), 60).unwrap();
        assert!(pool.try_admit(client("192.0.2.2"), 41).is_none());
        let _b = pool.try_admit(client("192.0.2.2"), 40).unwrap();
        drop(a);
        assert!(pool.try_admit(client("192.0.2.3"), 60).is_some());
    }

    #[test]
    fn one_ipv6_64_is_one_client() {
        let pool = AddressPool::new(1, 10, 1000);
        let _p = pool.try_admit(client("2001:db8:0:1::1"), 1).unwrap();
        assert!(pool.try_admit(client("2001:db8:0:1::2"), 1).is_none());
        assert!(pool.try_admit(client("2001:db8:0:2::1"), 1).is_some());
    }
}
