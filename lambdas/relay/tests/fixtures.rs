//! The handler on real subscription payloads from the shared CloudTrail corpus.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn plain_log_lines_are_skipped_and_nothing_is_posted() {
    let server = TestServer::start(vec![]).await;
    let relay = relay(&server.url, SECRET, 4);
    // (fixture, log events in it): the AWS docs sample and a captured Lambda log payload, whose
    // third line is a JSON object but not a CloudTrail record.
    for (name, events) in [
        ("aws-lambda-go__cloudwatch-logs-event.json", 2),
        ("powertools-lambda-typescript__cloudwatch-base.json", 3),
    ] {
        let payload = logs_event(serde_json::from_str(&subscription_fixture(name)).unwrap())
            .unwrap_or_else(|e| panic!("{name} does not parse as a LogsEvent: {e}"));
        let summary = canarykeys_relay::handler(&relay, lambda_event(payload))
            .await
            .unwrap();
        assert_eq!(summary.message_type, "DATA_MESSAGE", "{name}");
        assert_eq!(
            (
                summary.records_seen,
                summary.skipped,
                summary.posted,
                summary.batches
            ),
            (events, events, 0, 0),
            "{name}"
        );
    }
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn cloudtrail_data_message_is_posted_in_one_signed_batch() {
    let decoded = subscription_fixture(
        "datadog-serverless-functions__cloudwatch_log_cloudtrail.decoded.json",
    );
    let originals: Vec<Value> = serde_json::from_str::<Value>(&decoded).unwrap()["logEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["message"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(originals.len(), 4);

    let server = TestServer::start(vec![]).await;
    let relay = relay(&server.url, SECRET, 4);
    let payload = logs_event(awslogs_json(&decoded)).unwrap();
    let summary = canarykeys_relay::handler(&relay, lambda_event(payload))
        .await
        .unwrap();
    assert_eq!(
        (
            summary.records_seen,
            summary.posted,
            summary.skipped,
            summary.batches
        ),
        (4, 4, 0, 1)
    );
    assert_eq!(summary.server.records, 4);

    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert!(request.signature_ok);
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["x-canarykeys-path"], "cloudwatch-logs");
    // The same records, in order, duplicate delivery (same eventID twice) included.
    assert_eq!(request.records(), originals);
}

#[tokio::test]
async fn control_messages_post_nothing() {
    let server = TestServer::start(vec![]).await;
    let relay = relay(&server.url, SECRET, 4);

    let vector = subscription_fixture("vector__control_message_firehose.decoded.json");
    let payload = logs_event(awslogs_json(&vector)).unwrap();
    let summary = canarykeys_relay::handler(&relay, lambda_event(payload))
        .await
        .unwrap();
    assert_eq!(summary.message_type, "CONTROL_MESSAGE");
    assert_eq!(
        (summary.records_seen, summary.posted, summary.batches),
        (0, 0, 0)
    );

    // The StreamAlert fixture is trimmed: it lacks logGroup, logStream and subscriptionFilters,
    // which AWS always sends (empty for a control message, as in the Vector fixture) and which
    // aws_lambda_events requires. The runtime would refuse it before the handler runs, which
    // posts nothing either; with the fields AWS sends, the handler ignores it.
    let streamalert = subscription_fixture("streamalert__cloudwatch_control_message.decoded.json");
    match logs_event(awslogs_json(&streamalert)) {
        Ok(payload) => {
            let summary = canarykeys_relay::handler(&relay, lambda_event(payload))
                .await
                .unwrap();
            assert_eq!(
                (summary.message_type.as_str(), summary.posted),
                ("CONTROL_MESSAGE", 0)
            );
        }
        Err(e) => assert!(e.to_string().contains("missing field"), "{e}"),
    }
    let mut completed: Value = serde_json::from_str(&streamalert).unwrap();
    for (field, empty) in [
        ("logGroup", Value::from("")),
        ("logStream", Value::from("")),
        ("subscriptionFilters", Value::Array(vec![])),
    ] {
        completed
            .as_object_mut()
            .unwrap()
            .entry(field)
            .or_insert(empty);
    }
    let payload = logs_event(awslogs_json(&completed.to_string())).unwrap();
    let summary = canarykeys_relay::handler(&relay, lambda_event(payload))
        .await
        .unwrap();
    assert_eq!(
        (
            summary.message_type.as_str(),
            summary.posted,
            summary.batches
        ),
        ("CONTROL_MESSAGE", 0, 0)
    );

    assert!(server.received().is_empty());
}

#[test]
fn a_missing_corpus_fails_with_a_clear_message() {
    // Run `corpus_probe` in a child process of this test binary with the override pointing
    // nowhere; it must fail, and its panic message must name the path and the variable to set.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "corpus_probe", "--nocapture"])
        .env("CANARYKEYS_CORPUS_DIR", "/nonexistent/corpus")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("CANARYKEYS_CORPUS_DIR") && stderr.contains("/nonexistent/corpus"),
        "{stderr}"
    );
}

/// Helper for the test above: only meaningful when run with a bad `CANARYKEYS_CORPUS_DIR`.
#[test]
fn corpus_probe() {
    corpus_dir();
}
