//! NDJSON: one JSON value per line, read line by line (from memory or from a stream) with each
//! line bounded, so a file of any length holds one line at a time.

use std::io::BufRead;

use serde_json::value::RawValue;

use super::detect::{not_cloudtrail, Ctx};
use super::fields;
use super::{Format, ParseError};

const NOT_JSON: &str = "not JSON";

impl Ctx<'_> {
    /// One JSON value per line. Chosen only when the input is not one JSON document, has at
    /// least two lines, and at least one line is a JSON object; otherwise it is simply not JSON.
    /// `input` starts at the first non-blank byte; `io` says what a read error means.
    pub(super) fn ndjson(
        &mut self,
        mut input: impl BufRead,
        line_cap: usize,
        io: impl Fn(std::io::Error) -> ParseError,
    ) -> Result<Format, ParseError> {
        let (mut lines, mut objects) = (0usize, 0usize);
        let mut line = Vec::new();
        for index in 0.. {
            line.clear();
            self.element();
            match read_line(&mut input, &mut line, line_cap) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) if line.len() > line_cap => {
                    return Err(ParseError::RecordTooLarge { limit: line_cap })
                }
                Err(e) => return Err(io(e)),
            }
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            lines += 1;
            match serde_json::from_slice::<&RawValue>(text) {
                Ok(raw) => {
                    objects += usize::from(raw.get().starts_with('{'));
                    let f = fields::read(raw.get());
                    self.item(index, raw, f)?;
                }
                Err(_) => self.skip(index, NOT_JSON)?,
            }
        }
        if lines < 2 || objects == 0 {
            return Err(ParseError::NotJson);
        }
        if self.cloudtrail_like == 0 {
            return Err(not_cloudtrail(
                "NDJSON in which no line is a CloudTrail record",
            ));
        }
        Ok(Format::Ndjson)
    }
}

/// Reads up to and including the next `\n` into `line`; 0 at the end of the input. A line
/// longer than `cap` is an error (the caller's meter tells why).
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>, cap: usize) -> std::io::Result<usize> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(line.len());
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        input.consume(take);
        if line.len() > cap {
            return Err(std::io::Error::other("line over the cap"));
        }
        if done {
            return Ok(line.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_line_stops_at_newlines_and_the_cap() {
        let mut input: &[u8] = b"ab\ncd";
        let mut line = Vec::new();
        assert_eq!(read_line(&mut input, &mut line, 10).unwrap(), 3);
        line.clear();
        assert_eq!(read_line(&mut input, &mut line, 10).unwrap(), 2);
        line.clear();
        assert_eq!(read_line(&mut input, &mut line, 10).unwrap(), 0);
        let mut long: &[u8] = b"abcdef\n";
        assert!(read_line(&mut long, &mut Vec::new(), 3).is_err());
    }
}
