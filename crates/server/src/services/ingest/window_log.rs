//! Logs proportional to alerts, not to hits. A use that alerts (or goes to the planner) gets its
//! own `decoy key used` line; a use counted into its token's open cooldown window (gathered, or
//! folded) does not. For those, a token gets one line when its window first counts a use, then
//! at most one line per interval with how many more came: a flood of thousands of uses a
//! second writes a line a minute, and the metrics count every use.

use std::collections::HashMap;
use std::sync::Mutex;

use canarykeys_core::TokenId;

/// At most one line per token this often while its window keeps counting uses.
pub const INTERVAL_MS: i64 = 60_000;

/// What one line says: uses counted into `token`'s window since the last line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowLine {
    pub token: TokenId,
    pub uses: u64,
    /// Of `uses`, those folded (counted, not stored one by one).
    pub folded: u64,
    /// Whether this is the first line of the run (the window began counting).
    pub first: bool,
}

#[derive(Default)]
struct Pending {
    since: i64,
    uses: u64,
    folded: u64,
}

/// Per token, uses counted since its last line. A token quiet for two intervals is forgotten,
/// so the map holds only tokens under use.
#[derive(Default)]
pub struct WindowLog {
    pending: Mutex<HashMap<TokenId, Pending>>,
}

impl WindowLog {
    /// Notes one use counted into `token`'s window at `now` (unix ms); returns the line to log,
    /// if one is due.
    pub fn note(&self, token: &TokenId, folded: bool, now: i64) -> Option<WindowLine> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = pending.get_mut(token) else {
            pending.insert(
                token.clone(),
                Pending {
                    since: now,
                    ..Pending::default()
                },
            );
            let line = WindowLine {
                token: token.clone(),
                uses: 1,
                folded: u64::from(folded),
                first: true,
            };
            Self::forget_quiet(&mut pending, now);
            return Some(line);
        };
        p.uses += 1;
        p.folded += u64::from(folded);
        if now - p.since < INTERVAL_MS {
            return None;
        }
        let line = WindowLine {
            token: token.clone(),
            uses: p.uses,
            folded: p.folded,
            first: false,
        };
        *p = Pending {
            since: now,
            ..Pending::default()
        };
        Self::forget_quiet(&mut pending, now);
        Some(line)
    }

    /// Drops tokens with no line for two intervals (swept only when a line is due: rare).
    fn forget_quiet(pending: &mut HashMap<TokenId, Pending>, now: i64) {
        pending.retain(|_, p| now - p.since < 2 * INTERVAL_MS);
    }

    /// Logs `line`: a WARN a SIEM can count, with the token and the numbers as fields.
    pub fn emit(line: &WindowLine, path: &str) {
        if line.first {
            tracing::warn!(token = %line.token, path, "decoy key in use inside its cooldown window; further uses are counted, one line a minute");
        } else {
            tracing::warn!(token = %line.token, uses = line.uses, folded = line.folded, path, "decoy key still in use inside its cooldown window");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_a_line_per_interval_not_per_use() {
        let log = WindowLog::default();
        let token = TokenId::generate();
        let other = TokenId::generate();
        let mut lines = Vec::new();
        // 10,000 uses over 150 s (one every 15 ms), half of them folded.
        for i in 0..10_000i64 {
            lines.extend(log.note(&token, i % 2 == 0, i * 15));
        }
        assert_eq!(lines.len(), 3, "the first use, then one line per minute");
        assert!(lines[0].first);
        assert_eq!((lines[1].uses, lines[2].uses), (4_000, 4_000));
        assert_eq!(lines[1].folded, 2_000);
        assert!(!lines[1].first);
        // The 1,999 uses since: told by the next line due, with that one.
        let line = log.note(&token, false, 180_000).unwrap();
        assert_eq!((line.uses, line.first), (2_000, false));
        // Another token has its own first line; a token quiet for two intervals is forgotten
        // when a line is due, and its next use starts a new run.
        assert!(log.note(&other, false, 400_000).is_some_and(|l| l.first));
        assert!(log.note(&token, false, 400_001).is_some_and(|l| l.first));
    }
}
