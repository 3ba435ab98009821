//! What an alert mail looks like: its subject, its Message-ID, and the text and HTML parts
//! rendered from `templates/email/alert.txt` and `templates/email/alert.html`.

use std::sync::OnceLock;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use minijinja::{context, AutoEscape, Environment};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::notify::{AlertKind, AlertView};

/// Longest subject we send, in characters. Mail clients cut long subjects anyway; the memo must
/// fit in what they show, and a memo is at most a few hundred characters.
const SUBJECT_MAX_CHARS: usize = 150;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "alert.txt",
        include_str!("../../../templates/email/alert.txt"),
    ),
    (
        "alert.html",
        include_str!("../../../templates/email/alert.html"),
    ),
];

/// The two bodies and the subject of one alert mail.
#[derive(Clone, Debug)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The mail templates' own environment, separate from the web UI's: the web pages need none of
/// these templates, and the `.txt` one must not be HTML-escaped.
fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Said outright rather than left to minijinja's by-extension default: escaping the HTML
        // part is what keeps an attacker's user agent inert in the reader's mail client.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.add_filter("clean", clean);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("built-in email templates parse");
        }
        env
    })
}

/// Renders the subject and both bodies of the mail for `alert`.
pub fn render(alert: &AlertView) -> Result<RenderedEmail, minijinja::Error> {
    let env = environment();
    let window = match &alert.kind {
        AlertKind::Summary {
            first_event_time,
            last_event_time,
            ..
        } => Some((human_time(first_event_time), human_time(last_event_time))),
        _ => None,
    };
    let exposure_times = match &alert.kind {
        AlertKind::Exposure {
            first_seen,
            last_seen,
            ..
        } => Some((human_time(first_seen), human_time(last_seen))),
        _ => None,
    };
    let ctx = context! {
        alert => alert,
        first_seen => exposure_times.as_ref().map(|t| t.0.clone()),
        last_seen => exposure_times.as_ref().map(|t| t.1.clone()),
        exposure_source => match &alert.kind {
            AlertKind::Exposure { source, .. } => {
                Some(crate::notify::webhook::exposure_source_label(source))
            }
            _ => None,
        },
        exposure_advice => crate::notify::webhook::EXPOSURE_ADVICE,
        tamper_actor => crate::notify::webhook::tamper_actor(&alert.kind),
        tamper_advice => crate::notify::webhook::TAMPER_ADVICE,
        location_link => match &alert.kind {
            AlertKind::Exposure { location: Some(l), .. } => crate::render::http_link(l),
            _ => None,
        },
        event_time => human_time(&alert.event_time),
        received_at => human_time(&alert.received_at),
        window_start => window.as_ref().map(|w| w.0.clone()),
        window_end => window.as_ref().map(|w| w.1.clone()),
    };
    Ok(RenderedEmail {
        subject: subject(alert),
        text: env.get_template("alert.txt")?.render(&ctx)?,
        html: env.get_template("alert.html")?.render(&ctx)?,
    })
}

/// The subject: what happened and the memo, so the reader knows which key from the inbox list.
/// One line (a line break in a header would be refused or, worse, start a new header) and at
/// most [`SUBJECT_MAX_CHARS`] characters.
pub fn subject(alert: &AlertView) -> String {
    let what = match &alert.kind {
        AlertKind::Hit if alert.retired => "Retired decoy key used".to_owned(),
        AlertKind::Hit => "Decoy key used".to_owned(),
        AlertKind::Summary { count: 1, .. } => "1 more use".to_owned(),
        AlertKind::Summary { count, .. } => format!("{count} more uses"),
        AlertKind::Test => "Test alert".to_owned(),
        AlertKind::Exposure { .. } => "Decoy key exposed in public".to_owned(),
        AlertKind::Tamper { action, .. } => match action.as_str() {
            "delete" => "Tamper: decoy token deleted".to_owned(),
            "channel_off" => "Tamper: alerts switched off".to_owned(),
            _ => "Tamper: ignore list changed".to_owned(),
        },
    };
    let line = clean(format!("[canarykeys] {what}: {}", alert.memo));
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= SUBJECT_MAX_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(SUBJECT_MAX_CHARS - 1).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// The Message-ID for a send: derived from the idempotency key only, so a retried send carries
/// the same id and mail systems that dedupe by Message-ID show it once. Characters that may not
/// appear in an id are written `=XX`, which keeps distinct keys distinct.
pub fn message_id(idempotency_key: &str, domain: &str) -> String {
    let mut local = String::from("canarykeys.");
    for b in idempotency_key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            local.push(char::from(b));
        } else {
            local.push_str(&format!("={b:02X}"));
        }
    }
    format!("<{local}@{domain}>")
}

/// The whole mail, ready for the transport.
pub(super) fn build(
    from: &Mailbox,
    to: Mailbox,
    alert: &AlertView,
    idempotency_key: &str,
) -> Result<Message, String> {
    let rendered = render(alert).map_err(|e| format!("cannot render the alert mail: {e:#}"))?;
    let alert_header = HeaderValue::new(
        HeaderName::new_from_ascii_str("X-Canarykeys-Alert"),
        clean(alert.alert_id.clone()),
    );
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(message_id(idempotency_key, from.email.domain())))
        .raw_header(alert_header)
        // lettre picks 7bit, quoted-printable or base64 for each part, whichever is valid and
        // smallest; the user agent may hold any bytes, so no encoding can be assumed.
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))
        .map_err(|e| format!("cannot build the alert mail: {e}"))
}

