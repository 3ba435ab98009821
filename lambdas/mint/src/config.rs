//! The mint service's settings, read once from the environment at cold start and checked there,
//! so a misconfigured function fails on its first invocation with a message naming the variable.

use std::fmt;

use canarykeys_core::names;

pub const ENV_SECRET: &str = "CANARYKEYS_MINT_SECRET";
pub const ENV_USER_PATH: &str = "CANARYKEYS_MINT_USER_PATH";

/// The shortest secret accepted; the same floor as the server's ingest secret.
pub const MIN_SECRET_LEN: usize = 16;

/// A configuration problem, naming the environment variable at fault. It never carries the
/// secret's value.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// The HMAC secret shared with the server. `Debug` prints no part of it.
#[derive(Clone)]
pub struct MintSecret(String);

impl MintSecret {
    pub fn new(value: impl Into<String>) -> Result<Self, ConfigError> {
        let value = value.into();
        if value.len() < MIN_SECRET_LEN {
            return Err(err(
                ENV_SECRET,
                format!("must be at least {MIN_SECRET_LEN} characters"),
            ));
        }
        // A stray newline from `echo secret | ...` would make every request a 401 that is hard to
        // trace back; refusing it here names the cause.
        if value.trim() != value {
            return Err(err(ENV_SECRET, "has leading or trailing whitespace"));
        }
        Ok(Self(value))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for MintSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MintSecret(<redacted>)")
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub secret: MintSecret,
    /// The IAM path users are created under when a request names none; a request's own path
    /// must lie under it. The function's role is scoped to it, so this turns a path the role may
    /// not touch into a clear 422 instead of an AccessDenied from IAM.
    pub user_path: String,
}

impl Config {
    pub fn new(secret: MintSecret) -> Self {
        Self {
            secret,
            user_path: "/".into(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let secret =
            lookup(ENV_SECRET).ok_or_else(|| err(ENV_SECRET, "is required but not set"))?;
        let mut config = Self::new(MintSecret::new(secret)?);
        if let Some(path) = lookup(ENV_USER_PATH).filter(|p| !p.is_empty()) {
            check_iam_path(&path).map_err(|problem| err(ENV_USER_PATH, problem))?;
            config.user_path = path;
        }
        Ok(config)
    }
}

/// IAM's rules for a path (`/` or `/a/b/`: 1–512 printable ASCII characters, starting and ending
/// with `/`), plus the decoy-tells check, since a path shows in the user's ARN.
pub fn check_iam_path(path: &str) -> Result<(), String> {
    let printable = path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !(1..=512).contains(&path.len())
        || !path.starts_with('/')
        || !path.ends_with('/')
        || !printable
    {
        return Err(
            "an IAM path is 1 to 512 printable characters that start and end with /".into(),
        );
    }
    names::check_no_tells(path).map_err(|e| e.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<_, _> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn secret_is_required_long_enough_and_never_shown() {
        assert_eq!(load(&[]).unwrap_err().var, ENV_SECRET);
        for bad in ["short", "0123456789abcdef\n", " 0123456789abcdef"] {
            let e = load(&[(ENV_SECRET, bad)]).unwrap_err();
            assert_eq!(e.var, ENV_SECRET);
            assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
        }
        let c = load(&[(ENV_SECRET, "0123456789abcdef")]).unwrap();
        assert_eq!(c.user_path, "/");
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn user_path_follows_iam_rules_and_has_no_tells() {
        let s = (ENV_SECRET, "0123456789abcdef");
        assert_eq!(
            load(&[s, (ENV_USER_PATH, "/service/")]).unwrap().user_path,
            "/service/"
        );
        for bad in ["service/", "/service", "/a b/", "/honey/", "/SpaceCrab/"] {
            assert_eq!(
                load(&[s, (ENV_USER_PATH, bad)]).unwrap_err().var,
                ENV_USER_PATH,
                "{bad}"
            );
        }
    }
}
