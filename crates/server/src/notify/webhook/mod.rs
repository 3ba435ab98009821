//! The webhook channel: one alert as JSON, in the format of the service behind the URL (Slack,
//! Discord, Teams, Google Chat, or the documented generic schema), POSTed to an address that was
//! checked not to be private at the moment of connecting.
//!
//! - [`WebhookFlavour`] says which format a URL gets (`flavour.rs`).
//! - [`payload`] builds the JSON. It is pure, and every string that came from CloudTrail is
//!   escaped for the target's markup (`escape.rs`); `tests/fixtures/webhooks/` holds one example
//!   of each, and [`generic`] documents the generic schema.
//! - [`check_url`] and [`check_new_webhook`] refuse private, loopback, link-local and metadata
//!   addresses ([`ssrf`]); [`WebhookChannel`] sends, connecting only to checked addresses
//!   (`sender.rs`).

pub(super) mod escape;
mod flavour;
pub mod generic;
pub(crate) mod sender;
pub mod ssrf;

mod discord;
mod google_chat;
mod mattermost;
mod slack;
mod teams;

pub use flavour::WebhookFlavour;
pub use sender::WebhookChannel;
pub use ssrf::{check_new_webhook, check_url};

use super::{AlertKind, AlertView};

/// The JSON body `flavour` receives for `alert`.
pub fn payload(flavour: WebhookFlavour, alert: &AlertView) -> serde_json::Value {
    match flavour {
        WebhookFlavour::Generic => generic::payload(alert),
        WebhookFlavour::Slack => slack::payload(alert),
        WebhookFlavour::Discord => discord::payload(alert),
        WebhookFlavour::Teams => teams::payload(alert),
        WebhookFlavour::GoogleChat => google_chat::payload(alert),
        WebhookFlavour::Mattermost => mattermost::payload(alert),
    }
}

/// The longest user agent, error or note any chat message shows; the generic payload and the
/// alert history keep the whole text.
const LONG_TEXT: usize = 1000;
/// The longest short value (event name, address, region…) a chat message shows.
const SHORT_TEXT: usize = 200;

/// The message's title. A test says so in the title, where nobody can miss it.
fn title(alert: &AlertView) -> String {
    match &alert.kind {
        AlertKind::Hit if alert.retired => {
            "Retired decoy AWS key used: someone still holds it".into()
        }
        AlertKind::Hit => "Decoy AWS key used".into(),
        AlertKind::Summary { count, .. } => {
            format!("Decoy AWS key used: {count} more calls")
        }
        AlertKind::Test => "Test alert from canarykeys (not a real use of the key)".into(),
        AlertKind::Exposure { .. } => "Decoy AWS key exposed in public".into(),
        AlertKind::Tamper { action, .. } => tamper_title(action).into(),
    }
}

/// A tamper alert's title, by action.
pub fn tamper_title(action: &str) -> &'static str {
    match action {
        "delete" => "Tamper: a decoy token was deleted",
        "channel_off" => "Tamper: alerts switched off for a decoy token",
        _ => "Tamper: a decoy token's ignore list was changed",
    }
}

/// Who made a tamper alert's change, in words: the manage secret, or which API key of whom.
pub fn tamper_actor(kind: &AlertKind) -> String {
    match kind {
        AlertKind::Tamper {
            api_key_id: Some(id),
            api_key_name,
            operator,
            ..
        } => format!(
            "API key {id} ({}) of operator {}",
            api_key_name.as_deref().unwrap_or("unnamed"),
            operator.as_deref().unwrap_or("unknown"),
        ),
        _ => "the token's manage secret".into(),
    }
}

/// What a tamper alert tells its reader to do.
pub const TAMPER_ADVICE: &str = "If you did not do this, someone holds the manage secret or the \
     API key: treat the machine the decoy was planted on as compromised, revoke the API key, and \
     plant a new decoy.";

/// One labelled line of a chat message, as raw (unescaped) text. Each flavour escapes `value`
/// for its own markup; labels are ours and need none.
struct Fact {
    label: &'static str,
    value: String,
    /// Free text that may run long (user agent, error, note): shown on its own line rather
    /// than in a two-column grid.
    long: bool,
}

