//! The AWS Health fixtures (see `fixtures/health/SOURCES.md` for where their shape comes from)
//! parse into exposures with the right key, description, location and times.

use canarykeys_core::health::{self, CREDENTIALS_EXPOSED, IAM_QUARANTINE};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/health/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn one(name: &str) -> health::HealthEvent {
    let mut events = health::recognise(&fixture(name)).expect("recognised as Health input");
    assert_eq!(events.len(), 1);
    events.remove(0).expect("parses")
}

#[test]
fn credentials_exposed_event() {
    let e = one("credentials-exposed.json");
    assert_eq!(e.event_type_code, CREDENTIALS_EXPOSED);
    assert!(e.is_exposure());
    assert_eq!(e.keys.len(), 1);
    assert_eq!(e.keys[0].as_str(), "AKIAEXAMPLEEXPOSEDQQ");
    assert!(e
        .description
        .starts_with("Your AWS Access Key AKIAEXAMPLEEXPOSEDQQ"));
    assert_eq!(
        e.location.as_deref(),
        Some("https://github.com/example-org/infra-notes/blob/0f1e2d3c/deploy/.env")
    );
    // Sat, 28 Nov 2026 09:05:00 GMT and the envelope's 2026-11-28T09:12:44Z.
    assert_eq!(e.start_time, Some(1_795_856_700_000));
    assert_eq!(e.last_updated_time, Some(1_795_857_150_000));
    assert_eq!(e.sent_at, Some(1_795_857_164_000));
}

#[test]
fn quarantine_event_without_a_location() {
    let e = one("quarantine.json");
    assert_eq!(e.event_type_code, IAM_QUARANTINE);
    assert!(e.is_exposure());
    assert_eq!(e.keys[0].as_str(), "AKIAEXAMPLEEXPOSEDQQ");
    assert_eq!(e.location, None);
}

#[test]
fn the_smallest_documented_form() {
    let e = one("older-sample.json");
    assert_eq!(e.keys[0].as_str(), "AKIAEXAMPLEEXPOSEDQQ");
    assert_eq!(e.start_time, Some(1_465_139_409_000));
    assert_eq!(e.last_updated_time, None);
}

#[test]
fn an_array_of_envelopes_and_other_event_types() {
    let a = String::from_utf8(fixture("credentials-exposed.json")).unwrap();
    let b = a.replace(CREDENTIALS_EXPOSED, "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED");
    let both = format!("[{a},{b}]");
    let events = health::recognise(both.as_bytes()).unwrap();
    assert_eq!(events.len(), 2);
    assert!(events[0].as_ref().unwrap().is_exposure());
    assert!(!events[1].as_ref().unwrap().is_exposure());
}
