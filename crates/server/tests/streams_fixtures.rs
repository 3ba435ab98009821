//! Each stream's payload for one fixed alert with a hostile user agent, checked against the
//! examples in `tests/fixtures/streams/` (`UPDATE_FIXTURES=1` rewrites them after a deliberate
//! change; the README there names the vendor page each follows). The OCSF finding of every
//! record type is validated against the OCSF 1.1.0 JSON schema.

use std::path::PathBuf;

use canarykeys_server::notify::operator::{
    OperatorAlert, OperatorKind, OperatorStatus, SafetyNetBody, SCHEMA,
};
use canarykeys_server::notify::stream::{
    elastic, ocsf, pagerduty, splunk, syslog, AuditEntry, StreamRecord,
};
use canarykeys_server::notify::{AlertKind, AlertView};
use serde_json::Value;

fn alert() -> AlertView {
    AlertView {
        kind: AlertKind::Hit,
        alert_id: "al_7Kp2mQ9xR4".into(),
        token_id: "tok_3fJ8sLw1Zq".into(),
        memo: "build server <ci-01> & ~/.aws/credentials".into(),
        headline: "GetCallerIdentity on sts.amazonaws.com in us-east-1 from 203.0.113.7".into(),
        event_name: "GetCallerIdentity".into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: "203.0.113.7".into(),
        user_agent:
            "aws-cli/2.15 \"] [evil@1 x=\"y\"] \\ <script>x</script>\n<13>1 forged @channel é"
                .into(),
        error_code: None,
        error_message: None,
        event_time: "2025-11-24T10:15:30Z".into(),
        received_at: "2025-11-24T10:15:42Z".into(),
        account_id: Some("123456789012".into()),
        access_key_id: Some("AKIAQ3EGRZ7NEXAMPLE1".into()),
        path: "eventbridge".into(),
        note: None,
        source_labels: vec!["Tor exit node".into()],
        country: Some("DE".into()),
        asn: Some("AS64500 Example Hosting".into()),
        manage_url: "https://canary.example.com/manage/tok_3fJ8sLw1Zq".into(),
        history_url: "https://canary.example.com/manage/tok_3fJ8sLw1Zq#history".into(),
        retired: false,
    }
}

fn records() -> Vec<(&'static str, StreamRecord)> {
    let operator = OperatorAlert {
        schema: SCHEMA.into(),
        kind: OperatorKind::SafetyNet,
        status: OperatorStatus::Problem,
        alert_id: "op_7kq2m9x4p1r8s3t6v5w0y2z4ab".into(),
        headline: "The safety net cannot check keys in account 123456789012: AccessDenied".into(),
        server: "https://canary.example.com".into(),
        at: "2025-11-24T10:20:00Z".into(),
        detection: None,
        heartbeat: None,
        disk: None,
        safety_net: Some(SafetyNetBody {
            account_id: "123456789012".into(),
            error: Some("AccessDenied".into()),
        }),
        alive: None,
    };
    let audit = AuditEntry {
        id: "1764000000000-a1b2c3d4".into(),
        at: "2025-11-24T10:25:00Z".into(),
        actor: "alice".into(),
        action: "token.delete".into(),
        target: "tok_3fJ8sLw1Zq".into(),
        details: "build server <ci-01>".into(),
    };
    vec![
        ("alert", StreamRecord::Alert(Box::new(alert()))),
        ("operator", StreamRecord::Operator(Box::new(operator))),
        ("audit", StreamRecord::Audit(audit)),
    ]
}

fn check(name: &str, built: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/streams")
        .join(name);
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, built).unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FIXTURES=1 writes it)", path.display()));
    assert_eq!(built, text, "{} differs from the payload", path.display());
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

#[test]
fn payloads_match_the_checked_in_examples() {
    for (name, record) in records() {
        check(&format!("generic.{name}.json"), &pretty(&record.generic()));
        let line = syslog::Format {
            facility: 16,
            hostname: "canary-01".into(),
            app_name: "canarykeys".into(),
        }
        .message(&record);
        check(&format!("syslog.{name}.txt"), &(line + "\n"));
        check(
            &format!("splunk_hec.{name}.json"),
            &pretty(&splunk::event(&record, "canary-01", Some("security"))),
        );
        check(
            &format!("pagerduty.{name}.json"),
            &pretty(&pagerduty::event(
                &record,
                "R0UT1NGKEY0123456789012345678901",
                "critical",
                "canary-01",
            )),
        );
        let bulk = String::from_utf8(elastic::bulk_body(
            std::slice::from_ref(&record),
            "logs-canarykeys.alert-default",
        ))
        .unwrap();
        check(&format!("elastic.{name}.ndjson"), &bulk);
        check(
            &format!("ocsf.{name}.json"),
            &pretty(&ocsf::finding(&record)),
        );
    }
}

#[test]
fn every_finding_is_valid_ocsf_1_1_0() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks/ocsf-1.1.0-detection_finding.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut cases = records();
    let mut odd = alert();
    // A source that is a service name, no account, no key: still valid.
    odd.source_ip = "ec2.amazonaws.com".into();
    odd.account_id = None;
    odd.access_key_id = None;
    odd.kind = AlertKind::Summary {
        count: 12,
        folded: 0,
        addresses: vec!["203.0.113.7".into()],
        events: vec!["ListBuckets".into()],
        first_event_time: "2025-11-24T10:00:00Z".into(),
        last_event_time: "2025-11-24T10:59:00Z".into(),
    };
    cases.push(("summary", StreamRecord::Alert(Box::new(odd))));
    for (name, record) in cases {
        let finding = ocsf::finding(&record);
        let errors: Vec<String> = validator
            .iter_errors(&finding)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        assert_eq!(finding["type_uid"], 200401);
        assert_eq!(finding["metadata"]["version"], "1.1.0");
    }
}

#[test]
fn the_syslog_line_is_one_ascii_line_and_sd_values_are_escaped() {
    let line = syslog::Format {
        facility: 16,
        hostname: "canary-01".into(),
        app_name: "canarykeys".into(),
    }
    .message(&records()[0].1);
    assert!(line.is_ascii() && !line.contains('\n'));
    assert!(line
        .starts_with("<129>1 2025-11-24T10:15:30Z canary-01 canarykeys - hit [canarykeys@32473 "));
}
