//! `plant --confirm`: closes the expected-use window of every held decoy in the state, with the
//! planting API key (a CI job's last step). The server then sends the uses it held as one
//! digest; from now on every use alerts.

use std::io::Write;

use super::client::{ApiKey, Client, ServerUrl};
use super::flow::{commit, describe, say, Ctx};
use super::{retire, PlantError};

pub async fn confirm(ctx: &Ctx<'_>, out: &mut dyn Write) -> Result<(), PlantError> {
    let (mut state, state_before) = retire::load(&ctx.state_path).await?;
    let key = ctx.args.api_key.as_deref().ok_or_else(|| {
        PlantError::Usage(
            "give the planting API key (tokens:write) in CANARYKEYS_API_KEY (or --api-key)".into(),
        )
    })?;
    let key = ApiKey::parse(key).map_err(|e| PlantError::Usage(format!("the API key: {e}")))?;
    let mut confirmed = 0;
    for plant in state.plants.iter_mut().filter(|p| p.held) {
        let server = ServerUrl::parse(ctx.args.server.as_deref().unwrap_or(&plant.server))
            .map_err(|e| PlantError::Usage(format!("--server: {e}")))?;
        let id = plant
            .token()
            .map_err(|e| PlantError::Unparseable(ctx.state_path.clone(), e.to_string()))?;
        let was_open = Client::new(server)?.confirm(&id, &key).await?;
        plant.held = false;
        confirmed += 1;
        let what = if was_open {
            "window closed; uses held so far go out as one digest"
        } else {
            "no window was open (already confirmed, or expired)"
        };
        say(
            out,
            &format!("confirmed {} (token {id}): {what}", describe(plant)),
        );
    }
    if confirmed == 0 {
        say(out, "nothing held in this state; nothing changed");
        return Ok(());
    }
    commit(ctx, Vec::new(), &state, state_before)
}
