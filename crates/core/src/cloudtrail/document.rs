//! The top level of an input, walked with serde's visitors so that no tree of the whole document
//! is built: the items of `Records` (or of a top-level array) are captured one at a time as raw
//! text and judged at once, and only the members of a small top-level object are kept.
//!
//! Two drivers share the visitor: [`in_memory`] over a byte slice (the ingest endpoint's bodies),
//! and [`stream`] over a reader (trail files and the CLI), which never holds more than one item
//! and the chunk being filled. When the input is not one JSON document it is read again, from
//! the start, as NDJSON; a stream can be read again only while nothing has been handed on.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::marker::PhantomData;
use std::ops::Deref;

use flate2::bufread::MultiGzDecoder;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::decode::{is_gzip, Meter, Metered, Source};
use super::detect::{not_cloudtrail, Ctx};
use super::fields;
use super::{Format, ParseError};

/// Read granularity of a stream (also the precision of the per-item cap).
const BUFFER: usize = 64 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the top-level value turned out to be.
enum Top {
    Format(Format),
    /// A string, number, boolean or null.
    Scalar,
}

/// Why reading the input as one JSON document failed.
enum DocError {
    /// Not one JSON document: try NDJSON.
    Syntax,
    Parse(ParseError),
}

/// Reads a whole in-memory input: `data` is gunzipped, with any BOM and surrounding ASCII
/// whitespace removed, and not empty.
pub(super) fn in_memory(data: &[u8], ctx: &mut Ctx) -> Result<Format, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(data);
    // Items are borrowed from `data`: one that is not built costs no copy.
    let top = TopSeed::<&RawValue>::new(ctx)
        .deserialize(&mut de)
        .and_then(|top| de.end().map(|()| top));
    match top {
        Ok(Top::Format(format)) => Ok(format),
        Ok(Top::Scalar) => Err(scalar()),
        Err(_) => match ctx.error.take() {
            Some(e) => Err(e),
            None => {
                ctx.restart();
                ctx.ndjson(data, usize::MAX, |_| ParseError::NotJson)
            }
        },
    }
}

fn scalar() -> ParseError {
    not_cloudtrail("a JSON value that is not an object or an array")
}

/// Reads an input from readers `open` makes (each read starts from the beginning). Returns the
/// format and whether the input was gzip.
pub(super) fn stream<R: Read>(
    open: &mut dyn FnMut() -> std::io::Result<R>,
    ctx: &mut Ctx,
    meter: &Meter,
) -> Result<(Format, bool), ParseError> {
    let source = open().map_err(|_| ParseError::Unreadable)?;
    let (mut input, gzipped) = open_input(source, meter)?;
    let io = |e: std::io::Error| io_error(&e, meter, gzipped);
    let outcome = {
        let mut de = serde_json::Deserializer::from_reader(&mut input);
        // A reader's items cannot be borrowed: each is copied out as it is read.
        match TopSeed::<Box<RawValue>>::new(ctx).deserialize(&mut de) {
            Ok(Top::Format(format)) => Ok(Some(format)),
            Ok(Top::Scalar) => de.end().map(|()| None),
            Err(e) => Err(e),
        }
    };
    let outcome = match outcome {
        Ok(Some(format)) => {
            // Only ASCII whitespace may follow the document (serde would read no further).
            meter.mark(ctx.budget.limit());
            match rest_is_blank(&mut input).map_err(io)? {
                true => Ok(format),
                false => Err(DocError::Syntax),
            }
        }
        Ok(None) => Err(DocError::Parse(scalar())),
        Err(e) => Err(match ctx.error.take() {
            Some(parse) => DocError::Parse(parse),
            None if e.is_io() => DocError::Parse(io_error_of(meter, gzipped)),
            None => DocError::Syntax,
        }),
    };
    match outcome {
        Ok(format) => Ok((format, gzipped)),
        Err(DocError::Parse(e)) => Err(e),
        // Records already handed on cannot be taken back to read the input another way.
        Err(DocError::Syntax) if ctx.flushed => Err(ParseError::NotJson),
        Err(DocError::Syntax) => {
            ctx.restart();
            let source = open().map_err(|_| ParseError::Unreadable)?;
            let (input, _) = open_input(source, meter)?;
            let format = ctx.ndjson(input, meter.record_cap, io)?;
            Ok((format, gzipped))
        }
    }
}

type Input<'m> = BufReader<Metered<'m, Box<dyn Read + 'm>>>;

/// Gunzips if the source starts with gzip's magic bytes, and skips a byte-order mark (Windows
/// tools write one; it carries no meaning) and leading whitespace.
fn open_input<'m, R: Read + 'm>(
    source: R,
    meter: &'m Meter,
) -> Result<(Input<'m>, bool), ParseError> {
    let mut raw = BufReader::with_capacity(
        BUFFER,
        Source {
            inner: source,
            meter,
        },
    );
    let head = raw.fill_buf().map_err(|_| ParseError::Unreadable)?;
    let gzipped = is_gzip(head);
    let inner: Box<dyn Read + 'm> = if gzipped {
        Box::new(MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut input = BufReader::with_capacity(BUFFER, Metered { inner, meter });
    let io = |e: std::io::Error| io_error(&e, meter, gzipped);
    if input.fill_buf().map_err(io)?.starts_with(BOM) {
        input.consume(BOM.len());
    }
    loop {
        let buf = input.fill_buf().map_err(io)?;
        if buf.is_empty() {
            return Err(ParseError::Empty);
        }
        let blank = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let more = blank == buf.len();
        input.consume(blank);
        if !more {
            return Ok((input, gzipped));
        }
    }
}

fn rest_is_blank(input: &mut impl BufRead) -> std::io::Result<bool> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(true);
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        let n = buf.len();
        input.consume(n);
    }
}

