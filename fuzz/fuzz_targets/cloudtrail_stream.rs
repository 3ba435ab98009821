//! The streaming CloudTrail parser (trail files, the CLI) on raw bytes: it must never panic, and
//! on an input both parsers accept, while it handed on a single chunk, it must find what the
//! in-memory parser finds.
#![no_main]

use std::ops::ControlFlow;

use canarykeys_core::cloudtrail::{parse, parse_stream, Chunk, Limits};
use libfuzzer_sys::fuzz_target;

// Small bounds so that bombs and huge items are refused quickly.
const LIMITS: Limits = Limits {
    max_decompressed_bytes: 1 << 20,
    max_record_bytes: 64 << 10,
};

fuzz_target!(|data: &[u8]| {
    let mut chunks: Vec<Chunk> = Vec::new();
    let streamed = parse_stream(|| Ok(data), &LIMITS, &mut |chunk| {
        chunks.push(chunk);
        ControlFlow::Continue(())
    });
    if let (Ok(summary), Ok(whole), 1) = (streamed, parse(data, &LIMITS), chunks.len()) {
        assert_eq!(summary.format, whole.format);
        let ids = |records: &[canarykeys_core::cloudtrail::Record]| -> Vec<String> {
            records.iter().map(|r| r.event_id.clone()).collect()
        };
        assert_eq!(ids(&chunks[0].records), ids(&whole.records));
        assert_eq!(chunks[0].skipped, whole.skipped);
    }
});
