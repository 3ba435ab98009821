//! Unit tests of `parse_stream`: chunks, inputs past the in-memory budget, the per-item cap,
//! errors after records were handed on, the NDJSON re-read, and a consumer that stops.

use std::cell::Cell;
use std::ops::ControlFlow;

use serde_json::json;

use super::{gz, rec};
use crate::cloudtrail::{parse, parse_stream, Chunk, Format, Limits, ParseError, Summary};

/// Streams `input`, returning the summary (or error) and the chunks handed on.
fn stream(input: &[u8], limits: &Limits) -> (Result<Summary, ParseError>, Vec<Chunk>) {
    let mut chunks = Vec::new();
    let summary = parse_stream(|| Ok(input), limits, &mut |c: Chunk| {
        chunks.push(c);
        ControlFlow::Continue(())
    });
    (summary, chunks)
}

fn log_file(n: usize) -> Vec<u8> {
    let records: Vec<_> = (0..n).map(|i| rec(&format!("r{i}"))).collect();
    json!({ "Records": records }).to_string().into_bytes()
}

#[test]
fn a_log_file_is_handed_on_in_chunks_of_at_most_1000_records() {
    let (summary, chunks) = stream(&gz(&log_file(2500)), &Limits::default());
    let summary = summary.unwrap();
    assert_eq!((summary.format, summary.gzipped), (Format::LogFile, true));
    assert_eq!((summary.records, summary.skipped), (2500, 0));
    let sizes: Vec<usize> = chunks.iter().map(|c| c.records.len()).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    let ids: Vec<&str> = chunks
        .iter()
        .flat_map(|c| &c.records)
        .map(|r| r.event_id.as_str())
        .collect();
    assert_eq!(ids.len(), 2500);
    assert!(ids.iter().enumerate().all(|(i, id)| *id == format!("r{i}")));
}

#[test]
fn a_stream_is_not_bounded_by_the_in_memory_budget() {
    let limits = Limits {
        max_decompressed_bytes: 10_000,
        ..Limits::DEFAULT
    };
    let file = gz(&log_file(300));
    assert!(parse(&file, &limits).unwrap_err().is_too_large());
    let (summary, _) = stream(&file, &limits);
    assert_eq!(summary.unwrap().records, 300);
}

#[test]
fn an_item_over_the_record_cap_ends_the_stream() {
    let mut big = rec("big");
    big["requestParameters"] = json!("x".repeat(300_000));
    let input = json!({"Records": [rec("a"), big]}).to_string();
    let limits = Limits {
        max_record_bytes: 100_000,
        ..Limits::DEFAULT
    };
    let (summary, _) = stream(input.as_bytes(), &limits);
    assert_eq!(
        summary.unwrap_err(),
        ParseError::RecordTooLarge { limit: 100_000 }
    );
    // NDJSON lines are items too.
    let lines = format!("{}\n{}\n", rec("a"), json!({"pad": "y".repeat(300_000)}));
    let (summary, _) = stream(lines.as_bytes(), &limits);
    assert!(summary.unwrap_err().is_too_large());
    // The default cap lets a real record through.
    assert_eq!(
        stream(input.as_bytes(), &Limits::default())
            .0
            .unwrap()
            .records,
        2
    );
}

#[test]
fn a_truncated_file_fails_after_handing_on_what_came_before() {
    let file = gz(&log_file(2500));
    let (summary, chunks) = stream(&file[..file.len() * 3 / 4], &Limits::default());
    assert_eq!(summary.unwrap_err(), ParseError::BadGzip);
    assert!(chunks.iter().map(|c| c.records.len()).sum::<usize>() >= 1000);
    let plain = log_file(2500);
    let (summary, chunks) = stream(&plain[..plain.len() - 10], &Limits::default());
    assert_eq!(summary.unwrap_err(), ParseError::NotJson);
    assert_eq!(chunks.len(), 2, "two full chunks went before the break");
    // Cut before any chunk was full: read again as NDJSON, which it is not either.
    let (summary, chunks) = stream(&plain[..5000], &Limits::default());
    assert_eq!(summary.unwrap_err(), ParseError::NotJson);
    assert!(chunks.is_empty());
}

#[test]
fn ndjson_is_read_again_from_the_start() {
    let input = format!("{}\n\nnot json\n{}\n", rec("a"), rec("b"));
    let opened = Cell::new(0);
    let mut chunks = Vec::new();
    let summary = parse_stream(
        || {
            opened.set(opened.get() + 1);
            Ok(input.as_bytes())
        },
        &Limits::default(),
        &mut |c: Chunk| {
            chunks.push(c);
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(opened.get(), 2);
    assert_eq!((summary.format, summary.records), (Format::Ndjson, 2));
    let skips: Vec<_> = chunks.iter().flat_map(|c| &c.skipped).collect();
    assert_eq!(skips.len(), 1);
    assert_eq!((skips[0].index, skips[0].reason.as_str()), (2, "not JSON"));
}

#[test]
fn a_consumer_can_stop_the_stream_and_sources_fail_cleanly() {
    let file = log_file(2500);
    let mut seen = 0;
    let outcome = parse_stream(|| Ok(&file[..]), &Limits::default(), &mut |c: Chunk| {
        seen += c.records.len();
        ControlFlow::Break(())
    });
    assert_eq!(outcome.unwrap_err(), ParseError::Interrupted);
    assert_eq!(seen, 1000);
    assert_eq!(
        stream(b" \n ", &Limits::default()).0.unwrap_err(),
        ParseError::Empty
    );
    let unreadable = parse_stream(
        || Err::<&[u8], _>(std::io::Error::other("gone")),
        &Limits::default(),
        &mut |_| ControlFlow::Continue(()),
    );
    assert_eq!(unreadable.unwrap_err(), ParseError::Unreadable);
}
