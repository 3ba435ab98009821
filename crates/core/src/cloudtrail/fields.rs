//! The fields of one JSON object that detection reads, lifted out in one pass by a serde visitor
//! over the item's text: no tree is built, every other member is skipped unread. Types are loose
//! (a number where a string belongs is kept as what it is and judged later), and a repeated key
//! keeps its last value, as a parsed `serde_json::Value` map would.
//!
//! Everything is borrowed from the item's text where it can be (a string without escapes or
//! NUL characters, a nested value's raw text): an organisation trail's records are almost all
//! someone else's, and a record the gate refuses should cost no allocation.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Any JSON value, keeping only what a field check can use.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Loose<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    Bool(bool),
    /// null, an object or an array: present, but never a usable scalar.
    Other,
}

impl Loose<'_> {
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    /// A non-empty string; anything else (null, a number, "") is missing.
    pub(super) fn text(&self) -> Option<String> {
        self.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
    }
}

struct LooseVisitor;

/// A string as the parser keeps it: any NUL character replaced (see `text::without_nul`).
fn owned(v: String) -> Loose<'static> {
    Loose::Str(Cow::Owned(crate::text::without_nul(v)))
}

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Loose<'de>, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loose<'de>, E> {
        Ok(Loose::Num(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Loose<'de>, E> {
        Ok(Loose::Num(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Loose<'de>, E> {
        Ok(Loose::Num(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Loose<'de>, E> {
        if v.contains('\0') {
            return Ok(owned(v.to_owned()));
        }
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Loose<'de>, E> {
        Ok(owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Loose<'de>, E> {
        Ok(owned(v))
    }
    fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
        Ok(Loose::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

/// A value that is either an object of `T` or anything else (then `None`), never an error.
pub(super) struct ObjectOr<T>(pub(super) Option<T>);

/// One object's members, as a visitor fills them in.
trait Members<'de>: Default {
    /// Reads the value of `key`, or skips it.
    fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

struct ObjectVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Members<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = ObjectOr<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = T::default();
        while let Some(key) = map.next_key::<Key>()? {
            out.member(&key.0, &mut map)?;
        }
        Ok(ObjectOr(Some(out)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        LooseVisitor.visit_seq(seq).map(|_| ObjectOr(None))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(ObjectOr(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(ObjectOr(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(ObjectOr(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(ObjectOr(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(ObjectOr(None))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(ObjectOr(None))
    }
}

impl<'de, T: Members<'de>> Deserialize<'de> for ObjectOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectVisitor(std::marker::PhantomData))
    }
}

/// A map key, unescaped; borrowed from the input when it has no escapes, so most keys cost no
/// allocation.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_owned().into()))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

fn loose<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Loose<'de>>, A::Error> {
    map.next_value::<Loose>().map(Some)
}

/// The members of an item: a CloudTrail record, or an EventBridge envelope around one, or a
/// Kinesis record (told apart later, from which members are present).
#[derive(Default, Debug)]
pub(super) struct Fields<'a> {
    pub(super) event_version: bool,
    pub(super) event_source: Option<Loose<'a>>,
    pub(super) event_name: Option<Loose<'a>>,
    pub(super) event_type: Option<Loose<'a>>,
    pub(super) event_time: Option<Loose<'a>>,
    pub(super) event_id: Option<Loose<'a>>,
    /// `None`: absent; `Some(None)`: present but not an object.
    pub(super) user_identity: Option<Option<IdentityFields<'a>>>,
    pub(super) aws_region: Option<Loose<'a>>,
    pub(super) source_ip: Option<Loose<'a>>,
    pub(super) user_agent: Option<Loose<'a>>,
    pub(super) error_code: Option<Loose<'a>>,
    pub(super) error_message: Option<Loose<'a>>,
    pub(super) recipient_account_id: Option<Loose<'a>>,
    pub(super) vpc_endpoint_id: Option<Loose<'a>>,
    pub(super) request_id: Option<Loose<'a>>,
    pub(super) read_only: Option<Loose<'a>>,
    pub(super) tls_host: Option<Loose<'a>>,
    /// `@timestamp`, `timestamp`, `time`: stand-ins for a missing `eventTime` (and `time` is
    /// also an EventBridge envelope's).
    pub(super) stand_ins: [Option<Loose<'a>>; 3],
    pub(super) detail_type: Option<Loose<'a>>,
    pub(super) detail: Option<&'a RawValue>,
    pub(super) kinesis: Option<&'a RawValue>,
}

impl<'de> Members<'de> for Fields<'de> {
    fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let slot = match key {
            "eventVersion" => {
                self.event_version = true;
                return map.next_value::<IgnoredAny>().map(drop);
            }
            "userIdentity" => {
                self.user_identity = Some(map.next_value::<ObjectOr<IdentityFields>>()?.0);
                return Ok(());
            }
            "tlsDetails" => {
                let tls = map.next_value::<ObjectOr<TlsFields>>()?.0;
                self.tls_host = tls.and_then(|t| t.host);
                return Ok(());
            }
            "detail" => {
                self.detail = Some(map.next_value()?);
                return Ok(());
            }
            "kinesis" => {
                self.kinesis = Some(map.next_value()?);
                return Ok(());
            }
            "eventSource" => &mut self.event_source,
            "eventName" => &mut self.event_name,
            "eventType" => &mut self.event_type,
            "eventTime" => &mut self.event_time,
            "eventID" => &mut self.event_id,
            "awsRegion" => &mut self.aws_region,
            "sourceIPAddress" => &mut self.source_ip,
            "userAgent" => &mut self.user_agent,
            "errorCode" => &mut self.error_code,
            "errorMessage" => &mut self.error_message,
            "recipientAccountId" => &mut self.recipient_account_id,
            "vpcEndpointId" => &mut self.vpc_endpoint_id,
            "requestID" => &mut self.request_id,
            "readOnly" => &mut self.read_only,
            "@timestamp" => &mut self.stand_ins[0],
            "timestamp" => &mut self.stand_ins[1],
            "time" => &mut self.stand_ins[2],
            "detail-type" => &mut self.detail_type,
            _ => return map.next_value::<IgnoredAny>().map(drop),
        };
        *slot = loose(map)?;
        Ok(())
    }
}

/// `userIdentity`'s members.
#[derive(Default, Debug, Clone)]
pub(super) struct IdentityFields<'a> {
    /// Whether the object has any member at all.
    pub(super) any: bool,
    pub(super) kind: Option<Loose<'a>>,
    pub(super) access_key_id: Option<Loose<'a>>,
    pub(super) user_name: Option<Loose<'a>>,
    pub(super) account_id: Option<Loose<'a>>,
    pub(super) arn: Option<Loose<'a>>,
    pub(super) principal_id: Option<Loose<'a>>,
}

impl<'de> Members<'de> for IdentityFields<'de> {
    fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        self.any = true;
        let slot = match key {
            "type" => &mut self.kind,
            "accessKeyId" => &mut self.access_key_id,
            "userName" => &mut self.user_name,
            "accountId" => &mut self.account_id,
            "arn" => &mut self.arn,
            "principalId" => &mut self.principal_id,
            _ => return map.next_value::<IgnoredAny>().map(drop),
        };
        *slot = loose(map)?;
        Ok(())
    }
}

/// `tlsDetails`: only the host header is read.
#[derive(Default)]
struct TlsFields<'a> {
    host: Option<Loose<'a>>,
}

impl<'de> Members<'de> for TlsFields<'de> {
    fn member<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        if key == "clientProvidedHostHeader" {
            self.host = loose(map)?;
            Ok(())
        } else {
            map.next_value::<IgnoredAny>().map(drop)
        }
    }
}

/// An item's members, or `None` when the item is not an object. The text is valid JSON (the
/// parser captured it), so this fails only on what serde refuses in valid JSON (none expected).
pub(super) fn read(json: &str) -> Option<Fields<'_>> {
    serde_json::from_str::<ObjectOr<Fields>>(json).ok()?.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_key_wins_and_types_stay_loose() {
        let f = read(
            r#"{"eventName":"A","eventName":"B","eventVersion":null,"readOnly":"TRUE",
                "userIdentity":{"type":1,"x":[1,{"y":2}]},"vpcEndpointId":42,"ev\u0065ntID":"e"}"#,
        )
        .unwrap();
        assert_eq!(f.event_name, Some(Loose::Str("B".into())));
        assert!(f.event_version);
        assert_eq!(f.read_only, Some(Loose::Str("TRUE".into())));
        assert_eq!(f.vpc_endpoint_id, Some(Loose::Num(42.0)));
        assert_eq!(f.event_id, Some(Loose::Str("e".into())));
        let id = f.user_identity.unwrap().unwrap();
        assert!(id.any);
        assert_eq!(id.kind, Some(Loose::Num(1.0)));
        assert!(read("[1]").is_none());
        assert!(read("7").is_none());
    }
}
