//! What CloudTrail's `sourceIPAddress` names: an address, an AWS service acting for the caller,
//! AWS itself, or something we do not recognise; plus the checks on the other identifiers that
//! end up in a label.

use std::net::IpAddr;

/// The literal CloudTrail writes when AWS made the call internally.
const AWS_INTERNAL: &str = "AWS Internal";

/// Where CloudTrail says a call came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// Nothing recorded: hits from the IAM "last used" safety net carry no source at all, and
    /// "unrecognised" would wrongly suggest something odd was seen.
    Absent,
    Ip(IpAddr),
    /// A service principal such as `ec2.amazonaws.com`, lower-cased.
    AwsService(String),
    AwsInternal,
    Unrecognised,
}

pub(super) fn classify(raw: &str) -> Source {
    let value = raw.trim();
    if value.is_empty() {
        return Source::Absent;
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        // An IPv4 client reaching a dual-stack endpoint can be logged as ::ffff:a.b.c.d; every
        // list and database we consult keys IPv4 as plain IPv4.
        return Source::Ip(ip.to_canonical());
    }
    if value.eq_ignore_ascii_case(AWS_INTERNAL) {
        return Source::AwsInternal;
    }
    let lower = value.to_ascii_lowercase();
    if is_service_principal(&lower) {
        return Source::AwsService(lower);
    }
    Source::Unrecognised
}

/// `<name>.amazonaws.com` (or the China partition's `.amazonaws.com.cn`) made of DNS labels.
/// The name is echoed into a label, so it must be exactly this shape and nothing more.
fn is_service_principal(value: &str) -> bool {
    let Some(host) = value
        .strip_suffix(".amazonaws.com")
        .or_else(|| value.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    !host.is_empty() && value.len() <= 253 && host.split('.').all(is_dns_label)
}

fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A VPC endpoint id as AWS issues them (`vpce-` and 8 or 17 hex digits). Anything else is
/// reported without echoing it, since the label is shown to whoever reads the alert.
pub(super) fn vpc_endpoint_label(id: &str) -> Option<String> {
    let id = id.trim();
    if id.is_empty() {
        return None;
    }
    let well_formed = id.strip_prefix("vpce-").is_some_and(|hex| {
        (8..=17).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    Some(if well_formed {
        format!("via VPC endpoint {id}")
    } else {
        "via VPC endpoint (unrecognised id)".to_owned()
    })
}

/// The service that receives federated console sign-ins. A decoy key turned into a console
/// session (as `aws_consoler` does) is a step up from API calls and worth saying so.
pub(super) fn is_console_sign_in(event_source: &str) -> bool {
    event_source
        .trim()
        .eq_ignore_ascii_case("signin.amazonaws.com")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_canonical() {
        assert_eq!(
            classify("203.0.113.7"),
            Source::Ip("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            classify(" ::ffff:203.0.113.7 "),
            Source::Ip("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            classify("2001:db8::1"),
            Source::Ip("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn service_principals_and_aws_internal() {
        assert_eq!(
            classify("lambda.amazonaws.com"),
            Source::AwsService("lambda.amazonaws.com".into())
        );
        assert_eq!(
            classify("EC2.amazonaws.com"),
            Source::AwsService("ec2.amazonaws.com".into())
        );
        assert_eq!(
            classify("resource-explorer-2.amazonaws.com"),
            Source::AwsService("resource-explorer-2.amazonaws.com".into())
        );
        assert_eq!(
            classify("ec2.amazonaws.com.cn"),
            Source::AwsService("ec2.amazonaws.com.cn".into())
        );
        assert_eq!(classify("AWS Internal"), Source::AwsInternal);
        assert_eq!(classify(""), Source::Absent);
    }

    #[test]
    fn lookalikes_are_unrecognised() {
        for raw in [
            "amazonaws.com",
            ".amazonaws.com",
            "evil.com",
            "ec2.amazonaws.com.evil.com",
            "-x.amazonaws.com",
            "a..b.amazonaws.com",
            "<b>hi</b>.amazonaws.com",
            "ec2 amazonaws com",
            "203.0.113.7:443",
        ] {
            assert_eq!(classify(raw), Source::Unrecognised, "{raw}");
        }
    }

    #[test]
    fn vpc_endpoint_ids() {
        assert_eq!(
            vpc_endpoint_label("vpce-0123456789abcdef0").as_deref(),
            Some("via VPC endpoint vpce-0123456789abcdef0")
        );
        assert_eq!(
            vpc_endpoint_label("vpce-1a2b3c4d").as_deref(),
            Some("via VPC endpoint vpce-1a2b3c4d")
        );
        assert_eq!(
            vpc_endpoint_label("vpce-<script>").as_deref(),
            Some("via VPC endpoint (unrecognised id)")
        );
        assert_eq!(vpc_endpoint_label("  "), None);
    }

    #[test]
    fn console_sign_in() {
        assert!(is_console_sign_in("signin.amazonaws.com"));
        assert!(!is_console_sign_in("sts.amazonaws.com"));
    }
}
