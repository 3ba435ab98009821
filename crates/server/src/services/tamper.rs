//! Tamper alerts: a change that could silence a decoy (a channel switched off, the token
//! deleted, its ignore list changed), made with the manage secret or an API key, is told on the
//! channels the token had before the change. The alert's outbox rows are written in the change's
//! own transaction (`AuditedStore::write_audited_alerting`), so neither happens without the
//! other, and no cooldown window can hold them back. An operator signed in to the console is
//! only audited: whoever holds a session is the operator.

use canarykeys_core::ids;
use canarykeys_store::{ChannelSwitches, TokenRecord};

use super::audit::Actor;
use crate::notify::{AlertKind, AlertView};
use crate::render::rfc3339;

/// Where a request came from, as the tamper alert tells it. Both strings are the caller's and
/// attacker-controlled: each channel escapes them.
#[derive(Clone, Debug, Default)]
pub struct RequestOrigin {
    /// The client address (`ClientAddr`).
    pub address: String,
    pub user_agent: String,
    /// `api`, `manage-page`, … (the alert's `path`).
    pub via: &'static str,
}

impl RequestOrigin {
    /// For changes whose caller did not say where it came from.
    pub fn unknown() -> Self {
        Self {
            address: String::new(),
            user_agent: String::new(),
            via: "unknown",
        }
    }
}

/// What a tamper alert is about.
#[derive(Clone, Debug)]
pub enum TamperChange {
    /// These channels go from on to off.
    ChannelsOff {
        email: bool,
        webhook: bool,
    },
    Delete,
    IgnoreList {
        after: Vec<String>,
    },
}

impl TamperChange {
    /// The channels a switch turns off that were on.
    pub fn channels_off(token: &TokenRecord, s: ChannelSwitches) -> Option<Self> {
        let email = s.email == Some(false) && token.email_enabled && token.email.is_some();
        let webhook = s.webhook == Some(false) && token.webhook_enabled && token.webhook.is_some();
        (email || webhook).then_some(Self::ChannelsOff { email, webhook })
    }

    fn action(&self) -> &'static str {
        match self {
            Self::ChannelsOff { .. } => "channel_off",
            Self::Delete => "delete",
            Self::IgnoreList { .. } => "ignore_list",
        }
    }

    /// The audit vocabulary's name of the request, the alert's `event_name`.
    fn event_name(&self) -> &'static str {
        match self {
            Self::ChannelsOff { .. } => "token.channels",
            Self::Delete => "token.delete",
            Self::IgnoreList { .. } => "token.ignore_sources",
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::ChannelsOff { email, webhook } => match (email, webhook) {
                (true, true) => "email and webhook alerts switched off".into(),
                (true, false) => "email alerts switched off".into(),
                _ => "webhook alerts switched off".into(),
            },
            Self::Delete => "the token was deleted and its key revoked".into(),
            Self::IgnoreList { after } if after.is_empty() => "ignore list emptied".into(),
            Self::IgnoreList { after } => {
                format!("ignore list set to: {}", after.join(", "))
            }
        }
    }
}

/// Whether a change by `actor` raises a tamper alert: the manage secret and API keys do; a
/// console session, the CLI and the server's own jobs do not.
pub fn alerts_on(actor: &Actor) -> bool {
    matches!(actor, Actor::ManageSecret | Actor::ApiKey(_))
}

/// What the tamper alert about `change` to `token` says.
pub fn view(
    public_url: &str,
    token: &TokenRecord,
    change: &TamperChange,
    actor: &Actor,
    origin: &RequestOrigin,
    now: i64,
) -> AlertView {
    let (by, api_key_id, api_key_name, operator) = match actor {
        Actor::ApiKey(k) => (
            "api_key",
            Some(k.key_id.clone()),
            Some(k.key_name.clone()),
            Some(k.operator.clone()),
        ),
        _ => ("manage_secret", None, None, None),
    };
    let who = match (&api_key_id, &operator) {
        (Some(id), Some(op)) => format!("API key {id} of {op}"),
        _ => "the manage secret".into(),
    };
    let from = if origin.address.is_empty() {
        "an unknown address"
    } else {
        origin.address.as_str()
    };
    let change_text = change.describe();
    AlertView {
        headline: format!("{} with {who} from {from}", capitalised(&change_text)),
        kind: AlertKind::Tamper {
            action: change.action().into(),
            change: change_text,
            by: by.into(),
            api_key_id,
            api_key_name,
            operator,
        },
        alert_id: format!("tamper_{}", ids::random_id()),
        token_id: token.id.to_string(),
        memo: token.memo.to_string(),
        event_name: change.event_name().into(),
        event_source: "canarykeys".into(),
        region: String::new(),
        source_ip: origin.address.clone(),
        user_agent: origin.user_agent.clone(),
        error_code: None,
        error_message: None,
        event_time: rfc3339(now),
        received_at: rfc3339(now),
        account_id: Some(token.account_id.to_string()),
        access_key_id: Some(token.access_key_id.to_string()),
        path: origin.via.into(),
        note: None,
        source_labels: Vec::new(),
        country: None,
        asn: None,
        manage_url: format!("{public_url}/manage/{}", token.id),
        history_url: format!("{public_url}/manage/{}#history", token.id),
        retired: false,
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
