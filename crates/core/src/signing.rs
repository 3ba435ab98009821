//! Signed ingest requests: HMAC-SHA256 over `"<unix time>.<body>"`, sent as
//! `X-Canarykeys-Signature: t=<unix>,v1=<hex>`. The relay Lambda signs; the server verifies, and
//! refuses timestamps more than five minutes away from its clock, so a captured request cannot be
//! replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Invalid;

pub const HEADER: &str = "x-canarykeys-signature";
/// How far a signature's timestamp may be from the verifier's clock, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` signed at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", data_encoding::HEXLOWER.encode(&tag))
}

/// Checks a header value against `body` at time `now` (unix seconds). Any `v1=` entry may match,
/// so a sender can sign with an old and a new secret while the secret is rotated.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> Result<(), Invalid> {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => {
                tags.extend(data_encoding::HEXLOWER_PERMISSIVE.decode(v.as_bytes()).ok())
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| Invalid::new("the signature has no t= timestamp"))?;
    // abs_diff: a timestamp near i64::MIN must not overflow the subtraction (found by fuzzing).
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(Invalid::new(
            "the signature's timestamp is more than 5 minutes off",
        ));
    }
    if tags.is_empty() {
        return Err(Invalid::new("the signature has no v1= value"));
    }
    let ok = tags
        .iter()
        .any(|tag| mac(secret, timestamp, body).verify_slice(tag).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new("the signature does not match"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000;

    #[test]
    fn extreme_timestamps_are_refused_not_overflowed() {
        // The fuzzer's input: `t=-000…` parsed to a timestamp whose distance from now overflowed.
        for t in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let header = format!("t={t},v1=00");
            let e = verify(b"s3cret", &header, b"{}", NOW).unwrap_err();
            assert!(e.to_string().contains("5 minutes"), "{e}");
        }
    }

    #[test]
    fn round_trip() {
        let h = sign(b"s3cret", NOW, b"{\"a\":1}");
        assert!(h.starts_with(&format!("t={NOW},v1=")));
        verify(b"s3cret", &h, b"{\"a\":1}", NOW + 10).unwrap();
    }

    #[test]
    fn refuses_tampering_wrong_secret_and_stale_times() {
        let h = sign(b"s3cret", NOW, b"body");
        assert!(verify(b"s3cret", &h, b"body!", NOW).is_err());
        assert!(verify(b"other", &h, b"body", NOW).is_err());
        assert!(verify(b"s3cret", &h, b"body", NOW + 301).is_err());
        assert!(verify(b"s3cret", &h, b"body", NOW - 301).is_err());
        verify(b"s3cret", &h, b"body", NOW + 300).unwrap();
        for junk in [
            "",
            "t=",
            "v1=00",
            "t=abc,v1=00",
            &format!("t={NOW}"),
            &format!("t={NOW},v1=zz"),
        ] {
            assert!(verify(b"s3cret", junk, b"body", NOW).is_err(), "{junk}");
        }
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let good = sign(b"new", NOW, b"b");
        let old = sign(b"old", NOW, b"b");
        let both = format!("{},{}", old, good.split_once(',').unwrap().1);
        verify(b"new", &both, b"b", NOW).unwrap();
        verify(b"old", &both, b"b", NOW).unwrap();
    }
}
