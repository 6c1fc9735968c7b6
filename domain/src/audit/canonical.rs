//! Canonical JSON: the one byte sequence a JSON value hashes as.
//!
//! The rules are those of RFC 8785 (JSON Canonicalization Scheme) restricted to the values
//! events may hold: no insignificant whitespace; object members sorted by the UTF-16 code units
//! of their names; strings escaped with `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
//! characters below U+0020 as `\u00XX` with lowercase hex, everything else literal UTF-8;
//! numbers only as integers of magnitude below 2^53, written in decimal without sign for
//! non-negatives. Floats are refused, so no two implementations can disagree on their digits.
//!
//! [`write_value`] writes the canonical form of a value; [`is_canonical`] tells whether a text
//! already is one without parsing it, which is what the verifier asks of every stored payload.

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

/// Whether a canonical string literal must escape byte `b` (it cannot stand there raw).
fn must_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Index of the first byte at or after `from` that [`must_escape`], if any.
///
/// Eight bytes at a time: strings are most of what the verifier reads, and most of them hold
/// nothing to escape. The word test is exact about *whether* a chunk holds such a byte (the
/// classic "has a byte less than n" bit trick); the byte loop then finds which one.
fn find_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let hits = (x.wrapping_sub(ONES * 0x20) & !x & HIGH)
            | has_zero(x ^ (ONES * u64::from(b'"')))
            | has_zero(x ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            break;
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| must_escape(b))
        .map(|p| i + p)
}

/// Appends `s` as a canonical JSON string literal (with quotes).
pub fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(i) = find_escape(bytes, start) {
        out.push_str(&s[start..i]);
        let b = bytes[i];
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `n` in decimal.
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
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
                push_u64(out, u);
            } else if let Some(i) = n.as_i64() {
                if i.unsigned_abs() > MAX_SAFE_INTEGER {
                    return Err(CanonicalError::UnsafeInteger(n.to_string()));
                }
                if i < 0 {
                    out.push('-');
                }
                push_u64(out, i.unsigned_abs());
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

/// Whether `text` is exactly the canonical form of some value in the canonical domain.
///
/// Equivalent to `serde_json::from_str::<Value>(text)` succeeding and [`to_canonical`] giving
/// `text` back, but in one pass over the bytes and without building the value: the verifier
/// runs this on every stored payload, and then hashes the stored text itself. The property
/// tests in `domain/tests/canonical_fast.rs` hold the two to the same answer.
///
/// Nesting deeper than [`MAX_CHECKED_DEPTH`] is answered `false` (not canonical as far as this
/// check goes); callers that must tell a deep canonical value from a bad one ask the slow path.
pub fn is_canonical(text: &str) -> bool {
    let mut checker = Checker { text, pos: 0 };
    checker.value(0) && checker.pos == text.len()
}

/// Deepest nesting [`is_canonical`] follows (serde_json itself stops at 128).
pub const MAX_CHECKED_DEPTH: usize = 64;

/// End (one past the closing quote) of the canonical string literal starting at `start`, and
/// whether it holds an escape. `None` when there is no such literal there.
///
/// A literal is canonical exactly when [`write_string`] of its decoded text gives it back:
/// raw bytes except `"`, `\` and controls; escapes only `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
/// `\t`, and `\u00xx` (lowercase hex) for the other controls. The text being a `&str`, the
/// raw bytes are valid UTF-8 already, and no escape can produce a surrogate.
pub(crate) fn string_end(bytes: &[u8], start: usize) -> Option<(usize, bool)> {
    if bytes.get(start) != Some(&b'"') {
        return None;
    }
    let mut pos = start + 1;
    let mut escaped = false;
    loop {
        let i = find_escape(bytes, pos)?;
        match bytes[i] {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                pos = i + 1 + escape_len(bytes.get(i + 1..)?)?;
            }
            _ => return None,
        }
    }
}

