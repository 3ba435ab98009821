//! Discord webhooks: one embed (title, description, fields, timestamp, colour).
//!
//! `allowed_mentions: {"parse": []}` means nothing in the message can ping anyone, whatever the
//! user agent says; the markdown escaping keeps `@everyone`, `<@id>`, links and formatting
//! literal on screen too. Discord refuses (400) an embed over its limits, so every value is cut
//! to them: title 256, description 4096, field value 1024, 25 fields, 6000 in all.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::escape::{discord, plain};
use super::{facts, title, SHORT_TEXT};
use crate::notify::{AlertKind, AlertView};

const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;
const FIELD_VALUE_MAX: usize = 1024;
const MAX_FIELDS: usize = 25;
/// Discord's limit on all of an embed's text together, with room kept for the footer.
const EMBED_TOTAL_MAX: usize = 6000 - 100;
/// What this module lets the description use, so the fields keep most of the total.
const DESCRIPTION_BUDGET: usize = 1500;

fn colour(kind: &AlertKind) -> u32 {
    match kind {
        AlertKind::Hit => 0xD9_30_25,
        AlertKind::Summary { .. } => 0xF2_99_00,
        AlertKind::Test => 0x1A_73_E8,
        AlertKind::Exposure { .. } => 0x82_50_DF,
        AlertKind::Tamper { .. } => 0x6E_00_00,
    }
}

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

pub fn payload(alert: &AlertView) -> Value {
    let title = plain(&title(alert), TITLE_MAX);
    let memo = discord(&alert.memo, DESCRIPTION_BUDGET / 2);
    let headline = discord(&alert.headline, DESCRIPTION_BUDGET / 2 - 20);
    // Both parts are already cut, so this stays under DESCRIPTION_MAX.
    let description = format!("{headline}\n**Token:** {memo}");
    debug_assert!(units(&description) <= DESCRIPTION_MAX);
    let mut left = EMBED_TOTAL_MAX.saturating_sub(units(&title) + units(&description));
    let mut fields = Vec::new();
    for fact in facts(alert).into_iter().take(MAX_FIELDS) {
        let cap = if fact.long {
            FIELD_VALUE_MAX
        } else {
            SHORT_TEXT
        };
        // Whatever is left of the 6000 goes to the later fields, cut shorter if need be.
        let cap = cap.min(left.saturating_sub(units(fact.label)));
        if cap < 10 {
            break;
        }
        // Discord refuses an empty field value.
        let value = match discord(&fact.value, cap) {
            v if v.trim().is_empty() => "—".to_owned(),
            v => v,
        };
        left -= units(fact.label) + units(&value);
        fields.push(json!({"name": fact.label, "value": value, "inline": !fact.long}));
    }
    let mut embed = json!({
        "title": title,
        "url": alert.history_url,
        "description": description,
        "color": colour(&alert.kind),
        "fields": fields,
        "footer": {"text": plain(&format!("canarykeys · alert {}", alert.alert_id), 90)},
    });
    // A timestamp Discord cannot parse fails the whole message, so only a valid one is sent.
    if OffsetDateTime::parse(&alert.event_time, &Rfc3339).is_ok() {
        embed["timestamp"] = json!(alert.event_time);
    }
    json!({
        "username": "canarykeys",
        "allowed_mentions": {"parse": []},
        "embeds": [embed],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::hostile_alert;

    #[test]
    fn mentions_are_off_and_markdown_escaped() {
        let v = payload(&hostile_alert());
        assert_eq!(v["allowed_mentions"], json!({"parse": []}));
        let ua = v["embeds"][0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "User agent")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(ua.contains(r"\<script\>alert\(1\)\</script\>"));
        assert!(ua.contains(r"\*bold\* \@everyone \<!channel\> \`x\` \[l\]\(http://e\)"));
        assert_eq!(v["embeds"][0]["timestamp"], "2025-11-24T10:00:00Z");
    }

    #[test]
    fn stays_within_discord_limits() {
        let mut alert = hostile_alert();
        alert.user_agent = "*".repeat(5000);
        alert.note = Some("_".repeat(5000));
        alert.error_message = Some("~".repeat(5000));
        alert.memo = "#".repeat(1000);
        alert.headline = "h".repeat(5000);
        alert.event_time = "not a time".into();
        let v = payload(&alert);
        let embed = &v["embeds"][0];
        assert!(embed.get("timestamp").is_none());
        let mut total = units(embed["title"].as_str().unwrap());
        total += units(embed["description"].as_str().unwrap());
        assert!(units(embed["description"].as_str().unwrap()) <= DESCRIPTION_MAX);
        for f in embed["fields"].as_array().unwrap() {
            let value = f["value"].as_str().unwrap();
            assert!(units(value) <= FIELD_VALUE_MAX);
            // Cut between escapes: never a dangling backslash before the ellipsis.
            assert!(!value.ends_with("\\…"));
            total += units(f["name"].as_str().unwrap()) + units(value);
        }
        total += units(embed["footer"]["text"].as_str().unwrap());
        assert!(total <= 6000, "{total}");
    }
}
