//! The hit fields kept inside the packed record (form 2) instead of as columns.
//!
//! Queries filter, group and sort hits on their ids, times, token, event name, source address,
//! path, note and suppression; those stay columns. The ten fields here are only ever shown, so
//! they travel with the record they were read from. Encoding: for each field in a fixed order a
//! LEB128 tag (0: absent, n + 1: present with n bytes of UTF-8), then the bytes. Nothing is
//! trimmed or normalised: a field reads back as the exact text it was written with.

use super::UnpackError;
use crate::HitRecord;

/// The fields as they read back from a form-2 record, in `HitRecord`'s order: event source,
/// region and user agent (never absent: their columns are NOT NULL), then error code, error
/// message, account, key id, TLS host, VPC endpoint and request id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detail([Option<String>; FIELDS]);

/// How many fields the encoding holds; a payload with fewer is damage.
const FIELDS: usize = 10;
/// The first three are required.
const REQUIRED: usize = 3;

impl Detail {
    /// Appends `hit`'s detail fields to `out`, in the order `decode` reads them.
    pub(super) fn encode(hit: &HitRecord, out: &mut Vec<u8>) {
        let fields: [Option<&str>; FIELDS] = [
            Some(&hit.event_source),
            Some(&hit.region),
            Some(&hit.user_agent),
            hit.error_code.as_deref(),
            hit.error_message.as_deref(),
            hit.account_id.as_deref(),
            hit.access_key_id.as_deref(),
            hit.tls_host.as_deref(),
            hit.vpc_endpoint_id.as_deref(),
            hit.request_id.as_deref(),
        ];
        for field in fields {
            match field {
                None => out.push(0),
                Some(text) => {
                    put_varint(out, text.len() as u64 + 1);
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
    }

    /// The fields at the start of `payload`, and how many bytes they took.
    pub(super) fn decode(payload: &[u8]) -> Result<(Self, usize), UnpackError> {
        let mut at = 0;
        let mut fields: [Option<String>; FIELDS] = Default::default();
        for field in &mut fields {
            let tag = get_varint(payload, &mut at)?;
            if tag == 0 {
                continue;
            }
            let len = usize::try_from(tag - 1).map_err(|_| UnpackError::Detail)?;
            let end = at.checked_add(len).ok_or(UnpackError::Detail)?;
            let bytes = payload.get(at..end).ok_or(UnpackError::Detail)?;
            *field = Some(String::from_utf8(bytes.to_vec()).map_err(|_| UnpackError::Utf8)?);
            at = end;
        }
        if fields[..REQUIRED].iter().any(Option::is_none) {
            return Err(UnpackError::Detail);
        }
        Ok((Self(fields), at))
    }

    /// Puts the fields into `hit`, whose columns for them were left empty.
    pub fn apply(self, hit: &mut HitRecord) {
        let [event_source, region, user_agent, error_code, error_message, account_id, access_key_id, tls_host, vpc_endpoint_id, request_id] =
            self.0;
        // `decode` made sure the required three are there.
        hit.event_source = event_source.unwrap_or_default();
        hit.region = region.unwrap_or_default();
        hit.user_agent = user_agent.unwrap_or_default();
        hit.error_code = error_code;
        hit.error_message = error_message;
        hit.account_id = account_id;
        hit.access_key_id = access_key_id;
        hit.tls_host = tls_host;
        hit.vpc_endpoint_id = vpc_endpoint_id;
        hit.request_id = request_id;
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A LEB128 number of at most ten bytes; a longer or truncated one is damage.
fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, UnpackError> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or(UnpackError::Detail)?;
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(UnpackError::Detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_refuse_damage() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            let mut at = 0;
            assert_eq!(get_varint(&out, &mut at).unwrap(), n);
            assert_eq!(at, out.len());
        }
        assert!(get_varint(&[0x80], &mut 0).is_err());
        assert!(get_varint(&[0xff; 11], &mut 0).is_err());
    }

    #[test]
    fn a_length_past_the_end_is_damage() {
        // event_source claims 9 bytes, and 2 follow.
        assert!(matches!(
            Detail::decode(&[10, b'a', b'b']),
            Err(UnpackError::Detail)
        ));
        // A required field absent.
        assert!(matches!(
            Detail::decode(&[0; FIELDS]),
            Err(UnpackError::Detail)
        ));
    }
}
