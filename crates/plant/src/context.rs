//! Decoy files with context (`plant --context KIND`): a lived-in `.env.production`,
//! `terraform.tfvars` and the like, from templates in a TOML file users can replace. Every
//! rendered file is run through the tells check before it is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use canarykeys_core::names::check_no_tells;
use canarykeys_core::Invalid;
use clap::ValueEnum;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use rand::distributions::{Alphanumeric, DistString};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Deserialize;

use super::client::Keys;
use super::PlantError;

/// The built-in templates (`crates/plant/data/plant-templates.toml`).
pub const BUILT_IN: &str = include_str!("../data/plant-templates.toml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ContextKind {
    Env,
    Tfvars,
    Compose,
    Python,
    ShellHistory,
}

impl ContextKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Env => "env",
            Self::Tfvars => "tfvars",
            Self::Compose => "compose",
            Self::Python => "python",
            Self::ShellHistory => "shell-history",
        }
    }
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The default path: relative to the working directory, or `~/…` in the home directory.
    pub file: String,
    /// Add to an existing file (a shell history) rather than refuse to touch it.
    #[serde(default)]
    pub append: bool,
    pub body: String,
}

impl Template {
    pub fn default_path(&self, home: &Path) -> PathBuf {
        match self.file.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => PathBuf::from(&self.file),
        }
    }
}

/// A templates file: one table per kind.
pub struct Templates(BTreeMap<String, Template>);

impl Templates {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text)
            .map(Self)
            .map_err(|e| e.message().to_owned())
    }

    /// The built-in templates, or those in `file`.
    pub fn load(file: Option<&Path>) -> Result<Self, PlantError> {
        let Some(file) = file else {
            return Ok(Self::parse(BUILT_IN).expect("the built-in templates parse"));
        };
        let text =
            std::fs::read_to_string(file).map_err(|e| PlantError::file(file, "cannot read", e))?;
        Self::parse(&text).map_err(|e| PlantError::Unparseable(file.into(), e))
    }

    pub fn get(&self, kind: ContextKind) -> Result<&Template, PlantError> {
        self.0
            .get(kind.name())
            .ok_or_else(|| PlantError::Template(format!("no [{}] template", kind.name())))
    }

    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Renders a template with the planted key and fresh random values, and refuses the result
/// if any line carries a decoy tell. The body always ends with a newline.
pub fn render(template: &Template, keys: &Keys) -> Result<String, PlantError> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_function("secret", |n: usize| random_secret(n.min(256)));
    env.add_function("digits", |n: usize| {
        let mut rng = rand::thread_rng();
        (0..n.min(64))
            .map(|_| char::from(b'0' + rng.gen_range(0..10)))
            .collect::<String>()
    });
    env.add_function("pick", |choices: Vec<String>| {
        choices
            .choose(&mut rand::thread_rng())
            .cloned()
            .unwrap_or_default()
    });
    let bad = |e: minijinja::Error| PlantError::Template(e.to_string());
    let body = env
        .render_str(
            &template.body,
            minijinja::context! {
                access_key_id => keys.access_key_id.as_str(),
                secret_access_key => keys.secret_access_key.expose(),
                session_token => keys.session.as_ref().map(|(t, _)| t.expose()),
                region => keys.region.as_str(),
            },
        )
        .map_err(bad)?;
    let mut body = body.trim_start_matches('\n').to_owned();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    // The keys are the server's, random, and may spell anything; the rest must be clean.
    for (i, line) in body.lines().enumerate() {
        let line = line
            .replace(keys.secret_access_key.expose(), "")
            .replace(keys.access_key_id.as_str(), "");
        check_no_tells(&line)
            .and_then(|()| check_not_placeholder(&line))
            .map_err(|e| PlantError::Template(format!("line {} of the file: {e}", i + 1)))?;
    }
    Ok(body)
}

/// Words that mark a value as a placeholder nobody uses, which an intruder would skip.
const PLACEHOLDER_WORDS: &[&str] = &["example", "test", "dummy", "sample", "changeme"];

fn check_not_placeholder(line: &str) -> Result<(), Invalid> {
    let lower = line.to_ascii_lowercase();
    match PLACEHOLDER_WORDS.iter().find(|w| lower.contains(*w)) {
        Some(w) => Err(Invalid::new(format!(
            "contains \"{w}\", which marks a placeholder"
        ))),
        None => Ok(()),
    }
}

/// Letters and digits, drawn again in the rare case a draw looks machine-made (a long hex run)
/// or spells a word that gives it away.
fn random_secret(n: usize) -> String {
    loop {
        let s = Alphanumeric.sample_string(&mut rand::thread_rng(), n);
        if check_no_tells(&s)
            .and_then(|()| check_not_placeholder(&s))
            .is_ok()
        {
            return s;
        }
    }
}
