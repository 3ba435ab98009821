//! How many requests a group of hits waits for. Under load every connection's next request
//! comes back a moment after its answer, but the next group is taken as soon as the last commit
//! ends, before they are back: the connections then split between alternate groups, and each
//! commit (one fsync on SQLite) carries a part of them. Waiting, briefly, for as many requests
//! as recent groups held lets one commit carry them all again. A lone client's groups hold one
//! request, so it never waits.

/// Groups remembered: a load that falls is forgotten after this many groups, each of which
/// waited at most the writer's linger.
const REMEMBERED: usize = 32;

/// The request counts of the last `REMEMBERED` groups.
#[derive(Debug, Default)]
pub(super) struct Cadence {
    recent: [usize; REMEMBERED],
    next: usize,
}

impl Cadence {
    /// How many requests the next group waits for: the most any recent group held.
    pub(super) fn expected(&self) -> usize {
        self.recent.iter().copied().max().unwrap_or(0)
    }

    /// Notes a group of `requests`.
    pub(super) fn note(&mut self, requests: usize) {
        self.recent[self.next] = requests;
        self.next = (self.next + 1) % REMEMBERED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_expects_the_largest_recent_group_and_forgets_old_ones() {
        let mut c = Cadence::default();
        assert_eq!(c.expected(), 0, "nothing seen: no wait");
        c.note(1);
        assert_eq!(c.expected(), 1);
        c.note(8);
        c.note(3);
        assert_eq!(c.expected(), 8);
        // The group of eight is the second oldest of the remembered ones once these are in.
        for _ in 0..REMEMBERED - 2 {
            c.note(2);
        }
        assert_eq!(c.expected(), 8, "still remembered");
        c.note(2);
        assert_eq!(c.expected(), 3, "the group of eight is forgotten");
        c.note(2);
        assert_eq!(c.expected(), 2);
    }
}
