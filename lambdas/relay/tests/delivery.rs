//! Delivery against a loopback ingest server: signatures, batching, retries and refusals.

mod common;

use std::time::Duration;

use canarykeys_relay::{PostError, RelayError, Summary};
use common::*;
use serde_json::Value;

async fn run(relay: &canarykeys_relay::Relay, records: &[Value]) -> Result<Summary, RelayError> {
    let payload = logs_event(awslogs_json(&data_message(records))).unwrap();
    canarykeys_relay::handler(relay, lambda_event(payload)).await
}

fn records(n: usize) -> Vec<Value> {
    (0..n).map(cloudtrail_record).collect()
}

#[tokio::test]
async fn signatures_verify_and_a_wrong_secret_is_refused_at_once() {
    let server = TestServer::start(vec![]).await;
    run(&relay(&server.url, SECRET, 4), &records(3))
        .await
        .unwrap();
    let good = server.received();
    assert_eq!(good.len(), 1);
    assert!(good[0].signature_ok);
    assert_eq!(good[0].records(), records(3));

    // The server's own verify refuses another secret with 401: not retried.
    let err = run(&relay(&server.url, "not-the-secret", 4), &records(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Post {
                source: PostError::Rejected { status: 401, .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("the signature does not match"),
        "{err}"
    );
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn twelve_hundred_records_go_in_three_requests() {
    let server = TestServer::start(vec![]).await;
    let summary = run(&relay(&server.url, SECRET, 4), &records(1200))
        .await
        .unwrap();
    assert_eq!(
        (
            summary.records_seen,
            summary.posted,
            summary.skipped,
            summary.batches
        ),
        (1200, 1200, 0, 3)
    );
    assert_eq!(summary.server.records, 1200);

    let received = server.received();
    assert_eq!(
        received
            .iter()
            .map(|r| r.records().len())
            .collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert!(received.iter().all(|r| r.signature_ok));
    let all: Vec<Value> = received.iter().flat_map(Received::records).collect();
    assert_eq!(all, records(1200));
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let server = TestServer::start(vec![
        Reply::Status(503, "busy".into()),
        Reply::Status(503, "busy".into()),
    ])
    .await;
    let summary = run(&relay(&server.url, SECRET, 4), &records(2))
        .await
        .unwrap();
    assert_eq!((summary.posted, summary.batches), (2, 1));
    let received = server.received();
    assert_eq!(received.len(), 3);
    // Every attempt carries the same records, each freshly signed.
    assert!(received
        .iter()
        .all(|r| r.signature_ok && r.records() == records(2)));

    let server = TestServer::start(vec![
        Reply::Status(429, "slow down".into()),
        Reply::Status(408, "timeout".into()),
    ])
    .await;
    run(&relay(&server.url, SECRET, 4), &records(1))
        .await
        .unwrap();
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn a_request_that_times_out_is_retried() {
    let server = TestServer::start(vec![Reply::Hang(Duration::from_secs(3))]).await;
    let mut relay = relay(&server.url, SECRET, 2);
    let mut config = relay.config().clone();
    config.request_timeout = Duration::from_millis(300);
    relay = canarykeys_relay::Relay::new(config).unwrap();
    let summary = run(&relay, &records(1)).await.unwrap();
    assert_eq!(summary.posted, 1);
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn a_server_that_keeps_failing_fails_the_invocation_after_max_attempts() {
    let server = TestServer::start(vec![Reply::Status(500, "internal error".into()); 10]).await;
    let err = run(&relay(&server.url, SECRET, 3), &records(5))
        .await
        .unwrap_err();
    match &err {
        RelayError::Post {
            batch: 1,
            batches: 1,
            records: 5,
            posted: 0,
            source: PostError::GaveUp { attempts: 3, last },
        } => {
            assert!(
                last.contains("HTTP 500") && last.contains("internal error"),
                "{last}"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn a_later_batch_failing_fails_the_whole_invocation() {
    // Batch 1 goes through; batch 2 is refused. Lambda retries the event and the server dedupes
    // batch 1 by eventID.
    let server = TestServer::start(vec![
        Reply::Counts,
        Reply::Status(413, "body too large".into()),
    ])
    .await;
    let err = run(&relay(&server.url, SECRET, 4), &records(600))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Post {
                batch: 2,
                batches: 2,
                posted: 500,
                source: PostError::Rejected { status: 413, .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn client_errors_fail_at_once_with_the_servers_message() {
    for status in [400, 401, 413] {
        let server = TestServer::start(vec![Reply::Status(
            status,
            format!("refused with {status}"),
        )])
        .await;
        let err = run(&relay(&server.url, SECRET, 4), &records(1))
            .await
            .unwrap_err();
        match &err {
            RelayError::Post {
                source: PostError::Rejected { status: s, message },
                ..
            } => {
                assert_eq!(*s, status);
                assert_eq!(message, &format!("refused with {status}"));
            }
            other => panic!("unexpected error: {other}"),
        }
        assert!(err.to_string().contains(&status.to_string()), "{err}");
        assert_eq!(server.received().len(), 1, "{status} must not be retried");
    }

    // A long message is cut to 500 characters.
    let server = TestServer::start(vec![Reply::Status(400, "x".repeat(2000))]).await;
    let err = run(&relay(&server.url, SECRET, 4), &records(1))
        .await
        .unwrap_err();
    let RelayError::Post {
        source: PostError::Rejected { message, .. },
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(
        message.chars().count(),
        501,
        "500 characters and an ellipsis"
    );

    // A redirect is refused too: following it could turn the POST into a bodyless GET.
    let server = TestServer::start(vec![Reply::Status(302, "moved".into())]).await;
    let err = run(&relay(&server.url, SECRET, 4), &records(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Post {
                source: PostError::Rejected { status: 302, .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_retried_then_fails() {
    // A port that was just free: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = run(&relay(&url, SECRET, 3), &records(1)).await.unwrap_err();
    match &err {
        RelayError::Post {
            source: PostError::GaveUp { attempts: 3, last },
            ..
        } => {
            assert!(last.to_lowercase().contains("connect"), "{last}");
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn only_cloudtrail_records_are_posted_and_unknown_message_types_fail() {
    let server = TestServer::start(vec![]).await;
    let relay = relay(&server.url, SECRET, 4);
    let mixed = vec![
        cloudtrail_record(1),
        Value::from("not an object"),
        serde_json::json!({"level": "INFO"}),
        cloudtrail_record(2),
    ];
    let summary = run(&relay, &mixed).await.unwrap();
    assert_eq!(
        (summary.records_seen, summary.posted, summary.skipped),
        (4, 2, 2)
    );
    assert_eq!(
        server.received()[0].records(),
        [cloudtrail_record(1), cloudtrail_record(2)]
    );

    let odd = data_message(&records(1)).replace("DATA_MESSAGE", "SURPRISE_MESSAGE");
    let payload = logs_event(awslogs_json(&odd)).unwrap();
    let err = canarykeys_relay::handler(&relay, lambda_event(payload))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RelayError::UnknownMessageType(ref t) if t == "SURPRISE_MESSAGE"),
        "{err}"
    );
    assert_eq!(server.received().len(), 1);
}
