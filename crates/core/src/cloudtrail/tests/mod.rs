//! Unit tests of the CloudTrail parser: each format (plain and gzipped) and the per-item skips,
//! with the input builders the other test files share. Whole-input failures and limits are in
//! `failures.rs`; the real-world corpus is in `crates/core/tests/corpus.rs`.

mod failures;
mod gate;
mod stream;

use std::io::Write;

use base64::Engine as _;
use flate2::{write::GzEncoder, Compression};
use serde_json::{json, Value};

use super::*;

fn rec(id: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::111122223333:user/svc-backup",
            "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLEEXAMPLE12", "userName": "svc-backup"
        },
        "eventTime": "2023-07-10T11:41:52Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.13.0",
        "requestID": "req-1",
        "eventID": id,
        "readOnly": true,
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "clientProvidedHostHeader": "sts.amazonaws.com"}
    })
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn subscription(messages: &[String]) -> Value {
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(
            |(i, m)| json!({"id": i.to_string(), "timestamp": 1_688_989_312_000_u64, "message": m}),
        )
        .collect();
    json!({"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "aws-cloudtrail-logs",
           "logStream": "111122223333_CloudTrail_us-east-1", "subscriptionFilters": ["f"], "logEvents": events})
}

fn awslogs(payload: &Value) -> Value {
    json!({"awslogs": {"data": b64(&gz(payload.to_string().as_bytes()))}})
}

fn kinesis(payloads: &[String]) -> Value {
    let records: Vec<Value> = payloads
        .iter()
        .map(|data| json!({"kinesis": {"data": data, "partitionKey": "k"}, "eventSource": "aws:kinesis",
                           "eventVersion": "1.0", "eventID": "shardId-0:1", "eventName": "aws:kinesis:record"}))
        .collect();
    json!({"Records": records})
}

fn run(bytes: &[u8]) -> Result<Parsed, ParseError> {
    parse(bytes, &Limits::default())
}

fn ids(p: &Parsed) -> Vec<&str> {
    p.records.iter().map(|r| r.event_id.as_str()).collect()
}

/// One input per format, each holding the records "a" and "b" (one for the single-record ones).
fn every_format() -> Vec<(Format, Vec<u8>)> {
    let (a, b) = (rec("a"), rec("b"));
    let sub = subscription(&[a.to_string(), b.to_string()]);
    let envelope = json!({"version": "0", "id": "e", "detail-type": "AWS API Call via CloudTrail",
                          "source": "aws.sts", "account": "111122223333", "detail": a});
    vec![
        (
            Format::LogFile,
            json!({"Records": [a, b]}).to_string().into_bytes(),
        ),
        (Format::Array, json!([a, b]).to_string().into_bytes()),
        (Format::Record, a.to_string().into_bytes()),
        (Format::Ndjson, format!("{a}\n\n{b}\n").into_bytes()),
        (Format::EventBridge, envelope.to_string().into_bytes()),
        (Format::LogsSubscription, sub.to_string().into_bytes()),
        (
            Format::LogsLambdaEvent,
            awslogs(&sub).to_string().into_bytes(),
        ),
        (
            Format::KinesisLogs,
            kinesis(&[b64(&gz(sub.to_string().as_bytes()))])
                .to_string()
                .into_bytes(),
        ),
    ]
}

#[test]
fn every_format_is_detected_plain_and_gzipped() {
    for (format, bytes) in every_format() {
        for (input, gzipped) in [(bytes.clone(), false), (gz(&bytes), true)] {
            let p = run(&input).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!((p.format, p.gzipped), (format, gzipped));
            let want = if matches!(format, Format::Record | Format::EventBridge) {
                vec!["a"]
            } else {
                vec!["a", "b"]
            };
            assert_eq!(ids(&p), want, "{format:?}");
            assert!(p.skipped.is_empty(), "{format:?}: {:?}", p.skipped);
        }
    }
}

