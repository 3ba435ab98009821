//! What a token is and the rules for creating one: its kind, its memo and its alert channels.

use std::fmt;
use std::str::FromStr;

use crate::{names, AccountId, Email, FieldError, IamUserName, Invalid, Memo, WebhookUrl};

/// The kinds of token the server can make; the UI lists `ALL`, so a new kind appears in the
/// form when it is added here.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum TokenKind {
    /// A long-term key (`AKIA…`).
    AwsKeys,
    /// Temporary credentials (`ASIA…` with a session token and an expiry), renewed with the
    /// token's refresh secret.
    AwsSession,
}

impl TokenKind {
    pub const ALL: [Self; 2] = [Self::AwsKeys, Self::AwsSession];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwsKeys => "aws_keys",
            Self::AwsSession => "aws_session",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::AwsKeys => "AWS API keys",
            Self::AwsSession => "AWS session credentials (expire, refreshable)",
        }
    }

    /// Whether the token hands out STS-style session credentials instead of its key.
    pub fn is_session(self) -> bool {
        matches!(self, Self::AwsSession)
    }
}

impl FromStr for TokenKind {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Invalid::new("unknown token kind; known: aws_keys, aws_session"))
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A create request as it arrives (form, JSON or CLI), before any rule is applied. The schema
/// states the limits `NewToken::parse` enforces that a schema can say; the server's 422 covers
/// the rest (an address's shape, the tells in a user name).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = NewToken))]
pub struct NewTokenInput {
    /// `aws_keys` (the default), or `aws_session` for temporary credentials.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^\s*(aws_keys|aws_session)?\s*$")
    )]
    pub kind: Option<String>,
    /// Where the key will be planted; shown in every alert.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            value_type = String,
            required = true,
            min_length = 1,
            max_length = 1000,
            // Something besides spaces, and no control characters but tab and line breaks.
            pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$",
            example = "laptop ~/.aws/credentials"
        )
    )]
    pub memo: Option<String>,
    /// Where alerts are emailed. An email or a webhook URL (or both) is required.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 254,
            // `Email::parse`: a dot-atom local part of 1 to 64 characters, and two or more
            // labels of 1 to 63 letters, digits and inner hyphens, the last one letters.
            pattern = r"^\s*[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,15})?@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,24}\s*$",
            example = "soc@example.com"
        )
    )]
    pub email: Option<String>,
    /// An http(s) URL alerts are posted to.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 1024,
            // http or https, a host, no user name or password (`WebhookUrl::parse`). Loopback
            // and private addresses are refused unless `[alerts] allow_private_webhooks`.
            pattern = r"^\s*https?://[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?\s*$",
            example = "https://hooks.example.com/canarykeys"
        )
    )]
    pub webhook_url: Option<String>,
    /// A user name of the caller's choosing (else an ordinary one is generated).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 64, pattern = r"^\s*[A-Za-z0-9+=,.@_-]{0,64}\s*$")
    )]
    pub username: Option<String>,
    /// The decoy account to mint in (else the minter picks).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*([0-9]{12})?\s*$"))]
    pub account_id: Option<String>,
    /// Delete the token and its key after this long (`30m`, `12h`, `7d`), from one minute to 365
    /// days.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        // Every value this matches is in range; it leaves out only leading zeros and a few
        // long spellings (`100000m`) that `ExpiresIn::parse` takes too.
        schema(
            pattern = r"^\s*(([6-9][0-9]|[1-9][0-9]{2,6})s|[1-9][0-9]{0,4}m|([1-9][0-9]{0,2}|[1-7][0-9]{3})h|([1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-5])d)?\s*$",
            example = "7d"
        )
    )]
    pub expires_in: Option<String>,
    /// `none` (the default: every use alerts) or `until_confirm`: uses are recorded but held
    /// until a confirm (`POST /tokens/{id}/confirm`) or the expiry, then sent as one digest.
    /// `until_confirm` needs `expires_in`.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^\s*(none|until_confirm)?\s*$", example = "until_confirm")
    )]
    pub expected_use: Option<String>,
}

