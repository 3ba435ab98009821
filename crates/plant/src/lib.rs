//! `canarykeys plant`: a client of a canarykeys server that creates one token with a
//! `tokens:write` API key and plants its key on this machine (the AWS shared files, a context
//! file, or stdout), remembering what it added so it can take exactly that away again.

mod client;
mod confirm;
mod context;
mod files;
mod flow;
mod identity;
mod refresh;
mod remove;
mod retire;
mod rotate;
mod state;
mod targets;

use std::io::Write;
use std::path::{Path, PathBuf};

use canarykeys_core::aws_files::ProfileName;
use clap::Args;

pub use client::Keys;
pub use context::{
    render as render_context, ContextKind, Templates, BUILT_IN as BUILT_IN_TEMPLATES,
};
pub use files::{Disk, RealDisk};
use targets::{StdoutFormat, Target};

#[derive(Args, Debug)]
pub struct PlantArgs {
    /// The canarykeys server, e.g. https://canarykeys.corp.internal.
    #[arg(long, env = "CANARYKEYS_URL", value_name = "URL")]
    pub server: Option<String>,
    /// An API key with the tokens:write scope (better given in the environment).
    #[arg(
        long,
        env = "CANARYKEYS_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Write a decoy file with context instead of a profile in the AWS shared files.
    #[arg(long, value_enum, conflicts_with = "stdout")]
    pub context: Option<ContextKind>,
    /// Print the key in this format instead of writing a file.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub stdout: Option<StdoutFormat>,
    /// The file to plant in: the credentials file (default: $AWS_SHARED_CREDENTIALS_FILE or
    /// ~/.aws/credentials), or the context file (default: the template's).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The AWS config file for the profile's region (default: $AWS_CONFIG_FILE or ~/.aws/config).
    #[arg(long, value_name = "PATH")]
    pub aws_config: Option<PathBuf>,
    /// The profile name (default: a usual one that is free).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The token's memo (default: `<host>:<path> (<user>)`).
    #[arg(long)]
    pub memo: Option<String>,
    /// Alert this address (the token needs an email, a webhook or both).
    #[arg(long, env = "CANARYKEYS_PLANT_EMAIL")]
    pub email: Option<String>,
    /// Alert this webhook.
    #[arg(long, env = "CANARYKEYS_PLANT_WEBHOOK_URL", value_name = "URL")]
    pub webhook_url: Option<String>,
    /// Delete the token after this long (`30m`, `2h`, `7d`), e.g. a key per CI run.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    /// A templates file to use instead of the built-in one (for --context).
    #[arg(long, value_name = "FILE")]
    pub templates: Option<PathBuf>,
    /// The state file (default: $XDG_STATE_HOME or ~/.local/state, then sessions/state.json;
    /// run as root, /var/lib/sessions/state.json).
    #[arg(long, env = "CANARYKEYS_PLANT_STATE", value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Plant session credentials (`aws_session`: ASIA key, session token, expiry) that
    /// `--refresh` renews, instead of a long-term key.
    #[arg(long)]
    pub session: bool,
    /// Renew every session decoy of this state that is within --before of its expiry, with
    /// the refresh secret the state keeps (no API key needed). For cron or a timer.
    #[arg(long, conflicts_with_all = ["remove", "list", "rotate", "session"])]
    pub refresh: bool,
    /// With --refresh: renew a session once this share of its life is left.
    #[arg(long, value_name = "PERCENT", default_value = "25%", value_parser = refresh::parse_before, requires = "refresh")]
    pub before: u8,
    /// With --refresh: renew every session now.
    #[arg(long, requires = "refresh")]
    pub force: bool,
    /// `until-confirm`: uses of the decoy are recorded but held until `--confirm` (or its
    /// expiry, so it needs --expires-in), then sent as one digest alert; for a CI job whose
    /// tools read every profile. `none` (the default): every use alerts.
    #[arg(long, value_enum, value_name = "WHEN")]
    pub expected_use: Option<ExpectedUseArg>,
    /// Close the expected-use window of every held decoy in this state (with the API key):
    /// the uses held so far go out as one digest, and later ones alert at once.
    #[arg(long, conflicts_with_all = ["remove", "list", "rotate", "refresh"])]
    pub confirm: bool,
    /// Swap the planted key for a fresh one, and delete the old token.
    #[arg(long, conflicts_with_all = ["remove", "list"])]
    pub rotate: bool,
    /// Delete the token on the server and remove exactly what was added.
    #[arg(long, conflicts_with = "list")]
    pub remove: bool,
    /// Show what this machine has planted.
    #[arg(long)]
    pub list: bool,
}

/// `--expected-use`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExpectedUseArg {
    None,
    UntilConfirm,
}

