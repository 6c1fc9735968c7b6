//! Canonical JSON: the one byte sequence a JSON value hashes as.
//!
//! The rules are those of RFC 8785 (JSON Canonicalization Scheme) restricted to the values
//! events may hold: no insignificant whitespace; object members sorted by the UTF-16 code units
//! of their names; strings escaped with `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
//! characters below U+0020 as `\u00XX` with lowercase hex, everything else literal UTF-8;
//! numbers only as integers of magnitude below 2^53, written in decimal without sign for
//! non-negatives. Floats are refused, so no two implementations can disagree on their digits.

use serde_json::Value;

/// Largest integer every JSON implementation represents exactly (2^53 - 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A value outside the canonical domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// A non-integer number.
    #[error("numbers must be integers, found {0}")]
    NotAnInteger(String),
    /// An integer too large to survive a round trip through a double.
    #[error("integer {0} is outside the safe range +-(2^53 - 1)")]
    UnsafeInteger(String),
}

/// Appends `s` as a canonical JSON string literal (with quotes).
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends the canonical form of `value`.
pub fn write_value(out: &mut String, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                if u > MAX_SAFE_INTEGER {
                    return Err(CanonicalError::UnsafeInteger(n.to_string()));
                }
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                if i.unsigned_abs() > MAX_SAFE_INTEGER {
                    return Err(CanonicalError::UnsafeInteger(n.to_string()));
                }
                out.push_str(&i.to_string());
            } else {
                return Err(CanonicalError::NotAnInteger(n.to_string()));
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// The canonical form of `value` as a new string.
pub fn to_canonical(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_members_and_drops_whitespace() {
        let v: Value = serde_json::from_str(r#"{ "b": [1, {"z": null, "a": true}], "a": "x" }"#)
            .expect("json");
        assert_eq!(
            to_canonical(&v).expect("ok"),
            r#"{"a":"x","b":[1,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn escapes_like_rfc_8785() {
        let v = json!("q\" b\\ \u{8}\u{c}\n\r\t \u{1} \u{7f} é / 😀");
        assert_eq!(
            to_canonical(&v).expect("ok"),
            "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001 \u{7f} é / 😀\""
        );
    }

    #[test]
    fn agrees_with_serde_json_compact_output_on_event_like_values() {
        let v = json!({"ExperimentCreated": {"id": "e-1", "n": -42, "list": ["\u{1f}", "ok"],
            "nested": {"b": 1, "a": 2}}});
        assert_eq!(
            to_canonical(&v).expect("ok"),
            serde_json::to_string(&v).expect("ser")
        );
    }

    #[test]
    fn utf16_order_differs_from_byte_order_above_the_bmp() {
        // U+FF61 sorts before U+1F600 by UTF-8 bytes but after it by UTF-16 code units.
        let v = json!({"\u{1f600}": 1, "\u{ff61}": 2});
        assert_eq!(
            to_canonical(&v).expect("ok"),
            "{\"\u{1f600}\":1,\"\u{ff61}\":2}"
        );
    }

    #[test]
    fn refuses_floats_and_unsafe_integers() {
        assert!(matches!(
            to_canonical(&json!(1.5)),
            Err(CanonicalError::NotAnInteger(_))
        ));
        assert!(matches!(
            to_canonical(&json!(MAX_SAFE_INTEGER + 1)),
            Err(CanonicalError::UnsafeInteger(_))
        ));
        assert_eq!(
            to_canonical(&json!(-9_007_199_254_740_991_i64)).expect("ok"),
            "-9007199254740991"
        );
    }
}
