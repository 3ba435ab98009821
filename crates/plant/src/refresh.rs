//! `plant --refresh`: renews every session decoy of this state that is within `--before` of its
//! expiry (or every one, `--force`), with the refresh secret the state keeps: no API key, so a
//! timer runs it with nothing else on the machine. Fresh values replace the old ones in the same
//! place and no other byte changes; a session not yet due is left alone, so reruns are no-ops.

use std::io::Write;
use std::path::PathBuf;

use canarykeys_core::aws_files::ProfileName;
use clap::ValueEnum;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::{Client, CreatedToken, ServerUrl};
use super::context::{ContextKind, Templates};
use super::flow::{describe, say, write_plant, Ctx, Planting};
use super::rotate::prepare_again;
use super::state::Plant;
use super::targets::{Prepared, StdoutFormat, Target};
use super::{retire, PlantError};

/// `--before`: a share of the session's life, `25%` or `25`.
pub fn parse_before(s: &str) -> Result<u8, String> {
    let n: u8 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| "a percentage from 0 to 100, e.g. 25%".to_owned())?;
    if n > 100 {
        return Err("a percentage from 0 to 100, e.g. 25%".into());
    }
    Ok(n)
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Whether `plant`'s session is within `before` percent of its life from expiry at `now`.
pub fn due(plant: &Plant, before: u8, now: OffsetDateTime) -> bool {
    let Some(expires) = plant.aws.expiration.as_deref().and_then(parse_time) else {
        return false;
    };
    let issued = plant
        .session_issued_at
        .as_deref()
        .or(Some(plant.planted_at.as_str()))
        .and_then(parse_time)
        .unwrap_or(expires);
    let life = (expires - issued).whole_seconds().max(0);
    let left = (expires - now).whole_seconds();
    left * 100 <= life * i64::from(before)
}

/// The target a plant was written to, rebuilt from the state (for laying out its new values).
fn target_of(plant: &Plant, templates: Option<&std::path::Path>) -> Result<Target, PlantError> {
    let path = plant.target.path.clone();
    let kind = plant.target.kind.as_str();
    if kind == "stdout" {
        return Ok(Target::Stdout {
            format: StdoutFormat::Credentials,
        });
    }
    let path = path.ok_or_else(|| PlantError::Usage(format!("{}: no path", describe(plant))))?;
    if kind == "credentials" {
        let config = plant
            .files
            .iter()
            .map(|a| a.path.clone())
            .find(|p| *p != path)
            .unwrap_or_else(|| path.with_file_name("config"));
        return Ok(Target::Shared {
            credentials: path,
            config,
        });
    }
    let name = kind.strip_prefix("context-").unwrap_or(kind);
    let kind = ContextKind::from_str(name, false)
        .map_err(|_| PlantError::Usage(format!("{}: unknown context {name}", describe(plant))))?;
    let template = Templates::load(templates)?.get(kind)?.clone();
    Ok(Target::Context {
        kind,
        template,
        path,
    })
}