/// What the chat flavours show, in order. The memo and headline are shown apart from these.
fn facts(alert: &AlertView) -> Vec<Fact> {
    let short = |label, value: &str| Fact {
        label,
        value: value.to_owned(),
        long: false,
    };
    let long = |label, value: &str| Fact {
        label,
        value: value.to_owned(),
        long: true,
    };
    let mut facts = Vec::new();
    match &alert.kind {
        AlertKind::Summary {
            count,
            addresses,
            events,
            first_event_time,
            last_event_time,
            ..
        } => {
            facts.push(short("Calls", &count.to_string()));
            facts.push(short("First", first_event_time));
            facts.push(short("Last", last_event_time));
            facts.push(long("Source IPs", &addresses.join(", ")));
            facts.push(long("Events", &events.join(", ")));
            // The view's event fields are the window's last call.
            facts.push(long("Last user agent", &alert.user_agent));
        }
        AlertKind::Exposure {
            source,
            event_type,
            description,
            location,
            first_seen,
            last_seen,
            count,
        } => {
            // Chat markup gets the location as escaped text, never as a link: the place was
            // chosen by whoever published the key.
            facts.push(short("Reported by", exposure_source_label(source)));
            facts.push(short("AWS event", event_type));
            facts.push(short("First seen", first_seen));
            facts.push(short("Last seen", last_seen));
            facts.push(short("Times seen", &count.to_string()));
            if let Some(key) = &alert.access_key_id {
                facts.push(short("Access key", key));
            }
            if let Some(account) = &alert.account_id {
                facts.push(short("Account", account));
            }
            if let Some(location) = location {
                facts.push(long("Location", location));
            }
            facts.push(long("AWS says", description));
            facts.push(long("What to do", EXPOSURE_ADVICE));
        }
        AlertKind::Tamper { change, .. } => {
            facts.push(short("Action", &alert.event_name));
            facts.push(short("Source IP", &alert.source_ip));
            facts.push(short("Time", &alert.event_time));
            facts.push(short("Through", &alert.path));
            if let Some(key) = &alert.access_key_id {
                facts.push(short("Access key", key));
            }
            facts.push(long("Change", change));
            facts.push(long("Done with", &tamper_actor(&alert.kind)));
            facts.push(long("User agent", &alert.user_agent));
            facts.push(long("What to do", TAMPER_ADVICE));
        }
        AlertKind::Hit | AlertKind::Test => {
            facts.push(short("Event", &alert.event_name));
            facts.push(short("Service", &alert.event_source));
            facts.push(short("Region", &alert.region));
            facts.push(short("Source IP", &alert.source_ip));
            facts.push(short("Time", &alert.event_time));
            facts.push(short("Detected via", &alert.path));
            if let Some(key) = &alert.access_key_id {
                facts.push(short("Access key", key));
            }
            if let Some(account) = &alert.account_id {
                facts.push(short("Account", account));
            }
            facts.push(long("User agent", &alert.user_agent));
            let error = match (&alert.error_code, &alert.error_message) {
                (Some(code), Some(message)) => Some(format!("{code}: {message}")),
                (Some(one), None) | (None, Some(one)) => Some(one.clone()),
                (None, None) => None,
            };
            if let Some(error) = error {
                facts.push(long("Error", &error));
            }
            if let Some(note) = &alert.note {
                facts.push(long("Note", note));
            }
        }
    }
    let mut source: Vec<String> = alert.source_labels.clone();
    source.extend(alert.country.iter().cloned());
    source.extend(alert.asn.iter().cloned());
    if !source.is_empty() {
        facts.push(long("Source", &source.join(" · ")));
    }
    facts
}

/// What an exposure alert tells its reader to do.
pub const EXPOSURE_ADVICE: &str = "Rotate nothing: the key is a decoy. Find where it was \
     published (the location above), because whatever else was there is exposed too.";

/// Who reported an exposure, for people.
pub fn exposure_source_label(source: &str) -> &'static str {
    match source {
        "quarantine" => "AWS quarantine policy on the decoy user",
        _ => "AWS Health event",
    }
}

/// A fixed alert with hostile CloudTrail text, for the modules' unit tests.
#[cfg(test)]
pub(crate) fn hostile_alert() -> AlertView {
    AlertView {
        kind: AlertKind::Hit,
        alert_id: "al_0001".into(),
        token_id: "tok_0001".into(),
        memo: "laptop <prod> & *creds*".into(),
        headline: "GetCallerIdentity on sts.amazonaws.com from 203.0.113.7".into(),
        event_name: "GetCallerIdentity".into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: "203.0.113.7".into(),
        user_agent: "<script>alert(1)</script> *bold* @everyone <!channel> `x` [l](http://e)"
            .into(),
        error_code: None,
        error_message: None,
        event_time: "2025-11-24T10:00:00Z".into(),
        received_at: "2025-11-24T10:00:05Z".into(),
        account_id: Some("123456789012".into()),
        access_key_id: Some("AKIAEXAMPLEEXAMPLE12".into()),
        path: "eventbridge".into(),
        note: None,
        source_labels: vec![],
        country: None,
        asn: None,
        manage_url: "https://canary.example.com/manage/tok_0001".into(),
        history_url: "https://canary.example.com/manage/tok_0001#alerts".into(),
        retired: false,
    }
}
