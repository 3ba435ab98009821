//! `canarykeys ingest [--dry-run] [--json] FILE…`: runs CloudTrail files (any wrapper, gzipped or
//! not) through the detection pipeline, straight on the configured database. Files are streamed:
//! a file of any size is read in chunks of records, never whole. A file of AWS Health events (one
//! event or a JSON array) records exposures instead; their alerts wait in the outbox for the
//! server to send.

use std::fs::File;
use std::path::{Path, PathBuf};

use canarykeys_core::cloudtrail::ParseError;
use serde::Serialize;

use crate::config::Config;
use crate::services::{DeliveryPath, IngestError, IngestReport, IngestService};
use crate::Services;

#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// Parse and match, but store nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the counts as JSON.
    #[arg(long)]
    json: bool,
    /// CloudTrail files: log files (.json or .json.gz), arrays, single records, NDJSON,
    /// EventBridge events, CloudWatch Logs subscription payloads; or AWS Health events.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Serialize, Default)]
struct Totals {
    files: usize,
    failed_files: usize,
    records: usize,
    parsed: usize,
    skipped: usize,
    matched: usize,
    unknown_keys: usize,
    new_hits: usize,
    duplicates: usize,
    /// Matched records of retired keys (used after their token ended).
    retired: usize,
    /// AWS Health events read, and the exposures they recorded or added to.
    health_events: usize,
    new_exposures: usize,
    updated_exposures: usize,
    dry_run: bool,
}

/// `--json`: the totals, then one result per file.
#[derive(Serialize)]
struct IngestOutput<'a> {
    totals: &'a Totals,
    files: &'a [FileResult],
}

#[derive(Serialize)]
struct FileResult {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<IngestReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Every file is tried; a file that cannot be read or is not CloudTrail is reported and makes the
/// exit status non-zero, but does not stop the others.
pub async fn run(args: IngestArgs, config: &Config) -> anyhow::Result<()> {
    let services = Services::open(config).await?;
    let ingest = services
        .ingest
        .clone()
        .with_exposures(services.exposures(config));
    let mut totals = Totals {
        dry_run: args.dry_run,
        ..Totals::default()
    };
    let mut results = Vec::new();
    for file in &args.files {
        totals.files += 1;
        let name = file.display().to_string();
        let health_max = config.ingest.max_decompressed_bytes;
        let outcome = match ingest_file(&ingest, file, args.dry_run, health_max).await {
            Ok(report) => Ok(report),
            Err(FileError::Read(e)) => Err(format!("cannot read: {e}")),
            Err(FileError::Ingest(IngestError::Parse(e))) => Err(e.to_string()),
            Err(FileError::Ingest(e @ IngestError::Store(_))) => return Err(e.into()),
        };
        match outcome {
            Ok(r) => {
                totals.records += r.records;
                totals.parsed += r.parsed;
                totals.skipped += r.skipped;
                totals.matched += r.matched;
                totals.unknown_keys += r.unknown_keys;
                totals.new_hits += r.new_hits;
                totals.duplicates += r.duplicates;
                totals.retired += r.retired;
                if let Some(h) = &r.health {
                    totals.health_events += h.events;
                    totals.new_exposures += h.new_exposures;
                    totals.updated_exposures += h.updated_exposures;
                    if !args.json {
                        println!(
                            "{name}: {} AWS Health events, {} skipped, {} matched, {} unknown keys, {} new exposures, {} updated exposures",
                            h.events, h.skipped, h.matched, h.unknown_keys, h.new_exposures, h.updated_exposures
                        );
                    }
                } else if !args.json {
                    println!(
                        "{name}: {} records, {} parsed, {} skipped, {} matched, {} new hits, {} duplicates",
                        r.records, r.parsed, r.skipped, r.matched, r.new_hits, r.duplicates
                    );
                    for s in &r.skip_reasons {
                        println!("  skipped #{}: {}", s.index, s.reason);
                    }
                }
                results.push(FileResult {
                    file: name,
                    report: Some(r),
                    error: None,
                });
            }
            Err(e) => {
                totals.failed_files += 1;
                if !args.json {
                    eprintln!("{name}: {e}");
                }
                results.push(FileResult {
                    file: name,
                    report: None,
                    error: Some(e),
                });
            }
        }
    }
    if args.json {
        let out = IngestOutput {
            totals: &totals,
            files: &results,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "total: {} files, {} records, {} parsed, {} skipped, {} matched, {} unknown keys, {} new hits, {} duplicates, {} of retired keys{}",
            totals.files, totals.records, totals.parsed, totals.skipped, totals.matched, totals.unknown_keys,
            totals.new_hits, totals.duplicates, totals.retired, if args.dry_run { " (dry run: nothing stored)" } else { "" }
        );
        if totals.health_events > 0 {
            println!(
                "AWS Health: {} events, {} new exposures, {} updated exposures",
                totals.health_events, totals.new_exposures, totals.updated_exposures
            );
        }
    }
    services.close().await;
    if totals.failed_files > 0 {
        anyhow::bail!(
            "{} of {} files could not be ingested",
            totals.failed_files,
            totals.files
        );
    }
    Ok(())
}

enum FileError {
    Read(std::io::Error),
    Ingest(IngestError),
}

/// Streams one file. AWS Health events are recognised only in a whole document, so a file that
/// is not CloudTrail, and small enough to hold, is read whole and tried as Health events.
async fn ingest_file(
    ingest: &IngestService,
    file: &Path,
    dry_run: bool,
    health_max: usize,
) -> Result<IngestReport, FileError> {
    // Opened once here, so a missing file says why rather than "could not be read".
    let size = File::open(file)
        .and_then(|f| f.metadata())
        .map_err(FileError::Read)?
        .len();
    let owned = file.to_owned();
    let streamed = ingest
        .ingest_stream(move || File::open(&owned), DeliveryPath::Cli, dry_run)
        .await;
    match streamed {
        Err(IngestError::Parse(ParseError::NotCloudTrail(_)))
            if usize::try_from(size).is_ok_and(|n| n <= health_max) =>
        {
            let bytes = std::fs::read(file).map_err(FileError::Read)?;
            ingest
                .ingest(&bytes, Some(DeliveryPath::Cli), dry_run)
                .await
                .map_err(FileError::Ingest)
        }
        other => other.map_err(FileError::Ingest),
    }
}
