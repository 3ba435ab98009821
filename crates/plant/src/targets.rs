//! Where a key goes: the AWS shared files, a context file or stdout. Everything that can be
//! refused (a file that does not parse or cannot be written, a taken profile) is checked in
//! [`prepare`], before a token exists; [`additions`] then lays out the bytes to add.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use canarykeys_core::aws_files::{self, ProfileName, SharedFile};
use clap::ValueEnum;
use serde::Serialize;

use super::client::Keys;
use super::context::{self, ContextKind, Template};
use super::state::TargetKey;
use super::{files, PlantError};

pub enum Target {
    Shared {
        credentials: PathBuf,
        config: PathBuf,
    },
    Context {
        kind: ContextKind,
        template: Template,
        path: PathBuf,
    },
    Stdout {
        format: StdoutFormat,
    },
}

impl Target {
    pub fn key(&self) -> TargetKey {
        let (kind, path) = match self {
            Self::Shared { credentials, .. } => ("credentials".into(), Some(credentials.clone())),
            Self::Context { kind, path, .. } => {
                (format!("context-{}", kind.name()), Some(path.clone()))
            }
            Self::Stdout { .. } => ("stdout".into(), None),
        };
        TargetKey { kind, path }
    }

    /// How the memo names the place: the path, or `stdout`.
    pub fn place(&self) -> String {
        match self {
            Self::Shared { credentials: p, .. } | Self::Context { path: p, .. } => {
                p.display().to_string()
            }
            Self::Stdout { .. } => "stdout".into(),
        }
    }
}

/// A file about to get a block, as it is now.
pub struct FileBefore {
    pub path: PathBuf,
    pub role: Role,
    pub before: Option<Vec<u8>>,
}

#[derive(Clone, Copy)]
pub enum Role {
    Credentials,
    Config,
    Context,
}

pub struct Prepared {
    pub profile: Option<ProfileName>,
    pub files: Vec<FileBefore>,
}

fn read_shared(
    path: &Path,
    which: SharedFile,
) -> Result<(Option<Vec<u8>>, BTreeSet<String>), PlantError> {
    let before = files::read(path)?;
    let profiles = match &before {
        None => BTreeSet::new(),
        Some(bytes) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| PlantError::Unparseable(path.into(), "not UTF-8 text".into()))?;
            aws_files::parse_shared(text, which)
                .map_err(|e| PlantError::Unparseable(path.into(), e.to_string()))?
                .profiles
        }
    };
    files::check_writable(path)?;
    Ok((before, profiles))
}

/// Checks the target and chooses the profile name, touching nothing.
pub fn prepare(target: &Target, profile: Option<&ProfileName>) -> Result<Prepared, PlantError> {
    let mut rng = rand::thread_rng();
    match target {
        Target::Shared {
            credentials,
            config,
        } => {
            let (creds_before, mut taken) = read_shared(credentials, SharedFile::Credentials)?;
            let (config_before, in_config) = read_shared(config, SharedFile::Config)?;
            taken.extend(in_config);
            let profile = match profile {
                Some(p) if taken.contains(p.as_str()) => {
                    return Err(PlantError::ProfileTaken(
                        p.as_str().into(),
                        credentials.clone(),
                    ))
                }
                Some(p) => p.clone(),
                None => aws_files::pick_profile(&taken, &mut rng).ok_or_else(|| {
                    PlantError::Usage(
                        "every usual profile name is taken: choose one with --profile".into(),
                    )
                })?,
            };
            Ok(Prepared {
                profile: Some(profile),
                files: vec![
                    FileBefore {
                        path: credentials.clone(),
                        role: Role::Credentials,
                        before: creds_before,
                    },
                    FileBefore {
                        path: config.clone(),
                        role: Role::Config,
                        before: config_before,
                    },
                ],
            })
        }
        Target::Context { template, path, .. } => {
            let before = files::read(path)?;
            if before.is_some() && !template.append {
                return Err(PlantError::Usage(format!(
                    "{} exists; choose another place with --file (nothing was changed)",
                    path.display()
                )));
            }
            files::check_writable(path)?;
            Ok(Prepared {
                profile: None,
                files: vec![FileBefore {
                    path: path.clone(),
                    role: Role::Context,
                    before,
                }],
            })
        }
        Target::Stdout { .. } => {
            let profile = match profile {
                Some(p) => p.clone(),
                None => aws_files::pick_profile(&BTreeSet::new(), &mut rng).expect("names exist"),
            };
            Ok(Prepared {
                profile: Some(profile),
                files: vec![],
            })
        }
    }
}

