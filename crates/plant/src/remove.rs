//! `plant --remove`: the token deleted with the planting API key, then exactly the bytes that
//! were added taken out of each file (as their owner).

use std::io::Write;

use canarykeys_core::aws_files;
use canarykeys_core::TokenId;
use nix::errno::Errno;

use super::files::{self, Edit};
use super::flow::{client, commit, describe, report, Ctx};
use super::retire;
use super::state::{Plant, TargetKey};
use super::PlantError;

/// The edits that take `plant`'s additions out of its files as they are now.
fn removal(plant: &Plant) -> Result<Vec<Edit>, PlantError> {
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
            user: true,
            before: Some(current),
            after,
        });
    }
    Ok(edits)
}

pub async fn remove(ctx: &Ctx<'_>, out: &mut dyn Write) -> Result<(), PlantError> {
    let (mut state, state_before) = retire::load(&ctx.state_path).await?;
    let key: TargetKey = ctx.target.key();
    let Some(plant) = state.find(&key).cloned() else {
        return Err(PlantError::Usage(format!(
            "nothing is planted at {}; see --list",
            ctx.target.place()
        )));
    };
    let id: TokenId = plant
        .token()
        .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
    let edits = ctx.as_user(|| removal(&plant))?;
    let (client, api_key) = client(ctx, Some(&plant.server))?;
    client.delete(&id, &api_key).await?;
    state.drop_target(&key);
    match commit(ctx, edits, &state, state_before.clone()) {
        Err(PlantError::Raced(_)) => {
            // Another program wrote a file meanwhile: take the key out of what is there now.
            let edits = ctx.as_user(|| removal(&plant))?;
            commit(ctx, edits, &state, state_before)?;
        }
        other => other?,
    }
    ctx.as_user(|| {
        for a in &plant.files {
            if let Some(top) = &a.created_dir {
                files::remove_empty_dirs(top, &a.path);
            }
        }
        Ok::<_, Errno>(())
    })?;
    report(
        ctx,
        out,
        &format!("removed {} and deleted token {id}", describe(&plant)),
    );
    Ok(())
}