/// Replaces every line break (control characters, and U+2028/U+2029, which mail readers also
/// break on) with a space, and every bidi control with U+FFFD (the same rules as chat, in
/// `webhook::escape`). Applied to every attacker-controlled value, so a user agent cannot forge
/// extra lines in the text part or make text read backwards.
fn clean(value: String) -> String {
    use crate::notify::webhook::escape::{breaks_line, is_bidi_control};
    if !value.chars().any(|c| breaks_line(c) || is_bidi_control(c)) {
        return value;
    }
    value
        .chars()
        .map(|c| match c {
            c if breaks_line(c) => ' ',
            c if is_bidi_control(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// `2024-05-01T12:34:56Z` as `2024-05-01 12:34:56 UTC`; anything unparsable is shown as given.
fn human_time(rfc3339: &str) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or_else(|| rfc3339.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(memo: &str) -> AlertView {
        AlertView {
            kind: AlertKind::Hit,
            alert_id: "a1".into(),
            token_id: "t1".into(),
            memo: memo.into(),
            headline: "GetCallerIdentity from 203.0.113.7".into(),
            event_name: "GetCallerIdentity".into(),
            event_source: "sts.amazonaws.com".into(),
            region: "us-east-1".into(),
            source_ip: "203.0.113.7".into(),
            user_agent: "curl\r\nNote: forged line \u{202E}txet".into(),
            error_code: None,
            error_message: None,
            event_time: "2024-05-01T14:34:56+02:00".into(),
            received_at: "not a time".into(),
            account_id: None,
            access_key_id: None,
            path: "s3".into(),
            note: None,
            source_labels: vec![],
            country: None,
            asn: None,
            manage_url: "https://x.example/manage/t1".into(),
            history_url: "https://x.example/manage/t1#history".into(),
            retired: false,
        }
    }

    #[test]
    fn subject_is_one_bounded_line() {
        let s = subject(&alert("laptop\r\nBcc: evil@example.com\tjump host"));
        assert_eq!(
            s,
            "[canarykeys] Decoy key used: laptop Bcc: evil@example.com jump host"
        );
        let long = subject(&alert(&"x".repeat(400)));
        assert_eq!(long.chars().count(), SUBJECT_MAX_CHARS);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn message_id_is_stable_and_keeps_keys_apart() {
        let id = message_id("alert 7:email", "example.com");
        assert_eq!(id, "<canarykeys.alert=207=3Aemail@example.com>");
        assert_eq!(id, message_id("alert 7:email", "example.com"));
        assert_ne!(id, message_id("alert_7:email", "example.com"));
    }

    #[test]
    fn text_part_cannot_be_given_extra_lines() {
        let text = render(&alert("m")).unwrap().text;
        assert!(
            text.contains("User agent:   curl  Note: forged line \u{FFFD}txet\n"),
            "{text}"
        );
        assert!(!text.lines().any(|l| l.starts_with("Note:")), "{text}");
        assert!(
            text.contains("2024-05-01 12:34:56 UTC"),
            "times are shown in UTC"
        );
        assert!(text.contains("Received:     not a time"), "{text}");
    }

    mod properties {
        use super::*;
        use crate::notify::webhook::escape::{breaks_line, is_bidi_control};
        use proptest::prelude::*;

        /// Ordinary words with bidi controls, line and paragraph separators and controls
        /// between them.
        fn mixed() -> impl Strategy<Value = (Vec<String>, String)> {
            let hostile = prop::sample::select(vec![
                '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
                '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{2028}', '\u{2029}',
                '\n', '\r', '\u{0}', '\u{85}', '\u{9B}',
            ]);
            prop::collection::vec(
                ("[A-Za-z0-9]{1,12}", prop::collection::vec(hostile, 0..4)),
                1..10,
            )
            .prop_map(|parts| {
                let mut text = String::new();
                let mut words = Vec::new();
                for (word, hostile) in parts {
                    text.push_str(&word);
                    text.extend(hostile);
                    words.push(word);
                }
                (words, text)
            })
        }

        proptest! {
            #[test]
            fn no_part_of_the_mail_carries_a_separator_or_bidi_control((words, text) in mixed()) {
                let mut a = alert(&text);
                a.user_agent = text.clone();
                a.headline = text.clone();
                a.event_name = text.clone();
                a.source_ip = text.clone();
                a.error_code = Some(text.clone());
                a.error_message = Some(text.clone());
                a.note = Some(text.clone());
                let mail = render(&a).unwrap();
                for (part, out) in [("subject", &mail.subject), ("text", &mail.text), ("html", &mail.html)] {
                    // The templates' own layout breaks lines with `\n`; nothing else may.
                    prop_assert!(
                        !out.chars().any(|c| is_bidi_control(c) || (c != '\n' && breaks_line(c))),
                        "{part}: {out:?}"
                    );
                }
                for word in &words {
                    prop_assert!(mail.text.contains(word.as_str()), "lost {word:?}");
                    prop_assert!(mail.html.contains(word.as_str()), "lost {word:?}");
                }
                let cleaned = clean(text.clone());
                prop_assert!(!cleaned.chars().any(|c| breaks_line(c) || is_bidi_control(c)));
            }
        }
    }
}