/// When a decoy's use is expected: never (`None`), or until its run confirms (a CI job that
/// plants a per-run decoy, and tools that read every profile during the job).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExpectedUse {
    #[default]
    None,
    UntilConfirm,
}

impl ExpectedUse {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s.trim().replace('-', "_").as_str() {
            "" | "none" => Ok(Self::None),
            "until_confirm" => Ok(Self::UntilConfirm),
            _ => Err(Invalid::new("expected_use is none or until_confirm")),
        }
    }
}

/// How long a token lives: `<n>s`, `<n>m`, `<n>h` or `<n>d`, from one minute to a year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiresIn(u64);

impl ExpiresIn {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let bad = || Invalid::new("expires_in is a number and a unit: 30m, 12h, 7d");
        // The unit is the last character, which need not be one byte (`7é` is client input).
        let split = s.char_indices().last().map_or(0, |(i, _)| i);
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let secs = match unit {
            "s" => n,
            "m" => n.saturating_mul(60),
            "h" => n.saturating_mul(3600),
            "d" => n.saturating_mul(86_400),
            _ => return Err(bad()),
        };
        if !(60..=365 * 86_400).contains(&secs) {
            return Err(Invalid::new("expires_in is between 1 minute and 365 days"));
        }
        Ok(Self(secs))
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }
}

/// A create request that passed every rule.
#[derive(Clone, Debug)]
pub struct NewToken {
    pub kind: TokenKind,
    pub memo: Memo,
    pub email: Option<Email>,
    pub webhook: Option<WebhookUrl>,
    pub username: Option<IamUserName>,
    pub account_id: Option<AccountId>,
    pub expires_in: Option<ExpiresIn>,
    pub expected_use: ExpectedUse,
}

