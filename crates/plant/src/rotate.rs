//! `plant --rotate`: a fresh key in the same place, then the old token deleted, both with the
//! planting API key.

use std::io::Write;

use canarykeys_core::aws_files::ProfileName;

use super::flow::{client, create, report, show_stdout, undo, write_plant, Ctx, Planting};
use super::retire;
use super::state::Plant;
use super::targets::{self, Prepared, Role};
use super::{files, flow, PlantError};

pub async fn rotate(ctx: &Ctx<'_>, out: &mut dyn Write) -> Result<(), PlantError> {
    let (state, state_before) = retire::load(&ctx.state_path).await?;
    let Some(old) = state.find(&ctx.target.key()).cloned() else {
        return flow::plant(ctx, out).await;
    };
    let old_id = old
        .token()
        .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
    let profile = old
        .profile
        .as_deref()
        .map(ProfileName::parse)
        .transpose()
        .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
    let again = |_: &Prepared| {
        let mut p = prepare_again(&old)?;
        p.profile = profile.clone();
        Ok(p)
    };
    let prepared = ctx.as_user(|| {
        again(&Prepared {
            profile: None,
            files: vec![],
        })
    })?;
    let (client, api_key) = client(ctx, Some(&old.server))?;
    let memo = ctx.args.memo.clone().unwrap_or_else(|| old.memo.clone());
    let created = create(ctx, &client, &api_key, memo.clone()).await?;
    let planting = Planting {
        client: &client,
        created: &created,
        memo: &memo,
        old: Some(&old),
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
            "rotated {}: key {} (token {}) replaces {}",
            flow::describe(&plant),
            plant.aws.access_key_id,
            plant.token_id,
            old.aws.access_key_id
        ),
    );
    show_stdout(ctx, &plant, out)?;
    client.delete(&old_id, &api_key).await.map_err(|e| {
        PlantError::Server(format!("the new key is planted, but the old token {old_id} could not be deleted ({e}): delete it in the console"))
    })
}

/// The planted files as they are now, for a rotate.
pub(super) fn prepare_again(old: &Plant) -> Result<Prepared, PlantError> {
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
