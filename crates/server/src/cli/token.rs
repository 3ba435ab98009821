//! `canarykeys token …`: token management from scripts, straight on the configured database.

use canarykeys_core::{CredentialsFormat, NewToken, NewTokenInput};
use clap::{Subcommand, ValueEnum};

use crate::config::Config;
use crate::render::human_time;
use crate::services::{Actor, ServiceError, TokenService};
use crate::views::{CreatedTokenView, TokenView};
use crate::Services;
use canarykeys_store::TokenRecord;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print its keys.
    Create {
        /// Where the key will be planted (required).
        #[arg(long)]
        memo: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        webhook_url: Option<String>,
        #[arg(long, default_value = "aws_keys")]
        kind: String,
        /// The IAM user name (else an ordinary one is generated).
        #[arg(long)]
        username: Option<String>,
        /// The decoy account to mint in (else the minter picks).
        #[arg(long)]
        account_id: Option<String>,
        /// Delete the token and its key after this long: 30m, 12h, 7d.
        #[arg(long)]
        expires_in: Option<String>,
        /// `until-confirm`: hold the uses until a confirm (or the expiry), then send one digest.
        #[arg(long)]
        expected_use: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// List all tokens.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Show one token.
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Delete a token (and, for real minters, its key).
    Delete { id: String },
    /// Give every live token a new manage secret and forget the new ones, so every secret
    /// handed out so far (in a create's answer, in an old plant state file) stops working.
    /// Manage the tokens from the console and with API keys afterwards. Prints only a count.
    ResetManageSecrets {
        /// Every live token (required: there is no narrower choice yet).
        #[arg(long, required = true)]
        all: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Json,
    Credentials,
    Config,
    Csv,
    Env,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

impl Format {
    fn file_format(self) -> Option<CredentialsFormat> {
        match self {
            Self::Json => None,
            Self::Credentials => Some(CredentialsFormat::Credentials),
            Self::Config => Some(CredentialsFormat::Config),
            Self::Csv => Some(CredentialsFormat::Csv),
            Self::Env => Some(CredentialsFormat::Env),
        }
    }
}

fn describe(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::Invalid(fields) => {
            let lines: Vec<String> = fields
                .iter()
                .map(|f| format!("  --{}: {}", f.field.replace('_', "-"), f.problem))
                .collect();
            anyhow::anyhow!("invalid input:\n{}", lines.join("\n"))
        }
        ServiceError::NotFound => anyhow::anyhow!("no such token"),
        other => anyhow::Error::new(other),
    }
}

pub async fn run(cmd: TokenCommand, config: &Config) -> anyhow::Result<()> {
    // No token command matches records: the key index is not read.
    let services = Services::open_unindexed(config).await?;
    let tokens = &services.tokens;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    match cmd {
        TokenCommand::Create {
            memo,
            email,
            webhook_url,
            kind,
            username,
            account_id,
            expires_in,
            expected_use,
            format,
        } => {
            let input = NewTokenInput {
                kind: Some(kind),
                memo: Some(memo),
                email,
                webhook_url,
                username,
                account_id,
                expires_in,
                expected_use,
            };
            let new = NewToken::parse(&input).map_err(|f| describe(ServiceError::Invalid(f)))?;
            let created = tokens.create(new, &Actor::Cli).await.map_err(describe)?;
            match format.file_format() {
                Some(f) => print!("{}", f.render(&created.credentials)),
                None => {
                    let secret = created.manage_secret.expose();
                    let v = CreatedTokenView {
                        token: TokenView::full(
                            &created.token,
                            &created.credentials,
                            tokens.minter(),
                            0,
                        ),
                        manage_url: format!(
                            "{}/manage/{}?s={secret}",
                            public_url.trim_end_matches('/'),
                            created.token.id
                        ),
                        manage_secret: secret.to_owned(),
                        refresh_secret: created
                            .refresh_secret
                            .as_ref()
                            .map(|r| r.expose().to_owned()),
                    };
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
            }
        }
        TokenCommand::List { format } => list(tokens, format).await?,
        TokenCommand::Show { id, format } => {
            let token = tokens.get(&id).await.map_err(describe)?;
            let creds = tokens.credentials(&token).await.map_err(describe)?;
            match format.file_format() {
                Some(f) => print!("{}", f.render(&creds)),
                None => {
                    let total = tokens.hit_count(&token).await.map_err(describe)?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&TokenView::full(
                            &token,
                            &creds,
                            tokens.minter(),
                            total
                        ))?
                    );
                }
            }
        }
        TokenCommand::Delete { id } => {
            let token = tokens.get(&id).await.map_err(describe)?;
            tokens.delete(&token, &Actor::Cli).await.map_err(describe)?;
            println!("deleted {}", token.id);
        }
        TokenCommand::ResetManageSecrets { all } => {
            debug_assert!(all, "clap requires --all");
            let count = tokens
                .reset_all_manage_secrets(&Actor::Cli)
                .await
                .map_err(describe)?;
            println!("replaced the manage secrets of {count} tokens");
        }
    }
    services.close().await;
    Ok(())
}

/// Prints every token page by page (1,000 at a time, newest first), so a million tokens start
/// printing at once and are never all in memory. JSON is one array, as `to_string_pretty`
/// writes it, built item by item.
async fn list(tokens: &TokenService, format: ListFormat) -> anyhow::Result<()> {
    use std::io::Write;
    const PAGE: u32 = 1_000;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut last: Option<TokenRecord> = None;
    let mut first = true;
    loop {
        let page = tokens
            .page_after(last.as_ref(), PAGE)
            .await
            .map_err(describe)?;
        for t in &page {
            match format {
                ListFormat::Json => {
                    let item =
                        serde_json::to_string_pretty(&TokenView::listed(t, tokens.minter()))?;
                    let item = item.replace('\n', "\n  ");
                    write!(out, "{}  {item}", if first { "[\n" } else { ",\n" })?;
                }
                ListFormat::Text => {
                    // Memos may hold line breaks; keep one token per line.
                    let memo = t.memo.as_str().replace(['\n', '\r', '\t'], " ");
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}",
                        t.id,
                        t.access_key_id,
                        human_time(t.created_at),
                        memo
                    )?;
                }
            }
            first = false;
        }
        out.flush()?;
        match page.last() {
            Some(t) if page.len() == PAGE as usize => last = Some(t.clone()),
            _ => break,
        }
    }
    if let ListFormat::Json = format {
        writeln!(out, "{}", if first { "[]" } else { "\n]" })?;
    }
    out.flush()?;
    Ok(())
}
