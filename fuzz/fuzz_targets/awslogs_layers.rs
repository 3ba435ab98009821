//! The awslogs, base64 and gzip layers: the fuzzer's bytes become the innermost payload, then
//! are gzipped and base64-encoded into a subscription event (and a Kinesis batch), so the
//! fuzzer explores what lies beneath the layers rather than failing at the first one.
#![no_main]

use std::io::Write;

use base64::Engine;
use canarykeys_core::cloudtrail::{parse, Limits};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_decompressed_bytes: 1 << 20,
    ..Limits::DEFAULT
};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

fuzz_target!(|data: &[u8]| {
    let (selector, payload) = match data.split_first() {
        Some((s, rest)) => (*s, rest),
        None => return,
    };
    let inner = if selector & 1 == 0 {
        gzip(payload)
    } else {
        // Raw bytes where gzip is expected: the decoder must refuse, not panic.
        payload.to_vec()
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
    let doc = if selector & 2 == 0 {
        format!(r#"{{"awslogs":{{"data":"{b64}"}}}}"#)
    } else {
        format!(r#"{{"Records":[{{"kinesis":{{"data":"{b64}"}}}}]}}"#)
    };
    let bytes = if selector & 4 == 0 {
        doc.into_bytes()
    } else {
        gzip(doc.as_bytes())
    };
    let _ = parse(&bytes, &LIMITS);
});
