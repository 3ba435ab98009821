//! Whether a signed request is still current, as AWS judges it: a request signed in its headers
//! must be dated within 15 minutes of the server's clock, either way; a presigned URL is good
//! until its `X-Amz-Expires` runs out from its `X-Amz-Date`. A stale request is answered as AWS
//! answers it, and its hit says it was replayed or expired.

use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use super::sigv4::{parse_date, Claim};

/// How far a header-signed request's date may be from the server's clock.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

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

/// AWS's compact form, `20260128T101500Z`.
fn stamp(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
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
        let end = date.checked_add(Duration::from_secs(expires))?;
        return (now > end).then(|| Stale {
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

    #[test]
    fn stamps_match_aws() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_769_595_300);
        assert_eq!(stamp(t), "20260128T101500Z");
    }
}
