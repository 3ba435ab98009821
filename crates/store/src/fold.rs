//! Flood folding: inside an open cooldown window, past a per-token budget of stored hit rows,
//! further uses are counted into the window row instead of being stored one by one. What a
//! window keeps of them is bounded (a count, a time span, capped tallies of addresses, user
//! agents and event names); each folded event id is kept as an 8-byte hash, so the same event
//! arriving again by another path is not counted twice.

use sha2::{Digest, Sha256};

use crate::HitRecord;

/// `[alerts] stored_hits_per_window` when the configuration does not say.
pub const DEFAULT_STORED_HITS_PER_WINDOW: u64 = 1_000;

/// How many distinct values of each kind a window tallies; uses with other values are counted
/// as "other".
pub const FOLD_VALUES: usize = 100;

/// A tallied value is cut to this many characters: an attacker chooses user agents, and the
/// window row is rewritten at each commit that folds.
const VALUE_CHARS: usize = 200;

/// The 8-byte hash a folded event id is kept by (the first bytes of its SHA-256: stable across
/// releases and processes, unlike std's hasher).
pub fn event_hash(event_id: &str) -> i64 {
    let digest = Sha256::digest(event_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Counts per value, for at most [`FOLD_VALUES`] values (the first seen), and how many uses had
/// another value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub counts: Vec<(String, u64)>,
    pub other: u64,
}

impl Tally {
    pub fn add(&mut self, value: &str) {
        let value: String = value.chars().take(VALUE_CHARS).collect();
        if let Some((_, n)) = self.counts.iter_mut().find(|(v, _)| *v == value) {
            *n += 1;
        } else if self.counts.len() < FOLD_VALUES {
            self.counts.push((value, 1));
        } else {
            self.other += 1;
        }
    }

    /// The other count on the first line, then `count<TAB>value` per line; a backslash, tab
    /// or newline inside a value is escaped (values come from CloudTrail or a client).
    pub(crate) fn encode(&self) -> String {
        let mut out = format!("{}\n", self.other);
        for (v, n) in &self.counts {
            out.push_str(&format!("{n}\t"));
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c => out.push(c),
                }
            }
            out.push('\n');
        }
        out
    }

    pub(crate) fn decode(text: &str) -> Self {
        let mut lines = text.split_terminator('\n');
        let other = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let counts = lines
            .filter_map(|line| {
                let (n, escaped) = line.split_once('\t')?;
                let mut v = String::with_capacity(escaped.len());
                let mut chars = escaped.chars();
                while let Some(c) = chars.next() {
                    if c != '\\' {
                        v.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('n') => v.push('\n'),
                        Some('t') => v.push('\t'),
                        Some(other) => v.push(other),
                        None => {}
                    }
                }
                Some((v, n.parse().ok()?))
            })
            .collect();
        Self { counts, other }
    }
}

/// What a window kept of the uses it folded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    pub count: u64,
    /// The earliest and latest event times among them (unix ms), if any.
    pub first_event_time: Option<i64>,
    pub last_event_time: Option<i64>,
    pub addresses: Tally,
    pub agents: Tally,
    pub events: Tally,
}

impl Folded {
    /// Counts one more folded use.
    pub fn add(&mut self, hit: &HitRecord) {
        self.count += 1;
        let t = hit.event_time;
        self.first_event_time = Some(self.first_event_time.map_or(t, |f| f.min(t)));
        self.last_event_time = Some(self.last_event_time.map_or(t, |l| l.max(t)));
        self.addresses.add(&hit.source_ip);
        self.agents.add(&hit.user_agent);
        self.events.add(&hit.event_name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_are_capped_and_the_rest_counted() {
        let mut t = Tally::default();
        for i in 0..(FOLD_VALUES + 10) {
            t.add(&format!("10.0.{}.{}", i / 256, i % 256));
        }
        t.add("10.0.0.0");
        assert_eq!(t.counts.len(), FOLD_VALUES);
        assert_eq!(t.other, 10);
        assert_eq!(t.counts[0], ("10.0.0.0".to_owned(), 2));
    }

    #[test]
    fn tallies_keep_hostile_values_and_cut_long_ones() {
        let mut t = Tally::default();
        for v in ["", "a\nb", "tab\there", "back\\slash\\n", "7\t8"] {
            t.add(v);
        }
        t.add(&"x".repeat(10_000));
        t.other = 3;
        let back = Tally::decode(&t.encode());
        assert_eq!(back, t);
        assert_eq!(back.counts.last().unwrap().0.len(), VALUE_CHARS);
        assert_eq!(Tally::decode(""), Tally::default());
    }

    #[test]
    fn event_hashes_are_stable() {
        assert_eq!(event_hash("e1"), event_hash("e1"));
        assert_ne!(event_hash("e1"), event_hash("e2"));
    }
}
