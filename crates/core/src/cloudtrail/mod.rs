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
//!
//! No tree of the whole document is built: items are read one at a time (serde visitors over
//! the top level, see `document.rs`), each keeps its JSON text ([`RawJson`]) and the typed
//! fields matching needs. [`parse`] takes a whole input held in memory, bounded by
//! [`Limits::max_decompressed_bytes`]; [`parse_stream`] reads an input of any size from a
//! reader and hands its records on in [`Chunk`]s, holding one chunk and one item at a time.

mod decode;
mod detect;
mod document;
mod fields;
mod gate;
mod ndjson;
mod raw;
mod record;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::ops::ControlFlow;

pub use gate::{Gate, Open, Who};
pub use raw::RawJson;
pub use record::{Identity, Record};

/// Bounds on the work one input may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest input accepted, and the most bytes that all gunzip and base64 expansions of
    /// one input may produce together (one shared budget, so nesting cannot multiply it).
    /// For [`parse`], the largest input accepted.
    ///
    /// For [`parse_stream`], the input itself is not bounded (a trail file may be any size);
    /// this bounds the gunzip and base64 expansions inside each of its items instead, and the
    /// members of a top-level object other than `Records`.
    pub max_decompressed_bytes: usize,
    /// For [`parse_stream`]: the largest item of a list (a record, an NDJSON line). CloudTrail
    /// records are at most a few hundred KiB; a larger item ends the stream as an error.
    pub max_record_bytes: usize,
}

impl Limits {
    /// The default bounds.
    pub const DEFAULT: Self = Self {
        max_decompressed_bytes: 32 * 1024 * 1024,
        max_record_bytes: 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
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
    /// Usable records the [`Gate`] refused: counted, not built.
    pub gated: usize,
    pub skipped: Vec<Skip>,
}

/// Records and skips of a stream, in input order, as [`parse_stream`] hands them on.
#[derive(Debug, Default)]
pub struct Chunk {
    pub records: Vec<Record>,
    /// Usable records the [`Gate`] refused: counted, not built.
    pub gated: usize,
    pub skipped: Vec<Skip>,
}

/// A chunk is handed on at this many records ...
pub const CHUNK_RECORDS: usize = 1000;
/// ... or this many bytes of record text, whichever comes first.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// What [`parse_stream`] found, once the input is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub format: Format,
    pub gzipped: bool,
    /// Usable records, those the gate refused included.
    pub records: usize,
    pub skipped: usize,
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
    #[error("an item of the input is larger than the limit of {limit} bytes")]
    RecordTooLarge { limit: usize },
    #[error("input could not be read")]
    Unreadable,
    #[error("reading was stopped by the consumer of the records")]
    Interrupted,
}

impl ParseError {
    /// True for [`ParseError::TooLarge`] and [`ParseError::RecordTooLarge`], which an HTTP
    /// endpoint maps to 413.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. } | Self::RecordTooLarge { .. })
    }
}

/// Parses CloudTrail data in any supported format; see the module docs for the detection order.
///
/// Items that are not usable records are listed in [`Parsed::skipped`] with a reason; only an
/// input with nothing CloudTrail-like in it at all is an error.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
    parse_gated(bytes, limits, &Open)
}

/// [`parse`], building only the usable records `gate` lets through (the others are counted in
/// [`Parsed::gated`]).
pub fn parse_gated(bytes: &[u8], limits: &Limits, gate: &dyn Gate) -> Result<Parsed, ParseError> {
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
    // A byte-order mark is not JSON, but Windows tools write one; it carries no meaning.
    let data = data
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(data)
        .trim_ascii();
    if data.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut all = Chunk::default();
    let mut keep = |chunk: Chunk| {
        all = chunk;
        ControlFlow::Continue(())
    };
    // One chunk: an input that fails as a whole hands nothing on.
    let mut ctx = detect::Ctx::new(&mut keep, gate, None, budget, None);
    let format = document::in_memory(data, &mut ctx)?;
    ctx.flush()?;
    drop(ctx);
    Ok(Parsed {
        format,
        gzipped,
        records: all.records,
        gated: all.gated,
        skipped: all.skipped,
    })
}

/// Parses an input of any size from readers that `open` makes, handing its records and skips on
/// to `each` in input order, in chunks of at most [`CHUNK_RECORDS`] records. `open` is called
/// again (to read from the start) only when the input turns out not to be one JSON document
/// and nothing has been handed on yet, to read it as NDJSON.
///
/// Memory is bounded by one chunk and one item ([`Limits::max_record_bytes`]), never by the
/// input. An error after chunks were handed on (a truncated file) does not take them back: the
/// caller decides what a partly read input means. `each` returning `Break` stops the reading
/// with [`ParseError::Interrupted`].
pub fn parse_stream<R: Read>(
    open: impl FnMut() -> std::io::Result<R>,
    limits: &Limits,
    each: &mut dyn FnMut(Chunk) -> ControlFlow<()>,
) -> Result<Summary, ParseError> {
    parse_stream_gated(open, limits, &Open, each)
}

/// [`parse_stream`], building only the usable records `gate` lets through (each chunk counts
/// the others in [`Chunk::gated`]).
pub fn parse_stream_gated<R: Read>(
    mut open: impl FnMut() -> std::io::Result<R>,
    limits: &Limits,
    gate: &dyn Gate,
    each: &mut dyn FnMut(Chunk) -> ControlFlow<()>,
) -> Result<Summary, ParseError> {
    let meter = decode::Meter::new(limits.max_record_bytes);
    let flush_at = detect::FlushAt {
        records: CHUNK_RECORDS,
        bytes: CHUNK_BYTES,
    };
    let budget = decode::Budget::new(limits.max_decompressed_bytes);
    let mut ctx = detect::Ctx::new(each, gate, Some(flush_at), budget, Some(&meter));
    let (format, gzipped) = document::stream(&mut open, &mut ctx, &meter)?;
    ctx.flush()?;
    Ok(Summary {
        format,
        gzipped,
        records: ctx.records,
        skipped: ctx.skipped,
    })
}
