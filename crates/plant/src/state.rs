//! The plant state file: what this machine planted, where, and exactly which bytes were added,
//! so a rerun is a no-op and `--remove` takes away exactly those bytes. It holds no secret that
//! changes or deletes a token (removing and rotating take the planting API key), so whoever
//! reads it learns which key is a decoy but cannot silence it. Its default place names nothing
//! (`sessions/state.json`); run as root it is root's alone. One `plant` at a time holds the
//! lock file beside it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use canarykeys_core::{Invalid, TokenId};
use nix::fcntl::{Flock, FlockArg, OFlag};
use serde::{Deserialize, Serialize};

use super::client::{AwsJson, Keys};
use super::{files, PlantError};

#[derive(Serialize, Deserialize, Default, Debug, Clone)]
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
    /// A manage secret older versions kept here. Read only so the next run has the server
    /// replace it (the copy here then stops working); never written again.
    #[serde(default, rename = "manage_secret", skip_serializing)]
    pub legacy_secret: Option<String>,
    pub memo: String,
    pub planted_at: String,
    pub expires_at: Option<String>,
    pub aws: StoredKeys,
    pub files: Vec<Addition>,
    /// A session decoy's refresh secret: it can only issue new sessions of its token (never
    /// read, change or delete it), so `--refresh` runs from cron with nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_secret: Option<String>,
    /// When the planted session was issued (RFC 3339), for `--before`'s fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_issued_at: Option<String>,
    /// Planted with `--expected-use until-confirm` and not confirmed yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StoredKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub output: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// When the session expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
}

impl From<&Keys> for StoredKeys {
    fn from(k: &Keys) -> Self {
        Self {
            access_key_id: k.access_key_id.as_str().to_owned(),
            secret_access_key: k.secret_access_key.expose().to_owned(),
            region: k.region.as_str().to_owned(),
            output: k.output.as_str().to_owned(),
            session_token: k.session.as_ref().map(|(t, _)| t.expose().to_owned()),
            expiration: k.session.as_ref().map(|(_, e)| e.clone()),
        }
    }
}

impl Plant {
    pub fn token(&self) -> Result<TokenId, Invalid> {
        TokenId::parse(&self.token_id)
    }

    pub fn keys(&self) -> Result<Keys, Invalid> {
        AwsJson {
            access_key_id: self.aws.access_key_id.clone(),
            secret_access_key: self.aws.secret_access_key.clone(),
            region: self.aws.region.clone(),
            output: self.aws.output.clone(),
            session_token: self.aws.session_token.clone(),
            expiration: self.aws.expiration.clone(),
        }
        .parse()
    }
}

/// The state's folder and file name: ordinary words, nothing that names the product.
const DIR: &str = "sessions";
const FILE: &str = "state.json";
/// Run as root, the state is root's alone, not in the home of the user it plants for.
const ROOT_DIR: &str = "/var/lib/sessions";

/// `$XDG_STATE_HOME` or `~/.local/state`.
fn state_home(home: &Path) -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".local/state"))
}

/// `/var/lib/sessions/state.json` for root, else `$XDG_STATE_HOME/sessions/state.json` or
/// `~/.local/state/sessions/state.json`.
pub fn default_path(home: &Path, root: bool) -> PathBuf {
    if root {
        Path::new(ROOT_DIR).join(FILE)
    } else {
        state_home(home).join(DIR).join(FILE)
    }
}

/// Where versions before this one kept the state (the folder named the product).
pub fn old_default_path(home: &Path) -> PathBuf {
    state_home(home).join("canarykeys").join("plant.json")
}

/// The exclusive lock of the state at `path`, held until the guard drops: a second `plant`
/// (an MDM retry, a login hook) waits for the first to finish. The lock file stays.
pub fn lock(path: &Path) -> Result<Flock<File>, PlantError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| PlantError::file(&dir, "cannot create", e))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let lock = dir.join(format!(".{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(&lock)
        .map_err(|e| PlantError::file(&lock, "cannot open", e))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| PlantError::file(&lock, "cannot lock", e.into()))
}

/// Moves a state from where older versions kept it to `path` (merged into a state already
/// there), then deletes the old file and its folder if that is empty. The old file is opened
/// without following a link: root reads it from a home the user controls.
pub fn adopt(old: &Path, path: &Path) -> Result<(), PlantError> {
    let bytes = match OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(old)
    {
        Ok(mut f) => {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut b)
                .map_err(|e| PlantError::file(old, "cannot read", e))?;
            b
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(PlantError::file(old, "cannot read", e)),
    };
    let theirs: State = serde_json::from_slice(&bytes)
        .map_err(|e| PlantError::Unparseable(old.into(), format!("not a plant state file: {e}")))?;
    let (mut state, before) = State::load(path)?;
    for p in theirs.plants {
        if state.find(&p.target).is_none() {
            state.plants.push(p);
        }
    }
    let edit = files::Edit {
        path: path.to_path_buf(),
        user: false,
        before,
        after: Some(state.to_bytes_keeping_legacy()),
    };
    files::apply(&files::RealDisk, &[edit], None)?;
    std::fs::remove_file(old).map_err(|e| PlantError::file(old, "cannot remove", e))?;
    if let Some(dir) = old.parent() {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
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

    /// As [`Self::to_bytes`], but keeping the old secrets: only while a state moves to its new
    /// place, so the next step can still have the server replace them.
    fn to_bytes_keeping_legacy(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).expect("the state serialises");
        for (p, json) in self.plants.iter().zip(
            v["plants"]
                .as_array_mut()
                .expect("plants is an array")
                .iter_mut(),
        ) {
            if let Some(secret) = &p.legacy_secret {
                json["manage_secret"] = secret.clone().into();
            }
        }
        let mut b = serde_json::to_vec_pretty(&v).expect("the state serialises");
        b.push(b'\n');
        b
    }

    /// Whether some plant still carries a manage secret from an older version.
    pub fn has_legacy_secrets(&self) -> bool {
        self.plants.iter().any(|p| p.legacy_secret.is_some())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_places_name_nothing() {
        let home = Path::new("/home/ana");
        let root = default_path(home, true);
        assert_eq!(root, Path::new("/var/lib/sessions/state.json"));
        let user = default_path(home, false);
        assert!(user.ends_with("sessions/state.json"), "{}", user.display());
        for p in [root, user] {
            let lower = p.to_string_lossy().to_lowercase();
            assert!(
                !lower.contains("canary") && !lower.contains("plant"),
                "{lower}"
            );
        }
    }
}
