//! The address policy that keeps webhooks off private networks, with no I/O: which IP addresses
//! may receive a webhook, and what a URL's host is (an address to check now, or a name the
//! server must resolve and check). Anyone who can create a token chooses its webhook URL, so
//! without this the server would POST, on their behalf, to its own loopback services, the LAN,
//! or the cloud metadata service. The server's `notify::webhook::ssrf` resolves names and applies
//! [`refusal`] to every address, at creation, before each send and inside the HTTP client's
//! resolver; the fuzz target `webhook_url` checks this module on arbitrary input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// The one message for every refused address. It does not say which address or range: the
/// person creating a token should not learn what an internal name resolves to.
pub const REFUSED: &str = "refused: resolves to a private address";

/// Whether `allow_private` lifts a refusal. Metadata, multicast and the like are never a
/// webhook receiver, so they stay refused even in tests and on internal deployments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Private,
    Never,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

/// Refused IPv4 ranges, most specific first so the reason names the metadata service.
const V4: &[(Ipv4Net, Class, &str)] = &[
    (v4(169, 254, 169, 254, 32), Class::Never, "cloud metadata"),
    (
        v4(0, 0, 0, 0, 8),
        Class::Never,
        "unspecified (this network)",
    ),
    (v4(10, 0, 0, 0, 8), Class::Private, "private (RFC 1918)"),
    (
        v4(100, 64, 0, 0, 10),
        Class::Private,
        "shared address space (CGNAT)",
    ),
    (v4(127, 0, 0, 0, 8), Class::Private, "loopback"),
    (v4(169, 254, 0, 0, 16), Class::Private, "link-local"),
    (v4(172, 16, 0, 0, 12), Class::Private, "private (RFC 1918)"),
    (v4(192, 168, 0, 0, 16), Class::Private, "private (RFC 1918)"),
    (v4(198, 18, 0, 0, 15), Class::Private, "benchmarking"),
    (v4(224, 0, 0, 0, 4), Class::Never, "multicast"),
    (v4(255, 255, 255, 255, 32), Class::Never, "broadcast"),
    (v4(240, 0, 0, 0, 4), Class::Never, "reserved"),
];

/// Refused IPv6 ranges. Forms that embed an IPv4 address are checked by that address instead.
const V6: &[(Ipv6Net, Class, &str)] = &[
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        Class::Never,
        "cloud metadata",
    ),
    (v6([0; 8], 128), Class::Never, "unspecified"),
    (
        v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
        Class::Private,
        "loopback",
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        Class::Never,
        "discard-only",
    ),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        Class::Private,
        "local-use NAT64",
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        Class::Private,
        "unique local (private)",
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        Class::Private,
        "link-local",
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        Class::Private,
        "site-local",
    ),
    (
        v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        Class::Never,
        "multicast",
    ),
];

/// The IPv4 address an IPv6 one stands for, where the connection would end up there: mapped
/// `::ffff:a.b.c.d`, deprecated compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4
/// `2002:aabb:ccdd::`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        // `::` and `::1` are themselves, not 0.0.0.0 and 0.0.0.1.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

fn classify(ip: IpAddr) -> Option<(Class, &'static str)> {
    match ip {
        IpAddr::V4(ip) => V4
            .iter()
            .find(|(net, ..)| net.contains(&ip))
            .map(|&(_, class, why)| (class, why)),
        IpAddr::V6(ip) => {
            if let Some(inner) = embedded_v4(ip) {
                return classify(IpAddr::V4(inner));
            }
            V6.iter()
                .find(|(net, ..)| net.contains(&ip))
                .map(|&(_, class, why)| (class, why))
        }
    }
}

/// Why `ip` may not receive a webhook, or `None` if it may. `allow_private` lets loopback and
/// private ranges through (tests, or a receiver on the same network), never metadata.
pub fn refusal(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match classify(ip)? {
        (Class::Private, _) if allow_private => None,
        (_, why) => Some(why),
    }
}

/// Where a webhook URL would connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// An IP literal: nothing to resolve, and it cannot be re-pointed.
    Literal(SocketAddr),
    /// A name, to be resolved, and every address it resolves to checked with [`refusal`].
    Name { host: &'a str, port: u16 },
}

/// What `url` connects to, or why it can never be sent to (the message is safe to show).
pub fn target(url: &Url) -> Result<Target<'_>, &'static str> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err("a webhook URL must be http:// or https://");
    }
    let port = url
        .port_or_known_default()
        .ok_or("a webhook URL needs a port")?;
    match url.host() {
        None => Err("a webhook URL needs a host"),
        Some(Host::Ipv4(ip)) => Ok(Target::Literal(SocketAddr::new(ip.into(), port))),
        Some(Host::Ipv6(ip)) => Ok(Target::Literal(SocketAddr::new(ip.into(), port))),
        Some(Host::Domain(host)) => Ok(Target::Name { host, port }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(url: &str) -> IpAddr {
        match target(&Url::parse(url).unwrap()).unwrap() {
            Target::Literal(addr) => addr.ip(),
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn literals_in_every_spelling_are_judged_by_their_address() {
        for url in [
            "http://0x7f.1/",
            "http://2130706433/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[2002:7f00:1::]/",
            "http://[64:ff9b::7f00:1]/",
        ] {
            assert_eq!(refusal(literal(url), false), Some("loopback"), "{url}");
            assert_eq!(refusal(literal(url), true), None, "{url}");
        }
        for url in ["http://169.254.169.254/", "http://[::ffff:a9fe:a9fe]/"] {
            assert_eq!(refusal(literal(url), true), Some("cloud metadata"), "{url}");
        }
        assert_eq!(refusal(literal("https://[2001:db8::1]/"), false), None);
    }

    #[test]
    fn names_are_left_to_the_resolver_and_other_schemes_refused() {
        let url = Url::parse("https://hooks.example.com:8443/x").unwrap();
        assert_eq!(
            target(&url),
            Ok(Target::Name {
                host: "hooks.example.com",
                port: 8443
            })
        );
        for bad in [
            "ftp://example.com/",
            "mailto:a@example.com",
            "file:///etc/passwd",
        ] {
            assert!(target(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
