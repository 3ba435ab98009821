//! An operator alert as a mail: a subject in our own words, and a text and an HTML part listing
//! the reported values. Values are kept on one line in both parts and HTML-escaped in the HTML
//! part, since errors may quote AWS or a receiver.

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::Message;

use super::OperatorAlert;
use crate::notify::email::message_id;
use crate::notify::webhook::escape::{html, single_line};

/// The longest value a mail shows.
const TEXT: usize = 2000;

/// The subject and both bodies of one operator mail.
#[derive(Clone, Debug)]
pub struct OperatorEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn render(alert: &OperatorAlert) -> OperatorEmail {
    let title = alert.title();
    let headline = single_line(&alert.headline);
    let facts = alert.facts();
    let mut text = format!("{title}\n\n{headline}\n\n");
    for (label, value) in &facts {
        text.push_str(&format!("{label}: {}\n", single_line(value)));
    }
    if let Some(advice) = alert.advice() {
        text.push_str(&format!("\n{advice}\n"));
    }
    text.push_str(&format!(
        "\n-- \ncanarykeys operator alert {} ({})\n",
        single_line(&alert.alert_id),
        super::SCHEMA
    ));
    let rows: String = facts
        .iter()
        .map(|(label, value)| {
            format!(
                "<tr><th align=\"left\" style=\"padding-right:1em\">{label}</th><td>{}</td></tr>\n",
                html(value, TEXT)
            )
        })
        .collect();
    let advice = alert
        .advice()
        .map(|a| format!("<p>{a}</p>\n"))
        .unwrap_or_default();
    let html_body = format!(
        "<!doctype html>\n<html><body>\n<h2>{title}</h2>\n<p>{}</p>\n<table>\n{rows}</table>\n\
         {advice}<p style=\"color:#666\">canarykeys operator alert {}</p>\n</body></html>\n",
        html(&alert.headline, TEXT),
        html(&alert.alert_id, 200),
    );
    OperatorEmail {
        subject: format!("[canarykeys] {title}"),
        text,
        html: html_body,
    }
}

/// The whole mail, ready for the transport; the Message-ID comes from the idempotency key, so
/// a retried send carries the same one.
pub fn build(
    from: &Mailbox,
    to: Mailbox,
    alert: &OperatorAlert,
    idempotency_key: &str,
) -> Result<Message, String> {
    let rendered = render(alert);
    let header = HeaderValue::new(
        HeaderName::new_from_ascii_str("X-Canarykeys-Operator-Alert"),
        single_line(&alert.alert_id),
    );
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject)
        .message_id(Some(message_id(idempotency_key, from.email.domain())))
        .raw_header(header)
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))
        .map_err(|e| format!("cannot build the operator mail: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::operator::hostile;

    #[test]
    fn values_are_escaped_and_on_one_line() {
        let mail = render(&hostile());
        assert!(!mail.html.contains("<script>"));
        assert!(mail.html.contains("&lt;script&gt;"));
        assert!(!mail.text.contains("\nForged"), "{}", mail.text);
        assert_eq!(mail.subject, "[canarykeys] Safety-net rounds failing");
    }
}