/// The block each file gets for these keys.
pub fn block(
    role: Role,
    profile: Option<&ProfileName>,
    keys: &Keys,
    template: Option<&Template>,
) -> Result<String, PlantError> {
    let profile = || profile.expect("shared files have a profile");
    Ok(match role {
        Role::Credentials => {
            let mut lines = vec![
                ("aws_access_key_id", keys.access_key_id.as_str()),
                ("aws_secret_access_key", keys.secret_access_key.expose()),
            ];
            if let Some((token, _)) = &keys.session {
                lines.push(("aws_session_token", token.expose()));
            }
            aws_files::section(SharedFile::Credentials, profile(), &lines)
        }
        Role::Config => aws_files::section(
            SharedFile::Config,
            profile(),
            &[
                ("region", keys.region.as_str()),
                ("output", keys.output.as_str()),
            ],
        ),
        Role::Context => context::render(template.expect("context files have a template"), keys)?,
    })
}

/// The formats `--stdout` prints, for CI systems and configuration management.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StdoutFormat {
    /// A credentials-file section, `[profile]`.
    Credentials,
    /// `export PROFILE_AWS_ACCESS_KEY_ID=…` lines for a shell.
    Env,
    /// `{"profile", "access_key_id", "secret_access_key", "region"}`.
    Json,
    /// `PROFILE_AWS_ACCESS_KEY_ID=…` lines to append to `$GITHUB_ENV`.
    GithubEnv,
    /// A Kubernetes Secret manifest named `<profile>-aws`.
    K8sSecret,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    profile: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<&'a str>,
    region: &'a str,
}

/// Renders the keys for stdout. Environment variables carry the profile as a prefix
/// (`BACKUP_AWS_ACCESS_KEY_ID`), so they never replace the job's own `AWS_ACCESS_KEY_ID`.
pub fn stdout(format: StdoutFormat, profile: &ProfileName, keys: &Keys) -> String {
    let prefix: String = profile
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut vars = vec![
        ("AWS_ACCESS_KEY_ID", keys.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", keys.secret_access_key.expose()),
    ];
    let token = keys.session.as_ref().map(|(t, _)| t.expose());
    if let Some(token) = token {
        vars.push(("AWS_SESSION_TOKEN", token));
    }
    vars.push(("AWS_REGION", keys.region.as_str()));
    let lines = |lead: &str| {
        vars.iter()
            .map(|(k, v)| format!("{lead}{prefix}_{k}={v}\n"))
            .collect::<String>()
    };
    match format {
        StdoutFormat::Credentials => {
            block(Role::Credentials, Some(profile), keys, None).expect("no template")
        }
        StdoutFormat::Env => lines("export "),
        StdoutFormat::GithubEnv => lines(""),
        StdoutFormat::Json => {
            let out = JsonOut {
                profile: profile.as_str(),
                access_key_id: keys.access_key_id.as_str(),
                secret_access_key: keys.secret_access_key.expose(),
                session_token: token,
                expiration: keys.session.as_ref().map(|(_, e)| e.as_str()),
                region: keys.region.as_str(),
            };
            serde_json::to_string_pretty(&out).expect("serialises") + "\n"
        }
        StdoutFormat::K8sSecret => {
            let mut data = vec![
                ("AWS_ACCESS_KEY_ID", keys.access_key_id.as_str()),
                ("AWS_SECRET_ACCESS_KEY", keys.secret_access_key.expose()),
            ];
            if let Some(token) = token {
                data.push(("AWS_SESSION_TOKEN", token));
            }
            data.push(("AWS_DEFAULT_REGION", keys.region.as_str()));
            let data: String = data
                .iter()
                .map(|(k, v)| format!("  {k}: \"{v}\"\n"))
                .collect();
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {}-aws\ntype: Opaque\nstringData:\n{data}",
                profile.as_str().to_ascii_lowercase().replace(['_', '.'], "-")
            )
        }
    }
}