fn io_error(_: &std::io::Error, meter: &Meter, gzipped: bool) -> ParseError {
    io_error_of(meter, gzipped)
}

/// What a failed read of a stream means, from what the readers noted.
fn io_error_of(meter: &Meter, gzipped: bool) -> ParseError {
    if meter.over_cap.get() {
        ParseError::RecordTooLarge { limit: meter.cap() }
    } else if meter.source_failed.get() || !gzipped {
        ParseError::Unreadable
    } else {
        ParseError::BadGzip
    }
}

/// How a list item's text is captured: `&RawValue` borrowed from an input in memory, or
/// `Box<RawValue>` copied out of a reader.
trait Capture<'de>: Deserialize<'de> + Deref<Target = RawValue> {}

impl<'de, C: Deserialize<'de> + Deref<Target = RawValue>> Capture<'de> for C {}

struct TopSeed<'c, 'a, C> {
    ctx: &'c mut Ctx<'a>,
    capture: PhantomData<C>,
}

impl<'c, 'a, C> TopSeed<'c, 'a, C> {
    fn new(ctx: &'c mut Ctx<'a>) -> Self {
        Self {
            ctx,
            capture: PhantomData,
        }
    }
}

impl<'de, C: Capture<'de>> DeserializeSeed<'de> for TopSeed<'_, '_, C> {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

/// Scalars where a container was expected: `$on` says what they mean.
macro_rules! scalars {
    ($on:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            $on(self)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            $on(self)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            $on(self)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            $on(self)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            $on(self)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            $on(self)
        }
    };
}

impl<'de, C: Capture<'de>> Visitor<'de> for TopSeed<'_, '_, C> {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON document")
    }

    scalars!(|_| Ok(Top::Scalar));

    /// A JSON array of records.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        let ctx = self.ctx;
        let mut index = 0;
        loop {
            ctx.element();
            let Some(raw) = seq.next_element::<C>()? else {
                break;
            };
            let f = fields::read(raw.get());
            ctx.item(index, &raw, f).map_err(|e| ctx.fail(e))?;
            index += 1;
        }
        ctx.end_list(index > 0, "a JSON array without CloudTrail records")
            .map_err(|e| ctx.fail(e))?;
        Ok(Top::Format(Format::Array))
    }

    /// An object: `Records` is streamed; every other member is kept (they are few and small in
    /// every wrapper) and judged once the object ends.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let ctx = self.ctx;
        let mut members: Vec<(String, Box<RawValue>)> = Vec::new();
        let mut kept = 0usize;
        let mut records = None;
        loop {
            ctx.member();
            let Some(key) = map.next_key::<String>()? else {
                break;
            };
            let awslogs = members.iter().any(|(k, _)| k == "awslogs");
            if key == "Records" {
                // Both would be read differently, and no producer writes both.
                if records.is_some() || awslogs {
                    let why = "an object with more than one list of records";
                    return Err(ctx.fail(not_cloudtrail(why)));
                }
                records = Some(map.next_value_seed(RecordsSeed::<C> {
                    ctx: &mut *ctx,
                    capture: PhantomData,
                })?);
                continue;
            }
            if key == "awslogs" && records.is_some() {
                let why = "an object with more than one list of records";
                return Err(ctx.fail(not_cloudtrail(why)));
            }
            let value: Box<RawValue> = map.next_value()?;
            kept += key.len() + value.get().len();
            if kept > ctx.budget.limit() {
                let limit = ctx.budget.limit();
                return Err(ctx.fail(ParseError::TooLarge { limit }));
            }
            members.push((key, value));
        }
        match records {
            Some(format) => Ok(Top::Format(format)),
            None => ctx
                .object(members)
                .map(Top::Format)
                .map_err(|e| ctx.fail(e)),
        }
    }
}

/// The value of `Records`: a log file's records, or a Kinesis batch.
struct RecordsSeed<'c, 'a, C> {
    ctx: &'c mut Ctx<'a>,
    capture: PhantomData<C>,
}

impl<'de, C: Capture<'de>> DeserializeSeed<'de> for RecordsSeed<'_, '_, C> {
    type Value = Format;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Format, D::Error> {
        d.deserialize_any(self)
    }
}

fn not_a_list<E: de::Error, C>(seed: RecordsSeed<C>) -> Result<Format, E> {
    Err(seed
        .ctx
        .fail(not_cloudtrail("a Records field that is not a list")))
}

impl<'de, C: Capture<'de>> Visitor<'de> for RecordsSeed<'_, '_, C> {
    type Value = Format;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of records")
    }

    scalars!(not_a_list);

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Format, A::Error> {
        not_a_list(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Format, A::Error> {
        let ctx = self.ctx;
        let (mut next, mut any, mut kinesis) = (0, false, false);
        loop {
            ctx.element();
            let Some(raw) = seq.next_element::<C>()? else {
                break;
            };
            any = true;
            ctx.records_item(&mut next, &raw, &mut kinesis)
                .map_err(|e| ctx.fail(e))?;
        }
        if kinesis {
            return Ok(Format::KinesisLogs);
        }
        ctx.end_list(any, "a log file whose Records are not CloudTrail records")
            .map_err(|e| ctx.fail(e))?;
        Ok(Format::LogFile)
    }
}
