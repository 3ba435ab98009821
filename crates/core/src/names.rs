//! IAM user names that look like the ones real teams create (drawn from templates and word lists
//! in a replaceable data file), and the checks that refuse the tells attackers and their tools
//! use to spot decoys, in user names and IAM paths.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use rand::{rngs::OsRng, Rng};

use crate::{IamUserName, Invalid};

/// The built-in templates and word lists; `NameGenerator::from_toml` takes a replacement.
const DEFAULT_NAMES: &str = include_str!("../data/names.toml");

/// Load-time validation expands every name a file can make; beyond this many it would take
/// seconds, and no decoy fleet needs more names than this.
const MAX_COMBINATIONS: u64 = 1_000_000;

/// Substrings that give a decoy away: product names of decoy systems and their known paths and
/// prefixes. Matched case-insensitively, so `/SpaceCrab/` and `/ggcanary/` paths are caught too.
#[rustfmt::skip]
const TELLS: &[&str] = &[
    "canary", "honey", "decoy", "trap", "spacecrab", "spacesiren", "ggcanary", "inf_ht_",
    "@@", "thinkst", "tripwire", "bait", "fake", "sensor", "deception",
];

/// Makes ordinary-looking IAM user names from templates such as `svc-{purpose}-{env}` or
/// `{initial}.{surname}`, each `{list}` filled with a word from that list.
///
/// Every name it can make was checked when it was built (IAM's rules and [`check_no_tells`]),
/// so `generate` cannot fail. Names are drawn uniformly from all it can make; the default set
/// makes about 85,000, so two draws rarely collide. When one does collide with a user already in
/// the account, the `iam` minter gets `EntityAlreadyExists` and retries with another draw.
#[derive(Clone, Debug)]
pub struct NameGenerator {
    templates: Vec<Template>,
    total: u64,
}

#[derive(Clone, Debug)]
struct Template {
    /// Literal text and slots, in order; a slot holds its word list.
    parts: Vec<Part>,
    combinations: u64,
}

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    Slot(Arc<[String]>),
}

impl NameGenerator {
    /// The built-in set (`crates/core/data/names.toml`), checked once per process.
    pub fn default_set() -> Self {
        static DEFAULT: OnceLock<NameGenerator> = OnceLock::new();
        DEFAULT
            .get_or_init(|| Self::from_toml(DEFAULT_NAMES).expect("valid built-in names.toml"))
            .clone()
    }

    /// Reads a names file: `templates = [..]` and a `[words]` table of string arrays (a TOML
    /// subset; see the built-in file). Refuses any template that could make a name IAM refuses
    /// or that carries a decoy tell, naming the template and the offending name.
    pub fn from_toml(text: &str) -> Result<Self, Invalid> {
        let bad = |why: String| Invalid::new(format!("names file: {why}"));
        let mut doc = parse_toml_subset(text)?;
        let sources = doc
            .remove(&(String::new(), "templates".to_owned()))
            .ok_or_else(|| bad("`templates = [...]` is missing".into()))?;
        let mut words = BTreeMap::new();
        for ((table, key), list) in doc {
            if table != "words" {
                return Err(bad(format!("unexpected key `{key}`")));
            }
            if list.is_empty() {
                return Err(bad(format!("word list `{key}` is empty")));
            }
            words.insert(key, (Arc::<[String]>::from(list), false));
        }
        if sources.is_empty() {
            return Err(bad("`templates` is empty".into()));
        }
        let (mut templates, mut total) = (Vec::new(), 0u64);
        for t in &sources {
            let template = parse_template(t, &mut words)?;
            total = total.saturating_add(template.combinations);
            if total > MAX_COMBINATIONS {
                let why = format!("the templates make more than {MAX_COMBINATIONS} names");
                return Err(bad(why));
            }
            template.check_every_name(t)?;
            templates.push(template);
        }
        if let Some((unused, _)) = words.iter().find(|(_, (_, used))| !used) {
            return Err(bad(format!("word list `{unused}` is used by no template")));
        }
        Ok(Self { templates, total })
    }

    /// How many names the templates make (an upper bound on the distinct ones: two templates
    /// could make the same string).
    pub fn combinations(&self) -> u64 {
        self.total
    }

