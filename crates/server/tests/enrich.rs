//! Enrichment through its public API, with real files: a Tor list in a temporary directory and
//! the MaxMind fixtures that `scripts/make-test-mmdb.py` built (documentation addresses only).

use std::path::{Path, PathBuf};

use canarykeys_server::config::{Config, EnrichConfig, Overrides};
use canarykeys_server::enrich::{Enricher, Enrichment};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/enrich")
        .join(name)
}

fn labels(e: &Enrichment) -> Vec<&str> {
    e.labels.iter().map(String::as_str).collect()
}

#[test]
fn source_classification() {
    let e = Enricher::empty();
    let service = e.enrich(
        "ec2.amazonaws.com",
        "ec2.amazonaws.com",
        None,
        "s3.amazonaws.com",
    );
    assert_eq!(labels(&service), ["AWS service (ec2.amazonaws.com)"]);
    let internal = e.enrich("AWS Internal", "AWS Internal", None, "kms.amazonaws.com");
    assert_eq!(labels(&internal), ["AWS Internal"]);
    let odd = e.enrich(
        "not-an-address",
        "aws-cli/2.15.0",
        None,
        "sts.amazonaws.com",
    );
    assert_eq!(labels(&odd), ["unrecognised source"]);
    let plain = e.enrich("198.51.100.1", "aws-cli/2.15.0", None, "sts.amazonaws.com");
    assert_eq!(plain, Enrichment::default());
}

#[test]
fn vpc_endpoint() {
    let e = Enricher::empty().enrich(
        "10.0.3.7",
        "Boto3/1.34.0",
        Some("vpce-0123456789abcdef0"),
        "s3.amazonaws.com",
    );
    assert_eq!(labels(&e), ["via VPC endpoint vpce-0123456789abcdef0"]);
}

#[test]
fn tools_by_user_agent_without_echoing_it() {
    let e = Enricher::empty();
    let got = e.enrich(
        "198.51.100.1",
        "TruffleHog <img src=x onerror=alert(1)>",
        None,
        "sts.amazonaws.com",
    );
    assert_eq!(
        labels(&got),
        ["user agent: TruffleHog (secret scanner verifying the key)"]
    );
    assert!(got.labels.iter().all(|l| !l.contains('<')));

    let kali = e.enrich(
        "198.51.100.1",
        "aws-cli/2.31.35 ua/2.1 os/linux#6.12.38+kali-amd64 md/distrib#kali.2025",
        None,
        "lambda.amazonaws.com",
    );
    assert_eq!(
        labels(&kali),
        ["user agent: Kali Linux (penetration-testing distribution)"]
    );

    let sdk = e.enrich(
        "198.51.100.1",
        "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1.0 lang/python#3.11.7",
        None,
        "sts.amazonaws.com",
    );
    assert!(sdk.labels.is_empty());
}

#[test]
fn console_sign_in() {
    let e = Enricher::empty().enrich("198.51.100.1", "Mozilla/5.0", None, "signin.amazonaws.com");
    assert_eq!(labels(&e), ["AWS console sign-in"]);
}

#[test]
fn tor_exit_list_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("torbulkexitlist");
    std::fs::write(&list, "# exits\n185.220.101.1\n2001:db8::7\n").unwrap();
    let e = Enricher::load(&EnrichConfig {
        tor_exit_list_file: Some(list),
        ..EnrichConfig::default()
    })
    .unwrap();
    for ip in ["185.220.101.1", "::ffff:185.220.101.1", "2001:db8::7"] {
        let got = e.enrich(ip, "", None, "sts.amazonaws.com");
        assert_eq!(labels(&got), ["Tor exit node"], "{ip}");
    }
    assert!(e
        .enrich("185.220.101.2", "", None, "sts.amazonaws.com")
        .labels
        .is_empty());
}

#[test]
fn maxmind_city_and_asn_databases() {
    let e = Enricher::load(&EnrichConfig {
        geoip_city_db: Some(fixture("test-city.mmdb")),
        geoip_asn_db: Some(fixture("test-asn.mmdb")),
        ..EnrichConfig::default()
    })
    .unwrap();
    for ip in ["203.0.113.7", "::ffff:203.0.113.200"] {
        let got = e.enrich(ip, "", None, "sts.amazonaws.com");
        assert_eq!(got.country.as_deref(), Some("DE Germany"), "{ip}");
        assert_eq!(got.asn.as_deref(), Some("AS64496 Example Networks"), "{ip}");
        assert!(got.labels.is_empty());
    }
    let elsewhere = e.enrich("198.51.100.1", "", None, "sts.amazonaws.com");
    assert_eq!((elsewhere.country, elsewhere.asn), (None, None));
    let service = e.enrich("ec2.amazonaws.com", "", None, "sts.amazonaws.com");
    assert_eq!((service.country, service.asn), (None, None));
}

