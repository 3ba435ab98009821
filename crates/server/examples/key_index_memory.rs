//! Bytes per token in the key index: builds an index of N tokens (half live, half tombstones,
//! real-shaped ids and user names) and prints the growth of the process's resident memory.
//! `cargo run --release -p canarykeys-server --example key_index_memory -- 200000`
//! Prints figures only; nothing here is asserted.

use canarykeys_core::names::ordinary_user_name;
use canarykeys_core::{AccessKeyId, AccountId, TokenId};
use canarykeys_server::clock::ManualClock;
use canarykeys_server::services::key_index::KeyIndex;
use canarykeys_server::services::LateEvents;
use canarykeys_store::KeyEntry;

/// Resident memory in bytes (Linux `/proc/self/statm`, pages of 4 KiB).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let account = AccountId::parse("123456789012").expect("an account id");
    let entries: Vec<KeyEntry> = (0..n)
        .map(|i| KeyEntry {
            token_id: TokenId::generate(),
            access_key_id: AccessKeyId::generate_for(account),
            account_id: account,
            username: ordinary_user_name(),
            died_at: (i % 2 == 1).then_some(1_000),
        })
        .collect();
    let before = rss();
    let index = KeyIndex::from_entries(
        &entries,
        &[account],
        LateEvents::default(),
        ManualClock::at(0).shared(),
    );
    let after = rss();
    let (live, dead) = index.counts();
    let grown = after.saturating_sub(before);
    println!(
        "{n} tokens ({live} live, {dead} tombstones): index grew RSS by {:.1} MiB, {} bytes per token",
        grown as f64 / 1_048_576.0,
        grown / n.max(1)
    );
    drop(entries);
}
