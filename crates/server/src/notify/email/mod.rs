//! The email channel: one alert mail per send over SMTP (lettre), with a text and an HTML part.
//! The target stored on a token is the recipient address.

mod message;

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

pub use message::{message_id, render, subject, RenderedEmail};

use super::{AlertView, Channel, Outcome};
use crate::config::{SmtpConfig, SmtpTls};

/// Why an [`EmailChannel`] cannot be made from the `[smtp]` settings.
#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    #[error(
        "email is off: set [smtp] host and from (CANARYKEYS_SMTP__HOST, CANARYKEYS_SMTP__FROM) \
         to send mail"
    )]
    NoHost,
    #[error("[smtp] from is required when [smtp] host is set (CANARYKEYS_SMTP__FROM)")]
    NoFrom,
    #[error("[smtp] from {from:?} is not a mail address: {problem}")]
    BadFrom { from: String, problem: String },
    #[error("cannot set up SMTP to {host}: {source}")]
    Transport {
        host: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// Sends alert mails through the configured SMTP server, one connection per mail.
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Bound on a whole send. lettre's own timeout covers only the TCP connect (lettre issue
    /// #1027): a server that accepts and then says nothing would hold a send forever.
    timeout: Duration,
}

impl EmailChannel {
    /// Builds the channel from `[smtp]`. Fails when email is off (no host) or the settings cannot
    /// make a sender; it does not connect (a server that is down is a send-time `Retry`). Make and
    /// drop it inside a Tokio runtime: lettre's transport spawns a housekeeping task for both.
    pub fn new(config: &SmtpConfig) -> Result<Self, EmailSetupError> {
        let host = config.host.as_deref().ok_or(EmailSetupError::NoHost)?;
        let from = config.from.as_deref().ok_or(EmailSetupError::NoFrom)?;
        let from: Mailbox = from.parse().map_err(|e| EmailSetupError::BadFrom {
            from: from.to_owned(),
            problem: format!("{e}"),
        })?;
        let transport_error = |source| EmailSetupError::Transport {
            host: host.to_owned(),
            source,
        };
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(transport_error)?,
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(transport_error)?
            }
        };
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        // No connection is ever reused: a send cut off by our timeout leaves its connection
        // mid-conversation, and lettre's pool would hand it out again as if it were idle.
        let mut builder = builder
            .port(config.port)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(0));
        if let Some(user) = &config.username {
            // `Config::check` insists on both; an unchecked config without a password still
            // gets a clear refusal from the server rather than a panic here.
            let password = config
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            timeout,
        })
    }
}

#[async_trait]
impl Channel for EmailChannel {
    async fn send(&self, alert: &AlertView, target: &str, idempotency_key: &str) -> Outcome {
        // An address that does not parse will not parse next time either.
        let to: Mailbox = match target.parse() {
            Ok(to) => to,
            Err(e) => {
                return Outcome::Permanent(format!("invalid recipient address {target:?}: {e}"))
            }
        };
        let mail = match message::build(&self.from, to, alert, idempotency_key) {
            Ok(mail) => mail,
            Err(problem) => return Outcome::Permanent(problem),
        };
        self.send_mail(mail).await
    }

    async fn send_operator(
        &self,
        alert: &crate::notify::operator::OperatorAlert,
        target: &str,
        idempotency_key: &str,
    ) -> Outcome {
        let to: Mailbox = match target.parse() {
            Ok(to) => to,
            Err(e) => {
                return Outcome::Permanent(format!("invalid recipient address {target:?}: {e}"))
            }
        };
        match crate::notify::operator::email_message(&self.from, to, alert, idempotency_key) {
            Ok(mail) => self.send_mail(mail).await,
            Err(problem) => Outcome::Permanent(problem),
        }
    }
}

impl EmailChannel {
    /// One mail through the transport, within the channel's whole-send timeout.
    async fn send_mail(&self, mail: lettre::Message) -> Outcome {
        match tokio::time::timeout(self.timeout, self.transport.send(mail)).await {
            Ok(Ok(_)) => Outcome::Delivered,
            Ok(Err(e)) => classify(&e),
            Err(_) => Outcome::Retry(format!(
                "SMTP server did not finish the send within {} s",
                self.timeout.as_secs()
            )),
        }
    }
}

/// SMTP's own split: 5xx replies (550 unknown user, 554 rejected) will get the same answer again;
/// 4xx replies (greylisting, mailbox busy) and anything that never got a reply (refused
/// connection, timeout, TLS or network failure) may work later.
fn classify(e: &lettre::transport::smtp::Error) -> Outcome {
    if e.is_permanent() {
        Outcome::Permanent(format!("SMTP server refused the mail: {e}"))
    } else if e.is_transient() {
        Outcome::Retry(format!("SMTP server deferred the mail: {e}"))
    } else if e.is_timeout() {
        Outcome::Retry(format!("SMTP server did not answer in time: {e}"))
    } else {
        Outcome::Retry(format!("cannot reach the SMTP server: {e}"))
    }
}
