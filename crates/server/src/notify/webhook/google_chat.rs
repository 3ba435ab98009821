//! Google Chat incoming webhooks: one `cardsV2` card (header, a section of `decoratedText`
//! widgets, buttons).
//!
//! Chat's card text takes a small HTML subset (`<b>`, `<a href>`, `<font color>`), so CloudTrail
//! text is HTML-escaped. There is deliberately no top-level `text`: Chat formats that with its
//! own syntax, in which `<users/all>` notifies the whole space and cannot be escaped.

use serde_json::{json, Value};

use super::escape::{html, plain};
use super::{facts, title, LONG_TEXT, SHORT_TEXT};
use crate::notify::AlertView;

fn decorated(label: &str, text: String) -> Value {
    json!({"decoratedText": {"topLabel": label, "text": text, "wrapText": true}})
}

pub fn payload(alert: &AlertView) -> Value {
    let summary = vec![
        json!({"textParagraph": {"text": html(&alert.headline, SHORT_TEXT * 2)}}),
        decorated("Token", html(&alert.memo, LONG_TEXT)),
    ];
    let details: Vec<Value> = facts(alert)
        .into_iter()
        .map(|f| {
            let cap = if f.long { LONG_TEXT } else { SHORT_TEXT };
            decorated(f.label, html(&f.value, cap))
        })
        .collect();
    json!({
        "cardsV2": [{
            "cardId": "canarykeys-alert",
            "card": {
                "header": {
                    "title": plain(&title(alert), 200),
                    "subtitle": "canarykeys",
                },
                "sections": [
                    {"widgets": summary},
                    {"header": "Details", "collapsible": false, "widgets": details},
                    {"widgets": [{"buttonList": {"buttons": [
                        {"text": "Alert history", "onClick": {"openLink": {"url": alert.history_url}}},
                        {"text": "Manage token", "onClick": {"openLink": {"url": alert.manage_url}}},
                    ]}}]},
                ],
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::hostile_alert;
    use crate::notify::AlertKind;

    #[test]
    fn card_text_is_html_escaped_and_there_is_no_plain_text() {
        let v = payload(&hostile_alert());
        assert!(v.get("text").is_none());
        let body = v.to_string();
        assert!(!body.contains("<script>"));
        assert!(body.contains(
            "&lt;script&gt;alert(1)&lt;/script&gt; *bold* @everyone &lt;!channel&gt; `x`"
        ));
        assert!(body.contains("laptop &lt;prod&gt; &amp; *creds*"));
        let card = &v["cardsV2"][0]["card"];
        assert!(card["header"]["title"]
            .as_str()
            .unwrap()
            .starts_with("Decoy AWS key used"));
        assert_eq!(card["sections"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn a_summary_lists_the_window_and_escapes_addresses_and_events() {
        let mut alert = hostile_alert();
        alert.kind = AlertKind::Summary {
            count: 7,
            folded: 0,
            addresses: vec!["203.0.113.7".into(), "<img src=x>".into()],
            events: vec!["ListBuckets".into(), "Get<b>Object</b>".into()],
            first_event_time: "2025-11-24T10:00:00Z".into(),
            last_event_time: "2025-11-24T10:30:00Z".into(),
        };
        let v = payload(&alert);
        let card = &v["cardsV2"][0]["card"];
        assert_eq!(card["header"]["title"], "Decoy AWS key used: 7 more calls");
        let details = card["sections"][1]["widgets"].as_array().unwrap();
        let text = |label: &str| {
            details
                .iter()
                .find(|w| w["decoratedText"]["topLabel"] == label)
                .map(|w| w["decoratedText"]["text"].as_str().unwrap().to_owned())
        };
        assert_eq!(text("Calls").as_deref(), Some("7"));
        assert_eq!(
            text("Source IPs").as_deref(),
            Some("203.0.113.7, &lt;img src=x&gt;")
        );
        assert_eq!(
            text("Events").as_deref(),
            Some("ListBuckets, Get&lt;b&gt;Object&lt;/b&gt;")
        );
        assert!(text("Last user agent")
            .unwrap()
            .starts_with("&lt;script&gt;"));
        assert_eq!(text("Event"), None, "a summary has no single event");
        let buttons = &card["sections"][2]["widgets"][0]["buttonList"]["buttons"];
        assert_eq!(buttons[0]["onClick"]["openLink"]["url"], alert.history_url);
    }
}