impl NewToken {
    /// Applies every rule and reports every problem at once, each tied to its field, so a form
    /// can show them all. Empty strings count as "not given" (that is what forms send).
    pub fn parse(input: &NewTokenInput) -> Result<Self, Vec<FieldError>> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let mut errors = Vec::new();
        let kind = match given(&input.kind) {
            None => Some(TokenKind::AwsKeys),
            Some(k) => k
                .parse()
                .map_err(|e| errors.push(FieldError::new("kind", e)))
                .ok(),
        };
        let memo = Memo::parse(input.memo.as_deref().unwrap_or(""))
            .map_err(|e| errors.push(FieldError::new("memo", e)))
            .ok();
        let email = given(&input.email).and_then(|e| {
            Email::parse(&e)
                .map_err(|err| errors.push(FieldError::new("email", err)))
                .ok()
        });
        let webhook = given(&input.webhook_url).and_then(|w| {
            WebhookUrl::parse(&w)
                .map_err(|err| errors.push(FieldError::new("webhook_url", err)))
                .ok()
        });
        let username = given(&input.username).and_then(|u| {
            IamUserName::parse(&u)
                .and_then(|name| names::check_no_tells(name.as_str()).map(|()| name))
                .map_err(|err| errors.push(FieldError::new("username", err)))
                .ok()
        });
        let account_id = given(&input.account_id).and_then(|a| {
            AccountId::parse(&a)
                .map_err(|err| errors.push(FieldError::new("account_id", err)))
                .ok()
        });
        let expires_in = given(&input.expires_in).and_then(|e| {
            ExpiresIn::parse(&e)
                .map_err(|err| errors.push(FieldError::new("expires_in", err)))
                .ok()
        });
        let expected_use = ExpectedUse::parse(input.expected_use.as_deref().unwrap_or(""))
            .map_err(|err| errors.push(FieldError::new("expected_use", err)))
            .unwrap_or_default();
        if expected_use == ExpectedUse::UntilConfirm && expires_in.is_none() {
            errors.push(FieldError::new(
                "expected_use",
                "until_confirm needs expires_in: the held uses go out at the expiry at the latest",
            ));
        }
        if given(&input.email).is_none() && given(&input.webhook_url).is_none() {
            errors.push(FieldError::new(
                "email",
                "give an email address or a webhook URL (or both) so alerts have somewhere to go",
            ));
        }
        match (kind, memo, errors.is_empty()) {
            (Some(kind), Some(memo), true) => Ok(Self {
                kind,
                memo,
                email,
                webhook,
                username,
                account_id,
                expires_in,
                expected_use,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(memo: &str, email: &str, hook: &str) -> NewTokenInput {
        NewTokenInput {
            kind: Some("aws_keys".into()),
            memo: Some(memo.into()),
            email: Some(email.into()),
            webhook_url: Some(hook.into()),
            ..Default::default()
        }
    }

    #[test]
    fn accepts_either_channel() {
        assert!(NewToken::parse(&input("m", "a@b.co", "")).is_ok());
        let t = NewToken::parse(&input("m", "", "https://x.example/h")).unwrap();
        assert!(t.email.is_none() && t.webhook.is_some());
    }

    #[test]
    fn reports_every_problem_with_its_field() {
        let mut i = input("", "nope", "ftp://x");
        i.kind = Some("gcp".into());
        let errs = NewToken::parse(&i).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["kind", "memo", "email", "webhook_url"]);
    }

    #[test]
    fn a_multibyte_unit_is_invalid_not_a_panic() {
        assert!(ExpiresIn::parse("Îôâ").is_err());
        assert!(ExpiresIn::parse("7é").is_err());
    }

    #[test]
    fn needs_a_channel() {
        let errs = NewToken::parse(&input("m", " ", "")).unwrap_err();
        assert_eq!(errs[0].field, "email");
    }

    #[test]
    fn optional_identity_and_expiry() {
        let mut i = input("m", "a@b.co", "");
        i.username = Some("terraform-ci".into());
        i.account_id = Some("123456789012".into());
        i.expires_in = Some("7d".into());
        let t = NewToken::parse(&i).unwrap();
        assert_eq!(t.username.unwrap().as_str(), "terraform-ci");
        assert_eq!(t.expires_in.unwrap().as_secs(), 7 * 86_400);
        i.username = Some("canary-user".into());
        i.account_id = Some("12".into());
        i.expires_in = Some("5x".into());
        let fields: Vec<_> = NewToken::parse(&i)
            .unwrap_err()
            .iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["username", "account_id", "expires_in"]);
        for bad in ["", "d", "10s", "366d", "-1h"] {
            assert!(ExpiresIn::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ExpiresIn::parse("90m").unwrap().as_secs(), 5400);
    }

    #[test]
    fn session_kind_parses() {
        let mut i = input("m", "a@b.co", "");
        i.kind = Some("aws_session".into());
        let kind = NewToken::parse(&i).unwrap().kind;
        assert_eq!(kind, TokenKind::AwsSession);
        assert!(kind.is_session() && !TokenKind::AwsKeys.is_session());
    }

    #[test]
    fn until_confirm_needs_an_expiry() {
        let mut i = input("m", "a@b.co", "");
        i.expected_use = Some("until-confirm".into());
        let errs = NewToken::parse(&i).unwrap_err();
        assert_eq!(errs[0].field, "expected_use");
        i.expires_in = Some("2h".into());
        assert_eq!(
            NewToken::parse(&i).unwrap().expected_use,
            ExpectedUse::UntilConfirm
        );
        i.expected_use = Some("later".into());
        assert!(NewToken::parse(&i).is_err());
    }

    #[test]
    fn kind_defaults_to_aws_keys() {
        let mut i = input("m", "a@b.co", "");
        i.kind = None;
        assert_eq!(NewToken::parse(&i).unwrap().kind, TokenKind::AwsKeys);
    }
}
