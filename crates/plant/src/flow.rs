//! Planting (or seeing it is done) and listing, and the steps `rotate` and `remove` share. A
//! token is created only after every local check passed, and deleted again (with the API key)
//! if the files cannot be written. The user's files are read and written as the user (see
//! `identity`); a file another program changed meanwhile is planned again once.

use std::io::Write;
use std::path::{Path, PathBuf};

use canarykeys_core::aws_files::{self, ProfileName};
use nix::errno::Errno;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::{ApiKey, Client, CreateRequest, CreatedToken, ServerUrl};
use super::files::{self, Disk, Edit};
use super::identity::{as_user, Owner};
use super::retire;
use super::state::{Addition, Plant, State};
use super::targets::{self, Prepared, Target};
use super::{PlantArgs, PlantError};

pub struct Ctx<'a> {
    pub args: &'a PlantArgs,
    pub disk: &'a dyn Disk,
    pub state_path: PathBuf,
    pub profile: Option<ProfileName>,
    pub target: Target,
    /// HOME's owner, when root plants for someone else.
    pub owner: Option<Owner>,
}

impl Ctx<'_> {
    /// Runs `f` as the owner of the files planted in.
    pub(super) fn as_user<T, E: From<Errno>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        as_user(self.owner.as_ref(), f)
    }
}

pub(super) fn say(out: &mut dyn Write, line: &str) {
    let _ = writeln!(out, "{line}");
}

