//! User-agent rules: case-insensitive substrings that mark secret scanners, attack tools and
//! attack distributions, read from `data/user-agents.txt` (embedded) or a file that replaces it.

use std::path::Path;

use super::EnrichError;

/// The list shipped with the server. Embedded so a release works without any data files.
const BUILTIN: &str = include_str!("../../data/user-agents.txt");

/// Labels reach alert emails and web pages; keep them short and plain.
const MAX_LABEL_CHARS: usize = 100;
const MAX_NEEDLE_CHARS: usize = 200;

#[derive(Clone, Debug)]
struct Rule {
    /// ASCII-lower-cased, so matching needs no allocation per rule.
    needle: String,
    label: String,
}

#[derive(Clone, Debug, Default)]
pub(super) struct UserAgentRules {
    rules: Vec<Rule>,
}

impl UserAgentRules {
    pub(super) fn builtin() -> Self {
        Self::parse(BUILTIN)
            .map_err(|(line, problem)| format!("line {line}: {problem}"))
            // The unit test `builtin_list_parses` keeps this from ever firing.
            .expect("the built-in user-agent list is valid")
    }

    /// Reads a replacement list. Errors name the file and the line, since an operator edits it
    /// by hand.
    pub(super) fn load(path: &Path) -> Result<Self, EnrichError> {
        let text = std::fs::read_to_string(path).map_err(|source| EnrichError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, problem)| EnrichError::Parse {
            path: path.to_owned(),
            line,
            problem,
        })
    }

    /// Parses `substring<TAB>label` lines; `#` lines and blank lines are skipped. The error is
    /// the 1-based line number and what is wrong with it.
    fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() || raw.trim_start().starts_with('#') {
                continue;
            }
            // Tabs are kept at this point: they separate the fields, and a missing field must be
            // reported rather than trimmed away.
            let line = raw.trim_matches([' ', '\r']);
            let err = |problem: &str| (index + 1, problem.to_owned());
            let (needle, label) = line
                .split_once('\t')
                .ok_or_else(|| err("expected `substring<TAB>label`"))?;
            let (needle, label) = (needle.trim(), label.trim());
            if needle.is_empty() || label.is_empty() {
                return Err(err("both the substring and the label must be non-empty"));
            }
            if needle.chars().count() > MAX_NEEDLE_CHARS {
                return Err(err("the substring is longer than 200 characters"));
            }
            if label.chars().count() > MAX_LABEL_CHARS {
                return Err(err("the label is longer than 100 characters"));
            }
            if needle.chars().chain(label.chars()).any(char::is_control) {
                return Err(err("control characters are not allowed"));
            }
            rules.push(Rule {
                needle: needle.to_ascii_lowercase(),
                label: label.to_owned(),
            });
        }
        Ok(Self { rules })
    }

    pub(super) fn len(&self) -> usize {
        self.rules.len()
    }

    /// The labels of every rule found in `user_agent`, each once, in list order. Only labels
    /// come back, never the user agent: it is attacker-chosen text.
    pub(super) fn matches(&self, user_agent: &str) -> Vec<&str> {
        let mut labels: Vec<&str> = Vec::new();
        if user_agent.is_empty() {
            return labels;
        }
        let haystack = user_agent.to_ascii_lowercase();
        for rule in &self.rules {
            if haystack.contains(&rule.needle) && !labels.contains(&rule.label.as_str()) {
                labels.push(&rule.label);
            }
        }
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_parses() {
        let rules = UserAgentRules::parse(BUILTIN).expect("valid");
        assert!(rules.len() >= 10);
    }

    #[test]
    fn tools_in_real_user_agents() {
        let rules = UserAgentRules::builtin();
        let cases = [
            (
                "TruffleHog",
                "TruffleHog (secret scanner verifying the key)",
            ),
            (
                "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 Pacu-Session-6f1c",
                "Pacu (AWS exploitation framework)",
            ),
            (
                "Scout Suite/5.12.0 Python/3.9.2 Linux/6.0.0-2parrot1-amd64 Scout Suite/5.12.0",
                "ScoutSuite (cloud audit tool)",
            ),
            (
                "Boto3/1.28.0 Python/3.11 Linux/6.1 Botocore/1.31.0 APN_1826889",
                "Prowler (cloud audit tool)",
            ),
            (
                "aws-sdk-go-v2/1.21.0 os/linux stratus-red-team_8cb1ee36-86c3-4241",
                "Stratus Red Team (attack emulation)",
            ),
            (
                "aws-cli/2.23.6 ua/2.0 os/linux#6.12.13-cloud-amd64 md/distrib#kali.2025",
                "Kali Linux (penetration-testing distribution)",
            ),
            (
                "Boto3/1.7.29 Python/2.7.6 Linux/4.14.0-kali3-amd64 Botocore/1.10.29",
                "Kali Linux (penetration-testing distribution)",
            ),
        ];
        for (ua, label) in cases {
            assert!(rules.matches(ua).contains(&label), "{ua} -> {label}");
        }
    }

    #[test]
    fn ordinary_sdks_are_not_tools() {
        let rules = UserAgentRules::builtin();
        for ua in [
            "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1.0 lang/python#3.11.7",
            "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0-1014-aws exe/x86_64.ubuntu.22",
            "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5 md/GOOS#linux api/sts#1.26.7",
            "aws-sdk-java/2.20.0 Linux/5.10 OpenJDK_64-Bit_Server_VM/17",
            "",
        ] {
            assert!(rules.matches(ua).is_empty(), "{ua}");
        }
    }

    #[test]
    fn each_label_once_and_in_order() {
        let rules = UserAgentRules::builtin();
        let ua = "Scout-Suite/5.14.0 md/Botocore#1.35 os/linux#6.10-kali-amd64 Scout Suite/5.14.0";
        assert_eq!(
            rules.matches(ua),
            [
                "ScoutSuite (cloud audit tool)",
                "Kali Linux (penetration-testing distribution)"
            ]
        );
    }

    #[test]
    fn bad_lines_are_reported_by_number() {
        let cases = [
            ("# ok\nno tab here\n", 2, "TAB"),
            ("x\t\n", 1, "non-empty"),
            ("\tlabel\n", 1, "non-empty"),
            ("x\tbad\u{7}bell\n", 1, "control"),
        ];
        for (text, line, words) in cases {
            let (at, problem) = UserAgentRules::parse(text).unwrap_err();
            assert_eq!(at, line, "{text:?}");
            assert!(problem.contains(words), "{problem}");
        }
        let long = format!("x\t{}\n", "y".repeat(101));
        assert_eq!(UserAgentRules::parse(&long).unwrap_err().0, 1);
    }

    #[test]
    fn comments_blank_lines_and_crlf() {
        let rules = UserAgentRules::parse("# c\r\n\r\n  MyTool \t My tool \r\n").unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules.matches("x MYTOOL/1.0"), ["My tool"]);
    }
}
