//! Raw records as stored: zstd with a dictionary trained on CloudTrail, behind a form byte.
//!
//! A hit keeps the record it came from, byte for byte, for the API, exports and alerts. As text
//! a CloudTrail record is about 1.25 KB, most of it the same keys and values as every other
//! record; plain zstd takes it to about 760 bytes, and zstd with a 32 KiB dictionary trained on
//! the vendored corpus to about 210 (records the training did not see; see
//! `examples/train_dictionary.rs`). The dictionary is built into the binary.
//!
//! Layout: one form byte, the payload's length (4 bytes, little endian), then the zstd frame. The
//! form names the dictionary and what the payload holds, so a later one gets a new form and rows
//! packed with an earlier one still read back; a dictionary once shipped never changes. The
//! length bounds the buffer before anything is decompressed: a damaged row cannot ask for more
//! than `MAX_TEXT`.
//!
//! - Form 1 (migration 0019): the record's text alone; the hit's fields are columns.
//! - Form 2: the hit's fields that no query filters, groups or sorts on (see `detail`), then the
//!   text, in one frame. Those fields repeat values of the record (user agent, request id, key
//!   id, account), so in the frame they cost a few bytes of back-reference each, where as columns
//!   they cost their whole length; their columns are left empty (`''` or NULL).

use std::cell::RefCell;
use std::sync::LazyLock;

use zstd::dict::{DecoderDictionary, EncoderDictionary};

use crate::HitRecord;
pub use detail::Detail;

mod detail;

/// The dictionary of form 1, trained on half the records of `testdata/cloudtrail`.
const DICTIONARY_V1: &[u8] = include_bytes!("../data/cloudtrail-v1.zdict");
const FORM_V1: u8 = 1;
/// The same dictionary; the payload is a hit's detail fields, then the text.
const FORM_HIT_V1: u8 = 2;
const HEADER: usize = 5;
/// zstd's default level: a 1.25 KB record packs in microseconds, off the write turn.
const LEVEL: i32 = 3;
/// Larger than any record ingest accepts; a stored length above it is damage.
const MAX_TEXT: usize = 64 << 20;

static ENCODER_V1: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(DICTIONARY_V1, LEVEL));
static DECODER_V1: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(DICTIONARY_V1));

thread_local! {
    // A compression context is a few hundred KiB to set up; each thread keeps one.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    // The same for reading: a page of hits or an export unpacks row after row.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Why a stored record did not read back.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("the packed record is shorter than its header")]
    Short,
    #[error("the packed record has an unknown form {0}")]
    UnknownForm(u8),
    #[error("the packed record claims {0} bytes, more than any record")]
    TooLong(usize),
    #[error("the packed record does not decompress: {0}")]
    Zstd(std::io::Error),
    #[error("the packed record decompressed to {got} bytes, not the {want} it claims")]
    Length { got: usize, want: usize },
    #[error("the packed record is not UTF-8")]
    Utf8,
    #[error("the packed record's fields are damaged")]
    Detail,
}

/// Packs a record's text alone (form 1). Infallible in practice: zstd fails only on allocation.
pub fn pack(text: &str) -> Vec<u8> {
    compress(FORM_V1, text.as_bytes())
}

/// Packs a hit's record with the fields `detail` moves out of the columns (form 2).
pub fn pack_hit(hit: &HitRecord) -> Vec<u8> {
    let mut payload = Vec::with_capacity(hit.raw.len() + 256);
    Detail::encode(hit, &mut payload);
    payload.extend_from_slice(hit.raw.as_bytes());
    compress(FORM_HIT_V1, &payload)
}

/// What a packed record holds: its text, and the hit's detail fields when it has them.
#[derive(Debug)]
pub struct Unpacked {
    pub detail: Option<Detail>,
    pub text: String,
}

/// The text a packed record holds, exactly as it was packed (either form).
pub fn unpack(bytes: &[u8]) -> Result<String, UnpackError> {
    unpack_hit(bytes).map(|u| u.text)
}

/// The text and, for form 2, the detail fields, exactly as they were packed.
pub fn unpack_hit(bytes: &[u8]) -> Result<Unpacked, UnpackError> {
    let (form, payload) = decompress(bytes)?;
    let (detail, text) = match form {
        FORM_V1 => (None, payload),
        _ => {
            let (detail, used) = Detail::decode(&payload)?;
            // The text is the rest: shifted down in place, not copied out (a page or an
            // export unpacks row after row).
            let mut text = payload;
            text.drain(..used);
            (Some(detail), text)
        }
    };
    let text = String::from_utf8(text).map_err(|_| UnpackError::Utf8)?;
    Ok(Unpacked { detail, text })
}

fn compress(form: u8, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("a record is smaller than 4 GiB");
    let frame = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(
                zstd::bulk::Compressor::with_prepared_dictionary(&ENCODER_V1)
                    .expect("zstd makes a compression context"),
            ),
        };
        compressor
            .compress(payload)
            .expect("zstd compresses into a growing buffer")
    });
    let mut out = Vec::with_capacity(HEADER + frame.len());
    out.push(form);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&frame);
    out
}

