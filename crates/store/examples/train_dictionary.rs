//! Trains the zstd dictionary the store packs raw CloudTrail records with
//! (`crates/store/data/cloudtrail-v1.zdict`), from the vendored corpus (`testdata/cloudtrail`).
//!
//! `cargo run --release -p canarykeys-store --example train_dictionary -- [SIZE_KIB] [OUT]`
//!
//! It trains on every other record and prints the packed size of the records it did not see
//! beside plain zstd, so the figure is not flattered by records the dictionary learned by heart.
//! A dictionary already shipped must never be replaced in place: rows packed with it need it to
//! read back. A new one gets a new form byte in `packed.rs`.

use std::path::{Path, PathBuf};

use canarykeys_core::cloudtrail::{parse, Limits};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus directory")
        .map(|e| e.expect("corpus entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "LICENSES") {
                continue;
            }
            walk(&path, out);
        } else {
            // The root's README, SOURCES and counts do not parse and are left out below.
            out.push(path);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let size_kib: usize = args
        .next()
        .map_or(32, |s| s.parse().expect("SIZE_KIB is a number"));
    let root = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/cloudtrail"
    ));
    let out = args.next().map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/cloudtrail-v1.zdict"
            ))
        },
        PathBuf::from,
    );
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut records = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).expect("corpus file");
        if let Ok(parsed) = parse(&bytes, &Limits::default()) {
            records.extend(parsed.records.iter().map(|r| r.raw.compact()));
        }
    }
    let (train, held): (Vec<_>, Vec<_>) = records.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let train: Vec<&[u8]> = train.iter().map(|(_, r)| r.as_bytes()).collect();
    let dictionary =
        zstd::dict::from_samples(&train, size_kib * 1024).expect("zstd trains the dictionary");
    let level = 3;
    let (mut raw, mut plain, mut packed) = (0usize, 0usize, 0usize);
    let mut with_dict = zstd::bulk::Compressor::with_dictionary(level, &dictionary).unwrap();
    for (_, record) in &held {
        raw += record.len();
        plain += zstd::bulk::compress(record.as_bytes(), level)
            .unwrap()
            .len();
        packed += with_dict.compress(record.as_bytes()).unwrap().len();
    }
    let n = held.len().max(1);
    println!(
        "{} records ({} trained on); held-out mean bytes: raw {}, zstd {}, zstd+dictionary {} ({} KiB)",
        records.len(),
        train.len(),
        raw / n,
        plain / n,
        packed / n,
        dictionary.len() / 1024
    );
    std::fs::write(&out, &dictionary).expect("write the dictionary");
    println!("wrote {}", out.display());
}