impl ExpectedUseArg {
    fn as_api(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::UntilConfirm => "until_confirm",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlantError {
    #[error("cannot reach the canarykeys server at {0}: {1}")]
    Unreachable(String, String),
    #[error("the server refused the API key: it is unknown or has been revoked")]
    KeyRefused,
    #[error("the server refused: {0} (plant needs an API key with the tokens:write scope)")]
    Forbidden(String),
    #[error("the server refused the request: {0}")]
    Rejected(String),
    #[error("{0}")]
    Server(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0} cannot be parsed: {1}; nothing was changed")]
    Unparseable(PathBuf, String),
    #[error("{0} is not writable: {1}; nothing was changed")]
    NotWritable(PathBuf, String),
    #[error(
        "the profile {0} is taken (in {1} or the AWS config file); choose another with --profile"
    )]
    ProfileTaken(String, PathBuf),
    #[error("{action} {path}: {source}")]
    File {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("the context template: {0}")]
    Template(String),
    #[error("{0} was changed where the key was planted; edit it by hand (nothing was changed)")]
    Changed(PathBuf),
    #[error("{0} was changed by another program while plant was writing it; run plant again")]
    Raced(PathBuf),
    #[error("cannot act as the owner of HOME: {0}")]
    Identity(#[from] nix::errno::Errno),
    #[error("{error}; {cleanup}")]
    AfterCreate {
        error: Box<PlantError>,
        cleanup: String,
    },
}

impl PlantError {
    fn file(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        Self::File {
            path: path.into(),
            action,
            source,
        }
    }
}

/// Runs `plant` with the real disk, printing to stdout.
pub async fn run(args: PlantArgs) -> anyhow::Result<()> {
    run_with(args, &RealDisk, &mut std::io::stdout().lock()).await?;
    Ok(())
}

/// Runs `plant`, writing files through `disk` and printing results to `out`.
pub async fn run_with(
    args: PlantArgs,
    disk: &dyn Disk,
    out: &mut dyn Write,
) -> Result<(), PlantError> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| PlantError::Usage("HOME is not set".into()))?;
    let owner = identity::Owner::of_home(&home)?;
    let root = nix::unistd::geteuid().is_root();
    let state_path = absolute(
        args.state
            .clone()
            .unwrap_or_else(|| state::default_path(&home, root)),
    )?;
    // Held to the end of the run: one plant at a time on this state.
    let _lock = state::lock(&state_path)?;
    // A state where older versions kept it by default moves to the default place, secrets and
    // all, so the next step retires its secrets. (A state given with --state is read where it
    // is, and its secrets retired the same way.)
    if args.state.is_none() {
        state::adopt(&state::old_default_path(&home), &state_path)?;
    }
    let profile = args
        .profile
        .as_deref()
        .map(ProfileName::parse)
        .transpose()
        .map_err(|e| PlantError::Usage(format!("--profile: {e}")))?;
    if args.list {
        return flow::list(&state_path, out).await;
    }
    let target = if args.refresh || args.confirm {
        // Each plant's own target is rebuilt from the state.
        Target::Stdout {
            format: StdoutFormat::Credentials,
        }
    } else {
        resolve(&args, &home)?
    };
    let ctx = flow::Ctx {
        args: &args,
        disk,
        state_path,
        profile,
        target,
        owner,
    };
    if args.refresh {
        refresh::refresh(&ctx, out).await
    } else if args.confirm {
        confirm::confirm(&ctx, out).await
    } else if args.remove {
        remove::remove(&ctx, out).await
    } else if args.rotate {
        rotate::rotate(&ctx, out).await
    } else {
        flow::plant(&ctx, out).await
    }
}

fn absolute(p: PathBuf) -> Result<PathBuf, PlantError> {
    std::path::absolute(&p).map_err(|e| PlantError::file(&p, "cannot resolve", e))
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn resolve(args: &PlantArgs, home: &Path) -> Result<Target, PlantError> {
    if let Some(format) = args.stdout {
        return Ok(Target::Stdout { format });
    }
    if let Some(kind) = args.context {
        let templates = Templates::load(args.templates.as_deref())?;
        let template = templates.get(kind)?.clone();
        let path = args
            .file
            .clone()
            .unwrap_or_else(|| template.default_path(home));
        return Ok(Target::Context {
            kind,
            template,
            path: absolute(path)?,
        });
    }
    let credentials = args
        .file
        .clone()
        .or_else(|| env_path("AWS_SHARED_CREDENTIALS_FILE"))
        .unwrap_or_else(|| home.join(".aws/credentials"));
    let config = args
        .aws_config
        .clone()
        .or_else(|| env_path("AWS_CONFIG_FILE"))
        .unwrap_or_else(|| home.join(".aws/config"));
    Ok(Target::Shared {
        credentials: absolute(credentials)?,
        config: absolute(config)?,
    })
}