    /// A fresh name from the OS's random source.
    pub fn generate(&self) -> IamUserName {
        self.generate_with(&mut OsRng)
    }

    /// A name drawn with `rng`: uniform over every (template, words) combination.
    pub fn generate_with<R: Rng + ?Sized>(&self, rng: &mut R) -> IamUserName {
        let mut n = rng.gen_range(0..self.total);
        let mut name = String::new();
        for t in &self.templates {
            if n < t.combinations {
                t.nth(n, &mut name);
                break;
            }
            n -= t.combinations;
        }
        IamUserName::parse(&name).expect("every name was checked at load")
    }

    /// Calls `f` with every name the templates make, in order (for tests).
    #[cfg(test)]
    fn for_each_name(&self, mut f: impl FnMut(&str)) {
        let mut name = String::new();
        for t in &self.templates {
            (0..t.combinations).for_each(|n| f(t.nth(n, &mut name)));
        }
    }
}

impl Template {
    /// The `n`th name (`n < combinations`): `n` read as a mixed-radix number whose digits, last
    /// slot first, pick each slot's word.
    fn nth<'a>(&self, mut n: u64, name: &'a mut String) -> &'a str {
        let mut words = Vec::with_capacity(self.parts.len());
        for part in self.parts.iter().rev() {
            words.push(match part {
                Part::Text(s) => s.as_str(),
                Part::Slot(list) => {
                    let len = list.len() as u64;
                    let word = &list[(n % len) as usize];
                    n /= len;
                    word
                }
            });
        }
        name.clear();
        words.iter().rev().for_each(|w| name.push_str(w));
        name
    }

    /// Expands the template completely: tells can straddle a word and its neighbour (`ca` +
    /// `nary`), so checking the words alone would not do.
    fn check_every_name(&self, source: &str) -> Result<(), Invalid> {
        let mut name = String::new();
        (0..self.combinations).try_for_each(|n| {
            let name = self.nth(n, &mut name);
            IamUserName::parse(name)
                .and_then(|_| check_no_tells(name))
                .map_err(|e| Invalid::new(format!("names file: {source:?} makes {name:?}: {e}")))
        })
    }
}

/// `svc-{purpose}-{env}` → text and slots, marking each list it uses.
fn parse_template(
    t: &str,
    words: &mut BTreeMap<String, (Arc<[String]>, bool)>,
) -> Result<Template, Invalid> {
    let bad = |why: &str| Invalid::new(format!("names file: template \"{t}\": {why}"));
    let mut pieces = t.split('{');
    let mut parts = vec![Part::Text(pieces.next().unwrap_or_default().to_owned())];
    let mut combinations = 1u64;
    // Each piece after the first is `list}text`.
    for piece in pieces {
        let (key, text) = piece.split_once('}').ok_or_else(|| bad("unclosed `{`"))?;
        let (list, used) = words
            .get_mut(key)
            .ok_or_else(|| bad(&format!("no list `{key}`")))?;
        *used = true;
        combinations = combinations.saturating_mul(list.len() as u64);
        parts.extend([Part::Slot(list.clone()), Part::Text(text.to_owned())]);
    }
    let stray = |p: &Part| matches!(p, Part::Text(s) if s.contains('}'));
    if t.is_empty() || parts.iter().any(stray) {
        return Err(bad("empty, or a `}` without its `{`"));
    }
    Ok(Template {
        parts,
        combinations,
    })
}