fn decompress(bytes: &[u8]) -> Result<(u8, Vec<u8>), UnpackError> {
    let (&form, rest) = bytes.split_first().ok_or(UnpackError::Short)?;
    if form != FORM_V1 && form != FORM_HIT_V1 {
        return Err(UnpackError::UnknownForm(form));
    }
    let (length, frame) = rest.split_at_checked(4).ok_or(UnpackError::Short)?;
    let want = u32::from_le_bytes(length.try_into().expect("four bytes")) as usize;
    if want > MAX_TEXT {
        return Err(UnpackError::TooLong(want));
    }
    let payload = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(
                zstd::bulk::Decompressor::with_prepared_dictionary(&DECODER_V1)
                    .map_err(UnpackError::Zstd)?,
            ),
        };
        // A damaged frame leaves the context as good as new: zstd resets it per frame.
        decompressor
            .decompress(frame, want)
            .map_err(UnpackError::Zstd)
    })?;
    if payload.len() != want {
        return Err(UnpackError::Length {
            got: payload.len(),
            want,
        });
    }
    Ok((form, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text at all reads back byte for byte: CloudTrail-shaped or not.
        #[test]
        fn any_text_reads_back(text in any::<String>()) {
            prop_assert_eq!(unpack(&pack(&text)).unwrap(), text);
        }

        /// Records with the corpus' shape and arbitrary values (what the dictionary is tuned
        /// for) read back too.
        #[test]
        fn cloudtrail_shaped_text_reads_back(
            name in "[A-Za-z]{1,40}",
            agent in any::<String>(),
            ip in "[0-9a-f:.]{0,45}",
        ) {
            let text = serde_like(&name, &agent, &ip);
            prop_assert_eq!(unpack(&pack(&text)).unwrap(), text);
        }

        /// A damaged row is an error, never a panic or a huge allocation.
        #[test]
        fn damaged_bytes_are_an_error_or_the_text(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = unpack(&bytes);
        }

        /// A hit packed with its detail fields reads back byte for byte, every field and the
        /// text, whatever they hold (empty, absent, any Unicode, the record's own values).
        #[test]
        fn a_hit_reads_back_byte_for_byte(
            texts in proptest::collection::vec(any::<String>(), 3),
            optional in proptest::collection::vec(proptest::option::of(any::<String>()), 7),
            raw in any::<String>(),
        ) {
            let mut hit = hit_with(&raw);
            hit.event_source.clone_from(&texts[0]);
            hit.region.clone_from(&texts[1]);
            hit.user_agent.clone_from(&texts[2]);
            [
                hit.error_code, hit.error_message, hit.account_id, hit.access_key_id,
                hit.tls_host, hit.vpc_endpoint_id, hit.request_id,
            ] = optional.try_into().unwrap();
            let unpacked = unpack_hit(&pack_hit(&hit)).unwrap();
            prop_assert_eq!(&unpacked.text, &raw);
            let mut back = hit_with("");
            back.token_id = hit.token_id.clone();
            unpacked.detail.unwrap().apply(&mut back);
            back.raw = raw;
            prop_assert_eq!(back, hit);
        }

        /// Damaged bytes behind the hit form are an error too, never a panic.
        #[test]
        fn damaged_hit_bytes_are_an_error(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = vec![FORM_HIT_V1];
            bytes.extend(tail);
            let _ = unpack_hit(&bytes);
            // A well-formed frame whose payload is not a field list.
            let _ = unpack_hit(&compress(FORM_HIT_V1, &bytes));
        }
    }

    fn hit_with(raw: &str) -> HitRecord {
        HitRecord {
            id: "h".into(),
            token_id: canarykeys_core::TokenId::generate(),
            event_id: "e".into(),
            event_time: 1,
            received_at: 2,
            event_name: "GetCallerIdentity".into(),
            event_source: String::new(),
            region: String::new(),
            source_ip: "203.0.113.7".into(),
            user_agent: String::new(),
            error_code: None,
            error_message: None,
            account_id: None,
            access_key_id: None,
            tls_host: None,
            vpc_endpoint_id: None,
            request_id: None,
            path: "api".into(),
            note: None,
            suppressed: None,
            raw: raw.into(),
        }
    }

    #[test]
    fn a_hit_packs_smaller_than_its_fields_and_text() {
        let raw = serde_like(
            "GetCallerIdentity",
            "aws-cli/2.15.0 Python/3.11.6",
            "198.51.100.7",
        );
        let mut hit = hit_with(&raw);
        hit.event_source = "sts.amazonaws.com".into();
        hit.user_agent = "aws-cli/2.15.0 Python/3.11.6".into();
        let alone = pack(&raw).len();
        let with_fields = pack_hit(&hit).len();
        assert_eq!(pack_hit(&hit)[0], FORM_HIT_V1);
        // The fields repeat the record's values: they cost back-references, not their length.
        assert!(
            with_fields < alone + 16,
            "{with_fields} with the fields, {alone} without"
        );
    }

    fn serde_like(name: &str, agent: &str, ip: &str) -> String {
        format!(
            "{{\"eventVersion\":\"1.08\",\"userIdentity\":{{\"type\":\"IAMUser\"}},\
             \"eventSource\":\"sts.amazonaws.com\",\"eventName\":\"{name}\",\
             \"sourceIPAddress\":\"{ip}\",\"userAgent\":{agent:?}}}"
        )
    }

    #[test]
    fn a_cloudtrail_record_packs_small() {
        let text = serde_like(
            "GetCallerIdentity",
            "aws-cli/2.15.0 Python/3.11.6",
            "198.51.100.7",
        );
        let packed = pack(&text);
        assert_eq!(packed[0], FORM_V1);
        assert!(
            packed.len() < text.len() / 2,
            "{} of {}",
            packed.len(),
            text.len()
        );
    }

    #[test]
    fn unknown_forms_and_lying_lengths_are_refused() {
        let mut packed = pack("{}");
        packed[0] = 9;
        assert!(matches!(unpack(&packed), Err(UnpackError::UnknownForm(9))));
        let mut packed = pack("{\"a\":1}");
        packed[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(unpack(&packed), Err(UnpackError::TooLong(_))));
        let mut packed = pack("{\"a\":1}");
        packed[1..5].copy_from_slice(&3u32.to_le_bytes());
        assert!(unpack(&packed).is_err());
        assert!(matches!(unpack(&[]), Err(UnpackError::Short)));
    }
}
