//! The decode-only floor for file ingest: gunzip and parse a CloudTrail file exactly as
//! `canarykeys ingest` does, and nothing else (no matching, no storage).
//! `cargo run --release -p canarykeys-core --example decode_floor FILE…`

use std::time::Instant;

use canarykeys_core::cloudtrail::{self, Limits};

fn main() {
    let limits = Limits {
        max_decompressed_bytes: usize::MAX,
        ..Limits::DEFAULT
    };
    for path in std::env::args().skip(1) {
        let start = Instant::now();
        let bytes = std::fs::read(&path).expect("the file is readable");
        let parsed = cloudtrail::parse(&bytes, &limits).expect("the file parses");
        let secs = start.elapsed().as_secs_f64();
        let n = parsed.records.len() + parsed.skipped.len();
        println!(
            "decode floor: {path}: {n} records in {secs:.3} s ({:.0} records/s)",
            n as f64 / secs
        );
    }
}
