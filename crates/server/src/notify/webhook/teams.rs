//! Microsoft Teams: a message with one Adaptive Card (1.4) attachment, the shape Power Automate's
//! "Post to a channel when a webhook request is received" workflow and the old Office 365
//! connectors both take.
//!
//! Teams renders a Markdown subset in TextBlocks and FactSet values, CommonMark-style, so
//! CloudTrail text is backslash-escaped: no links, emphasis or lists can come from an attacker.

use serde_json::{json, Value};

use super::escape::teams;
use super::{facts, title, LONG_TEXT, SHORT_TEXT};
use crate::notify::{AlertKind, AlertView};

pub fn payload(alert: &AlertView) -> Value {
    let colour = match alert.kind {
        AlertKind::Hit
        | AlertKind::Summary { .. }
        | AlertKind::Exposure { .. }
        | AlertKind::Tamper { .. } => "Attention",
        AlertKind::Test => "Accent",
    };
    let mut fact_set = vec![json!({"title": "Token", "value": teams(&alert.memo, LONG_TEXT)})];
    fact_set.extend(facts(alert).into_iter().map(|f| {
        let cap = if f.long { LONG_TEXT } else { SHORT_TEXT };
        json!({"title": f.label, "value": teams(&f.value, cap)})
    }));
    let card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {
                "type": "TextBlock",
                "text": title(alert),
                "weight": "Bolder",
                "size": "Medium",
                "color": colour,
                "wrap": true,
            },
            {
                "type": "TextBlock",
                "text": teams(&alert.headline, SHORT_TEXT * 2),
                "wrap": true,
            },
            {"type": "FactSet", "facts": fact_set},
            {
                "type": "TextBlock",
                "text": format!("canarykeys · alert {}", teams(&alert.alert_id, SHORT_TEXT)),
                "isSubtle": true,
                "size": "Small",
                "wrap": true,
            },
        ],
        "actions": [
            {"type": "Action.OpenUrl", "title": "Alert history", "url": alert.history_url},
            {"type": "Action.OpenUrl", "title": "Manage token", "url": alert.manage_url},
        ],
    });
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::hostile_alert;

    #[test]
    fn is_an_adaptive_card_message_with_escaped_facts() {
        let v = payload(&hostile_alert());
        assert_eq!(v["type"], "message");
        let card = &v["attachments"][0]["content"];
        assert_eq!(
            v["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        let facts = card["body"][2]["facts"].as_array().unwrap();
        assert_eq!(facts[0]["value"], r"laptop \<prod\> \& \*creds\*");
        let ua = facts.iter().find(|f| f["title"] == "User agent").unwrap();
        assert_eq!(
            ua["value"],
            r"\<script\>alert\(1\)\</script\> \*bold\* @everyone \<\!channel\> \`x\` \[l\]\(http://e\)"
        );
    }

    #[test]
    fn a_test_alert_says_so_in_the_title() {
        let mut alert = hostile_alert();
        alert.kind = AlertKind::Test;
        let v = payload(&alert);
        let title = v["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .unwrap();
        assert!(title.starts_with("Test alert"));
    }
}
