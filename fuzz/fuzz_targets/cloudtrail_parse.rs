//! The CloudTrail parser on raw bytes, in whatever wrapper the bytes happen to form: it must
//! never panic, and must stay within its decompression budget. A gate changes only which
//! records are built: what it refuses is counted, in the same places, never lost or skipped.
#![no_main]

use canarykeys_core::cloudtrail::{parse, parse_gated, Gate, Limits, Who};
use libfuzzer_sys::fuzz_target;

// A small budget so that bombs are refused quickly instead of slowing the fuzzer down.
const LIMITS: Limits = Limits {
    max_decompressed_bytes: 1 << 20,
    ..Limits::DEFAULT
};

/// Lets through the records whose key id has an even length (or no key id): some of each.
struct Even;

impl Gate for Even {
    fn may_match(&self, who: &Who<'_>) -> bool {
        who.access_key_id.is_none_or(|k| k.len() % 2 == 0)
    }
}

fuzz_target!(|data: &[u8]| {
    let open = parse(data, &LIMITS);
    let gated = parse_gated(data, &LIMITS, &Even);
    match (&open, &gated) {
        (Ok(open), Ok(gated)) => {
            for record in &open.records {
                // Touch what the hit path reads, so lazily computed fields are exercised too.
                let _ = format!("{record:?}");
            }
            assert_eq!(open.gated, 0);
            assert_eq!(open.format, gated.format);
            assert_eq!(open.skipped, gated.skipped);
            let kept: Vec<&str> = open
                .records
                .iter()
                .filter(|r| {
                    r.identity
                        .access_key_id
                        .as_deref()
                        .is_none_or(|k| k.len() % 2 == 0)
                })
                .map(|r| r.event_id.as_str())
                .collect();
            let built: Vec<&str> = gated.records.iter().map(|r| r.event_id.as_str()).collect();
            assert_eq!(kept, built);
            assert_eq!(open.records.len(), gated.records.len() + gated.gated);
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("a gate changed whether the input parses: {open:?} / {gated:?}"),
    }
});
