//! The AWS shared `credentials` and `config` files as `canarykeys plant` edits them: read the
//! section names the way the AWS CLI does (refusing what it would refuse), pick a profile name
//! nobody uses, and add or take away one section without touching any other byte.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::names::check_no_tells;
use crate::Invalid;

/// Profile names that people really give their second, third and fourth AWS identities.
pub const PROFILE_NAMES: &[&str] = &[
    "backup",
    "prod-readonly",
    "terraform",
    "legacy-admin",
    "deploy",
    "billing",
    "s3-sync",
    "prod-admin",
    "ops",
    "data-export",
    "migration",
    "staging",
];

/// A profile name: letters, digits, `_`, `.` and `-`, at most 64 characters, no decoy tell.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProfileName(String);

impl ProfileName {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if s.is_empty() || s.len() > 64 || !s.chars().all(ok) {
            return Err(Invalid::new(
                "a profile name is 1 to 64 letters, digits, `_`, `.` or `-`",
            ));
        }
        check_no_tells(s)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which of the two files: their section headers differ (`[name]` against `[profile name]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedFile {
    Credentials,
    Config,
}

/// A shared file the AWS CLI would read: the profile names its sections define.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedShared {
    pub profiles: BTreeSet<String>,
}

/// Reads a shared file with the rules of the INI parser the AWS CLI uses: full-line `#` and
/// `;` comments, `[section]` headers, `key = value` (or `key: value`) lines and indented
/// continuation lines. A key before any section, a line that is none of these, or a section
/// defined twice make the CLI fail, so they are refused here with the line number.
pub fn parse_shared(text: &str, which: SharedFile) -> Result<ParsedShared, Invalid> {
    let mut parsed = ParsedShared::default();
    let mut sections = BTreeSet::new();
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if line.starts_with([' ', '\t']) && in_section {
            continue; // a continuation of the value above (nested `s3 =` settings)
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(name) = rest.split_once(']').map(|(name, _)| name) else {
                return Err(Invalid::new(format!(
                    "line {n}: a section header without `]`"
                )));
            };
            if !sections.insert(name.to_owned()) {
                return Err(Invalid::new(format!("line {n}: a section appears twice")));
            }
            in_section = true;
            let profile = match which {
                SharedFile::Credentials => Some(name.trim()),
                SharedFile::Config if name.trim() == "default" => Some("default"),
                SharedFile::Config => name.trim().strip_prefix("profile ").map(str::trim),
            };
            if let Some(p) = profile {
                parsed.profiles.insert(p.to_owned());
            }
            continue;
        }
        if !in_section {
            return Err(Invalid::new(format!(
                "line {n}: a setting before any section"
            )));
        }
        if !trimmed.contains(['=', ':']) {
            return Err(Invalid::new(format!(
                "line {n}: neither a section, a `key = value` setting nor a comment"
            )));
        }
    }
    Ok(parsed)
}

/// The first free name from [`PROFILE_NAMES`], in a random order; `None` if all are taken.
pub fn pick_profile<R: Rng + ?Sized>(taken: &BTreeSet<String>, rng: &mut R) -> Option<ProfileName> {
    let mut names = PROFILE_NAMES.to_vec();
    names.shuffle(rng);
    names
        .into_iter()
        .find(|n| !taken.contains(*n))
        .map(|n| ProfileName(n.to_owned()))
}

/// The section for a profile in one of the files, as `aws configure` lays it out.
pub fn section(which: SharedFile, profile: &ProfileName, settings: &[(&str, &str)]) -> String {
    let header = match (which, profile.as_str()) {
        (SharedFile::Config, "default") | (SharedFile::Credentials, _) => {
            format!("[{}]\n", profile.as_str())
        }
        (SharedFile::Config, name) => format!("[profile {name}]\n"),
    };
    settings.iter().fold(header, |mut s, (k, v)| {
        s.push_str(&format!("{k} = {v}\n"));
        s
    })
}

/// Exactly what appending `block` to a file holding `original` adds: a newline if the file
/// lacks a final one, a blank line to set the section apart, then the block. Removing this
/// string again gives back the original bytes.
pub fn addition(original: &[u8], block: &str) -> String {
    let mut added = String::new();
    if !original.is_empty() {
        if !original.ends_with(b"\n") {
            added.push('\n');
        }
        if !original.ends_with(b"\n\n") {
            added.push('\n');
        }
    }
    added.push_str(block);
    added
}

/// The file without an earlier [`addition`]: at its end if nothing was added after it, else
/// its only occurrence. `None` if it is not there intact (edited by hand) or is there twice.
pub fn without_addition(current: &[u8], added: &str) -> Option<Vec<u8>> {
    let added = added.as_bytes();
    if added.is_empty() {
        return Some(current.to_vec());
    }
    if let Some(rest) = current.strip_suffix(added) {
        return Some(rest.to_vec());
    }
    let hits: Vec<usize> = current
        .windows(added.len())
        .enumerate()
        .filter(|(_, w)| *w == added)
        .map(|(i, _)| i)
        .collect();
    match hits[..] {
        [at] => Some([&current[..at], &current[at + added.len()..]].concat()),
        _ => None,
    }
}

/// The file with an earlier [`addition`] swapped for another (a rotated key), in place.
pub fn replace_addition(current: &[u8], old: &str, new: &str) -> Option<Vec<u8>> {
    let rest = without_addition(current, old)?;
    if current.ends_with(old.as_bytes()) {
        return Some([rest.as_slice(), new.as_bytes()].concat());
    }
    let at = current
        .windows(old.len())
        .position(|w| w == old.as_bytes())?;
    Some([&current[..at], new.as_bytes(), &current[at + old.len()..]].concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::mock::StepRng;

    const CREDS: &str = "# work account\n[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
                         aws_secret_access_key = x\n\n; old one\n[backup]\naws_access_key_id=y\n";

    #[test]
    fn reads_profiles_from_both_files() {
        let p = parse_shared(CREDS, SharedFile::Credentials).unwrap();
        assert_eq!(p.profiles, ["backup", "default"].map(String::from).into());
        let config = "[default]\nregion = eu-west-1\n[profile ops]\ns3 =\n  max_concurrency = 4\n\
                      [sso-session corp]\nsso_region: us-east-1\n";
        let p = parse_shared(config, SharedFile::Config).unwrap();
        assert_eq!(p.profiles, ["default", "ops"].map(String::from).into());
    }

    #[test]
    fn refuses_what_the_cli_refuses() {
        for (text, line) in [
            ("aws_access_key_id = x\n", "line 1"),
            ("[a]\nx = 1\njust words\n", "line 3"),
            ("[a]\n[b\n", "line 2"),
            ("[a]\nx = 1\n[a]\n", "line 3"),
        ] {
            let err = parse_shared(text, SharedFile::Credentials).unwrap_err();
            assert!(err.0.starts_with(line), "{text:?}: {err}");
        }
    }

    #[test]
    fn picks_a_free_name_or_none() {
        let mut taken: BTreeSet<String> =
            PROFILE_NAMES[1..].iter().map(|s| s.to_string()).collect();
        let mut rng = StepRng::new(7, 13);
        assert_eq!(
            pick_profile(&taken, &mut rng).unwrap().as_str(),
            PROFILE_NAMES[0]
        );
        taken.insert(PROFILE_NAMES[0].into());
        assert!(pick_profile(&taken, &mut rng).is_none());
        for name in PROFILE_NAMES {
            ProfileName::parse(name).unwrap();
        }
    }

    #[test]
    fn profile_names_are_plain() {
        for bad in ["", "a b", "canary-1", "x]y", &"a".repeat(65)] {
            assert!(ProfileName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sections_look_like_aws_configure() {
        let p = ProfileName::parse("ops").unwrap();
        let creds = section(SharedFile::Credentials, &p, &[("aws_access_key_id", "A")]);
        assert_eq!(creds, "[ops]\naws_access_key_id = A\n");
        let conf = section(SharedFile::Config, &p, &[("region", "us-east-1")]);
        assert_eq!(conf, "[profile ops]\nregion = us-east-1\n");
    }

    #[test]
    fn additions_come_off_byte_for_byte() {
        for original in ["", "[a]\nx = 1", "[a]\nx = 1\n", "[a]\nx = 1\n\n", "\n"] {
            let added = addition(original.as_bytes(), "[b]\ny = 2\n");
            let planted = format!("{original}{added}");
            parse_shared(&planted, SharedFile::Credentials).unwrap();
            let back = without_addition(planted.as_bytes(), &added).unwrap();
            assert_eq!(back, original.as_bytes());
            // Someone appended after us: only our part goes.
            let later = format!("{planted}[c]\nz = 3\n");
            let back = without_addition(later.as_bytes(), &added).unwrap();
            assert_eq!(back, format!("{original}[c]\nz = 3\n").as_bytes());
            let rotated = replace_addition(later.as_bytes(), &added, "\n[b]\ny = 9\n").unwrap();
            assert!(String::from_utf8(rotated).unwrap().contains("y = 9\n[c]"));
        }
        assert!(without_addition(b"[a]\n", "\n[b]\n").is_none());
    }
}