pub async fn refresh(ctx: &Ctx<'_>, out: &mut dyn Write) -> Result<(), PlantError> {
    let (state, _) = retire::load(&ctx.state_path).await?;
    let before = ctx.args.before;
    let now = OffsetDateTime::now_utc();
    let todo: Vec<Plant> = state
        .plants
        .iter()
        .filter(|p| p.refresh_secret.is_some())
        .filter(|p| ctx.args.force || due(p, before, now))
        .cloned()
        .collect();
    let sessions = state
        .plants
        .iter()
        .filter(|p| p.refresh_secret.is_some())
        .count();
    if todo.is_empty() {
        say(
            out,
            &format!("{sessions} session decoy(s); none due for a refresh; nothing changed"),
        );
        return Ok(());
    }
    let mut failed = Vec::new();
    for old in todo {
        match refresh_one(ctx, &old).await {
            Ok(plant) => say(
                out,
                &format!(
                    "refreshed {}: key {} (token {}) expires {}",
                    describe(&plant),
                    plant.aws.access_key_id,
                    plant.token_id,
                    plant.aws.expiration.as_deref().unwrap_or("-")
                ),
            ),
            Err(e) => {
                eprintln!("not refreshed: {}: {e}", describe(&old));
                failed.push(describe(&old));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(PlantError::Server(format!(
            "{} session decoy(s) not refreshed (each left as it was): {}",
            failed.len(),
            failed.join(", ")
        )))
    }
}

/// Renews one plant. The state is read again: an earlier refresh of this run wrote it.
async fn refresh_one(ctx: &Ctx<'_>, old: &Plant) -> Result<Plant, PlantError> {
    let (state, state_before) = retire::load(&ctx.state_path).await?;
    let Some(old) = state.find(&old.target).cloned() else {
        return Err(PlantError::Usage("no longer in the state".into()));
    };
    let secret = old.refresh_secret.clone().unwrap_or_default();
    let id = old
        .token()
        .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
    let server = ServerUrl::parse(&old.server)
        .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
    let profile = old
        .profile
        .as_deref()
        .map(ProfileName::parse)
        .transpose()
        .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
    let target = target_of(&old, ctx.args.templates.as_deref())?;
    let plant_ctx = Ctx {
        args: ctx.args,
        disk: ctx.disk,
        state_path: ctx.state_path.clone(),
        profile: profile.clone(),
        target,
        owner: ctx.owner.clone(),
    };
    let again = |_: &Prepared| {
        let mut p = prepare_again(&old)?;
        p.profile = profile.clone();
        Ok(p)
    };
    let prepared = plant_ctx.as_user(|| {
        again(&Prepared {
            profile: None,
            files: vec![],
        })
    })?;
    // Checked before the server is asked: a block edited by hand is left to its editor.
    for (f, a) in prepared.files.iter().zip(&old.files) {
        let current = f.before.as_deref().unwrap_or_default();
        if canarykeys_core::aws_files::without_addition(current, &a.added).is_none() {
            return Err(PlantError::Changed(PathBuf::from(&a.path)));
        }
    }
    let client = Client::new(server)?;
    let keys = client.refresh(&id, &secret).await?;
    let created = CreatedToken {
        id,
        expires_at: old.expires_at.clone(),
        keys,
        refresh_secret: Some(secret),
    };
    let planting = Planting {
        client: &client,
        created: &created,
        memo: &old.memo,
        old: Some(&old),
        state: &state,
        state_before: &state_before,
    };
    // A failed write leaves every file and the state as they were; the session just issued
    // is unused (it still alerts if it ever leaks: every issued key stays the token's).
    write_plant(&plant_ctx, &planting, prepared, &again)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{StoredKeys, TargetKey};

    fn plant(issued: &str, expires: &str) -> Plant {
        Plant {
            target: TargetKey {
                kind: "stdout".into(),
                path: None,
            },
            profile: None,
            server: "https://keys.example.com".into(),
            token_id: String::new(),
            legacy_secret: None,
            memo: String::new(),
            planted_at: issued.into(),
            expires_at: None,
            aws: StoredKeys {
                access_key_id: String::new(),
                secret_access_key: String::new(),
                region: "us-east-1".into(),
                output: "json".into(),
                session_token: Some("t".into()),
                expiration: Some(expires.into()),
            },
            files: Vec::new(),
            refresh_secret: Some("s".into()),
            session_issued_at: Some(issued.into()),
            held: false,
        }
    }

    #[test]
    fn due_within_the_last_share_of_the_life() {
        let p = plant("2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z");
        let at = |s: &str| OffsetDateTime::parse(s, &Rfc3339).unwrap();
        assert!(!due(&p, 25, at("2026-01-01T08:59:00Z")));
        assert!(due(&p, 25, at("2026-01-01T09:00:00Z")));
        assert!(due(&p, 0, at("2026-01-01T12:00:01Z")));
        assert!(!due(&p, 0, at("2026-01-01T11:59:00Z")));
        assert!(due(&p, 100, at("2026-01-01T00:00:00Z")));
    }

    #[test]
    fn before_is_a_percentage() {
        assert_eq!(parse_before("25%"), Ok(25));
        assert_eq!(parse_before("40"), Ok(40));
        assert!(parse_before("101%").is_err() && parse_before("a").is_err());
    }
}
