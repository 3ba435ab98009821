//! The four things `plant` does: plant (or see it is done), rotate, remove and list. A token is
//! created only after every local check passed, and deleted again if the files cannot be written.

use std::io::Write;
use std::path::{Path, PathBuf};

use canarykeys_core::aws_files::{self, ProfileName};
use canarykeys_core::{ManageSecret, TokenId};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::{ApiKey, Client, CreateRequest, CreatedToken, ServerUrl};
use super::files::{self, Disk, Edit};
use super::state::{Addition, Plant, State, TargetKey};
use super::targets::{self, Prepared, Role, Target};
use super::{PlantArgs, PlantError};

pub struct Ctx<'a> {
    pub args: &'a PlantArgs,
    pub disk: &'a dyn Disk,
    pub state_path: PathBuf,
    pub profile: Option<ProfileName>,
    pub target: Target,
}

fn say(out: &mut dyn Write, line: &str) {
    let _ = writeln!(out, "{line}");
}

fn describe(p: &Plant) -> String {
    let place = p
        .target
        .path
        .as_ref()
        .map_or("stdout".into(), |p| p.display().to_string());
    match &p.profile {
        Some(profile) if p.target.kind != "stdout" || !p.files.is_empty() => {
            format!("profile {profile} in {place}")
        }
        _ => place,
    }
}

pub fn list(state_path: &Path, out: &mut dyn Write) -> Result<(), PlantError> {
    let (state, _) = State::load(state_path)?;
    if state.plants.is_empty() {
        eprintln!("nothing planted (state file: {})", state_path.display());
    }
    for p in &state.plants {
        let expires = p.expires_at.as_deref().unwrap_or("-");
        say(
            out,
            &format!(
                "{}\t{}\t{}\t{}\tplanted {}\texpires {}\t{}",
                p.target.kind,
                describe(p),
                p.aws.access_key_id,
                p.token_id,
                p.planted_at,
                expires,
                p.memo.replace(['\n', '\r', '\t'], " "),
            ),
        );
    }
    Ok(())
}

fn client(ctx: &Ctx<'_>) -> Result<(Client, ApiKey), PlantError> {
    let server = ctx.args.server.as_deref().ok_or_else(|| {
        PlantError::Usage("give the server with --server or CANARYKEYS_URL".into())
    })?;
    let server =
        ServerUrl::parse(server).map_err(|e| PlantError::Usage(format!("--server: {e}")))?;
    let key = ctx.args.api_key.as_deref().ok_or_else(|| {
        PlantError::Usage(
            "give an API key with tokens:write in CANARYKEYS_API_KEY (or --api-key)".into(),
        )
    })?;
    let key = ApiKey::parse(key).map_err(|e| PlantError::Usage(format!("the API key: {e}")))?;
    Ok((Client::new(server)?, key))
}

fn default_memo(target: &Target) -> String {
    let host = hostname::get().map_or_else(
        |_| "unknown-host".into(),
        |h| h.to_string_lossy().into_owned(),
    );
    let user = whoami::username();
    format!("{host}:{} ({user})", target.place())
}

async fn create(
    ctx: &Ctx<'_>,
    client: &Client,
    key: &ApiKey,
    memo: String,
) -> Result<CreatedToken, PlantError> {
    let mut req = CreateRequest::new(memo);
    req.email = ctx.args.email.clone();
    req.webhook_url = ctx.args.webhook_url.clone();
    req.expires_in = ctx.args.expires_in.clone();
    client.create(key, &req).await
}

