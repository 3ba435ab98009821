//! CloudTrail input parsing: takes CloudTrail data in any of the wrappers AWS (and common tools)
//! deliver it in, detects which one it is, and yields normalised [`Record`]s.
//!
//! Every byte is attacker-controlled: anyone who holds a decoy key can shape the fields of the
//! records it causes, and anyone who can reach an ingest endpoint can send arbitrary bytes. So the
//! parser never panics, bounds every expansion (gzip, base64) by [`Limits`], and reports problems
//! with fixed texts that never echo the input.
//!
//! Formats, detected in this order after an optional gzip layer (magic bytes `1f 8b`):
//!
//! | input | [`Format`] |
//! |---|---|
//! | `{"awslogs":{"data":"<base64 gzip>"}}` (Lambda subscription event) | `LogsLambdaEvent` |
//! | `{"Records":[{"kinesis":{"data":"<base64 gzip>"}}, …]}` | `KinesisLogs` |
//! | `{"Records":[record, …]}` (the trail's S3 log file) | `LogFile` |
//! | `{"messageType":…, "logEvents":[…]}` (decoded subscription payload) | `LogsSubscription` |
//! | `{"detail-type":"… via CloudTrail", "detail":{record}}` | `EventBridge` |
//! | `{record}` | `Record` |
//! | `[record, …]` | `Array` |
//! | one JSON value per line | `Ndjson` |
//!
//! Inside every list (records, lines, log events) an EventBridge envelope whose `detail-type`
//! ends in "via CloudTrail" is unwrapped to its `detail`, because EventBridge rules are often
//! pointed at a log group or a Firehose stream, which then carry envelopes instead of records.

mod decode;
mod detect;
mod record;
#[cfg(test)]
mod tests;

pub use record::{Identity, Record};

/// Bounds on the work one input may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest input accepted, and the most bytes that all gunzip and base64 expansions of
    /// one input may produce together (one shared budget, so nesting cannot multiply it).
    pub max_decompressed_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The wrapper the records arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A CloudTrail log file as the trail writes it to S3: `{"Records":[…]}`.
    LogFile,
    /// A JSON array of records.
    Array,
    /// One bare record object.
    Record,
    /// One JSON value per line; blank lines are allowed.
    Ndjson,
    /// An EventBridge event whose `detail` is the record.
    EventBridge,
    /// A decoded CloudWatch Logs subscription payload (`messageType`, `logEvents`).
    LogsSubscription,
    /// The Lambda form of a subscription: `{"awslogs":{"data":…}}`.
    LogsLambdaEvent,
    /// Subscription payloads delivered through Kinesis Data Streams.
    KinesisLogs,
}

/// The result of parsing one input.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub format: Format,
    /// Whether the input itself was gzip. The gzip inside `awslogs.data` or `kinesis.data` is
    /// part of those formats and does not count.
    pub gzipped: bool,
    pub records: Vec<Record>,
    pub skipped: Vec<Skip>,
}

/// One item of the input that did not become a record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skip {
    /// 0-based position of the item: in `Records`/the array for log files and arrays, the line
    /// number (blank lines included) for NDJSON, in `logEvents` for subscription payloads, 0 for
    /// the single record of `Record` and `EventBridge`. For Kinesis it counts log events across
    /// the whole batch, a Kinesis record that could not be decoded taking one position.
    pub index: usize,
    /// Why, in a fixed text that never contains input.
    pub reason: String,
}

/// Failures of the whole input. The texts are fixed and never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("input expands to more than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("input looks gzip-compressed but is not valid gzip")]
    BadGzip,
    #[error("embedded data is not valid base64")]
    BadBase64,
    #[error("input is neither JSON nor NDJSON")]
    NotJson,
    #[error("input is not CloudTrail data: {0}")]
    NotCloudTrail(String),
    #[error("input is empty")]
    Empty,
}

impl ParseError {
    /// True for [`ParseError::TooLarge`], which an HTTP endpoint maps to 413.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }
}

/// Parses CloudTrail data in any supported format; see the module docs for the detection order.
///
/// Items that are not usable records are listed in [`Parsed::skipped`] with a reason; only an
/// input with nothing CloudTrail-like in it at all is an error.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
    let mut budget = decode::Budget::new(limits.max_decompressed_bytes);
    budget.check_input(bytes)?;
    let gzipped = decode::is_gzip(bytes);
    let unzipped;
    let data = if gzipped {
        unzipped = budget.gunzip(bytes)?;
        &unzipped[..]
    } else {
        bytes
    };
    let (format, out) = detect::document(data, &mut budget)?;
    Ok(Parsed {
        format,
        gzipped,
        records: out.records,
        skipped: out.skipped,
    })
}