#[test]
fn fields_are_extracted_and_normalised() {
    let mut v = rec("id-1");
    v["errorCode"] = json!("AccessDenied");
    v["errorMessage"] = json!("");
    v["vpcEndpointId"] = json!(42);
    v["userIdentity"]["userName"] = json!(null);
    v["eventTime"] = json!("2023-07-10T13:41:52.250+02:00");
    let p = run(v.to_string().as_bytes()).unwrap();
    let r = &p.records[0];
    assert_eq!(r.event_time, Some(1_688_989_312_250));
    assert!(r.fallbacks.is_empty());
    assert_eq!(
        (r.event_name.as_str(), r.event_source.as_str()),
        ("GetCallerIdentity", "sts.amazonaws.com")
    );
    assert_eq!(r.aws_region.as_deref(), Some("us-east-1"));
    assert_eq!(r.source_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(r.user_agent.as_deref(), Some("aws-cli/2.13.0"));
    assert_eq!(r.error_code.as_deref(), Some("AccessDenied"));
    assert_eq!(r.error_message, None, "empty string is None");
    assert_eq!(
        r.vpc_endpoint_id, None,
        "a number where a string belongs is missing"
    );
    assert_eq!(r.recipient_account_id.as_deref(), Some("111122223333"));
    assert_eq!(r.tls_host.as_deref(), Some("sts.amazonaws.com"));
    assert_eq!(r.request_id.as_deref(), Some("req-1"));
    assert_eq!(r.event_type.as_deref(), Some("AwsApiCall"));
    assert_eq!(r.read_only, Some(true));
    let id = &r.identity;
    assert_eq!(id.kind.as_deref(), Some("IAMUser"));
    assert_eq!(id.access_key_id.as_deref(), Some("AKIAEXAMPLEEXAMPLE12"));
    assert_eq!(id.user_name, None);
    assert_eq!(id.account_id.as_deref(), Some("111122223333"));
    assert_eq!(
        id.arn.as_deref(),
        Some("arn:aws:iam::111122223333:user/svc-backup")
    );
    assert_eq!(id.principal_id.as_deref(), Some("AIDAEXAMPLE"));
    assert_eq!(r.raw.to_value(), v, "raw is the record, untouched");
}

#[test]
fn nul_in_any_text_field_becomes_the_replacement_character() {
    // PostgreSQL's text type refuses NUL; one such record must not fail its group's commit.
    let mut v = rec("id-\u{0}1");
    v["userAgent"] = json!("aws-cli\u{0}/2");
    v["eventName"] = json!("Get\u{0}CallerIdentity");
    v["userIdentity"]["userName"] = json!("svc\u{0}");
    let p = run(v.to_string().as_bytes()).unwrap();
    let r = &p.records[0];
    assert_eq!(r.user_agent.as_deref(), Some("aws-cli\u{FFFD}/2"));
    assert_eq!(r.event_name, "Get\u{FFFD}CallerIdentity");
    assert_eq!(r.identity.user_name.as_deref(), Some("svc\u{FFFD}"));
    assert_eq!(r.event_id, "id-\u{FFFD}1");
    assert_eq!(
        r.raw.to_value(),
        v,
        "raw keeps the record as sent (JSON escapes NUL)"
    );
}

#[test]
fn a_record_missing_event_id_becomes_a_record_with_a_content_id() {
    let mut bad = rec("x");
    bad.as_object_mut().unwrap().remove("eventID");
    let (a, c) = (rec("a"), rec("c"));
    let inputs = [
        json!({"Records": [a, bad, c]}).to_string(),
        json!([a, bad, c]).to_string(),
        format!("{a}\n{bad}\n{c}"),
        subscription(&[a.to_string(), bad.to_string(), c.to_string()]).to_string(),
    ];
    let mut content_ids = Vec::new();
    for input in inputs {
        let p = run(input.as_bytes()).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.records.len(), 3);
        let r = &p.records[1];
        assert!(r.event_id.starts_with("sha256:"), "{}", r.event_id);
        assert_eq!(
            r.fallbacks,
            ["eventID missing: deduplicated by a hash of the record"]
        );
        content_ids.push(r.event_id.clone());
    }
    content_ids.dedup();
    assert_eq!(
        content_ids.len(),
        1,
        "the same record gives the same id in every wrapper"
    );
    let mut other = bad.clone();
    other["sourceIPAddress"] = json!("198.51.100.1");
    let p = run(other.to_string().as_bytes()).unwrap();
    assert_ne!(
        p.records[0].event_id, content_ids[0],
        "other content, other id"
    );
}

