//! A record's JSON text, kept as received instead of as a parsed tree: the parser has checked it
//! is one valid JSON value, and a hit stores it (compacted) without parsing it again.

use serde_json::value::RawValue;
use serde_json::Value;

/// One JSON value's text, known to be valid JSON.
#[derive(Debug, Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    pub(super) fn new(raw: Box<RawValue>) -> Self {
        Self(raw)
    }

    /// The text as received (without surrounding whitespace).
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The text without insignificant whitespace: what a hit stores, so a pretty-printed input
    /// costs no more disk than a compact one. Member order and escapes stay as received.
    pub fn compact(&self) -> String {
        compact(self.get())
    }

    /// The value parsed into a tree (for tests and rare paths; the hot path never does this).
    /// `Null` only if the value nests deeper than serde_json's tree allows.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }
}

impl From<Value> for RawJson {
    /// Records made by the server itself (the sensor, the safety net) rather than parsed.
    fn from(v: Value) -> Self {
        let raw = RawValue::from_string(v.to_string());
        // A serialised Value is always valid JSON; the fallback is unreachable, not a default.
        Self(raw.unwrap_or_else(|_| RawValue::NULL.to_owned()))
    }
}

/// Drops whitespace outside strings. The input is valid JSON, so a `"` outside a string always
/// opens one and `\` only appears inside strings.
fn compact(json: &str) -> String {
    let bytes = json.as_bytes();
    if !bytes
        .iter()
        .any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
    {
        return json.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = b == b'"';
            out.push(b);
        }
    }
    // Only ASCII whitespace was removed, between tokens, so the bytes are still UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| json.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_strings_and_order() {
        let text = "{ \"b\" : [1, 2],\n\t\"a\": \"x \\\" y\\\\\" , \"c\":{ } }";
        let raw = RawJson::new(RawValue::from_string(text.to_owned()).unwrap());
        assert_eq!(raw.compact(), r#"{"b":[1,2],"a":"x \" y\\","c":{}}"#);
        assert_eq!(raw.to_value(), serde_json::from_str::<Value>(text).unwrap());
        let plain = RawJson::from(serde_json::json!({"k": "v w"}));
        assert_eq!(plain.compact(), r#"{"k":"v w"}"#);
    }
}
