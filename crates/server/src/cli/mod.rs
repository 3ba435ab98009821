//! The command line: `serve`, and `token create|list|show|delete`, which work on the configured
//! database directly (for scripts that plant keys in bulk).

mod admin;
mod backup;
mod doctor;
mod doctor_streams;
mod ingest;
use canarykeys_plant as plant;
mod release;
mod send_test_email;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};
use crate::Application;

/// `canarykeys --version`: the crate version and the commit built (see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CANARYKEYS_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "canarykeys",
    version = VERSION,
    about = "Decoy AWS API keys that alert when used"
)]
pub struct Cli {
    /// TOML configuration file (default: ./canarykeys.toml if present).
    #[arg(long, global = true, env = "CANARYKEYS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database and the encryption key.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web UI and API.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Create operators and API keys.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Create, list, show and delete tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Check the configuration for what would break detection or give the decoys away, and
    /// connect to each stream's receiver.
    Doctor {
        /// Also send each stream a `test`-type record (it may page someone).
        #[arg(long)]
        send_test: bool,
    },
    /// Run CloudTrail files through detection (format detected; gzip fine).
    Ingest(ingest::IngestArgs),
    /// Send a test alert through the configured [smtp] server.
    SendTestEmail(send_test_email::SendTestEmailArgs),
    /// Plant a decoy key on this machine, from a canarykeys server (a client: no local config).
    Plant(Box<plant::PlantArgs>),
    /// Write an encrypted backup of the database and the sealing key (the server may run).
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty data directory (`--data-dir`).
    Restore(backup::RestoreArgs),
    /// Rotate the sealing key: re-seal every secret with a new key in one transaction.
    Rekey(backup::RekeyArgs),
    /// Exit 0 when the server answers /healthz (a container's HEALTHCHECK: no curl needed).
    Healthcheck(release::HealthcheckArgs),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output.
    Man,
}

impl Cli {
    fn config(&self) -> anyhow::Result<Config> {
        let listen = match &self.command {
            Command::Serve { listen } => *listen,
            Command::Token(_)
            | Command::Admin(_)
            | Command::Ingest(_)
            | Command::Doctor { .. }
            | Command::SendTestEmail(_)
            | Command::Plant(_)
            | Command::Healthcheck(_)
            | Command::Backup(_)
            | Command::Restore(_)
            | Command::Rekey(_)
            | Command::Completions { .. }
            | Command::Man => None,
        };
        let overrides = Overrides {
            listen,
            data_dir: self.data_dir.clone(),
        };
        Ok(Config::load(self.config.as_deref(), &overrides)?)
    }
}

/// Runs the parsed command. Errors come back to `main`, which prints them and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Completions { shell } => return release::completions(*shell),
        Command::Man => return release::man_page(),
        _ => {}
    }
    if let Command::Plant(args) = cli.command {
        return plant::run(*args).await;
    }
    let config = cli.config()?;
    match cli.command {
        Command::Serve { .. } => serve(config).await,
        Command::Token(cmd) => token::run(cmd, &config).await,
        Command::Admin(cmd) => admin::run(cmd, &config).await,
        Command::Ingest(args) => ingest::run(args, &config).await,
        Command::Doctor { send_test } => doctor::run(&config, send_test).await,
        Command::SendTestEmail(args) => send_test_email::run(args, &config).await,
        Command::Healthcheck(args) => release::healthcheck(args, &config).await,
        Command::Backup(args) => backup::backup(args, &config).await,
        Command::Restore(args) => backup::restore(args, &config).await,
        Command::Rekey(args) => backup::rekey(args, &config).await,
        Command::Plant(_) | Command::Completions { .. } | Command::Man => {
            unreachable!("handled above: these read no server config")
        }
    }
}

fn init_logging(filter: &str, format: crate::config::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A log file or a pipe gets no ANSI colour codes; only a person at a terminal sees colours.
    let _ = match format {
        crate::config::LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        crate::config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

async fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(&config.log, config.log_format);
    crate::listen::fit_descriptor_limit(&config.listeners);
    let data_dir = config.data_dir.display().to_string();
    let app = Application::build(config).await?;
    tracing::info!(
        "canarykeys is running: open {}/ (listening on {}, data in {data_dir})",
        app.public_url(),
        app.address()
    );
    // systemd's Type=notify: ready once the listeners are bound and the database open. Outside
    // systemd ($NOTIFY_SOCKET unset) this does nothing.
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell systemd the server is ready");
    }
    app.run_until(shutdown_signal()).await?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
