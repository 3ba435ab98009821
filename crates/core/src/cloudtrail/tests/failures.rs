//! Unit tests of whole-input failures: empty, not JSON, not CloudTrail, bad gzip and base64,
//! the size limit (a gzip bomb included), and error texts that never echo the input.

use std::io::Write;

use flate2::{write::GzEncoder, Compression};
use serde_json::json;

use super::{awslogs, b64, gz, rec, run, subscription};
use crate::cloudtrail::{parse, Format, Limits, ParseError};

#[test]
fn whole_input_failures() {
    assert_eq!(run(b"").unwrap_err(), ParseError::Empty);
    assert_eq!(run(b" \n\t ").unwrap_err(), ParseError::Empty);
    assert_eq!(run(&gz(b"")).unwrap_err(), ParseError::Empty);
    assert!(matches!(
        run(br#"{"a":1}"#),
        Err(ParseError::NotCloudTrail(_))
    ));
    assert!(matches!(run(b"[1,2]"), Err(ParseError::NotCloudTrail(_))));
    assert!(matches!(
        run(br#"{"Records":[1,2]}"#),
        Err(ParseError::NotCloudTrail(_))
    ));
    assert!(matches!(
        run(b"\"text\""),
        Err(ParseError::NotCloudTrail(_))
    ));
    assert_eq!(run(b"{\"Records\":[").unwrap_err(), ParseError::NotJson);
    let log_file = gz(json!({"Records": [rec("a")]}).to_string().as_bytes());
    assert_eq!(
        run(&log_file[..log_file.len() - 10]).unwrap_err(),
        ParseError::BadGzip
    );
    assert_eq!(
        run(br#"{"awslogs":{"data":"not*base64"}}"#).unwrap_err(),
        ParseError::BadBase64
    );
    assert_eq!(
        run(br#"{"awslogs":{"data":"H4sIAAAA"}}"#).unwrap_err(),
        ParseError::BadGzip
    );
    let p = run(b"{\"Records\":[]}").unwrap();
    assert_eq!((p.format, p.records.len()), (Format::LogFile, 0));
}

#[test]
fn error_texts_and_skip_reasons_never_echo_the_input() {
    let marker = "<script>MARKER</script>";
    let mut r = rec(marker);
    r["eventTime"] = json!(marker);
    let inputs = [
        json!({ marker: marker }).to_string(),
        json!([r, {marker: 1}]).to_string(),
        json!({"messageType": marker, "logEvents": []}).to_string(),
        json!({"awslogs": {"data": marker}}).to_string(),
        format!("{marker}\n{marker}"),
    ];
    for input in inputs {
        match run(input.as_bytes()) {
            Ok(p) => assert!(p.skipped.iter().all(|s| !s.reason.contains("MARKER"))),
            Err(e) => assert!(!e.to_string().contains("MARKER"), "{e}"),
        }
    }
}

#[test]
fn input_over_the_limit_is_too_large() {
    let limits = Limits {
        max_decompressed_bytes: 1000,
        ..Limits::DEFAULT
    };
    let big = json!([rec("a"), rec("b"), rec("c"), rec("d")]).to_string();
    assert!(parse(big.as_bytes(), &limits).unwrap_err().is_too_large());
    // Small when compressed, too large once expanded: the embedded payload counts too.
    let sub = subscription(&[
        rec("a").to_string(),
        rec("b").to_string(),
        rec("c").to_string(),
    ]);
    let event = awslogs(&sub).to_string();
    assert!(event.len() < 1000);
    assert!(parse(event.as_bytes(), &limits).unwrap_err().is_too_large());
    assert!(parse(&gz(big.as_bytes()), &limits)
        .unwrap_err()
        .is_too_large());
}

#[test]
fn gzip_bomb_stops_at_the_limit() {
    // 100 MiB of zeros, compressed in a stream so the test never holds more than 1 MiB of it.
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..100 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 200 * 1024, "{}", bomb.len());
    let err = run(&bomb).unwrap_err();
    assert!(err.is_too_large(), "{err}");
    assert_eq!(
        err,
        ParseError::TooLarge {
            limit: 32 * 1024 * 1024
        }
    );
    let lambda = json!({"awslogs": {"data": b64(&bomb)}}).to_string();
    assert!(run(lambda.as_bytes()).unwrap_err().is_too_large());
}
