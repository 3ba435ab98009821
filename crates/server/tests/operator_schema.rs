//! `canarykeys.operator/v1`, checked against the examples in `tests/fixtures/webhooks/`
//! (`UPDATE_FIXTURES=1` rewrites them after a deliberate change): one generic body per type,
//! each read back into the typed struct, and the detection alert in every chat flavour.

use std::path::PathBuf;

use canarykeys_core::detection::PathState;
use canarykeys_server::notify::operator::{
    payload, AliveBody, DetectionBody, DiskBody, HeartbeatBody, OperatorAlert, OperatorKind,
    OperatorStatus, SafetyNetBody, SCHEMA,
};
use canarykeys_server::notify::webhook::WebhookFlavour;
use serde_json::Value;

fn base(kind: OperatorKind, status: OperatorStatus, headline: &str) -> OperatorAlert {
    OperatorAlert {
        schema: SCHEMA.into(),
        kind,
        status,
        alert_id: "op_7kq2m9x4p1r8s3t6v5w0y2z4ab".into(),
        headline: headline.into(),
        server: "https://canary.example.com".into(),
        at: "2026-12-05T10:00:00Z".into(),
        detection: None,
        heartbeat: None,
        disk: None,
        safety_net: None,
        alive: None,
    }
}

fn examples() -> Vec<(&'static str, OperatorAlert)> {
    let mut detection = base(
        OperatorKind::Detection,
        OperatorStatus::Problem,
        "The eventbridge path in eu-west-1 of account 123456789012 is silent: its last \
         heartbeat came at 2026-12-05T06:58:12Z",
    );
    detection.detection = Some(DetectionBody {
        account_id: "123456789012".into(),
        region: "eu-west-1".into(),
        path: "eventbridge".into(),
        state: PathState::Silent,
        last_seen_at: Some("2026-12-05T06:58:12Z".into()),
        latency_ms: Some(4_210),
    });
    let mut heartbeat = base(
        OperatorKind::Heartbeat,
        OperatorStatus::Problem,
        "AWS refused the heartbeat call in us-east-1 of account 123456789012: \
         InvalidClientTokenId: The security token included in the request is invalid.",
    );
    heartbeat.heartbeat = Some(HeartbeatBody {
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        refused: true,
        error: Some(
            "InvalidClientTokenId: The security token included in the request is invalid.".into(),
        ),
    });
    let mut disk = base(
        OperatorKind::Disk,
        OperatorStatus::Recovered,
        "Free disk is back to 2147483648 bytes: everything is stored again",
    );
    disk.disk = Some(DiskBody {
        low: false,
        free_bytes: 2_147_483_648,
        min_free_bytes: 1_073_741_824,
    });
    let mut net = base(
        OperatorKind::SafetyNet,
        OperatorStatus::Problem,
        "The safety net cannot check keys in account 123456789012: IAM GetAccessKeyLastUsed: \
         refused <AccessDenied>",
    );
    net.safety_net = Some(SafetyNetBody {
        account_id: "123456789012".into(),
        error: Some("IAM GetAccessKeyLastUsed: refused <AccessDenied>".into()),
    });
    let mut alive = base(
        OperatorKind::Alive,
        OperatorStatus::Alive,
        "canarykeys at https://canary.example.com is alive; the next beat comes within 1h",
    );
    alive.alive = Some(AliveBody {
        every_seconds: 3600,
    });
    vec![
        ("detection", detection),
        ("heartbeat", heartbeat),
        ("disk", disk),
        ("safety_net", net),
        ("alive", alive),
    ]
}

fn check(name: &str, built: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let pretty = serde_json::to_string_pretty(built).unwrap() + "\n";
        std::fs::write(&path, pretty).unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FIXTURES=1 writes it)", path.display()));
    let fixture: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        built,
        &fixture,
        "{} differs from the payload",
        path.display()
    );
}

#[test]
fn generic_bodies_match_the_examples_and_read_back() {
    for (kind, alert) in examples() {
        let built = payload(WebhookFlavour::Generic, &alert);
        check(&format!("operator.{kind}"), &built);
        assert_eq!(built["type"], kind);
        for key in ["detection", "heartbeat", "disk", "safety_net", "alive"] {
            assert!(built.get(key).is_some(), "{key} is always present");
            assert_eq!(built[key].is_null(), key != kind, "{kind}: {key}");
        }
        let back: OperatorAlert = serde_json::from_value(built).unwrap();
        assert_eq!(back, alert);
    }
}

#[test]
fn chat_flavours_match_the_examples() {
    let (_, detection) = examples().remove(0);
    for flavour in [
        WebhookFlavour::Slack,
        WebhookFlavour::Discord,
        WebhookFlavour::Teams,
        WebhookFlavour::GoogleChat,
        WebhookFlavour::Mattermost,
    ] {
        check(
            &format!("operator.detection.{flavour}"),
            &payload(flavour, &detection),
        );
    }
    let (_, net) = examples().remove(3);
    let slack = payload(WebhookFlavour::Slack, &net).to_string();
    assert!(slack.contains("&lt;AccessDenied&gt;") && !slack.contains("<AccessDenied>"));
}