#[test]
fn a_missing_or_malformed_event_time_falls_back_and_says_which() {
    let cases = [
        // (eventTime, extra field, want time, want note)
        (
            None,
            Some(("@timestamp", json!("2023-07-10T11:41:52.5Z"))),
            Some(1_688_989_312_500),
            "@timestamp used",
        ),
        (
            Some(json!("10/07/2023 11:41")),
            Some(("timestamp", json!(1_688_989_312_000_i64))),
            Some(1_688_989_312_000),
            "timestamp used",
        ),
        (
            Some(json!(1_688_989_312)),
            Some(("time", json!(1_688_989_312))),
            Some(1_688_989_312_000),
            "time used",
        ),
        (None, None, None, "arrival time used"),
        (
            Some(json!("garbage")),
            Some(("@timestamp", json!("also garbage"))),
            None,
            "arrival time used",
        ),
    ];
    for (time, extra, want, note) in cases {
        let mut v = rec("t");
        v.as_object_mut().unwrap().remove("eventTime");
        if let Some(time) = time {
            v["eventTime"] = time;
        }
        if let Some((key, value)) = extra {
            v[key] = value;
        }
        let p = run(v.to_string().as_bytes()).unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let r = &p.records[0];
        assert_eq!(r.event_time, want, "{note}");
        assert_eq!(r.event_id, "t");
        assert_eq!(r.fallbacks.len(), 1);
        assert!(r.fallbacks[0].ends_with(note), "{:?}", r.fallbacks);
    }
    // In an EventBridge envelope, the envelope's time stands in.
    let mut detail = rec("e");
    detail.as_object_mut().unwrap().remove("eventTime");
    let event = json!({"detail-type": "AWS API Call via CloudTrail", "time": "2023-07-10T11:41:52Z",
                       "detail": detail});
    let p = run(event.to_string().as_bytes()).unwrap();
    assert_eq!(p.records[0].event_time, Some(1_688_989_312_000));
    assert_eq!(
        p.records[0].fallbacks,
        ["eventTime missing or malformed: the EventBridge event's time used"]
    );
}

#[test]
fn each_broken_item_gets_its_reason() {
    // Broken but naming an identity: still a record.
    let mut no_time = rec("t");
    no_time["eventTime"] = json!("not a time");
    no_time["eventName"] = json!("");
    let mut nobody = rec("n");
    nobody["userIdentity"] = json!({});
    let mut no_identity = rec("m");
    no_identity.as_object_mut().unwrap().remove("userIdentity");
    let insight = json!({"eventVersion": "1.07", "eventTime": "2019-11-14T00:51:00Z", "eventID": "i",
                         "eventType": "AwsCloudTrailInsight", "insightDetails": {"eventName": "X"}});
    let input = json!([rec("a"), no_time, nobody, insight, {"hello": 1}, 7, {"eventSource": "x.amazonaws.com"}, no_identity]);
    let p = run(input.to_string().as_bytes()).unwrap();
    assert_eq!(ids(&p), ["a", "t"]);
    assert_eq!(
        p.records[1].event_name, "",
        "a missing name is empty, not a skip"
    );
    let reasons: Vec<(usize, &str)> = p
        .skipped
        .iter()
        .map(|s| (s.index, s.reason.as_str()))
        .collect();
    let nobody = "CloudTrail record names no identity (no userIdentity)";
    assert_eq!(
        reasons,
        [
            (2, nobody),
            (3, "CloudTrail Insights event, not an API call"),
            (4, "not a CloudTrail record (no eventSource)"),
            (5, "not a JSON object"),
            (6, "not a CloudTrail record (no eventName)"),
            (7, nobody),
        ]
    );
}

