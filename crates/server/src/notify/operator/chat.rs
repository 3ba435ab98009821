//! The webhook bodies of an operator alert: the schema itself for generic receivers, and a
//! short message in each chat service's format. Titles and advice are our own words; every
//! reported value (account ids, regions, paths, errors, which may quote AWS or a receiver) is
//! escaped for the target's markup and kept on one line.

use serde_json::{json, Value};

use super::{OperatorAlert, OperatorStatus};
use crate::notify::webhook::escape::{discord, html, mattermost, plain, slack, slack_code, teams};
use crate::notify::webhook::WebhookFlavour;

/// The longest value a chat message shows.
const TEXT: usize = 500;

/// The JSON body `flavour` receives for `alert`.
pub fn payload(flavour: WebhookFlavour, alert: &OperatorAlert) -> Value {
    match flavour {
        WebhookFlavour::Generic => {
            serde_json::to_value(alert).expect("an operator alert always serialises")
        }
        WebhookFlavour::Slack => slack_payload(alert),
        WebhookFlavour::Discord => discord_payload(alert),
        WebhookFlavour::Teams => teams_payload(alert),
        WebhookFlavour::GoogleChat => google_chat_payload(alert),
        WebhookFlavour::Mattermost => mattermost_payload(alert),
    }
}

/// Mattermost: Slack's attachments, Mattermost's Markdown (no Block Kit).
fn mattermost_payload(alert: &OperatorAlert) -> Value {
    let colour = match alert.status {
        OperatorStatus::Problem => "#D93025",
        OperatorStatus::Recovered => "#2EA043",
        OperatorStatus::Alive => "#1A73E8",
    };
    let fields: Vec<Value> = alert
        .facts()
        .into_iter()
        .map(|(label, value)| json!({"short": true, "title": label, "value": mattermost(&value, TEXT)}))
        .collect();
    let mut text = mattermost(&alert.headline, TEXT);
    if let Some(advice) = alert.advice() {
        text = format!("{text}\n{advice}");
    }
    json!({
        "username": "canarykeys",
        "text": format!("#### {} {}", icon(alert), alert.title()),
        "attachments": [{
            "fallback": format!("{}: {}", alert.title(), mattermost(&alert.headline, TEXT)),
            "color": colour,
            "title": alert.title(),
            "text": text,
            "fields": fields,
            "footer": format!("canarykeys operator alert · {}", mattermost(&alert.alert_id, 100)),
        }],
    })
}

fn icon(alert: &OperatorAlert) -> &'static str {
    match alert.status {
        OperatorStatus::Problem => "⚠️",
        OperatorStatus::Recovered => "✅",
        OperatorStatus::Alive => "💓",
    }
}

fn slack_payload(alert: &OperatorAlert) -> Value {
    let title = alert.title();
    let headline = slack(&alert.headline, TEXT);
    let mut lines = vec![headline.clone()];
    for (label, value) in alert.facts() {
        lines.push(format!("*{label}:* {}", slack_code(&value, TEXT)));
    }
    if let Some(advice) = alert.advice() {
        lines.push(advice.into());
    }
    json!({
        "text": format!("{title}: {headline}"),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": format!("{} {title}", icon(alert)), "emoji": true},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}},
            {"type": "context", "elements": [{
                "type": "mrkdwn",
                "text": format!("canarykeys operator alert · {}", slack(&alert.alert_id, 100)),
            }]},
        ],
    })
}

fn discord_payload(alert: &OperatorAlert) -> Value {
    let colour = match alert.status {
        OperatorStatus::Problem => 0xD9_30_25,
        OperatorStatus::Recovered => 0x2E_A0_43,
        OperatorStatus::Alive => 0x1A_73_E8,
    };
    let fields: Vec<Value> = alert
        .facts()
        .into_iter()
        .map(|(label, value)| {
            let value = match discord(&value, TEXT) {
                v if v.trim().is_empty() => "—".to_owned(),
                v => v,
            };
            json!({"name": label, "value": value, "inline": true})
        })
        .collect();
    let mut description = discord(&alert.headline, TEXT);
    if let Some(advice) = alert.advice() {
        description = format!("{description}\n{advice}");
    }
    json!({
        "username": "canarykeys",
        "allowed_mentions": {"parse": []},
        "embeds": [{
            "title": plain(alert.title(), 256),
            "description": description,
            "color": colour,
            "fields": fields,
            "footer": {"text": plain(&format!("canarykeys operator alert · {}", alert.alert_id), 90)},
        }],
    })
}

fn teams_payload(alert: &OperatorAlert) -> Value {
    let colour = match alert.status {
        OperatorStatus::Problem => "Attention",
        OperatorStatus::Recovered => "Good",
        OperatorStatus::Alive => "Accent",
    };
    let facts: Vec<Value> = alert
        .facts()
        .into_iter()
        .map(|(label, value)| json!({"title": label, "value": teams(&value, TEXT)}))
        .collect();
    let mut body = vec![
        json!({"type": "TextBlock", "text": alert.title(), "weight": "Bolder", "size": "Medium", "color": colour, "wrap": true}),
        json!({"type": "TextBlock", "text": teams(&alert.headline, TEXT), "wrap": true}),
        json!({"type": "FactSet", "facts": facts}),
    ];
    if let Some(advice) = alert.advice() {
        body.push(json!({"type": "TextBlock", "text": advice, "wrap": true}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

fn google_chat_payload(alert: &OperatorAlert) -> Value {
    let mut widgets = vec![json!({"textParagraph": {"text": html(&alert.headline, TEXT)}})];
    widgets.extend(alert.facts().into_iter().map(|(label, value)| {
        json!({"decoratedText": {"topLabel": label, "text": html(&value, TEXT), "wrapText": true}})
    }));
    if let Some(advice) = alert.advice() {
        widgets.push(json!({"textParagraph": {"text": advice}}));
    }
    json!({
        "cardsV2": [{
            "cardId": "canarykeys-operator",
            "card": {
                "header": {"title": plain(alert.title(), 200), "subtitle": "canarykeys operator alert"},
                "sections": [{"widgets": widgets}],
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::operator::hostile;

    #[test]
    fn reported_text_is_escaped_in_every_chat_flavour() {
        let alert = hostile();
        for flavour in [
            WebhookFlavour::Slack,
            WebhookFlavour::Discord,
            WebhookFlavour::Teams,
            WebhookFlavour::GoogleChat,
        ] {
            let body = payload(flavour, &alert).to_string();
            assert!(!body.contains("<script>"), "{flavour}: {body}");
            assert!(!body.contains("<!channel>"), "{flavour}");
            assert!(!body.contains("<b>"), "{flavour}");
            assert!(
                !body.contains("\\nForged"),
                "{flavour}: a reported value forged a line"
            );
        }
        let discord = payload(WebhookFlavour::Discord, &alert);
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
        assert!(discord.to_string().contains(r"\\@everyone"));
        let generic = payload(WebhookFlavour::Generic, &alert);
        assert_eq!(generic["schema"], "canarykeys.operator/v1");
        assert_eq!(generic["type"], "safety_net");
        assert!(generic["detection"].is_null());
    }
}
