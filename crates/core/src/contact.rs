//! What a person types when they create a token: the memo and the alert channels (email, webhook).

use std::fmt;

use crate::Invalid;

/// A reminder of where the token is planted. Required, at most 1000 characters, no control
/// characters other than line breaks and tabs (it reaches mail subjects and chat messages).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Memo(String);

impl Memo {
    pub const MAX_CHARS: usize = 1000;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Invalid::new(
                "a memo is required: say where you will plant this",
            ));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(Invalid::new(format!(
                "a memo is at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if s.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(Invalid::new("a memo may not contain control characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, checked for the syntax mail servers accept (`local@domain.tld`, the limits
/// of RFC 5321). Deliverability is the mail server's business.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let bad = || Invalid::new("not a valid email address");
        if s.len() > 254 {
            return Err(Invalid::new("an email address is at most 254 characters"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let local_ok = (1..=64).contains(&local.len())
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                (1..=63).contains(&l.len())
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && labels.last().is_some_and(|tld| {
                tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.starts_with("xn--")
            });
        if local_ok && domain_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A webhook URL: http or https, a host, at most 1024 characters, no credentials in it.
/// Whether its host is private is a policy of the server (checked when alerts are sent).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub const MAX_LEN: usize = 1024;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        if s.len() > Self::MAX_LEN {
            return Err(Invalid::new(format!(
                "a webhook URL is at most {} characters",
                Self::MAX_LEN
            )));
        }
        let url = url::Url::parse(s).map_err(|_| Invalid::new("not a valid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Invalid::new(
                "a webhook URL must start with http:// or https://",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Invalid::new("a webhook URL needs a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new(
                "a webhook URL may not carry a user name or password",
            ));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_rules() {
        assert_eq!(
            Memo::parse("  laptop ~/.aws  ").unwrap().as_str(),
            "laptop ~/.aws"
        );
        assert!(Memo::parse("").is_err());
        assert!(Memo::parse("   \n ").is_err());
        assert!(Memo::parse(&"é".repeat(1000)).is_ok());
        assert!(Memo::parse(&"é".repeat(1001)).is_err());
        assert!(Memo::parse("bell\u{7}").is_err());
        assert!(Memo::parse("two\nlines").is_ok());
    }

    #[test]
    fn emails() {
        for ok in [
            "soc@example.com",
            "a.b+alerts@sub.example.co.uk",
            "x@xn--80ak6aa92e.xn--p1ai",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "no-at",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@-b.com",
            ".a@b.com",
            "a..b@c.com",
            "a@b.c0m",
            "<script>@x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn webhooks() {
        assert!(WebhookUrl::parse("https://hooks.slack.com/services/T/B/X").is_ok());
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook").is_ok());
        for bad in [
            "",
            "ftp://x.com/",
            "javascript:alert(1)",
            "https://",
            "https://user:pw@x.com/",
            "not a url",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(1010));
        assert!(WebhookUrl::parse(&long).is_err());
    }
}
