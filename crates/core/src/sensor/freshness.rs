//! Whether a signed request is still current, as AWS judges it: a request signed in its headers
//! must be dated within 15 minutes of the server's clock, either way; a presigned URL is good
//! until its `X-Amz-Expires` runs out from its `X-Amz-Date`, and that may be at most a week. A
//! stale request is answered as AWS answers it, and its hit says it was replayed or expired.

use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use super::sigv4::{parse_date, Claim};

/// How far a header-signed request's date may be from the server's clock.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The longest `X-Amz-Expires` AWS accepts: a week, in seconds (a SigV4 signing key is good for
/// seven days). S3 answers a longer one with `AuthorizationQueryParametersError`.
pub const MAX_PRESIGN_EXPIRES: u64 = 604_800;

/// AWS's words for an `X-Amz-Expires` over [`MAX_PRESIGN_EXPIRES`].
pub const EXPIRES_TOO_LONG: &str = "X-Amz-Expires must be less than a week (in seconds); that is, \
     the given X-Amz-Expires must be less than 604800 seconds";

/// Whether a presigned SigV4 URL asks to live longer than AWS allows.
pub fn expires_too_long(claim: &Claim) -> bool {
    !claim.v2
        && claim
            .presigned_expires
            .is_some_and(|e| e > MAX_PRESIGN_EXPIRES)
}

/// Why a signed request is no longer (or not yet) acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    /// A presigned URL past its expiry (S3 says "Request has expired"); else a skewed date.
    pub presign_expired: bool,
    /// The query and JSON protocols' text: "Signature expired: … is now earlier than …".
    pub message: String,
}

impl Stale {
    /// The note the hit carries.
    pub fn note(&self) -> &'static str {
        if self.presign_expired {
            "request expired (a presigned URL past its X-Amz-Expires): a replay or a late use of a copied URL"
        } else {
            "request time too skewed (X-Amz-Date more than 15 minutes from now): a replayed or delayed request"
        }
    }
}

/// AWS's compact form, `20260128T101500Z`. Total: a time outside the calendar's range (now
/// minus an absurd `X-Amz-Expires`) is shown as the range's end, never a panic.
fn stamp(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    let t = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(if secs < 0 {
        time::PrimitiveDateTime::MIN.assume_utc()
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    });
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `None` when the request is current, or when it carries no readable date (then its signature
/// cannot verify, which is reported instead).
pub fn check(claim: &Claim, now: SystemTime) -> Option<Stale> {
    let date = parse_date(claim.date.as_deref()?)?;
    if let Some(expires) = claim.presigned_expires.filter(|_| !claim.v2) {
        // An end past what the clock can count is no end the request may claim: stale, not
        // fresh forever (AWS caps the expiry at a week; see `expires_too_long`).
        let end = date.checked_add(Duration::from_secs(expires));
        return end.is_none_or(|end| now > end).then(|| Stale {
            presign_expired: true,
            message: format!(
                "Signature expired: {} is now earlier than {} ({} - {expires} sec.)",
                stamp(date),
                stamp(
                    now.checked_sub(Duration::from_secs(expires))
                        .unwrap_or(SystemTime::UNIX_EPOCH)
                ),
                stamp(now)
            ),
        });
    }
    if claim.v2 {
        return None;
    }
    let (earliest, latest) = (now - MAX_SKEW, now + MAX_SKEW);
    if date < earliest {
        Some(Stale {
            presign_expired: false,
            message: format!(
                "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                stamp(date),
                stamp(earliest),
                stamp(now)
            ),
        })
    } else if date > latest {
        Some(Stale {
            presign_expired: false,
            message: format!(
                "Signature not yet current: {} is still later than {} ({} + 15 min.)",
                stamp(date),
                stamp(latest),
                stamp(now)
            ),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presigned(date: &str, expires: u64) -> Claim {
        Claim {
            key_id: "AKIDEXAMPLE".into(),
            scope: super::super::sigv4::Scope {
                region: "us-east-1".into(),
                service: "s3".into(),
            },
            signed_headers: vec!["host".into()],
            signature: String::new(),
            date: Some(date.into()),
            presigned_expires: Some(expires),
            v2: false,
        }
    }

    #[test]
    fn an_overflowing_expiry_is_not_fresh() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_769_595_300);
        // `u64::MAX / 2`: the end overflows, and `now` minus it is long before year -9999.
        for expires in [u64::MAX, u64::MAX / 2, i64::MAX as u64 + 1] {
            let stale = check(&presigned("20260128T101500Z", expires), now)
                .expect("an expiry past the clock's range is stale, not fresh");
            assert!(stale.presign_expired, "{stale:?}");
            assert!(stale.message.starts_with("Signature expired"), "{stale:?}");
            assert!(expires_too_long(&presigned("20260128T101500Z", expires)));
        }
    }

    #[test]
    fn x_amz_expires_is_capped_at_a_week() {
        let claim = |e| presigned("20260128T101500Z", e);
        assert!(!expires_too_long(&claim(MAX_PRESIGN_EXPIRES)));
        assert!(expires_too_long(&claim(MAX_PRESIGN_EXPIRES + 1)));
        let mut v2 = claim(MAX_PRESIGN_EXPIRES + 1);
        v2.v2 = true;
        assert!(
            !expires_too_long(&v2),
            "Signature Version 2 has no X-Amz-Expires"
        );
        assert!(EXPIRES_TOO_LONG.contains("604800"));
    }

    #[test]
    fn stamps_match_aws() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_769_595_300);
        assert_eq!(stamp(t), "20260128T101500Z");
        // Out of the calendar's range: the range's end, not a panic.
        let past = SystemTime::UNIX_EPOCH - Duration::from_secs(1 << 60);
        assert!(stamp(past).starts_with("-9999"), "{}", stamp(past));
        let future = SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 60);
        assert!(stamp(future).starts_with("9999"), "{}", stamp(future));
    }
}
