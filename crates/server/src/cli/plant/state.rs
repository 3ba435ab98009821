//! The plant state file: what this machine planted, where, and exactly which bytes were added,
//! so a rerun is a no-op and `--remove` takes away exactly those bytes. It lives outside the
//! planted files, with mode 0600, because it holds each token's manage secret.

use std::path::{Path, PathBuf};

use canarykeys_core::{Invalid, ManageSecret, TokenId};
use serde::{Deserialize, Serialize};

use super::client::{AwsJson, Keys};
use super::{files, PlantError};

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct State {
    pub plants: Vec<Plant>,
}

/// Where a plant went: the kind of target and its path (`None` for stdout).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TargetKey {
    pub kind: String,
    pub path: Option<PathBuf>,
}

/// Bytes added to one file.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Addition {
    pub path: PathBuf,
    /// Exactly what was added, including a newline put before it when the file lacked one.
    pub added: String,
    /// The file did not exist before: removing the plant removes the file.
    pub created: bool,
    /// The topmost directory the plant had to create for this file, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_dir: Option<PathBuf>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Plant {
    pub target: TargetKey,
    /// The profile name in the AWS files, or the name the stdout formats use.
    pub profile: Option<String>,
    pub server: String,
    pub token_id: String,
    pub manage_secret: String,
    pub memo: String,
    pub planted_at: String,
    pub expires_at: Option<String>,
    pub aws: StoredKeys,
    pub files: Vec<Addition>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StoredKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub output: String,
}

impl From<&Keys> for StoredKeys {
    fn from(k: &Keys) -> Self {
        Self {
            access_key_id: k.access_key_id.as_str().to_owned(),
            secret_access_key: k.secret_access_key.expose().to_owned(),
            region: k.region.as_str().to_owned(),
            output: k.output.as_str().to_owned(),
        }
    }
}

impl Plant {
    pub fn token(&self) -> Result<(TokenId, ManageSecret), Invalid> {
        Ok((
            TokenId::parse(&self.token_id)?,
            ManageSecret::parse(&self.manage_secret)?,
        ))
    }

    pub fn keys(&self) -> Result<Keys, Invalid> {
        AwsJson {
            access_key_id: self.aws.access_key_id.clone(),
            secret_access_key: self.aws.secret_access_key.clone(),
            region: self.aws.region.clone(),
            output: self.aws.output.clone(),
        }
        .parse()
    }
}

/// `$XDG_STATE_HOME/canarykeys/plant.json`, else `~/.local/state/canarykeys/plant.json`.
pub fn default_path(home: &Path) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".local/state"));
    base.join("canarykeys").join("plant.json")
}

impl State {
    /// The state and its bytes as read (for the all-or-nothing write).
    pub fn load(path: &Path) -> Result<(Self, Option<Vec<u8>>), PlantError> {
        let Some(bytes) = files::read(path)? else {
            return Ok((Self::default(), None));
        };
        let state = serde_json::from_slice(&bytes).map_err(|e| {
            PlantError::Unparseable(path.into(), format!("not a plant state file: {e}"))
        })?;
        Ok((state, Some(bytes)))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).expect("the state serialises");
        b.push(b'\n');
        b
    }

    pub fn find(&self, key: &TargetKey) -> Option<&Plant> {
        self.plants.iter().find(|p| &p.target == key)
    }

    /// Replaces the plant at the same target, or adds it.
    pub fn put(&mut self, plant: Plant) {
        self.plants.retain(|p| p.target != plant.target);
        self.plants.push(plant);
    }

    pub fn drop_target(&mut self, key: &TargetKey) {
        self.plants.retain(|p| &p.target != key);
    }
}