/// Length of a canonical escape after its backslash.
fn escape_len(rest: &[u8]) -> Option<usize> {
    match rest.first()? {
        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => Some(1),
        b'u' => {
            let [b'0', b'0', high @ (b'0' | b'1'), low] = *rest.get(1..5)? else {
                return None;
            };
            let low = match low {
                b'0'..=b'9' => low - b'0',
                b'a'..=b'f' => low - b'a' + 10,
                _ => return None,
            };
            let code = ((high - b'0') << 4) | low;
            // These five have a short form, which is the canonical one.
            (!matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)).then_some(5)
        }
        _ => None,
    }
}

/// The text a canonical literal's body (between the quotes) stands for.
fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next() {
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            }
            Some(other) => other,
            None => break,
        };
        out.push(decoded);
    }
    out
}

/// Whether member name `a` sorts strictly before `b` by UTF-16 code units. Both are bodies of
/// canonical literals; `escaped` says whether either holds an escape.
fn name_before(a: &str, b: &str, escaped: bool) -> bool {
    if escaped {
        return unescape(a).encode_utf16().lt(unescape(b).encode_utf16());
    }
    if a.is_ascii() && b.is_ascii() {
        // UTF-16 order is byte order for ASCII (the common case: names are identifiers).
        return a < b;
    }
    a.encode_utf16().lt(b.encode_utf16())
}

/// One pass of [`is_canonical`].
struct Checker<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Checker<'a> {
    fn eat(&mut self, b: u8) -> bool {
        let hit = self.text.as_bytes().get(self.pos) == Some(&b);
        self.pos += usize::from(hit);
        hit
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.text.as_bytes().get(self.pos) {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b't') => self.word("true"),
            Some(b'f') => self.word("false"),
            Some(b'n') => self.word("null"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    fn word(&mut self, word: &str) -> bool {
        let hit = self.text.as_bytes()[self.pos..].starts_with(word.as_bytes());
        self.pos += if hit { word.len() } else { 0 };
        hit
    }

    /// A string literal; returns its body and whether it holds an escape.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        let start = self.pos;
        let (end, escaped) = string_end(self.text.as_bytes(), start)?;
        self.pos = end;
        // Both ends are ASCII quotes, so these are character boundaries.
        Some((self.text.get(start + 1..end - 1)?, escaped))
    }

    /// `-?(0|[1-9][0-9]*)` with magnitude at most 2^53 - 1, and never `-0`.
    fn integer(&mut self) -> bool {
        let bytes = self.text.as_bytes();
        let negative = self.eat(b'-');
        let start = self.pos;
        let mut magnitude: u64 = 0;
        while let Some(&d @ b'0'..=b'9') = bytes.get(self.pos) {
            // 17 digits already exceed the limit; stop before u64 could overflow.
            if self.pos - start == 17 {
                return false;
            }
            magnitude = magnitude * 10 + u64::from(d - b'0');
            self.pos += 1;
        }
        let digits = self.pos - start;
        let leading_zero = digits > 1 && bytes[start] == b'0';
        digits > 0
            && !leading_zero
            && magnitude <= MAX_SAFE_INTEGER
            && !(negative && magnitude == 0)
            && !matches!(bytes.get(self.pos), Some(b'.' | b'e' | b'E'))
    }

    fn array(&mut self, depth: usize) -> bool {
        if depth > MAX_CHECKED_DEPTH {
            return false;
        }
        self.pos += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if !self.eat(b',') {
                return self.eat(b']');
            }
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        if depth > MAX_CHECKED_DEPTH {
            return false;
        }
        self.pos += 1;
        if self.eat(b'}') {
            return true;
        }
        let mut previous: Option<(&'a str, bool)> = None;
        loop {
            let Some((name, escaped)) = self.string() else {
                return false;
            };
            // Strictly increasing names: sorted, and no duplicates.
            if let Some((before, was_escaped)) = previous
                && !name_before(before, name, escaped || was_escaped)
            {
                return false;
            }
            previous = Some((name, escaped));
            if !self.eat(b':') || !self.value(depth) {
                return false;
            }
            if !self.eat(b',') {
                return self.eat(b'}');
            }
        }
    }
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
