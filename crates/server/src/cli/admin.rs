//! `canarykeys admin`: bootstrap operators and API keys on the configured database, for the
//! first sign-in and for scripts, without going through the web.

use std::io::BufRead;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::config::Config;
use crate::services::access::KeyBudget;
use crate::services::{Actor, Scope};
use crate::Services;

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an operator who can sign in to the console.
    CreateUser {
        #[arg(long)]
        name: String,
        /// Read the password from the first line of standard input (never from a flag, which
        /// would show in `ps` and the shell history).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create an API key for an operator; prints only the key (shown once).
    CreateApiKey {
        /// The operator who owns the key.
        #[arg(long)]
        user: String,
        /// Comma-separated: tokens:write, tokens:read, alerts:read.
        #[arg(long)]
        scopes: String,
        /// A label saying what the key is for.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Tokens the key may create per minute (over it: 429 with Retry-After).
        #[arg(long, default_value_t = KeyBudget::DEFAULT.per_minute)]
        per_minute: u32,
        /// Tokens the key may have live at once.
        #[arg(long, default_value_t = KeyBudget::DEFAULT.live_tokens)]
        live_tokens: u32,
    },
    /// Make the configured sealing key (a new key file when there is none) the database's key,
    /// when the old one is lost for good. Tokens sealed with the old key stay sealed: their
    /// credentials cannot be downloaded, and their uses are hits with the signature unchecked.
    ReplaceLostSealingKey {
        /// Required: says the old key is gone and no backup of it exists.
        #[arg(long)]
        i_have_lost_the_old_key: bool,
    },
}

pub async fn run(cmd: AdminCommand, config: &Config) -> anyhow::Result<()> {
    if let AdminCommand::ReplaceLostSealingKey {
        i_have_lost_the_old_key,
    } = cmd
    {
        if !i_have_lost_the_old_key {
            bail!(
                "this gives up every secret sealed with the old key; restore the key file from \
                 a backup if you can, or pass --i-have-lost-the-old-key"
            );
        }
        let replaced = Services::replace_lost_sealing_key(config).await?;
        println!(
            "{} is now the database's sealing key; it opens {} of its {} tokens",
            replaced.key, replaced.opened, replaced.tokens
        );
        return Ok(());
    }
    let services = Services::open(config).await?;
    let result = match cmd {
        AdminCommand::CreateUser {
            name,
            password_stdin,
        } => {
            if !password_stdin {
                bail!("give the password on standard input with --password-stdin");
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            let password = line.trim_end_matches(['\n', '\r']);
            services
                .access
                .create_operator_by(&Actor::Cli, &name, password)
                .await
                .map(|op| println!("created operator {} ({})", op.name, op.id))
                .map_err(anyhow::Error::from)
        }
        AdminCommand::CreateApiKey {
            user,
            scopes,
            name,
            per_minute,
            live_tokens,
        } => {
            let scopes = Scope::parse_list(&scopes)?;
            let owner = services
                .access
                .operator_by_name(&user)
                .await
                .with_context(|| format!("no operator named {user:?}"))?;
            services
                .access
                .create_api_key_with_budget(
                    &owner,
                    &name,
                    &scopes,
                    KeyBudget {
                        per_minute,
                        live_tokens,
                    },
                )
                .await
                .map(|(_, key)| println!("{key}"))
                .map_err(anyhow::Error::from)
        }
        AdminCommand::ReplaceLostSealingKey { .. } => unreachable!("handled above"),
    };
    services.close().await;
    result
}
