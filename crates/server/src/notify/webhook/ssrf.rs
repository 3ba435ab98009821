//! Keeps webhooks off private networks. Anyone who can create a token chooses its webhook URL,
//! so without this the server would POST, on their behalf, to its own loopback services, the
//! LAN, or the cloud metadata service.
//!
//! A URL is refused if ANY address its host resolves to is refused: a resolver may hand out the
//! addresses in any order, and the connection may use any of them. The check runs when the
//! token is made ([`check_new_webhook`]), again before each send ([`check_url`]), and a third
//! time inside the HTTP client's resolver ([`CheckedResolver`]), which is what the connection
//! actually uses. A name that is re-pointed at 127.0.0.1 between check and connect (DNS
//! rebinding) therefore still cannot be reached. Which addresses are refused is
//! `canarykeys_core::ssrf` (pure, and fuzzed); this module resolves names and applies it.

use std::fmt;
use std::net::SocketAddr;

use canarykeys_core::ssrf::Target;
pub use canarykeys_core::ssrf::{refusal, REFUSED};
use url::Url;

/// Why a URL cannot be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckError {
    /// Not an http(s) URL with a host: will never work.
    BadUrl(String),
    /// The name did not resolve now; it may later.
    Unresolved(String),
    /// An address is refused ([`REFUSED`]).
    Refused,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadUrl(m) | Self::Unresolved(m) => f.write_str(m),
            Self::Refused => f.write_str(REFUSED),
        }
    }
}

impl std::error::Error for CheckError {}

async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, CheckError> {
    let unresolved =
        |why: String| CheckError::Unresolved(format!("could not resolve {host}: {why}"));
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| unresolved(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(unresolved("no addresses".into()));
    }
    Ok(addrs)
}

fn refuse_any(host: &str, addrs: &[SocketAddr], allow_private: bool) -> Result<(), CheckError> {
    for addr in addrs {
        if let Some(why) = refusal(addr.ip(), allow_private) {
            // The operator's log says which; the caller's message does not.
            tracing::warn!(host, address = %addr.ip(), reason = why, "webhook address refused");
            return Err(CheckError::Refused);
        }
    }
    Ok(())
}

