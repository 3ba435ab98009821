//! Offline enrichment of a hit's source: what made the call, judged from CloudTrail's
//! `sourceIPAddress`, `userAgent`, `vpcEndpointId` and `eventSource` against data files on this
//! machine only. Nothing here calls an outside service: a look-up would tell a third party which
//! addresses we care about, and a decoy must never give itself away.

mod geoip;
mod source;
mod tor;
mod user_agents;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::config::EnrichConfig;
use geoip::GeoIp;
use source::Source;
use tor::TorExits;
use user_agents::UserAgentRules;

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} line {line}: {problem}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("cannot open the MaxMind database {}", path.display())]
    GeoIp {
        path: PathBuf,
        #[source]
        source: maxminddb::MaxMindDbError,
    },
}

/// What we could tell about a hit's source. Every label is our own wording, with at most an
/// identifier that passed a strict shape check or came from our own data files; never the user
/// agent or any other attacker-chosen text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Enrichment {
    pub labels: Vec<String>,
    /// ISO code and English name, "DE Germany".
    pub country: Option<String>,
    /// Number and organisation, "AS15169 Google LLC".
    pub asn: Option<String>,
}

/// The loaded lists and databases. Built once at start; cloning shares them.
#[derive(Clone, Debug)]
pub struct Enricher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    user_agents: UserAgentRules,
    tor: TorExits,
    geoip: GeoIp,
}

impl Enricher {
    /// Reads every configured file. A file that is set but unreadable or malformed is an error
    /// naming it: a typo in a path should stop the start, not quietly turn a check off.
    pub fn load(cfg: &EnrichConfig) -> Result<Self, EnrichError> {
        let user_agents = match &cfg.user_agents_file {
            Some(path) => UserAgentRules::load(path)?,
            None => UserAgentRules::builtin(),
        };
        let tor = match &cfg.tor_exit_list_file {
            Some(path) => TorExits::load(path)?,
            None => TorExits::default(),
        };
        let geoip = GeoIp::open(cfg.geoip_city_db.as_deref(), cfg.geoip_asn_db.as_deref())?;
        let enricher = Self::from_parts(user_agents, tor, geoip);
        tracing::info!(
            user_agent_rules = enricher.inner.user_agents.len(),
            tor_exits = enricher.inner.tor.len(),
            geoip = enricher.inner.geoip.is_configured(),
            "enrichment data loaded"
        );
        Ok(enricher)
    }

    /// The built-in user-agent list and nothing else: no Tor list, no MaxMind databases.
    pub fn empty() -> Self {
        Self::from_parts(
            UserAgentRules::builtin(),
            TorExits::default(),
            GeoIp::default(),
        )
    }

    fn from_parts(user_agents: UserAgentRules, tor: TorExits, geoip: GeoIp) -> Self {
        Self {
            inner: Arc::new(Inner {
                user_agents,
                tor,
                geoip,
            }),
        }
    }

    /// Labels, country and network for one CloudTrail record. Pass "" for fields the record
    /// lacks. Never fails: a hit is recorded whatever enrichment finds.
    pub fn enrich(
        &self,
        source_ip: &str,
        user_agent: &str,
        vpc_endpoint_id: Option<&str>,
        event_source: &str,
    ) -> Enrichment {
        let mut out = Enrichment::default();
        match source::classify(source_ip) {
            Source::Absent => {}
            Source::Ip(ip) => {
                if self.inner.tor.contains(ip) {
                    out.labels.push("Tor exit node".to_owned());
                }
                (out.country, out.asn) = self.inner.geoip.lookup(ip);
            }
            Source::AwsService(principal) => {
                out.labels.push(format!("AWS service ({principal})"));
            }
            Source::AwsInternal => out.labels.push("AWS Internal".to_owned()),
            Source::Unrecognised => out.labels.push("unrecognised source".to_owned()),
        }
        if let Some(label) = vpc_endpoint_id.and_then(source::vpc_endpoint_label) {
            out.labels.push(label);
        }
        out.labels.extend(
            self.inner
                .user_agents
                .matches(user_agent)
                .into_iter()
                .map(|tool| format!("user agent: {tool}")),
        );
        if source::is_console_sign_in(event_source) {
            out.labels.push("AWS console sign-in".to_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_data() {
        let a = Enricher::empty();
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
    }

    #[test]
    fn labels_come_in_a_fixed_order() {
        let tor = TorExits::parse("203.0.113.7\n").unwrap();
        let e = Enricher::from_parts(UserAgentRules::builtin(), tor, GeoIp::default());
        let got = e.enrich(
            "203.0.113.7",
            "TruffleHog",
            Some("vpce-1a2b3c4d"),
            "signin.amazonaws.com",
        );
        assert_eq!(
            got.labels,
            [
                "Tor exit node",
                "via VPC endpoint vpce-1a2b3c4d",
                "user agent: TruffleHog (secret scanner verifying the key)",
                "AWS console sign-in",
            ]
        );
    }

    #[test]
    fn absent_source_says_nothing() {
        let got = Enricher::empty().enrich("", "", None, "");
        assert_eq!(got, Enrichment::default());
    }
}
