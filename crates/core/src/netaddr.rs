//! Client addresses as limits see them: the unit one client can be expected to hold.

use std::net::IpAddr;

/// The key per-address limits count under: an IPv4 address as it is, an IPv6 address by its
/// /64 (one host is routinely given a whole /64, so counting single IPv6 addresses would let one
/// machine pose as 2^64 clients). An IPv4-mapped IPv6 address counts as its IPv4 address.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::rate_key;
    use std::net::IpAddr;

    fn key(s: &str) -> IpAddr {
        rate_key(s.parse().unwrap())
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_ipv4_as_themselves() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff::9"));
        assert_eq!(
            key("2001:db8:1:2::1"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(key("::ffff:203.0.113.7"), key("203.0.113.7"));
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
    }
}
