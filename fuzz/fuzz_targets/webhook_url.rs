//! Webhook URL parsing and the address policy that keeps webhooks off private networks. Any text
//! is parsed as a token's webhook URL: parsing never panics, what it accepts is an http(s) URL
//! with a host and no credentials whose canonical form re-parses to itself, and an IP literal in
//! a refused range is refused (unless `allow_private` lifts it, which it never does for
//! metadata, multicast and the like). The policy is also checked on the raw bytes as addresses,
//! against a second statement of the ranges written with the standard library's predicates.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use canarykeys_core::ssrf::{refusal, target, Target};
use canarykeys_core::WebhookUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let allow_private = flags & 1 == 1;
    if let Some(b) = rest.first_chunk::<4>() {
        policy(IpAddr::V4(Ipv4Addr::from(*b)));
    }
    if let Some(b) = rest.first_chunk::<16>() {
        policy(IpAddr::V6(Ipv6Addr::from(*b)));
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // A stored URL is read back with `Url::parse` before each send: the target is judged there.
    if let Ok(url) = url::Url::parse(text) {
        judge(&url, allow_private);
    }
    let Ok(hook) = WebhookUrl::parse(text) else {
        return;
    };
    let url = hook.url();
    assert!(matches!(url.scheme(), "http" | "https"), "{url}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{url}"
    );
    assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{url}");
    // What is stored is the canonical form; reading it back must give the same URL.
    let again = url::Url::parse(hook.as_str()).expect("a canonical URL re-parses");
    assert_eq!(&again, url);
    if hook.as_str().len() <= WebhookUrl::MAX_LEN {
        let again = WebhookUrl::parse(hook.as_str()).expect("a canonical webhook URL re-parses");
        assert_eq!(again.url(), url);
    }
    assert!(
        target(url).is_ok(),
        "an accepted webhook URL has a target: {url}"
    );
});

/// The target of any URL: only http(s); an IP literal is judged by its address, never resolved.
fn judge(url: &url::Url, allow_private: bool) {
    let Ok(t) = target(url) else {
        return;
    };
    assert!(matches!(url.scheme(), "http" | "https"), "{url}");
    match t {
        Target::Literal(addr) => {
            assert_eq!(Some(addr.port()), url.port_or_known_default());
            let refused = refusal(addr.ip(), allow_private).is_some();
            if !allow_private && must_refuse(addr.ip()) {
                assert!(refused, "{url} passed");
            }
            if never(addr.ip()) {
                assert!(refused, "{url} passed with allow_private");
            }
        }
        Target::Name { host, .. } => {
            // An address spelled as a name would skip the literal check (the resolver would
            // still refuse it, but the URL would be judged only at connect time).
            assert!(
                host.parse::<IpAddr>().is_err(),
                "{url}: {host} is an address"
            );
            assert!(!host.is_empty());
        }
    }
}

fn policy(ip: IpAddr) {
    let (strict, lenient) = (refusal(ip, false), refusal(ip, true));
    // Allowing private addresses lifts refusals; it never adds one or changes its reason.
    if let Some(why) = lenient {
        assert_eq!(strict, Some(why), "{ip}");
    }
    if must_refuse(ip) {
        assert!(strict.is_some(), "{ip} passed");
    }
    if never(ip) {
        assert!(lenient.is_some(), "{ip} passed with allow_private");
    }
}

/// The IPv4 address an IPv6 one ends up at (mapped, compatible, NAT64, 6to4).
fn inner_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && s[6] != 0 {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    (s[0] == 0x2002).then(|| Ipv4Addr::new(o[2], o[3], o[4], o[5]))
}

/// Refused unless `allow_private`: loopback, private, link-local, CGNAT and the rest.
fn must_refuse(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = inner_v4(v6) {
                return must_refuse(IpAddr::V4(v4));
            }
            let s0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || s0 & 0xfe00 == 0xfc00
                || s0 & 0xffc0 == 0xfe80
                || s0 & 0xffc0 == 0xfec0
        }
    }
}

/// Refused even with `allow_private`: metadata, unspecified, multicast, broadcast, reserved.
fn never(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let a = v4.octets()[0];
            v4 == Ipv4Addr::new(169, 254, 169, 254) || a == 0 || a >= 224
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = inner_v4(v6) {
                return never(IpAddr::V4(v4));
            }
            v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.segments()[..4] == [0x100, 0, 0, 0]
        }
    }
}
