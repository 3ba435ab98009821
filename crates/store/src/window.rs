//! Cooldown windows: what a window keeps of the hits it gathers. A window is one row per token,
//! a counter and a few distinct values, updated once per commit whatever the number of hits, so
//! a flood on one key costs O(1) planning per hit and leaves nothing per hit to process later.

use canarykeys_core::TokenId;

use crate::{Folded, HitRecord};

/// How many distinct values of each kind a window names; the hits with other values are
/// counted, not named (the history has them all).
pub const WINDOW_VALUES: usize = 5;

/// A bounded set of distinct values, in the order first seen, and how many gathered hits had a
/// value that is not listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Distinct {
    pub values: Vec<String>,
    /// Hits whose value was not among `values` once the set was full.
    pub others: u64,
}

impl Distinct {
    pub fn add(&mut self, value: &str) {
        if self.values.iter().any(|v| v == value) {
            return;
        }
        if self.values.len() < WINDOW_VALUES {
            self.values.push(value.to_owned());
        } else {
            self.others += 1;
        }
    }

    /// One value per line, each ended by a newline (so an empty value survives); a backslash
    /// or newline inside a value is escaped. Values come from CloudTrail: anything goes.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        for v in &self.values {
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('\n');
        }
        out
    }

    pub(crate) fn decode(text: &str, others: i64) -> Self {
        let values = text
            .split_terminator('\n')
            .map(|line| {
                let mut v = String::with_capacity(line.len());
                let mut chars = line.chars();
                while let Some(c) = chars.next() {
                    match (c, c == '\\') {
                        (_, true) => match chars.next() {
                            Some('n') => v.push('\n'),
                            Some(other) => v.push(other),
                            None => {}
                        },
                        (c, false) => v.push(c),
                    }
                }
                v
            })
            .collect();
        Self {
            values,
            others: u64::try_from(others).unwrap_or(0),
        }
    }
}

/// What a window keeps of one hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowHit {
    pub hit_id: String,
    pub event_time: i64,
    pub received_at: i64,
    pub source_ip: String,
    pub event_name: String,
}

impl From<&HitRecord> for WindowHit {
    fn from(h: &HitRecord) -> Self {
        Self {
            hit_id: h.id.clone(),
            event_time: h.event_time,
            received_at: h.received_at,
            source_ip: h.source_ip.clone(),
            event_name: h.event_name.clone(),
        }
    }
}

/// A token's window with the hits it gathered: everything its summary says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSummary {
    pub token_id: TokenId,
    /// The summary's message id: with the channel, unique among deliveries.
    pub id: String,
    /// When its first hit was received (unix ms).
    pub opened_at: i64,
    /// The token's cooldown end as of the last gathered hit; `None` once the token is gone.
    pub closes_at: Option<i64>,
    pub hits: u64,
    pub first_event_time: i64,
    pub last_event_time: i64,
    /// The last hit gathered: the summary shows its details.
    pub last_hit_id: String,
    pub addresses: Distinct,
    pub events: Distinct,
    /// The last hit itself, read when the window is closed (`None` if retention removed it).
    pub last_hit: Option<HitRecord>,
    /// The uses past the budget of stored hits, counted here and not in `hits`.
    pub folded: Folded,
}

impl WindowSummary {
    /// A window that has gathered `first` alone.
    pub fn starting(token_id: TokenId, id: String, first: &WindowHit) -> Self {
        let mut w = Self {
            token_id,
            id,
            opened_at: first.received_at,
            closes_at: None,
            hits: 0,
            first_event_time: first.event_time,
            last_event_time: first.event_time,
            last_hit_id: first.hit_id.clone(),
            addresses: Distinct::default(),
            events: Distinct::default(),
            last_hit: None,
            folded: Folded::default(),
        };
        w.gather(first);
        w
    }

    /// The last hit, or, if retention removed it, what the window kept of it.
    pub fn last_hit_or_stand_in(&self) -> HitRecord {
        self.last_hit.clone().unwrap_or_else(|| HitRecord {
            id: self.last_hit_id.clone(),
            token_id: self.token_id.clone(),
            event_id: String::new(),
            event_time: self.last_event_time,
            received_at: self.last_event_time,
            event_name: self.events.values.last().cloned().unwrap_or_default(),
            event_source: String::new(),
            region: String::new(),
            source_ip: self.addresses.values.last().cloned().unwrap_or_default(),
            user_agent: String::new(),
            error_code: None,
            error_message: None,
            account_id: None,
            access_key_id: None,
            tls_host: None,
            vpc_endpoint_id: None,
            request_id: None,
            path: String::new(),
            note: None,
            suppressed: None,
            raw: String::new(),
        })
    }

    /// Counts one more hit.
    pub fn gather(&mut self, hit: &WindowHit) {
        self.hits += 1;
        self.first_event_time = self.first_event_time.min(hit.event_time);
        self.last_event_time = self.last_event_time.max(hit.event_time);
        self.last_hit_id.clone_from(&hit.hit_id);
        self.addresses.add(&hit.source_ip);
        self.events.add(&hit.event_name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_values_are_bounded_and_the_rest_counted() {
        let mut d = Distinct::default();
        for i in 0..20 {
            d.add(&format!("10.0.0.{}", i % 8));
        }
        assert_eq!(d.values.len(), WINDOW_VALUES);
        // The first five addresses are named; 10.0.0.5 to .7 came twice each.
        assert_eq!(d.others, 6);
    }

    #[test]
    fn encoding_keeps_hostile_values() {
        let mut d = Distinct::default();
        for v in ["", "a\nb", "back\\slash\\n", "plain"] {
            d.add(v);
        }
        d.others = 7;
        let back = Distinct::decode(&d.encode(), 7);
        assert_eq!(back, d);
        assert_eq!(Distinct::decode("", 0), Distinct::default());
    }

    #[test]
    fn a_window_counts_and_spans_its_hits() {
        let hit = |id: &str, t: i64, ip: &str| WindowHit {
            hit_id: id.into(),
            event_time: t,
            received_at: t + 1,
            source_ip: ip.into(),
            event_name: "GetCallerIdentity".into(),
        };
        let mut w = WindowSummary::starting(TokenId::generate(), "w".into(), &hit("a", 50, "x"));
        w.gather(&hit("b", 20, "y"));
        w.gather(&hit("c", 90, "x"));
        assert_eq!((w.hits, w.first_event_time, w.last_event_time), (3, 20, 90));
        assert_eq!(w.last_hit_id, "c");
        assert_eq!(w.addresses.values, ["x", "y"]);
        assert_eq!(w.events.values, ["GetCallerIdentity"]);
    }
}
