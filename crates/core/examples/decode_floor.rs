//! The decode-only floor for file ingest: gunzip and parse a CloudTrail file exactly as
//! `canarykeys ingest` does (streamed, in chunks), and nothing else (no matching, no storage).
//! `cargo run --release -p canarykeys-core --example decode_floor FILE…`

use std::ops::ControlFlow;
use std::time::Instant;

use canarykeys_core::cloudtrail::{self, Limits};

fn main() {
    for path in std::env::args().skip(1) {
        let start = Instant::now();
        let summary = cloudtrail::parse_stream(
            || std::fs::File::open(&path),
            &Limits::default(),
            &mut |_chunk| ControlFlow::Continue(()),
        )
        .expect("the file parses");
        let secs = start.elapsed().as_secs_f64();
        let n = summary.records + summary.skipped;
        println!(
            "decode floor: {path}: {n} records in {secs:.3} s ({:.0} records/s)",
            n as f64 / secs
        );
    }
}
