//! `canarykeys doctor` with streams set through `CANARYKEYS_STREAMS__<TYPE>__…` variables: it
//! connects to each receiver and says so, reports one that is down, sends a `test` record
//! only with `--send-test`, and prints no secret.

mod streams_support;

use axum::http::StatusCode;
use streams_support::Rx;

async fn doctor(
    dir: &std::path::Path,
    args: &[&str],
    env: Vec<(String, String)>,
) -> (bool, String) {
    let (dir, args) = (
        dir.to_owned(),
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = canarykeys_testkit::cli::run(&dir, &args, &env);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn doctor_checks_each_stream_and_sends_a_test_only_when_asked() {
    let hec = Rx::start(|_| (StatusCode::OK, r#"{"text":"Success","code":0}"#.into())).await;
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let env = |with_dead: bool| {
        let mut env = vec![
            (
                "CANARYKEYS_STREAMS__SPLUNK_HEC__URL".to_owned(),
                format!("{}/services/collector/event", hec.base),
            ),
            (
                "CANARYKEYS_STREAMS__SPLUNK_HEC__TOKEN".to_owned(),
                "hec-secret-token-0123".to_owned(),
            ),
            (
                "CANARYKEYS_STREAMS__SPLUNK_HEC__INCLUDE".to_owned(),
                "alerts,operator".to_owned(),
            ),
        ];
        if with_dead {
            env.push((
                "CANARYKEYS_STREAMS__SYSLOG__ADDRESS".to_owned(),
                format!("tcp://127.0.0.1:{dead}"),
            ));
        }
        env
    };
    let (_, text) = doctor(dir.path(), &["doctor"], env(true)).await;
    assert!(
        text.contains("stream splunk_hec: connected to 127.0.0.1"),
        "{text}"
    );
    assert!(
        text.contains("stream syslog:") && text.contains("could not connect"),
        "{text}"
    );
    assert_eq!(hec.count(), 0, "no record without --send-test");

    let (_, text) = doctor(dir.path(), &["doctor", "--send-test"], env(false)).await;
    assert!(
        text.contains("stream splunk_hec: test record test-"),
        "{text}"
    );
    assert!(!text.contains("hec-secret-token"), "{text}");
    assert_eq!(hec.count(), 1);
    let got = &hec.all()[0];
    assert_eq!(got.header("authorization"), "Splunk hec-secret-token-0123");
    let e = got.json();
    assert_eq!(e["event"]["type"], "test");
}
