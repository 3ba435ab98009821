//! The CloudTrail parser on raw bytes, in whatever wrapper the bytes happen to form: it must
//! never panic, and must stay within its decompression budget.
#![no_main]

use canarykeys_core::cloudtrail::{parse, Limits};
use libfuzzer_sys::fuzz_target;

// A small budget so that bombs are refused quickly instead of slowing the fuzzer down.
const LIMITS: Limits = Limits {
    max_decompressed_bytes: 1 << 20,
    ..Limits::DEFAULT
};

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse(data, &LIMITS) {
        for record in &parsed.records {
            // Touch what the hit path reads, so lazily computed fields are exercised too.
            let _ = format!("{record:?}");
        }
    }
});
