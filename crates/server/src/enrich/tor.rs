//! Tor exit addresses from a local copy of the Tor Project's bulk exit list (one address per
//! line). Read once at start; refreshing the file means restarting the server.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::EnrichError;

#[derive(Clone, Debug, Default)]
pub(super) struct TorExits {
    /// The bulk list is a few thousand single addresses: a set answers in constant time.
    addresses: HashSet<IpAddr>,
    /// Networks are accepted too, for operators who keep their own lists in CIDR form.
    networks: Vec<IpNet>,
}

impl TorExits {
    pub(super) fn load(path: &Path) -> Result<Self, EnrichError> {
        let text = std::fs::read_to_string(path).map_err(|source| EnrichError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, problem)| EnrichError::Parse {
            path: path.to_owned(),
            line,
            problem,
        })
    }

    /// One address or network per line; `#` starts a comment, also after an entry. A line that
    /// is neither is an error rather than skipped: it usually means the setting points at the
    /// wrong file (an HTML error page saved in place of the list), which would silently turn
    /// the check off.
    pub(super) fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut exits = Self::default();
        for (index, raw) in text.lines().enumerate() {
            let entry = raw.split('#').next().unwrap_or_default().trim();
            if entry.is_empty() {
                continue;
            }
            if let Ok(ip) = entry.parse::<IpAddr>() {
                exits.addresses.insert(ip.to_canonical());
            } else if let Ok(net) = entry.parse::<IpNet>() {
                exits.networks.push(net.trunc());
            } else {
                return Err((
                    index + 1,
                    "expected an IP address or network (the Tor bulk exit list format)".into(),
                ));
            }
        }
        Ok(exits)
    }

    pub(super) fn len(&self) -> usize {
        self.addresses.len() + self.networks.len()
    }

    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.addresses.contains(&ip) || self.networks.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bulk_list_format() {
        let exits = TorExits::parse("185.220.101.1\n185.220.101.2\r\n2001:db8::7\n").unwrap();
        assert_eq!(exits.len(), 3);
        assert!(exits.contains(ip("185.220.101.1")));
        assert!(exits.contains(ip("::ffff:185.220.101.2")));
        assert!(exits.contains(ip("2001:db8::7")));
        assert!(!exits.contains(ip("185.220.101.3")));
    }

    #[test]
    fn comments_blank_lines_and_networks() {
        let text = "# exits\n\n198.51.100.0/24   # a whole range\n  203.0.113.9  \n";
        let exits = TorExits::parse(text).unwrap();
        assert!(exits.contains(ip("198.51.100.200")));
        assert!(exits.contains(ip("203.0.113.9")));
        assert!(!exits.contains(ip("198.51.101.1")));
    }

    #[test]
    fn host_bits_in_a_network_are_ignored() {
        let exits = TorExits::parse("198.51.100.77/24\n").unwrap();
        assert!(exits.contains(ip("198.51.100.1")));
    }

    #[test]
    fn a_wrong_file_is_an_error_with_its_line() {
        let (line, problem) = TorExits::parse("1.2.3.4\n<html>\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(problem.contains("IP address"));
        assert_eq!(TorExits::parse("ExitNode ABCD\n").unwrap_err().0, 1);
    }

    #[test]
    fn empty_list() {
        let exits = TorExits::parse("# nothing yet\n").unwrap();
        assert_eq!(exits.len(), 0);
        assert!(!exits.contains(ip("185.220.101.1")));
    }
}
