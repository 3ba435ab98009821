//! Slack incoming webhooks: Block Kit (header, sections of mrkdwn fields, buttons, context) with
//! a top-level `text` that notifications and old clients show instead of the blocks.
//!
//! Slack mrkdwn can only escape `&`, `<` and `>`; that alone stops links and `<!channel>`
//! mentions. CloudTrail values are also put in code spans, where `*bold*` and `_italic_` stay
//! literal. The header is `plain_text` and holds only our own words.

use serde_json::{json, Value};

use super::escape::{plain, slack, slack_code};
use super::{facts, title, LONG_TEXT, SHORT_TEXT};
use crate::notify::AlertView;

/// Slack allows at most ten fields in a section.
const MAX_FIELDS: usize = 10;
/// Slack's limit on a section's text is 3000 characters; the memo may be up to 1000.
const MEMO_TEXT: usize = 1000;

pub fn payload(alert: &AlertView) -> Value {
    let title = title(alert);
    let headline = slack(&alert.headline, SHORT_TEXT * 2);
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": plain(&format!("🚨 {title}"), 150), "emoji": true},
        }),
        json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": format!("{headline}\n*Token:* {}", slack(&alert.memo, MEMO_TEXT)),
            },
        }),
    ];
    let (short, long): (Vec<_>, Vec<_>) = facts(alert).into_iter().partition(|f| !f.long);
    let fields: Vec<Value> = short
        .iter()
        .take(MAX_FIELDS)
        .map(|f| {
            json!({
                "type": "mrkdwn",
                "text": format!("*{}*\n{}", f.label, slack_code(&f.value, SHORT_TEXT)),
            })
        })
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    for f in &long {
        blocks.push(json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": format!("*{}*\n{}", f.label, slack_code(&f.value, LONG_TEXT)),
            },
        }));
    }
    blocks.push(json!({
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Alert history"},
                "url": alert.history_url,
            },
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Manage token"},
                "url": alert.manage_url,
            },
        ],
    }));
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!(
                "canarykeys · alert {} · received {}",
                slack(&alert.alert_id, SHORT_TEXT),
                slack(&alert.received_at, SHORT_TEXT),
            ),
        }],
    }));
    json!({
        "text": format!("{title}: {headline}"),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::hostile_alert;

    #[test]
    fn hostile_text_is_escaped_and_in_code_spans() {
        let body = payload(&hostile_alert()).to_string();
        assert!(!body.contains("<script>"));
        assert!(!body.contains("<!channel>"));
        assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(body.contains("&lt;!channel&gt;"));
        // The user agent is one code span with its own backticks replaced.
        assert!(body.contains("`&lt;script&gt;alert(1)&lt;/script&gt; *bold* @everyone &lt;!channel&gt; ˋxˋ [l](http://e)`"));
        assert!(body.contains("laptop &lt;prod&gt; &amp; *creds*"));
    }

    #[test]
    fn shape_has_fallback_text_and_at_most_ten_fields() {
        let v = payload(&hostile_alert());
        assert!(v["text"]
            .as_str()
            .unwrap()
            .starts_with("Decoy AWS key used: "));
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks.last().unwrap()["type"], "context");
        for b in blocks {
            if let Some(fields) = b["fields"].as_array() {
                assert!(fields.len() <= MAX_FIELDS);
            }
        }
    }
}
