//! Country and network owner of an address from local MaxMind-format databases (GeoLite2-City or
//! -Country for the country, GeoLite2-ASN for the network; one file holding both works too).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use maxminddb::Reader;
use serde::Deserialize;

use super::EnrichError;

type Db = Arc<Reader<Vec<u8>>>;

/// The fields we read, whatever the database's layout. Everything is optional: a City record has
/// no ASN fields, an ASN record no country, and the decoder skips the fields not named here.
#[derive(Debug, Default, Deserialize)]
struct Record {
    #[serde(default)]
    country: Option<Country>,
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(default)]
    autonomous_system_organization: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Country {
    #[serde(default)]
    iso_code: Option<String>,
    #[serde(default)]
    names: Option<Names>,
}

#[derive(Debug, Default, Deserialize)]
struct Names {
    #[serde(default)]
    en: Option<String>,
}

#[derive(Clone, Default)]
pub(super) struct GeoIp {
    city: Option<Db>,
    asn: Option<Db>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("city", &self.city.is_some())
            .field("asn", &self.asn.is_some())
            .finish()
    }
}

impl GeoIp {
    /// Opens the configured databases. The same path for both is read once.
    pub(super) fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<Self, EnrichError> {
        let city_db = city.map(open_db).transpose()?;
        let asn_db = match (asn, &city_db) {
            (Some(path), Some(db)) if Some(path) == city => Some(db.clone()),
            (Some(path), _) => Some(open_db(path)?),
            (None, _) => None,
        };
        Ok(Self {
            city: city_db,
            asn: asn_db,
        })
    }

    pub(super) fn is_configured(&self) -> bool {
        self.city.is_some() || self.asn.is_some()
    }

    /// `(country, asn)` as shown in alerts: "DE Germany", "AS15169 Google LLC". Each comes from
    /// its own database and falls back to the other, so a single combined file answers both.
    pub(super) fn lookup(&self, ip: IpAddr) -> (Option<String>, Option<String>) {
        // MaxMind aliases ::ffff:0:0/96 to the IPv4 tree, but not every writer does; plain IPv4
        // works with both.
        let ip = ip.to_canonical();
        let city = self.city.as_ref().and_then(|db| record(db, ip));
        let asn = match (&self.asn, &self.city) {
            (Some(a), Some(c)) if Arc::ptr_eq(a, c) => None,
            (Some(db), _) => record(db, ip),
            (None, _) => None,
        };
        let country = city
            .as_ref()
            .and_then(country_text)
            .or_else(|| asn.as_ref().and_then(country_text));
        let network = asn
            .as_ref()
            .and_then(asn_text)
            .or_else(|| city.as_ref().and_then(asn_text));
        (country, network)
    }
}

fn open_db(path: &Path) -> Result<Db, EnrichError> {
    Reader::open_readfile(path)
        .map(Arc::new)
        .map_err(|source| EnrichError::GeoIp {
            path: path.to_owned(),
            source,
        })
}

/// A failed look-up (a damaged file) must not lose the hit: it is logged and treated as "no
/// record".
fn record(db: &Reader<Vec<u8>>, ip: IpAddr) -> Option<Record> {
    match db.lookup(ip).and_then(|found| found.decode::<Record>()) {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "MaxMind database look-up failed");
            None
        }
    }
}

fn country_text(record: &Record) -> Option<String> {
    let country = record.country.as_ref()?;
    let iso = country.iso_code.as_deref().map(clean);
    let name = country
        .names
        .as_ref()
        .and_then(|n| n.en.as_deref())
        .map(clean);
    join(iso, name)
}

fn asn_text(record: &Record) -> Option<String> {
    let number = record.autonomous_system_number.map(|n| format!("AS{n}"));
    let org = record.autonomous_system_organization.as_deref().map(clean);
    join(number, org)
}

fn join(first: Option<String>, second: Option<String>) -> Option<String> {
    let parts: Vec<String> = [first, second]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Database text ends up in emails and web pages; drop control characters and stray spaces.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(country: Option<(&str, &str)>, asn: Option<(u32, &str)>) -> Record {
        Record {
            country: country.map(|(iso, en)| Country {
                iso_code: Some(iso.into()),
                names: Some(Names {
                    en: Some(en.into()),
                }),
            }),
            autonomous_system_number: asn.map(|(n, _)| n),
            autonomous_system_organization: asn.map(|(_, o)| o.into()),
        }
    }

    #[test]
    fn texts() {
        let r = record(Some(("DE", "Germany")), Some((15169, "Google LLC")));
        assert_eq!(country_text(&r).as_deref(), Some("DE Germany"));
        assert_eq!(asn_text(&r).as_deref(), Some("AS15169 Google LLC"));
        assert_eq!(country_text(&Record::default()), None);
        assert_eq!(asn_text(&Record::default()), None);
    }

    #[test]
    fn partial_records() {
        let r = Record {
            country: Some(Country {
                iso_code: Some("FR".into()),
                names: None,
            }),
            autonomous_system_number: Some(64496),
            autonomous_system_organization: Some("\u{1b}[31m Evil\n".into()),
        };
        assert_eq!(country_text(&r).as_deref(), Some("FR"));
        assert_eq!(asn_text(&r).as_deref(), Some("AS64496 [31m Evil"));
    }

    #[test]
    fn nothing_configured() {
        let geo = GeoIp::open(None, None).unwrap();
        assert!(!geo.is_configured());
        assert_eq!(geo.lookup("203.0.113.7".parse().unwrap()), (None, None));
    }
}
