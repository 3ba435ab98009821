//! Presentation shared by the API, the UI and the CLI: times as text, credentials as a
//! downloadable file. The JSON shapes are in `views`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use canarykeys_core::{AwsCredentials, CredentialsFormat};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Said wherever keys from a minter that does not talk to AWS are shown.
pub const LOCAL_KEYS_NOTICE: &str = "These keys are in the real AWS format but were made \
     locally: AWS does not know them, so a use is only seen by paths that do not need AWS. \
     Configure a real minter to plant keys that work at AWS.";

fn datetime(millis: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn rfc3339(millis: i64) -> String {
    datetime(millis).format(&Rfc3339).unwrap_or_default()
}

/// `2026-11-28 10:20:31 UTC`, for people.
pub fn human_time(millis: i64) -> String {
    let d = datetime(millis);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// `95 s`, `25 min`, `3 h 5 min`, `2 d 4 h`: a delay as a person reads it.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

pub fn user_arn(c: &AwsCredentials) -> String {
    format!("arn:aws:iam::{}:user/{}", c.account_id, c.username)
}

/// The credentials as a file download, named as the AWS tools expect.
pub fn download(format: CredentialsFormat, c: &AwsCredentials) -> Response {
    let disposition = format!("attachment; filename=\"{}\"", format.file_name(&c.username));
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        format.render(c),
    )
        .into_response()
}

/// The address to link to for a location taken from outside, or `None` to show it as text:
/// only an absolute http(s) URL with a host becomes a link (never `javascript:`, `data:` or a
/// relative path), and it is re-serialised by the URL parser, so what is linked is what was
/// checked.
pub fn http_link(location: &str) -> Option<String> {
    let url = url::Url::parse(location.trim()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty()))
        .then(|| url.to_string())
}

#[cfg(test)]
mod link_tests {
    use super::http_link;

    #[test]
    fn only_http_urls_become_links() {
        assert_eq!(
            http_link("https://github.com/o/r/blob/x/.env").as_deref(),
            Some("https://github.com/o/r/blob/x/.env")
        );
        assert_eq!(http_link("javascript:alert(1)"), None);
        assert_eq!(http_link("JavaScript://x%0Aalert(1)"), None);
        assert_eq!(http_link("data:text/html,<b>x</b>"), None);
        assert_eq!(http_link("github.com/o/r"), None);
        assert_eq!(
            http_link("http://e.example/\"><script>").as_deref(),
            Some("http://e.example/%22%3E%3Cscript%3E")
        );
    }
}
