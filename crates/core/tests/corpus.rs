//! Runs every file of the shared CloudTrail corpus (real and AWS-published records in every
//! wrapper, see its README.md) through `cloudtrail::parse`, and pins what comes out: files per
//! format, records, skips and their reasons, and the userIdentity.type totals of the corpus
//! README. Then it mangles every file (truncation, byte flips) and checks nothing panics.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use canarykeys_core::cloudtrail::{parse, Format, Limits, Parsed};
use flate2::{write::GzEncoder, Compression};
use serde_json::Value;

/// The corpus is vendored in the repository (`testdata/cloudtrail`, licences in its SOURCES.md). A missing corpus
/// fails the test: a pass that checked nothing would hide a broken CI layout.
fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("CANARYKEYS_CORPUS_DIR").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../testdata/cloudtrail"
            ))
        },
        PathBuf::from,
    );
    assert!(
        dir.join("README.md").is_file(),
        "CloudTrail corpus not found at {}: check out the shared corpus beside the repository, \
         or set CANARYKEYS_CORPUS_DIR to its directory",
        dir.display()
    );
    dir
}

/// Every data file (the ones in subdirectories), sorted by relative path, with its bytes.
/// `LICENSES/` holds the licence texts, not records.
fn corpus_files() -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && path.file_name().is_some_and(|n| n == "LICENSES") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.parent() != Some(root) {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    let root = corpus_dir();
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    files
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Skips that are real CloudTrail records with a required field missing or unusable, as opposed
/// to items that are not CloudTrail records at all (log lines of other programs).
fn is_cloudtrail_skip(reason: &str) -> bool {
    reason == "CloudTrail Insights event, not an API call"
        || reason.starts_with("CloudTrail record names no identity")
}

/// The raw item a skip points at, found independently of the parser: this also checks that skip
/// indices mean what `Skip::index` documents.
fn skipped_item(format: Format, bytes: &[u8], index: usize) -> Value {
    let doc = || serde_json::from_slice::<Value>(bytes).unwrap();
    let item = match format {
        Format::LogFile => doc()["Records"][index].take(),
        Format::Array => doc()[index].take(),
        Format::Record => doc(),
        Format::EventBridge => doc()["detail"].take(),
        Format::Ndjson => {
            let line = bytes.split(|&b| b == b'\n').nth(index).unwrap();
            serde_json::from_slice(line).unwrap()
        }
        Format::LogsSubscription => {
            serde_json::from_str(doc()["logEvents"][index]["message"].as_str().unwrap()).unwrap()
        }
        other => panic!("no CloudTrail skips expected in {other:?}"),
    };
    assert!(item.is_object(), "skip {index} points at a non-object");
    item
}

fn count<K: Ord>(map: &mut BTreeMap<K, usize>, key: K) {
    *map.entry(key).or_default() += 1;
}

fn map<K: Ord + Clone>(pairs: &[(K, usize)]) -> BTreeMap<K, usize> {
    pairs.iter().cloned().collect()
}

fn identity_type(raw: &Value) -> String {
    match raw.get("userIdentity") {
        None => "(no userIdentity field)".into(),
        Some(u) => u
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("(userIdentity without type)")
            .into(),
    }
}

#[test]
fn every_corpus_file_parses_to_the_pinned_counts() {
    let files = corpus_files();
    let mut files_per_format = BTreeMap::new();
    let mut records_per_format = BTreeMap::new();
    let mut skips_per_format = BTreeMap::new();
    let mut skip_reasons = BTreeMap::new();
    let mut fallbacks: BTreeMap<(Format, String), usize> = BTreeMap::new();
    let mut parsed_types = BTreeMap::new();
    // Every CloudTrail record of the corpus, usable or skipped, for the README's tables.
    let mut all_records: Vec<Value> = Vec::new();

    for (name, bytes) in &files {
        let p: Parsed = parse(bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!p.gzipped, "{name}");
        let zipped =
            parse(&gz(bytes), &Limits::default()).unwrap_or_else(|e| panic!("{name}.gz: {e}"));
        assert!(zipped.gzipped && zipped.format == p.format, "{name}.gz");
        assert_eq!(
            (zipped.records.len(), &zipped.skipped),
            (p.records.len(), &p.skipped),
            "{name}.gz"
        );

        count(&mut files_per_format, p.format);
        *records_per_format.entry(p.format).or_default() += p.records.len();
        *skips_per_format.entry(p.format).or_default() += p.skipped.len();
        for r in &p.records {
            assert!(!r.event_id.is_empty());
            let raw = r.raw.to_value();
            // 2014-01-01 .. 2027-01-01: the corpus spans 2014 (docs examples) to 2024. Only
            // records with no usable time field at all leave it to the arrival time.
            let t = r.event_time.unwrap_or(1_388_534_400_000);
            assert!(
                (1_388_534_400_000..1_798_761_600_000).contains(&t),
                "{name}: {t}"
            );
            for f in &r.fallbacks {
                count(&mut fallbacks, (p.format, (*f).to_owned()));
            }
            assert_eq!(
                r.identity.kind.as_deref(),
                raw["userIdentity"]["type"].as_str(),
                "{name}"
            );
            assert_eq!(r.error_code.as_deref(), raw["errorCode"].as_str(), "{name}");
            assert_eq!(
                r.source_ip.as_deref(),
                raw["sourceIPAddress"].as_str(),
                "{name}"
            );
            count(&mut parsed_types, identity_type(&raw));
            all_records.push(raw);
        }
        let ascending = p.skipped.windows(2).all(|w| w[0].index < w[1].index);
        assert!(
            ascending,
            "{name}: skip indices are distinct and in input order"
        );
        for s in &p.skipped {
            count(&mut skip_reasons, (p.format, s.reason.clone()));
            if is_cloudtrail_skip(&s.reason) {
                all_records.push(skipped_item(p.format, bytes, s.index));
            }
        }
    }

    // 137 files in events/, 12 in eventbridge/, 6 in subscription/ (corpus README).
    assert_eq!(files.len(), 155);
    use Format::*;
    #[rustfmt::skip]
    let formats = [
        // (format, files, records, skipped)
        (LogFile, 65, 2912, 2),      // 55 invictus-sigma-aws + 8 awsdocs + 2 trailscraper log files
        (Array, 35, 310, 0),         // stratus-red-team detonation logs
        (Record, 36, 35, 1),         // cloud-custodian, awsdocs, aws-lambda-rust-runtime single records
        (Ndjson, 1, 103, 0),         // the OTRF Logstash export (see below)
        (EventBridge, 12, 12, 0),
        (LogsSubscription, 3, 4, 0), // datadog DATA_MESSAGE (4 records) + 2 CONTROL_MESSAGEs (none)
        (LogsLambdaEvent, 2, 0, 5),  // awslogs events of plain Lambda log lines, not CloudTrail
        (KinesisLogs, 1, 0, 6),      // likewise, delivered through Kinesis
    ];
    let pick = |n: fn(&(Format, usize, usize, usize)) -> usize| -> BTreeMap<Format, usize> {
        formats.iter().map(|f| (f.0, n(f))).collect()
    };
    assert_eq!(files_per_format, pick(|f| f.1));
    assert_eq!(records_per_format, pick(|f| f.2));
    assert_eq!(skips_per_format, pick(|f| f.3));

    #[rustfmt::skip]
    let reasons = [
        // awsdocs block 09: an Insights start/end pair; eventName/eventSource sit in insightDetails.
        (LogFile, "CloudTrail Insights event, not an API call", 2),
        // cloud-custodian bedrock-create-customization-jobs: a trimmed fixture with no
        // userIdentity (nor eventID, eventTime): nothing to match a token by.
        (Record, "CloudTrail record names no identity (no userIdentity)", 1),
        // aws-lambda-go's docs sample (2) and powertools' captured Lambda logs (2 lines + 1 JSON
        // structured log line).
        (LogsLambdaEvent, "log event is not a CloudTrail record (plain text)", 4),
        (LogsLambdaEvent, "not a CloudTrail record (no eventSource)", 1),
        // powertools' Kinesis sample: START/END/REPORT lines of two invocations.
        (KinesisLogs, "log event is not a CloudTrail record (plain text)", 6),
    ];
    let reasons: BTreeMap<(Format, String), usize> = reasons
        .iter()
        .map(|&(f, r, n)| ((f, r.to_owned()), n))
        .collect();
    assert_eq!(skip_reasons, reasons);
    // What stood in for missing fields: the awsdocs samples without eventID (blocks 02-06), and
    // the OTRF Logstash export, which renamed eventTime to @timestamp on every line.
    let want: BTreeMap<(Format, String), usize> = [
        (
            (
                LogFile,
                "eventID missing: deduplicated by a hash of the record",
            ),
            5,
        ),
        (
            (Ndjson, "eventTime missing or malformed: @timestamp used"),
            103,
        ),
    ]
    .iter()
    .map(|&((f, r), n)| ((f, r.to_owned()), n))
    .collect();
    assert_eq!(fallbacks, want);

    // userIdentity.type of the 3376 usable records, duplicates included.
    #[rustfmt::skip]
    let types = map(&[
        ("IAMUser", 3100), ("AssumedRole", 175), ("(userIdentity without type)", 46), ("AWSService", 41),
        ("Root", 10), ("Unknown", 2), ("AWSAccount", 1), ("FederatedUser", 1),
    ].map(|(k, n)| (k.to_owned(), n)));
    assert_eq!(parsed_types, types);

    // The README's 3379 (counts.txt) are CloudTrail records, usable or not: 3268 parsed + 111
    // skipped as incomplete CloudTrail records; the other 11 skips are the Lambda log lines of the
    // subscription samples, which the README does not count as CloudTrail either.
    assert_eq!(all_records.len(), 3379);
    let distinct = readme_distinct(all_records);
    assert_eq!(distinct.len(), 3370);
    let mut types = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut sources = BTreeMap::new();
    for raw in &distinct {
        count(&mut types, identity_type(raw));
        count(
            &mut errors,
            raw.get("errorCode")
                .and_then(Value::as_str)
                .unwrap_or("(none)")
                .to_owned(),
        );
        count(
            &mut sources,
            raw.get("eventSource")
                .and_then(Value::as_str)
                .unwrap_or("(none)")
                .to_owned(),
        );
    }
    // The README table, exactly. It has no "Unknown" row because its dedupe takes the all-zero
    // eventID of the aws-lambda-rust-runtime fixtures as real, folding the two "Unknown"
    // records into the AssumedRole one that shares it (readme_distinct does the same).
    #[rustfmt::skip]
    let readme_types = map(&[
        ("IAMUser", 3098), ("AssumedRole", 172), ("(userIdentity without type)", 46), ("AWSService", 40),
        ("Root", 9), ("(no userIdentity field)", 3), ("AWSAccount", 1), ("FederatedUser", 1),
    ].map(|(k, n)| (k.to_owned(), n)));
    assert_eq!(types, readme_types);
    // The README's errorCode table: its head, and the total of the rest (34 rows in all).
    assert_eq!(errors.len(), 34);
    for (code, n) in [
        ("(none)", 3017),
        ("ThrottlingException", 102),
        ("Client.UnauthorizedOperation", 90),
        ("AccessDenied", 21),
        ("NoSuchBucketPolicy", 14),
    ] {
        assert_eq!(errors[code], n, "{code}");
    }
    // The README's eventSource table lists "aws:kinesis: 2": the two Kinesis envelope records of
    // the powertools sample, which are not CloudTrail (and are never treated as records here).
    // The two records it leaves out are the Insights pair, which has no top-level eventSource.
    assert_eq!((sources.get("aws:kinesis"), sources["(none)"]), (None, 2));
    assert_eq!(
        (sources["ec2.amazonaws.com"], sources["sts.amazonaws.com"]),
        (1066, 89)
    );
}

/// Distinct records the way the corpus README counts them: by eventID, or by whole content
/// where the id is missing or a documentation placeholder ("…EXAMPLE…").
fn readme_distinct(records: Vec<Value>) -> Vec<Value> {
    let mut ids = std::collections::HashSet::new();
    let mut out: Vec<Value> = Vec::new();
    for raw in records {
        let id = raw
            .get("eventID")
            .and_then(Value::as_str)
            .filter(|id| !id.contains("EXAMPLE"));
        let new = match id {
            Some(id) => ids.insert(id.to_owned()),
            None => !out.contains(&raw),
        };
        if new {
            out.push(raw);
        }
    }
    out
}

/// Deterministic pseudo-random numbers (Knuth's MMIX LCG); no dependency, same bytes every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn mangled_corpus_files_never_panic() {
    let mut rng = Lcg(0x00C0_FFEE);
    for (name, bytes) in corpus_files() {
        let zipped = gz(&bytes);
        let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
        for (kind, data) in [("plain", &bytes), ("gzip", &zipped)] {
            let len = data.len();
            for cut in [1, len / 4, len / 2, len * 3 / 4, len.saturating_sub(1)] {
                inputs.push((
                    format!("{kind} cut at {cut}"),
                    data[..cut.min(len)].to_vec(),
                ));
            }
            for variant in 0..4 {
                let mut flipped = data.to_vec();
                for _ in 0..8 {
                    let at = rng.below(len);
                    flipped[at] ^= 1 << rng.below(8);
                }
                inputs.push((format!("{kind} flip variant {variant}"), flipped));
            }
        }
        for (what, input) in inputs {
            let outcome = catch_unwind(AssertUnwindSafe(|| parse(&input, &Limits::default())));
            assert!(outcome.is_ok(), "{name}: parse panicked on {what}");
        }
    }
}

