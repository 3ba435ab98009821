//! Mattermost incoming webhooks: Slack's message attachments (`fallback`, `color`, `title`,
//! `text`, `fields`), which Mattermost takes, but not Slack's Block Kit, and Mattermost's own
//! Markdown rather than Slack's mrkdwn. So every reported value is escaped as Markdown (a
//! backslash before each punctuation mark Markdown reads) and `@` is shown full-width, so that
//! `@channel`, `@all` or `@here` in a user agent can never notify a channel.
//!
//! Detected for `/hooks/<26 lowercase letters or digits>` (Mattermost's webhook ids), or chosen
//! with `#flavour=mattermost`. Follows <https://developers.mattermost.com/integrate/webhooks/incoming/>
//! and <https://developers.mattermost.com/integrate/reference/message-attachments/>.

use serde_json::{json, Value};

use super::escape::mattermost;
use super::{facts, title, LONG_TEXT, SHORT_TEXT};
use crate::notify::AlertView;

pub fn payload(alert: &AlertView) -> Value {
    let title = title(alert);
    let headline = mattermost(&alert.headline, SHORT_TEXT * 2);
    let fields: Vec<Value> = facts(alert)
        .into_iter()
        .map(|f| {
            let max = if f.long { LONG_TEXT } else { SHORT_TEXT };
            json!({"short": !f.long, "title": f.label, "value": mattermost(&f.value, max)})
        })
        .collect();
    json!({
        "username": "canarykeys",
        "text": format!("#### 🚨 {}\n{headline}", mattermost(&title, SHORT_TEXT)),
        "attachments": [{
            "fallback": format!("{}: {headline}", mattermost(&title, SHORT_TEXT)),
            "color": "#D93025",
            "title": mattermost(&title, SHORT_TEXT),
            "text": format!(
                "**Token:** {}\n[Alert history]({}) · [Manage token]({})",
                mattermost(&alert.memo, LONG_TEXT),
                alert.history_url,
                alert.manage_url,
            ),
            "fields": fields,
            "footer": format!(
                "canarykeys · alert {} · received {}",
                mattermost(&alert.alert_id, SHORT_TEXT),
                mattermost(&alert.received_at, SHORT_TEXT),
            ),
        }],
    })
}

/// Mattermost's webhook path: `/hooks/` and a 26-character id.
pub fn is_webhook_path(path: &str) -> bool {
    path.strip_prefix("/hooks/").is_some_and(|id| {
        id.len() == 26
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::hostile_alert;

    #[test]
    fn mentions_and_markdown_stay_text() {
        let body = payload(&hostile_alert()).to_string();
        assert!(
            !body.contains("@everyone") && !body.contains("@channel"),
            "{body}"
        );
        assert!(body.contains("＠everyone"));
        assert!(body.contains(r"\\<script\\>"), "{body}");
        assert!(!body.contains("[l](http://e)"), "{body}");
        assert!(is_webhook_path("/hooks/xa1b2c3d4e5f6g7h8i9j0k1l2m"));
        assert!(!is_webhook_path("/hooks/short"));
    }
}
