//! `canarykeys send-test-email --to ADDRESS`: sends a test alert through the configured `[smtp]`
//! server, so an operator can check the mail settings before a real alert depends on them.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::Config;
use crate::notify::email::EmailChannel;
use crate::notify::{AlertKind, AlertView, Channel, Outcome};

#[derive(clap::Args, Debug)]
pub struct SendTestEmailArgs {
    /// Recipient address, e.g. soc@example.com.
    #[arg(long, value_name = "ADDRESS")]
    to: String,
}

/// Sends one test alert and waits for the SMTP server's answer; any refusal or failure to reach
/// it is an error (so a non-zero exit), with the server's own words.
pub async fn run(args: SendTestEmailArgs, config: &Config) -> anyhow::Result<()> {
    let channel = EmailChannel::new(&config.smtp)?;
    // A one-off command: the wall clock is the only clock it has.
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let alert = test_alert(config, &now);
    // A fresh key per run: a mail system that dedupes by Message-ID would otherwise hide every
    // test after the first.
    let idempotency_key = format!("send-test-email-{}", now.unix_timestamp_nanos());
    let host = config.smtp.host.as_deref().unwrap_or_default();
    match channel.send(&alert, &args.to, &idempotency_key).await {
        Outcome::Delivered => {
            println!(
                "sent to {} through {host}:{}",
                args.to.trim(),
                config.smtp.port
            );
            Ok(())
        }
        Outcome::Retry(problem) | Outcome::RetryAfter(problem, _) | Outcome::Permanent(problem) => {
            anyhow::bail!(
                "cannot send to {} through {host}:{}: {problem}",
                args.to.trim(),
                config.smtp.port
            )
        }
    }
}

/// A test alert with placeholder event fields from documentation ranges (RFC 5737 address,
/// example account), so nobody mistakes it for a real use.
fn test_alert(config: &Config, now: &OffsetDateTime) -> AlertView {
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let home = format!("{}/", public_url.trim_end_matches('/'));
    let now_text = now
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
    AlertView {
        kind: AlertKind::Test,
        alert_id: format!("test-{}", now.unix_timestamp()),
        token_id: "test".into(),
        memo: "canarykeys test message".into(),
        headline: "GetCallerIdentity on sts.amazonaws.com in us-east-1 from 192.0.2.10 \
                   (placeholder)"
            .into(),
        event_name: "GetCallerIdentity".into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: "192.0.2.10".into(),
        user_agent: "aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0 (placeholder)".into(),
        error_code: None,
        error_message: None,
        event_time: now_text.clone(),
        received_at: now_text,
        account_id: Some("123456789012".into()),
        access_key_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
        path: "test".into(),
        note: Some("Sent by `canarykeys send-test-email`; no key was used.".into()),
        source_labels: vec!["documentation address (RFC 5737)".into()],
        country: None,
        asn: None,
        manage_url: home.clone(),
        history_url: home,
        retired: false,
    }
}
