//! Bounded decoding: gunzip and base64 that stop at the input's byte budget instead of
//! allocating whatever a crafted payload asks for.

use std::cell::Cell;
use std::io::{ErrorKind, Read};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use flate2::read::MultiGzDecoder;

use super::ParseError;

/// Standard alphabet; padding optional, because some producers strip it and it carries no data.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Read granularity of gunzip. Small enough to keep on the stack, large enough to be fast.
const CHUNK: usize = 16 * 1024;

/// gzip's magic bytes. Checked on every input and every embedded payload, never configured.
pub(super) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The bytes one input may expand into, shared by every gunzip and base64 step of that input,
/// so a payload nested in a payload cannot multiply the limit.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    limit: usize,
    used: usize,
}

impl Budget {
    pub(super) fn new(limit: usize) -> Self {
        Self { limit, used: 0 }
    }

    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.used)
    }

    fn too_large(&self) -> ParseError {
        ParseError::TooLarge { limit: self.limit }
    }

    /// The raw input is held to the same limit, but is not charged: it is already in memory, and
    /// charging it would make a gzip input that is nearly the limit unable to expand at all.
    pub(super) fn check_input(&self, bytes: &[u8]) -> Result<(), ParseError> {
        if bytes.len() > self.limit {
            return Err(self.too_large());
        }
        Ok(())
    }

    /// Decompresses gzip (several concatenated members are one stream, as `gunzip` treats
    /// them), stopping as soon as the output would pass the remaining budget.
    pub(super) fn gunzip(&mut self, bytes: &[u8]) -> Result<Vec<u8>, ParseError> {
        let remaining = self.remaining();
        let out = read_bounded(MultiGzDecoder::new(bytes), remaining)
            .map_err(|_| ParseError::BadGzip)?
            .ok_or_else(|| self.too_large())?;
        self.used += out.len();
        Ok(out)
    }

    /// Decodes standard base64, refusing before decoding if the result could pass the budget.
    pub(super) fn base64(&mut self, text: &str) -> Result<Vec<u8>, ParseError> {
        if base64::decoded_len_estimate(text.len()) > self.remaining() {
            return Err(self.too_large());
        }
        let out = BASE64
            .decode(text.as_bytes())
            .map_err(|_| ParseError::BadBase64)?;
        self.used += out.len();
        Ok(out)
    }

    /// Base64, then gunzip if the result has gzip's magic bytes. AWS always gzips subscription
    /// data, but tools that replay it sometimes do not, and plain JSON cannot start with 1f 8b.
    pub(super) fn base64_maybe_gzip(&mut self, text: &str) -> Result<Vec<u8>, ParseError> {
        let raw = self.base64(text)?;
        if is_gzip(&raw) {
            self.gunzip(&raw)
        } else {
            Ok(raw)
        }
    }
}

/// Measures a stream as it is read: how far it got, and how much of it the item being read
/// has taken since its start was marked. Shared (by reference) between the reader, which counts,
/// and the parser, which marks; so the parser needs no access to the reader serde holds.
#[derive(Debug)]
pub(super) struct Meter {
    /// The most one list item (a record, a line) may take.
    pub(super) record_cap: usize,
    read: Cell<usize>,
    mark: Cell<usize>,
    cap: Cell<usize>,
    /// Set when a read was refused for passing the cap.
    pub(super) over_cap: Cell<bool>,
    /// Set when the source itself failed (not the gzip or the JSON in it).
    pub(super) source_failed: Cell<bool>,
}

impl Meter {
    pub(super) fn new(record_cap: usize) -> Self {
        Self {
            record_cap,
            read: Cell::new(0),
            mark: Cell::new(0),
            cap: Cell::new(usize::MAX),
            over_cap: Cell::new(false),
            source_failed: Cell::new(false),
        }
    }

    /// From here on, at most `cap` more bytes until the next mark. Reads are counted when they
    /// fill the parser's buffer, so the bound is exact to within one buffer.
    pub(super) fn mark(&self, cap: usize) {
        self.mark.set(self.read.get());
        self.cap.set(cap);
    }

    pub(super) fn cap(&self) -> usize {
        self.cap.get()
    }
}

/// The decompressed input, counted by a [`Meter`]: a read that would take the current item past
/// its cap fails instead, so no item can make the parser buffer more than the cap.
pub(super) struct Metered<'m, R> {
    pub(super) inner: R,
    pub(super) meter: &'m Meter,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let m = self.meter;
        m.read.set(m.read.get() + n);
        if m.read.get() - m.mark.get() > m.cap.get() {
            m.over_cap.set(true);
            return Err(std::io::Error::other("item over the size cap"));
        }
        Ok(n)
    }
}

/// The raw source (a file, a downloaded object): its failures are told apart from bad gzip.
pub(super) struct Source<'m, R> {
    pub(super) inner: R,
    pub(super) meter: &'m Meter,
}

impl<R: Read> Read for Source<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != ErrorKind::Interrupted {
                self.meter.source_failed.set(true);
            }
        })
    }
}

/// Reads all of `reader` unless it yields more than `limit` bytes (then `Ok(None)`). The buffer
/// grows by doubling but is capped at `limit`, so nothing is ever allocated past it, and a
/// decompression bomb costs at most `limit` bytes of output work before it is stopped.
fn read_bounded(mut reader: impl Read, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(Some(out)),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n > limit - out.len() {
            return Ok(None);
        }
        if out.capacity() - out.len() < n {
            let target = out.len().saturating_mul(2).max(out.len() + n).max(CHUNK);
            out.reserve_exact(target.min(limit) - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_bounded_stops_at_the_limit_and_never_reserves_past_it() {
        let data = vec![7u8; 100_000];
        assert_eq!(
            read_bounded(&data[..], 100_000).unwrap().unwrap().len(),
            100_000
        );
        assert!(read_bounded(&data[..], 99_999).unwrap().is_none());
        let out = read_bounded(&data[..50_000], 60_000).unwrap().unwrap();
        assert!(out.capacity() <= 60_000);
    }

    #[test]
    fn base64_refuses_before_decoding_past_the_budget() {
        let mut budget = Budget::new(5);
        assert!(budget.base64("AAAAAAAAAAAA").unwrap_err().is_too_large());
        let mut budget = Budget::new(100);
        assert_eq!(budget.base64("aGk").unwrap(), b"hi");
        assert_eq!(budget.base64("aGk=").unwrap(), b"hi");
        assert_eq!(budget.base64("a$k=").unwrap_err(), ParseError::BadBase64);
    }

    #[test]
    fn the_budget_is_shared_by_every_expansion() {
        let mut budget = Budget::new(5);
        budget.base64("aGk=").unwrap();
        budget.base64("aGk=").unwrap();
        assert!(budget.base64("aGk=").unwrap_err().is_too_large());
    }
}