/// Every record id and skip of a parse, in order, for comparing two ways of reading.
fn outline(records: &[canarykeys_core::cloudtrail::Record]) -> Vec<(String, Option<i64>)> {
    records
        .iter()
        .map(|r| (r.event_id.clone(), r.event_time))
        .collect()
}

#[test]
fn every_corpus_file_streams_exactly_as_it_parses() {
    use canarykeys_core::cloudtrail::{parse_stream, Chunk};
    use std::ops::ControlFlow;
    for (name, bytes) in corpus_files() {
        let whole = parse(&bytes, &Limits::default()).unwrap();
        for input in [bytes.clone(), gz(&bytes)] {
            let mut all = Chunk::default();
            let summary = parse_stream(|| Ok(&input[..]), &Limits::default(), &mut |c: Chunk| {
                all.records.extend(c.records);
                all.skipped.extend(c.skipped);
                ControlFlow::Continue(())
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(summary.format, whole.format, "{name}");
            assert_eq!(summary.records, all.records.len(), "{name}");
            assert_eq!(outline(&all.records), outline(&whole.records), "{name}");
            assert_eq!(all.skipped, whole.skipped, "{name}");
            for (a, b) in all.records.iter().zip(&whole.records) {
                assert_eq!(a.raw.get(), b.raw.get(), "{name}");
            }
        }
    }
}