#[test]
fn ndjson_numbers_lines_and_skips_bad_ones() {
    let input = format!(
        "{}\r\n\n{{\"level\":\"info\"}}\nnot json at all\n{}\n",
        rec("a"),
        rec("b")
    );
    let p = run(input.as_bytes()).unwrap();
    assert_eq!((p.format, ids(&p)), (Format::Ndjson, vec!["a", "b"]));
    let reasons: Vec<(usize, &str)> = p
        .skipped
        .iter()
        .map(|s| (s.index, s.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (2, "not a CloudTrail record (no eventSource)"),
            (3, "not JSON")
        ]
    );
    assert!(matches!(
        run(b"{\"a\":1}\n{\"b\":2}\n"),
        Err(ParseError::NotCloudTrail(_))
    ));
    assert_eq!(run(b"hello\nworld\n").unwrap_err(), ParseError::NotJson);
}

#[test]
fn log_events_that_are_not_records_are_skips_not_errors() {
    let sub = subscription(&[
        "START RequestId: 1".into(),
        r#"{"level":"INFO"}"#.into(),
        "{broken".into(),
    ]);
    for input in [sub.to_string(), awslogs(&sub).to_string()] {
        let p = run(input.as_bytes()).unwrap();
        assert!(p.records.is_empty());
        let reasons: Vec<&str> = p.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "log event is not a CloudTrail record (plain text)",
                "not a CloudTrail record (no eventSource)",
                "log event message is not valid JSON",
            ]
        );
    }
}

#[test]
fn control_message_yields_zero_records() {
    let control = json!({"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "",
        "logStream": "", "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 1_600_110_003_794_u64,
                       "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}]});
    for (input, format) in [
        (control.to_string(), Format::LogsSubscription),
        (awslogs(&control).to_string(), Format::LogsLambdaEvent),
        (
            kinesis(&[b64(&gz(control.to_string().as_bytes()))]).to_string(),
            Format::KinesisLogs,
        ),
    ] {
        let p = run(input.as_bytes()).unwrap();
        assert_eq!(p.format, format);
        assert!(p.records.is_empty() && p.skipped.is_empty());
    }
}

#[test]
fn eventbridge_envelopes_are_unwrapped_wherever_they_appear() {
    let sign_in = json!({"detail-type": "AWS Console Sign In via CloudTrail", "source": "aws.signin", "detail": rec("s")});
    let p = run(sign_in.to_string().as_bytes()).unwrap();
    assert_eq!((p.format, ids(&p)), (Format::EventBridge, vec!["s"]));
    assert_eq!(
        p.records[0].raw.to_value(),
        rec("s"),
        "raw is the detail, not the envelope"
    );
    let p = run(subscription(&[sign_in.to_string()]).to_string().as_bytes()).unwrap();
    assert_eq!(ids(&p), ["s"]);
    let other = json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}});
    assert!(matches!(
        run(other.to_string().as_bytes()),
        Err(ParseError::NotCloudTrail(_))
    ));
}

#[test]
fn kinesis_is_told_apart_from_lambda_event_source_records() {
    let s3_notification = json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put", "eventTime": "2023-07-10T11:41:52Z", "s3": {}}]});
    assert!(matches!(
        run(s3_notification.to_string().as_bytes()),
        Err(ParseError::NotCloudTrail(_))
    ));
    let sub = subscription(&[rec("k").to_string()]);
    let batch = kinesis(&[
        "!!!".into(),
        b64(b"\x1f\x8b\x08trunc"),
        b64(&gz(sub.to_string().as_bytes())),
    ]);
    let p = run(batch.to_string().as_bytes()).unwrap();
    assert_eq!((p.format, ids(&p)), (Format::KinesisLogs, vec!["k"]));
    let reasons: Vec<(usize, &str)> = p
        .skipped
        .iter()
        .map(|s| (s.index, s.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (0, "Kinesis data is not valid base64"),
            (1, "Kinesis data is not valid gzip")
        ]
    );
}
