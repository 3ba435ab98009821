//! IAM user names that look like the ones real teams create, and the check that refuses the tells
//! attackers (and their tools) use to spot decoys.

use rand::{rngs::OsRng, seq::SliceRandom, Rng};

use crate::{IamUserName, Invalid};

const PURPOSES: &[&str] = &[
    "backup",
    "deploy",
    "reporting",
    "etl",
    "billing",
    "monitoring",
    "logs",
    "artifacts",
    "sync",
    "ingest",
    "export",
    "metrics",
    "cdn",
    "mailer",
    "archive",
    "build",
];
const ENVS: &[&str] = &[
    "prod",
    "production",
    "staging",
    "stage",
    "dev",
    "ops",
    "shared",
    "int",
];
const TOOLS: &[&str] = &[
    "jenkins",
    "terraform",
    "gitlab",
    "github-actions",
    "circleci",
    "ansible",
    "argocd",
    "packer",
    "datadog",
    "airflow",
    "backstage",
    "octopus",
];
const ACTIONS: &[&str] = &[
    "deploy",
    "ci",
    "runner",
    "automation",
    "release",
    "sync",
    "readonly",
];
const GIVEN_INITIALS: &[&str] = &[
    "a", "b", "c", "d", "e", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
];
const SURNAMES: &[&str] = &[
    "meyer",
    "novak",
    "garcia",
    "okafor",
    "lindqvist",
    "tanaka",
    "schmidt",
    "rossi",
    "kowalski",
    "dubois",
    "murphy",
    "hansen",
    "silva",
    "nguyen",
    "patel",
    "cohen",
    "fischer",
    "moreau",
    "ivanova",
    "jensen",
    "brennan",
    "costa",
    "weber",
    "sato",
];

/// Substrings that give a decoy away: product names of decoy systems and their known paths and
/// prefixes. Matched case-insensitively.
const TELLS: &[&str] = &[
    "canary",
    "honey",
    "decoy",
    "trap",
    "spacecrab",
    "spacesiren",
    "ggcanary",
    "inf_ht_",
    "@@",
    "thinkst",
    "tripwire",
    "bait",
    "fake",
    "sensor",
];

/// Generates an ordinary-looking IAM user name in one of three styles real accounts are full of:
/// service users (`svc-backup-prod`), tool users (`jenkins-deploy`) and people (`j.meyer`).
pub fn ordinary_user_name() -> IamUserName {
    let mut rng = OsRng;
    let pick = |list: &[&'static str], rng: &mut OsRng| *list.choose(rng).expect("non-empty list");
    let name = match rng.gen_range(0..3) {
        0 => format!("svc-{}-{}", pick(PURPOSES, &mut rng), pick(ENVS, &mut rng)),
        1 => format!("{}-{}", pick(TOOLS, &mut rng), pick(ACTIONS, &mut rng)),
        _ => format!(
            "{}.{}",
            pick(GIVEN_INITIALS, &mut rng),
            pick(SURNAMES, &mut rng)
        ),
    };
    let name = IamUserName::parse(&name).expect("word lists hold valid IAM characters");
    debug_assert!(check_no_tells(name.as_str()).is_ok());
    name
}

/// Refuses a user name or path that carries a known decoy tell: a tell word, a UUID, or a long
/// run of hex digits (tools flag both as machine-made).
pub fn check_no_tells(name: &str) -> Result<(), Invalid> {
    let lower = name.to_ascii_lowercase();
    if let Some(tell) = TELLS.iter().find(|t| lower.contains(*t)) {
        return Err(Invalid::new(format!(
            "contains \"{tell}\", a known decoy tell"
        )));
    }
    if lower.contains("canarykeys") {
        return Err(Invalid::new("names the product"));
    }
    if looks_like_uuid(&lower) {
        return Err(Invalid::new("contains a UUID, a known decoy tell"));
    }
    let longest_hex = lower
        .split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if longest_hex >= 16 {
        return Err(Invalid::new(
            "contains a long random-looking hex string, a known decoy tell",
        ));
    }
    Ok(())
}

fn looks_like_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(35)).any(|i| {
        let w = &b[i..i + 36];
        w.iter().enumerate().all(|(j, c)| match j {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid_and_clean() {
        for _ in 0..500 {
            let n = ordinary_user_name();
            check_no_tells(n.as_str()).unwrap();
        }
    }

    #[test]
    fn tells_are_refused() {
        for bad in [
            "canarytokens.com@@9dnzayfbgr3k2b0e01upmq3dl",
            "honeyuser",
            "/SpaceCrab/",
            "/ggcanary/",
            "inf_ht_abc",
            "6f1c2d1e-8c55-4d2b-9a43-0e6f1b7f9a10",
            "user-0123456789abcdef0123",
            "my-Decoy",
            "canarykeys-1",
        ] {
            assert!(check_no_tells(bad).is_err(), "{bad}");
        }
        for ok in [
            "svc-backup-prod",
            "j.meyer",
            "terraform-ci",
            "/",
            "/service/",
        ] {
            assert!(check_no_tells(ok).is_ok(), "{ok}");
        }
    }
}