#[test]
fn one_database_with_both() {
    let combined = fixture("test-combined.mmdb");
    for cfg in [
        EnrichConfig {
            geoip_city_db: Some(combined.clone()),
            ..EnrichConfig::default()
        },
        EnrichConfig {
            geoip_city_db: Some(combined.clone()),
            geoip_asn_db: Some(combined.clone()),
            ..EnrichConfig::default()
        },
    ] {
        let got = Enricher::load(&cfg)
            .unwrap()
            .enrich("203.0.113.7", "", None, "");
        assert_eq!(got.country.as_deref(), Some("DE Germany"));
        assert_eq!(got.asn.as_deref(), Some("AS64496 Example Networks"));
    }
}

#[test]
fn a_user_agent_file_replaces_the_built_in_list() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("ua.txt");
    std::fs::write(
        &rules,
        "# ours only\nrecon-kit/\tRecon Kit (in-house red team)\n",
    )
    .unwrap();
    let e = Enricher::load(&EnrichConfig {
        user_agents_file: Some(rules),
        ..EnrichConfig::default()
    })
    .unwrap();
    let ours = e.enrich("198.51.100.1", "Recon-Kit/0.3 Boto3/1.34", None, "");
    assert_eq!(labels(&ours), ["user agent: Recon Kit (in-house red team)"]);
    assert!(e
        .enrich("198.51.100.1", "TruffleHog", None, "")
        .labels
        .is_empty());
}

#[test]
fn bad_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.txt");
    let not_a_db = dir.path().join("not-a-db.mmdb");
    std::fs::write(&not_a_db, "this is not a MaxMind database").unwrap();
    let bad_rules = dir.path().join("bad-rules.txt");
    std::fs::write(&bad_rules, "# fine\nno tab on this line\n").unwrap();
    let bad_tor = dir.path().join("bad-tor.txt");
    std::fs::write(&bad_tor, "<html>error</html>\n").unwrap();

    let cases = [
        (
            EnrichConfig {
                user_agents_file: Some(missing.clone()),
                ..EnrichConfig::default()
            },
            &missing,
        ),
        (
            EnrichConfig {
                tor_exit_list_file: Some(missing.clone()),
                ..EnrichConfig::default()
            },
            &missing,
        ),
        (
            EnrichConfig {
                geoip_city_db: Some(missing.clone()),
                ..EnrichConfig::default()
            },
            &missing,
        ),
        (
            EnrichConfig {
                geoip_asn_db: Some(not_a_db.clone()),
                ..EnrichConfig::default()
            },
            &not_a_db,
        ),
        (
            EnrichConfig {
                user_agents_file: Some(bad_rules.clone()),
                ..EnrichConfig::default()
            },
            &bad_rules,
        ),
        (
            EnrichConfig {
                tor_exit_list_file: Some(bad_tor.clone()),
                ..EnrichConfig::default()
            },
            &bad_tor,
        ),
    ];
    for (cfg, path) in cases {
        let message = Enricher::load(&cfg).unwrap_err().to_string();
        assert!(
            message.contains(&path.display().to_string()),
            "{message} should name {}",
            path.display()
        );
    }
    let message = Enricher::load(&EnrichConfig {
        user_agents_file: Some(bad_rules),
        ..EnrichConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn settings_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("canarykeys.toml");
    let city = fixture("test-city.mmdb");
    std::fs::write(
        &file,
        format!(
            "[enrich]\ngeoip_city_db = {:?}\n",
            city.display().to_string()
        ),
    )
    .unwrap();
    let config = Config::load(Some(&file), &Overrides::default()).unwrap();
    assert_eq!(config.enrich.geoip_city_db.as_deref(), Some(city.as_path()));
    assert_eq!(config.enrich.tor_exit_list_file, None);
    let got = Enricher::load(&config.enrich)
        .unwrap()
        .enrich("203.0.113.7", "", None, "");
    assert_eq!(got.country.as_deref(), Some("DE Germany"));
    assert_eq!(got.asn, None);
}

#[test]
fn serialises_for_the_api() {
    let got = Enricher::empty().enrich("AWS Internal", "", None, "");
    let json = serde_json::to_value(&got).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"labels": ["AWS Internal"], "country": null, "asn": null})
    );
}