/// The checked addresses of `url`, or why it may not be sent to.
pub(crate) async fn check(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, CheckError> {
    let target = canarykeys_core::ssrf::target(url).map_err(|m| CheckError::BadUrl(m.into()))?;
    let (host, addrs) = match target {
        Target::Literal(addr) => (addr.ip().to_string(), vec![addr]),
        Target::Name { host, port } => (host.to_owned(), lookup(host, port).await?),
    };
    refuse_any(&host, &addrs, allow_private)?;
    Ok(addrs)
}

/// Resolves `url`'s host and returns its addresses if none of them is refused: loopback,
/// private (RFC 1918, `fc00::/7`), link-local, CGNAT, unspecified, broadcast, multicast,
/// reserved, cloud metadata, and IPv6 forms embedding any of those. Documentation ranges pass.
pub async fn check_url(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    check(url, allow_private).await.map_err(|e| e.to_string())
}

/// The check when a token is created: the same rules, except that a host which does not
/// resolve at all is accepted (it may exist by the time an alert fires; every send checks
/// again). The URL's `#flavour=` override, if any, must name a flavour.
pub async fn check_new_webhook(url: &Url, allow_private: bool) -> Result<(), String> {
    super::WebhookFlavour::for_url(url)?;
    match check(url, allow_private).await {
        Ok(_) | Err(CheckError::Unresolved(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The HTTP client's resolver: resolves, then fails the connection if any address is refused.
/// hyper only asks it for names; IP literals skip it, and [`check`] covers them (a literal
/// cannot be re-pointed).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str();
            // Port 0: the client puts in the URL's port.
            let addrs = lookup(host, 0).await?;
            refuse_any(host, &addrs, allow_private)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    async fn refused(url: &str, allow_private: bool) -> bool {
        let url = Url::parse(url).unwrap();
        match check_url(&url, allow_private).await {
            Err(e) => {
                assert_eq!(e, REFUSED, "{url}");
                true
            }
            Ok(_) => false,
        }
    }

    #[tokio::test]
    async fn refuses_every_private_range() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.1.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:10.1.2.3]/",
            "http://0.0.0.0/",
            "http://0.1.2.3:8080/",
            "http://localhost/",
            "http://localhost:9000/hook",
            "http://127.0.0.1/",
            "http://127.9.9.9/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://10.0.0.1/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://100.100.100.200/",
            "http://198.18.0.1/",
            "http://224.0.0.1/",
            "http://239.255.255.250/",
            "http://255.255.255.255/",
            "http://240.0.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fd00:ec2::254]/",
            "http://[fc00::1]/",
            "http://[fdff::1]/",
            "http://[fe80::1]/",
            "http://[febf::1]/",
            "http://[fec0::1]/",
            "http://[ff02::1]/",
            "http://[100::1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1::1]/",
            "http://[2002:7f00:1::]/",
            "http://[2002:c0a8:101::1]/",
        ] {
            assert!(refused(url, false).await, "{url} passed");
        }
    }

    #[tokio::test]
    async fn public_and_documentation_addresses_pass() {
        for url in [
            "http://8.8.8.8/",
            "https://1.1.1.1/hook",
            "http://172.32.0.1/",
            "http://100.128.0.1/",
            "http://192.0.2.10/",
            "http://198.51.100.7/",
            "http://203.0.113.7:8443/x",
            "http://[2001:db8::1]/",
            "http://[2606:4700:4700::1111]/",
            "http://[2002:808:808::1]/",
            "http://[::ffff:8.8.8.8]/",
        ] {
            assert!(!refused(url, false).await, "{url} refused");
        }
    }

    #[tokio::test]
    async fn allow_private_lets_loopback_through_but_never_metadata() {
        assert!(!refused("http://127.0.0.1:9000/", true).await);
        assert!(!refused("http://localhost/", true).await);
        assert!(!refused("http://10.0.0.1/", true).await);
        assert!(refused("http://169.254.169.254/", true).await);
        assert!(refused("http://[fd00:ec2::254]/", true).await);
        assert!(refused("http://0.0.0.0/", true).await);
        let addrs = check_url(&Url::parse("http://127.0.0.1:9000/").unwrap(), true)
            .await
            .unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:9000".parse().unwrap()]);
    }

    #[tokio::test]
    async fn new_webhooks_may_name_hosts_that_do_not_resolve_yet() {
        let url = |s| Url::parse(s).unwrap();
        let missing = url("https://hook.does-not-exist.invalid/x");
        check_new_webhook(&missing, false).await.unwrap();
        let err = check_url(&missing, false).await.unwrap_err();
        assert!(
            err.starts_with("could not resolve hook.does-not-exist.invalid"),
            "{err}"
        );
        for bad in [
            "http://localhost/",
            "http://169.254.169.254/",
            "http://[::ffff:127.0.0.1]/",
            "ftp://example.com/",
            "https://example.com/#flavour=carrier-pigeon",
        ] {
            assert!(check_new_webhook(&url(bad), false).await.is_err(), "{bad}");
        }
        check_new_webhook(&url("https://203.0.113.7/#flavour=slack"), false)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_client_resolver_refuses_too() {
        let name = |s: &str| s.parse::<reqwest::dns::Name>().unwrap();
        let err = match (CheckedResolver {
            allow_private: false,
        })
        .resolve(name("localhost"))
        .await
        {
            Err(e) => e,
            Ok(_) => panic!("localhost resolved"),
        };
        assert_eq!(err.downcast_ref::<CheckError>(), Some(&CheckError::Refused));
        let addrs: Vec<SocketAddr> = (CheckedResolver {
            allow_private: true,
        })
        .resolve(name("localhost"))
        .await
        .map_err(|e| e.to_string())
        .unwrap()
        .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
