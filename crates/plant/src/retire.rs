//! Retiring the manage secrets older versions kept in the state: the first step of every run.

use std::path::Path;

use canarykeys_core::{ManageSecret, TokenId};

use super::client::{Client, ServerUrl};
use super::files::{self, Edit};
use super::state::State;
use super::PlantError;

/// The state, after retiring any manage secret an older version kept in it: the server replaces
/// each (so the copy on disk, and any copy taken from it, stops working) and the state is
/// written again without it. A server that cannot be reached still gets the secret dropped
/// from disk, with a warning: `token reset-manage-secrets` retires it on the server.
pub async fn load(state_path: &Path) -> Result<(State, Option<Vec<u8>>), PlantError> {
    let (mut state, before) = State::load(state_path)?;
    if !state.has_legacy_secrets() {
        return Ok((state, before));
    }
    for p in &mut state.plants {
        let Some(secret) = p.legacy_secret.take() else {
            continue;
        };
        let retired = async {
            let id = TokenId::parse(&p.token_id).map_err(|e| PlantError::Usage(e.to_string()))?;
            let secret =
                ManageSecret::parse(&secret).map_err(|e| PlantError::Usage(e.to_string()))?;
            let server = ServerUrl::parse(&p.server)
                .map_err(|e| PlantError::Usage(format!("the server in the state file: {e}")))?;
            Client::new(server)?.retire_secret(&id, &secret).await
        };
        if let Err(e) = retired.await {
            eprintln!(
                "warning: the manage secret of token {} was removed from {}, but the server could not replace it ({e}); an operator retires it with `canarykeys token reset-manage-secrets --all`",
                p.token_id,
                state_path.display()
            );
        }
    }
    let after = state.to_bytes();
    let edit = Edit {
        path: state_path.to_path_buf(),
        user: false,
        before,
        after: Some(after.clone()),
    };
    files::apply(&files::RealDisk, &[edit], None)?;
    Ok((state, Some(after)))
}