pub(super) fn describe(p: &Plant) -> String {
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

pub async fn list(state_path: &Path, out: &mut dyn Write) -> Result<(), PlantError> {
    let (state, _) = retire::load(state_path).await?;
    if state.plants.is_empty() {
        eprintln!("nothing planted (state file: {})", state_path.display());
    }
    for p in &state.plants {
        let expires = p.expires_at.as_deref().unwrap_or("-");
        // A session decoy's own expiry: when `--refresh` must have renewed it.
        let session = p
            .aws
            .expiration
            .as_deref()
            .map_or(String::new(), |e| format!("\tsession expires {e}"));
        say(
            out,
            &format!(
                "{}\t{}\t{}\t{}\tplanted {}\texpires {}{}\t{}",
                p.target.kind,
                describe(p),
                p.aws.access_key_id,
                p.token_id,
                p.planted_at,
                expires,
                session,
                p.memo.replace(['\n', '\r', '\t'], " "),
            ),
        );
    }
    Ok(())
}

/// The server (`--server`, else the one the plant was made on) and the planting API key, which
/// every change on the server needs: nothing on the machine can make one without it.
pub(super) fn client(
    ctx: &Ctx<'_>,
    planted_on: Option<&str>,
) -> Result<(Client, ApiKey), PlantError> {
    let server = ctx.args.server.as_deref().or(planted_on).ok_or_else(|| {
        PlantError::Usage("give the server with --server or CANARYKEYS_URL".into())
    })?;
    let server =
        ServerUrl::parse(server).map_err(|e| PlantError::Usage(format!("--server: {e}")))?;
    let key = ctx.args.api_key.as_deref().ok_or_else(|| {
        PlantError::Usage(
            "give the planting API key (tokens:write) in CANARYKEYS_API_KEY (or --api-key)".into(),
        )
    })?;
    let key = ApiKey::parse(key).map_err(|e| PlantError::Usage(format!("the API key: {e}")))?;
    Ok((Client::new(server)?, key))
}

fn default_memo(ctx: &Ctx<'_>) -> String {
    let host = hostname::get().map_or_else(
        |_| "unknown-host".into(),
        |h| h.to_string_lossy().into_owned(),
    );
    let user = ctx
        .owner
        .as_ref()
        .map_or_else(whoami::username, |o| o.name().to_owned());
    let target = &ctx.target;
    format!("{host}:{} ({user})", target.place())
}

pub(super) async fn create(
    ctx: &Ctx<'_>,
    client: &Client,
    key: &ApiKey,
    memo: String,
) -> Result<CreatedToken, PlantError> {
    let mut req = CreateRequest::new(memo);
    req.email = ctx.args.email.clone();
    req.webhook_url = ctx.args.webhook_url.clone();
    req.expires_in = ctx.args.expires_in.clone();
    if ctx.args.session {
        req = req.session();
    }
    req.expected_use = ctx.args.expected_use.map(|e| e.as_api().to_owned());
    client.create(key, &req).await
}

/// Deletes a token made by this run after a local failure (with the API key), and says so with
/// the error.
pub(super) async fn undo(
    client: &Client,
    key: &ApiKey,
    created: &CreatedToken,
    error: PlantError,
) -> PlantError {
    let cleanup = match client.delete(&created.id, key).await {
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
pub(super) fn commit(
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
        user: false,
        before: state_before,
        after,
    });
    let owner = ctx.owner.as_ref();
    let result = (|| {
        for e in edits.iter().filter(|e| e.after.is_some()) {
            let who = owner.filter(|_| e.user);
            if let Some(top) = as_user(who, || files::make_parent(&e.path))? {
                made.push((top, e.path.clone(), e.user));
            }
        }
        files::apply(ctx.disk, &edits, owner)
    })();
    if result.is_err() {
        for (top, file, user) in made.iter().rev() {
            let who = owner.filter(|_| *user);
            let _ = as_user(who, || {
                files::remove_empty_dirs(top, file);
                Ok::<_, Errno>(())
            });
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
        let created_dir = match created_dir {
            Some(d) => Some(d),
            None => ctx.as_user(|| Ok::<_, Errno>(missing_top(&f.path)))?,
        };
        additions.push(Addition {
            path: f.path.clone(),
            added,
            created: created_file,
            created_dir,
        });
        edits.push(Edit {
            path: f.path.clone(),
            user: true,
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
        legacy_secret: None,
        memo,
        planted_at: now(),
        expires_at: created.expires_at.clone(),
        aws: (&created.keys).into(),
        files,
        refresh_secret: created.refresh_secret.clone(),
        session_issued_at: created.keys.session.as_ref().map(|_| now()),
        held: ctx.args.expected_use == Some(super::ExpectedUseArg::UntilConfirm),
    }
}

pub(super) fn show_stdout(
    ctx: &Ctx<'_>,
    plant: &Plant,
    out: &mut dyn Write,
) -> Result<(), PlantError> {
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
pub(super) fn report(ctx: &Ctx<'_>, out: &mut dyn Write, line: &str) {
    match ctx.target {
        Target::Stdout { .. } => eprintln!("{line}"),
        _ => say(out, line),
    }
}

fn intact(ctx: &Ctx<'_>, plant: &Plant) -> Result<bool, PlantError> {
    ctx.as_user(|| {
        for a in &plant.files {
            let current = files::read(&a.path)?.unwrap_or_default();
            if aws_files::without_addition(&current, &a.added).is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// A token just created, and what its plant is written over.
pub(super) struct Planting<'a> {
    pub client: &'a Client,
    pub created: &'a CreatedToken,
    pub memo: &'a str,
    /// The plant it replaces (a rotate).
    pub old: Option<&'a Plant>,
    pub state: &'a State,
    pub state_before: &'a Option<Vec<u8>>,
}

/// Lays out and writes `created`'s plant. If a file changed since `prepared` read it (another
/// program wrote it), plans once more from what is there now; a second change is an error.
pub(super) fn write_plant(
    ctx: &Ctx<'_>,
    p: &Planting<'_>,
    mut prepared: Prepared,
    again: &dyn Fn(&Prepared) -> Result<Prepared, PlantError>,
) -> Result<Plant, PlantError> {
    let Planting {
        client,
        created,
        memo,
        old,
        state,
        state_before,
    } = *p;
    let mut tries = 0;
    loop {
        let (additions, edits) = lay_out(ctx, &prepared, created, old)?;
        let plant = record(ctx, client, &prepared, created, memo.to_owned(), additions);
        let mut next = state.clone();
        next.put(plant.clone());
        match commit(ctx, edits, &next, state_before.clone()) {
            Err(PlantError::Raced(_)) if tries == 0 => {
                tries += 1;
                prepared = ctx.as_user(|| again(&prepared))?;
            }
            Err(e) => return Err(e),
            Ok(()) => return Ok(plant),
        }
    }
}

pub async fn plant(ctx: &Ctx<'_>, out: &mut dyn Write) -> Result<(), PlantError> {
    let (state, state_before) = retire::load(&ctx.state_path).await?;
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
        if !intact(ctx, existing)? {
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
    let prepared = ctx.as_user(|| targets::prepare(&ctx.target, ctx.profile.as_ref()))?;
    let (client, api_key) = client(ctx, None)?;
    let memo = ctx.args.memo.clone().unwrap_or_else(|| default_memo(ctx));
    let created = create(ctx, &client, &api_key, memo.clone()).await?;
    // Again, keeping the profile name chosen: the token's memo does not name it.
    let again = |p: &Prepared| targets::prepare(&ctx.target, p.profile.as_ref());
    let planting = Planting {
        client: &client,
        created: &created,
        memo: &memo,
        old: None,
        state: &state,
        state_before: &state_before,
    };
    let written = write_plant(ctx, &planting, prepared, &again);
    let plant = match written {
        Ok(p) => p,
        Err(e) => return Err(undo(&client, &api_key, &created, e).await),
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
