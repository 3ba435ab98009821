//! The `X-Canarykeys-Signature` header parser: any header text with any body must be refused
//! or accepted without panicking, and a header that verifies must really be our signature.
#![no_main]

use canarykeys_core::signing::{sign, verify};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzzing secret";
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if verify(SECRET, header, body, NOW).is_ok() {
        // Only a header carrying our own tag for this body may pass; libFuzzer cannot forge
        // HMAC-SHA256, so reaching here with a foreign header would be a bug.
        let t = header
            .split(',')
            .find_map(|p| p.trim().strip_prefix("t="))
            .and_then(|t| t.parse::<i64>().ok())
            .expect("a verified header has a timestamp");
        assert!(header.contains(sign(SECRET, t, body).trim_start_matches(&format!("t={t},"))));
    }
});