/// The TOML this file needs and no more (the core crate has no TOML dependency): comments,
/// `[table]` headers and `key = ["string", ...]` arrays, which may span lines. Strings are
/// `"..."` or `'...'`, taken as written: a backslash stays a backslash, which no name may hold.
/// Returns (table, key) → strings.
fn parse_toml_subset(text: &str) -> Result<BTreeMap<(String, String), Vec<String>>, Invalid> {
    let (mut out, mut table, mut open) = (BTreeMap::new(), String::new(), None);
    for (n, line) in text.lines().enumerate() {
        let err = |why: &str| Invalid::new(format!("names file, line {}: {why}", n + 1));
        // `#` starts a comment anywhere: no name may hold one, so no string needs one.
        let mut rest = line.split('#').next().unwrap_or_default().trim();
        if open.is_none() {
            if rest.is_empty() {
                continue;
            }
            if let Some(name) = rest.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                table = is_key(name.trim()).ok_or_else(|| err("a table header is [name]"))?;
                continue;
            }
            let (key, value) = rest
                .split_once('=')
                .ok_or_else(|| err("expected key = [..]"))?;
            let key = is_key(key.trim()).ok_or_else(|| err("a key is letters, digits, _ or -"))?;
            rest = value
                .trim()
                .strip_prefix('[')
                .ok_or_else(|| err("expected an array"))?;
            let at = (table.clone(), key);
            if out.insert(at.clone(), Vec::new()).is_some() {
                return Err(err("a key is defined twice"));
            }
            open = Some(at);
        }
        let items = out.get_mut(open.as_ref().expect("open")).expect("open");
        // The array's strings on this line, then `]` or the end of the line.
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                break;
            };
            let end = rest[1..].find(q).ok_or_else(|| err("unclosed string"))? + 1;
            items.push(rest[1..end].to_owned());
            rest = &rest[end + 1..];
        }
        match rest {
            "]" => open = None,
            "" => {}
            _ => return Err(err("expected a string, `,` or `]`")),
        }
    }
    match open {
        Some((_, key)) => Err(Invalid::new(format!("names file: `{key}` is never closed"))),
        None => Ok(out),
    }
}

fn is_key(s: &str) -> Option<String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    (!s.is_empty() && s.bytes().all(ok)).then(|| s.to_owned())
}

/// Generates an ordinary-looking IAM user name from the built-in set: service users
/// (`svc-backup-prod`), tool users (`jenkins-deploy`) and people (`j.meyer`, `anna.novak`).
pub fn ordinary_user_name() -> IamUserName {
    NameGenerator::default_set().generate()
}

/// Refuses a user name or path that carries a known decoy tell: a tell word (which includes our
/// product's name: "canary"), a UUID, or a long run of hex digits (tools flag both as
/// machine-made).
pub fn check_no_tells(name: &str) -> Result<(), Invalid> {
    let lower = name.to_ascii_lowercase();
    let why = if let Some(tell) = TELLS.iter().find(|t| lower.contains(*t)) {
        format!("contains \"{tell}\"")
    } else if looks_like_uuid(&lower) {
        "contains a UUID".to_owned()
    } else if lower
        .split(|c: char| !c.is_ascii_hexdigit())
        .any(|run| run.len() >= 16)
    {
        "contains a long random-looking hex string".to_owned()
    } else {
        return Ok(());
    };
    Err(Invalid::new(format!("{why}, a known decoy tell")))
}