/// Deletes a token made by this run after a local failure, and says so with the error.
async fn undo(client: &Client, created: &CreatedToken, error: PlantError) -> PlantError {
    let cleanup = match client.delete(&created.id, &created.manage_secret).await {
        Ok(()) => "the new token was deleted on the server and every file is as it was".to_owned(),
        Err(e) => format!(
            "every file is as it was, but the new token {} could not be deleted ({e}): delete it in the console",
            created.id
        ),
    };
    PlantError::AfterCreate {
        error: Box::new(error),
        cleanup,
    }
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Writes the files and the state together; the directories made for them go again on failure.
fn commit(
    ctx: &Ctx<'_>,
    mut edits: Vec<Edit>,
    state: &State,
    state_before: Option<Vec<u8>>,
) -> Result<(), PlantError> {
    let mut made = Vec::new();
    let after = if state.plants.is_empty() {
        None
    } else {
        Some(state.to_bytes())
    };
    edits.push(Edit {
        path: ctx.state_path.clone(),
        before: state_before,
        after,
    });
    let result = (|| {
        for e in edits.iter().filter(|e| e.after.is_some()) {
            if let Some(top) = files::make_parent(&e.path)? {
                made.push((top, e.path.clone()));
            }
        }
        files::apply(ctx.disk, &edits)
    })();
    if result.is_err() {
        for (top, file) in made.iter().rev() {
            files::remove_empty_dirs(top, file);
        }
    }
    result
}

/// The additions and edits that plant `created`'s keys, replacing `old` where it is intact.
fn lay_out(
    ctx: &Ctx<'_>,
    prepared: &Prepared,
    created: &CreatedToken,
    old: Option<&Plant>,
) -> Result<(Vec<Addition>, Vec<Edit>), PlantError> {
    let template = match &ctx.target {
        Target::Context { template, .. } => Some(template),
        _ => None,
    };
    let mut additions = Vec::new();
    let mut edits = Vec::new();
    for f in &prepared.files {
        let block = targets::block(f.role, prepared.profile.as_ref(), &created.keys, template)?;
        let current = f.before.as_deref().unwrap_or_default();
        let previous = old.and_then(|o| o.files.iter().find(|a| a.path == f.path));
        let swapped = previous.and_then(|p| {
            let lead: String = p.added.chars().take_while(|c| *c == '\n').collect();
            let added = lead + &block;
            aws_files::replace_addition(current, &p.added, &added).map(|after| (p, added, after))
        });
        let (added, after, created_file, created_dir) = match swapped {
            Some((p, added, after)) => (added, after, p.created, p.created_dir.clone()),
            None => {
                let added = aws_files::addition(current, &block);
                let after = [current, added.as_bytes()].concat();
                (added, after, f.before.is_none(), None)
            }
        };
        let created_dir = created_dir.or_else(|| missing_top(&f.path));
        additions.push(Addition {
            path: f.path.clone(),
            added,
            created: created_file,
            created_dir,
        });
        edits.push(Edit {
            path: f.path.clone(),
            before: f.before.clone(),
            after: Some(after),
        });
    }
    Ok((additions, edits))
}

/// The topmost missing directory above `path`, which planting will create.
fn missing_top(path: &Path) -> Option<PathBuf> {
    let mut top = None;
    let mut d = path.parent()?;
    while !d.exists() {
        top = Some(d.to_path_buf());
        d = d.parent()?;
    }
    top
}

fn record(
    ctx: &Ctx<'_>,
    client: &Client,
    prepared: &Prepared,
    created: &CreatedToken,
    memo: String,
    files: Vec<Addition>,
) -> Plant {
    Plant {
        target: ctx.target.key(),
        profile: prepared.profile.as_ref().map(|p| p.as_str().to_owned()),
        server: client.server.to_string(),
        token_id: created.id.to_string(),
        manage_secret: created.manage_secret.expose().to_owned(),
        memo,
        planted_at: now(),
        expires_at: created.expires_at.clone(),
        aws: (&created.keys).into(),
        files,
    }
}

fn show_stdout(ctx: &Ctx<'_>, plant: &Plant, out: &mut dyn Write) -> Result<(), PlantError> {
    if let Target::Stdout { format } = ctx.target {
        let keys = plant
            .keys()
            .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
        let name = plant.profile.as_deref().unwrap_or("default");
        let profile = ProfileName::parse(name)
            .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
        let _ = out.write_all(targets::stdout(format, &profile, &keys).as_bytes());
    }
    Ok(())
}

/// Says what was done: on stdout, or on stderr when stdout carries the key.
fn report(ctx: &Ctx<'_>, out: &mut dyn Write, line: &str) {
    match ctx.target {
        Target::Stdout { .. } => eprintln!("{line}"),
        _ => say(out, line),
    }
}

fn intact(plant: &Plant) -> Result<bool, PlantError> {
    for a in &plant.files {
        let current = files::read(&a.path)?.unwrap_or_default();
        if aws_files::without_addition(&current, &a.added).is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

pub async fn plant(ctx: &Ctx<'_>, out: &mut dyn Write) -> Result<(), PlantError> {
    let (mut state, state_before) = State::load(&ctx.state_path)?;
    let key = ctx.target.key();
    if let Some(existing) = state.find(&key) {
        if let Some(p) = &ctx.profile {
            if existing.profile.as_deref() != Some(p.as_str()) {
                return Err(PlantError::Usage(format!(
                    "{} is already planted here; use --rotate or --remove",
                    describe(existing)
                )));
            }
        }
        if !intact(existing)? {
            return Err(PlantError::Usage(format!(
                "the key planted as {} is no longer there as it was written; --rotate plants a fresh one",
                describe(existing)
            )));
        }
        report(
            ctx,
            out,
            &format!(
                "already planted: {} (token {}); nothing changed",
                describe(existing),
                existing.token_id
            ),
        );
        return show_stdout(ctx, existing, out);
    }
    let prepared = targets::prepare(&ctx.target, ctx.profile.as_ref())?;
    let (client, api_key) = client(ctx)?;
    let memo = ctx
        .args
        .memo
        .clone()
        .unwrap_or_else(|| default_memo(&ctx.target));
    let created = create(ctx, &client, &api_key, memo.clone()).await?;
    let written = (|| {
        let (additions, edits) = lay_out(ctx, &prepared, &created, None)?;
        let plant = record(ctx, &client, &prepared, &created, memo, additions);
        state.put(plant.clone());
        commit(ctx, edits, &state, state_before)?;
        Ok(plant)
    })();
    let plant = match written {
        Ok(p) => p,
        Err(e) => return Err(undo(&client, &created, e).await),
    };
    report(
        ctx,
        out,
        &format!(
            "planted {} (key {}, token {})",
            describe(&plant),
            plant.aws.access_key_id,
            plant.token_id
        ),
    );
    show_stdout(ctx, &plant, out)
}

pub async fn rotate(ctx: &Ctx<'_>, out: &mut dyn Write) -> Result<(), PlantError> {
    let (mut state, state_before) = State::load(&ctx.state_path)?;
    let Some(old) = state.find(&ctx.target.key()).cloned() else {
        return plant(ctx, out).await;
    };
    let (old_id, old_secret) = old
        .token()
        .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
    let mut prepared = prepare_again(&old)?;
    prepared.profile = old
        .profile
        .as_deref()
        .map(ProfileName::parse)
        .transpose()
        .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
    let (client, api_key) = client(ctx)?;
    let memo = ctx.args.memo.clone().unwrap_or_else(|| old.memo.clone());
    let created = create(ctx, &client, &api_key, memo.clone()).await?;
    let written = (|| {
        let (additions, edits) = lay_out(ctx, &prepared, &created, Some(&old))?;
        let plant = record(ctx, &client, &prepared, &created, memo, additions);
        state.put(plant.clone());
        commit(ctx, edits, &state, state_before)?;
        Ok(plant)
    })();
    let plant = match written {
        Ok(p) => p,
        Err(e) => return Err(undo(&client, &created, e).await),
    };
    report(
        ctx,
        out,
        &format!(
            "rotated {}: key {} (token {}) replaces {}",
            describe(&plant),
            plant.aws.access_key_id,
            plant.token_id,
            old.aws.access_key_id
        ),
    );
    show_stdout(ctx, &plant, out)?;
    old_client(&old)?.delete(&old_id, &old_secret).await.map_err(|e| {
        PlantError::Server(format!("the new key is planted, but the old token {old_id} could not be deleted ({e}): delete it in the console"))
    })
}

/// The planted files as they are now, for a rotate.
fn prepare_again(old: &Plant) -> Result<Prepared, PlantError> {
    let files = old
        .files
        .iter()
        .zip([Role::Credentials, Role::Config])
        .map(|(a, shared_role)| {
            let role = if old.target.kind == "credentials" {
                shared_role
            } else {
                Role::Context
            };
            files::check_writable(&a.path)?;
            Ok(targets::FileBefore {
                path: a.path.clone(),
                role,
                before: files::read(&a.path)?,
            })
        })
        .collect::<Result<_, PlantError>>()?;
    Ok(Prepared {
        profile: None,
        files,
    })
}

fn old_client(plant: &Plant) -> Result<Client, PlantError> {
    let server = ServerUrl::parse(&plant.server)
        .map_err(|e| PlantError::Usage(format!("the server in the state file: {e}")))?;
    Client::new(server)
}

pub async fn remove(ctx: &Ctx<'_>, out: &mut dyn Write) -> Result<(), PlantError> {
    let (mut state, state_before) = State::load(&ctx.state_path)?;
    let key: TargetKey = ctx.target.key();
    let Some(plant) = state.find(&key).cloned() else {
        return Err(PlantError::Usage(format!(
            "nothing is planted at {}; see --list",
            ctx.target.place()
        )));
    };
    let (id, secret): (TokenId, ManageSecret) = plant
        .token()
        .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
    let mut edits = Vec::new();
    for a in &plant.files {
        let Some(current) = files::read(&a.path)? else {
            continue;
        };
        let restored = aws_files::without_addition(&current, &a.added)
            .ok_or_else(|| PlantError::Changed(a.path.clone()))?;
        files::check_writable(&a.path)?;
        let after = (!(a.created && restored.is_empty())).then_some(restored);
        edits.push(Edit {
            path: a.path.clone(),
            before: Some(current),
            after,
        });
    }
    old_client(&plant)?.delete(&id, &secret).await?;
    state.drop_target(&key);
    commit(ctx, edits, &state, state_before)?;
    for a in &plant.files {
        if let Some(top) = &a.created_dir {
            files::remove_empty_dirs(top, &a.path);
        }
    }
    report(
        ctx,
        out,
        &format!("removed {} and deleted token {id}", describe(&plant)),
    );
    Ok(())
}
