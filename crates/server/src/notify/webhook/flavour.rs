//! Which chat service a webhook URL belongs to, so the message comes out in its format.

use std::fmt;
use std::str::FromStr;

use url::Url;

/// The payload format a webhook receives. Detected from the URL; a `#flavour=<name>` fragment
/// on the stored URL overrides it (fragments are never sent over HTTP, so the receiver does not
/// see it). The override is for receivers that speak another service's format at their own
/// address, such as Mattermost or Rocket.Chat taking Slack messages, or a relay taking the
/// generic schema in front of a Slack URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookFlavour {
    /// The documented `canarykeys.alert/v1` JSON schema, signed when a secret is configured.
    Generic,
    Slack,
    Discord,
    /// Microsoft Teams through Power Automate Workflows (or an old Office 365 connector).
    Teams,
    GoogleChat,
    /// Mattermost: Slack's attachments in Mattermost's Markdown (`mattermost.rs`).
    Mattermost,
}

impl WebhookFlavour {
    pub const ALL: [Self; 6] = [
        Self::Generic,
        Self::Slack,
        Self::Discord,
        Self::Teams,
        Self::GoogleChat,
        Self::Mattermost,
    ];

    /// The format a URL's service expects; anything unrecognised gets the generic schema.
    pub fn detect(url: &Url) -> Self {
        let Some(host) = url.host_str() else {
            return Self::Generic;
        };
        // `Url` lowercases hosts; a trailing dot names the same host.
        let host = host.strip_suffix('.').unwrap_or(host);
        let path = url.path();
        if matches!(host, "hooks.slack.com" | "hooks.slack-gov.com") {
            return Self::Slack;
        }
        if matches!(
            host,
            "discord.com" | "discordapp.com" | "ptb.discord.com" | "canary.discord.com"
        ) && is_discord_webhook_path(path)
        {
            return Self::Discord;
        }
        let workflows = host.ends_with(".logic.azure.com") && path.contains("/workflows/");
        if workflows
            || host.ends_with(".environment.api.powerplatform.com")
            || host.ends_with(".webhook.office.com")
        {
            return Self::Teams;
        }
        if host == "chat.googleapis.com" {
            return Self::GoogleChat;
        }
        if super::mattermost::is_webhook_path(path) {
            return Self::Mattermost;
        }
        Self::Generic
    }

    /// The flavour a stored webhook URL is sent as: its `#flavour=<name>` override if it has
    /// one, else what [`detect`](Self::detect) says. An override naming no flavour is an error
    /// rather than a silent fallback, so a typo shows at creation time.
    pub fn for_url(url: &Url) -> Result<Self, String> {
        match url.fragment().and_then(|f| f.strip_prefix("flavour=")) {
            Some(name) => name.parse(),
            None => Ok(Self::detect(url)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Teams => "teams",
            Self::GoogleChat => "google_chat",
            Self::Mattermost => "mattermost",
        }
    }
}

/// `/api/webhooks/<id>/<token>`, also with an API version (`/api/v10/webhooks/…`).
fn is_discord_webhook_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/") else {
        return false;
    };
    let rest = match rest.split_once('/') {
        Some((version, after))
            if version.len() > 1
                && version.starts_with('v')
                && version[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            after
        }
        _ => rest,
    };
    rest.starts_with("webhooks/")
}

impl FromStr for WebhookFlavour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("unknown webhook flavour {s:?}: use generic, slack, discord, teams, google_chat or mattermost")
            })
    }
}

impl fmt::Display for WebhookFlavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(s: &str) -> WebhookFlavour {
        WebhookFlavour::detect(&Url::parse(s).unwrap())
    }

    #[test]
    fn detects_each_service() {
        use WebhookFlavour::*;
        for (url, want) in [
            ("https://hooks.slack.com/services/T0/B0/XXXX", Slack),
            ("https://HOOKS.SLACK.COM./services/T0/B0/XXXX", Slack),
            ("https://discord.com/api/webhooks/123/abc", Discord),
            ("https://discordapp.com/api/webhooks/123/abc", Discord),
            ("https://discord.com/api/v10/webhooks/123/abc", Discord),
            ("https://discord.com/channels/123", Generic),
            (
                "https://prod-12.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=x",
                Teams,
            ),
            ("https://prod-12.westus.logic.azure.com/other", Generic),
            (
                "https://default1234.56.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/abc/triggers/manual/paths/invoke",
                Teams,
            ),
            ("https://contoso.webhook.office.com/webhookb2/abc", Teams),
            ("https://chat.googleapis.com/v1/spaces/AAA/messages?key=k", GoogleChat),
            ("https://example.com/hook", Generic),
            ("https://evil-logic.azure.com/workflows/x", Generic),
            ("https://hooks.slack.com.evil.example/services/x", Generic),
            ("http://127.0.0.1:9000/hook", Generic),
            ("https://chat.example.com/hooks/xa1b2c3d4e5f6g7h8i9j0k1l2m", Mattermost),
            ("https://chat.example.com/hooks/x", Generic),
        ] {
            assert_eq!(detect(url), want, "{url}");
        }
    }

    #[test]
    fn names_round_trip_and_fragment_overrides() {
        for f in WebhookFlavour::ALL {
            assert_eq!(f.as_str().parse::<WebhookFlavour>(), Ok(f));
        }
        assert!("Slack".parse::<WebhookFlavour>().is_err());
        let url = Url::parse("https://chat.example.com/hooks/x#flavour=slack").unwrap();
        assert_eq!(WebhookFlavour::for_url(&url), Ok(WebhookFlavour::Slack));
        let url = Url::parse("https://hooks.slack.com/services/x#flavour=generic").unwrap();
        assert_eq!(WebhookFlavour::for_url(&url), Ok(WebhookFlavour::Generic));
        let url = Url::parse("https://hooks.slack.com/services/x#other").unwrap();
        assert_eq!(WebhookFlavour::for_url(&url), Ok(WebhookFlavour::Slack));
        let url = Url::parse("https://example.com/x#flavour=msn").unwrap();
        assert!(WebhookFlavour::for_url(&url).is_err());
    }
}