/// Checks IAM's path syntax: `/` alone, or 1 to 512 characters that start and end with `/`,
/// with printable ASCII (`!` to `~`) between. Also refuses empty segments (`//`): AWS's pattern
/// allows them, but no one writes them, so they would stand out. Tells are [`check_no_tells`]'s job.
pub fn check_iam_path(path: &str) -> Result<(), Invalid> {
    let ok = (1..=512).contains(&path.len())
        && path.starts_with('/')
        && path.ends_with('/')
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && (path == "/" || !path.contains("//"));
    const RULE: &str = "an IAM path is `/` or `/segment/.../`: at most 512 printable ASCII \
                        characters, no spaces, no empty segments";
    ok.then_some(()).ok_or_else(|| Invalid::new(RULE))
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
    use std::collections::HashSet;

    use rand::{rngs::StdRng, SeedableRng};

    use super::*;

    #[test]
    fn generated_names_are_valid_clean_and_rarely_repeat() {
        let g = NameGenerator::default_set();
        let mut all = HashSet::new();
        g.for_each_name(|n| _ = all.insert(n.to_owned()));
        assert_eq!(all.len() as u64, g.combinations(), "templates overlap");
        assert!(all.len() >= 80_000, "{}", all.len());
        let mut rng = StdRng::seed_from_u64(7);
        let sample: Vec<_> = (0..10_000).map(|_| g.generate_with(&mut rng)).collect();
        for n in sample.iter().chain([&g.generate(), &ordinary_user_name()]) {
            IamUserName::parse(n.as_str()).unwrap();
            check_no_tells(n.as_str()).unwrap();
        }
        // Drawn uniformly from ~85,000, 10,000 draws repeat about 6% of the time
        // (k - N(1 - e^(-k/N))); the minter retries a name that is taken with a new draw.
        let distinct: HashSet<_> = sample.iter().map(IamUserName::as_str).collect();
        assert!(distinct.len() > 9_000, "{} distinct", distinct.len());
        for style in ["svc-", "jenkins-", "github-actions-"] {
            assert!(distinct.iter().any(|n| n.starts_with(style)), "{style}");
        }
        assert!(distinct.iter().any(|n| n.as_bytes().get(1) == Some(&b'.')));
    }

    #[test]
    fn operator_files_are_checked_at_load() {
        let ok = "# mine\ntemplates = ['{team}-{tool}', \"x-{team}\"]  # two\n[words]\n\
                  team = [\n  \"data\", # a\n  'web',\n]\ntool = [\"ci\"]\n";
        let g = NameGenerator::from_toml(ok).unwrap();
        assert_eq!(g.combinations(), 4);
        let mut names = Vec::new();
        g.for_each_name(|n| names.push(n.to_owned()));
        assert_eq!(names, ["data-ci", "web-ci", "x-data", "x-web"]);
        let err = |f: &str| NameGenerator::from_toml(f).unwrap_err().0;
        let t = |tpl: &str, words: &str| format!("templates = ['{tpl}']\n[words]\n{words}");
        assert!(err(&t("{a}", "a = ['boot', 'bootstrap']")).contains("\"bootstrap\""));
        assert!(err(&t("{a}{b}", "a = ['ca']\nb = ['nary']")).contains("\"canary\""));
        assert!(err(&t("{a} x", "a = ['b']")).contains("IAM user name"));
        assert!(err(&t("{a}", "a = ['x']\nb = ['y']")).contains("used by no template"));
        assert!(err(&t("{zz}", "a = ['x']")).contains("no list `zz`"));
        assert!(err(&t("{a", "a = ['x']")).contains("unclosed `{`"));
        assert!(err(&t("{a}", "a = []")).contains("empty"));
        let big = t("{a}{a}{a}", &format!("a = [{}]", "'w',".repeat(101)));
        assert!(err(&big).contains("more than 1000000"));
        assert!(err("templates = ['a}']").contains("without its"));
        assert!(err("[words]\na = ['x']").contains("missing"));
        assert!(err("templates = ['x'").contains("never closed"));
        assert!(err("templates = \"x\"").contains("expected an array"));
        assert!(err("templates = [\"a\\tb\"]").contains("IAM user name"));
        assert!(err("templates = ['x']\ntemplates = ['y']").contains("defined twice"));
        assert!(err("templates = ['x']\n[other]\nk = ['y']").contains("unexpected key"));
    }

    #[test]
    fn tells_are_refused_in_names_and_paths() {
        let bad = "canarytokens.com@@9dnzayfbgr3k2b0e01upmq3dl honeyuser /SpaceCrab/ /ggcanary/ \
                   /deception/team/ inf_ht_abc 6f1c2d1e-8c55-4d2b-9a43-0e6f1b7f9a10 my-Decoy \
                   user-0123456789abcdef0123 canarykeys-1";
        for name in bad.split_whitespace() {
            assert!(check_no_tells(name).is_err(), "{name}");
        }
        for ok in "svc-backup-prod j.meyer terraform-ci / /service/ /teams/data/".split(' ') {
            assert!(check_no_tells(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn iam_path_syntax() {
        for ok in "/ /service/ /division_abc/subdivision_xyz/ /a+b=c,d.e@f-g!/".split(' ') {
            assert!(check_iam_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "service", "/service", "service/", "/a b/", "//", "/a//b/", "/é/",
        ] {
            assert!(check_iam_path(bad).is_err(), "{bad}");
        }
        assert!(check_iam_path(&format!("/{}/", "a".repeat(510))).is_ok());
        assert!(check_iam_path(&format!("/{}/", "a".repeat(511))).is_err());
    }
}
