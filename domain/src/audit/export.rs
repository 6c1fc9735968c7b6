//! The export format: the log as JSON Lines, one stored event per line, byte-exact.
//!
//! Each line is the canonical JSON (see [`super::canonical`]) of
//!
//! ```text
//! {"aggregate_id":S,"aggregate_type":S,"event_type":S,"event_version":S,
//!  "metadata":S,"payload":S,"sequence":N}
//! ```
//!
//! followed by one `\n`. `payload` and `metadata` are JSON *strings* holding the stored texts
//! exactly (not parsed values), so whatever a store holds, canonical or tampered with, comes
//! out of an export unchanged, and verifying the export gives the same hashes and the same
//! faults as verifying the store. Lines come in storage order: within a stream, the order the
//! events were appended.
//!
//! Reading is strict: a line must be exactly the bytes [`write_line`] writes for its record
//! (without the `\n`), so a file that verifies is byte for byte the export whose SHA-256 the
//! export printed. A re-encoded line (spaces, other escapes such as `\u0061`, members in
//! another order, a `\r` before the line feed) is refused, saying so. Lines in the exact form
//! take a fast path that decodes the strings without building a value. Nothing here does I/O.

use serde::Deserialize;

use super::canonical::{push_u64, string_end, write_string};
use super::verify::StoredRow;

/// What precedes each member's value in an export line, in order.
const MEMBERS: [&str; 7] = [
    "{\"aggregate_id\":",
    ",\"aggregate_type\":",
    ",\"event_type\":",
    ",\"event_version\":",
    ",\"metadata\":",
    ",\"payload\":",
    ",\"sequence\":",
];

/// Appends the export line of `row`, newline included.
pub fn write_line(out: &mut String, row: &StoredRow<'_>) {
    out.push_str(MEMBERS[0]);
    write_string(out, row.aggregate_id);
    out.push_str(MEMBERS[1]);
    write_string(out, row.aggregate_type);
    out.push_str(MEMBERS[2]);
    write_string(out, row.event_type);
    out.push_str(MEMBERS[3]);
    write_string(out, row.event_version);
    out.push_str(MEMBERS[4]);
    write_string(out, row.metadata);
    out.push_str(MEMBERS[5]);
    write_string(out, row.payload);
    out.push_str(MEMBERS[6]);
    if row.sequence < 0 {
        out.push('-');
    }
    push_u64(out, row.sequence.unsigned_abs());
    out.push_str("}\n");
}

/// Where the columns of a decoded line are in the text it was decoded into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedLine {
    /// Byte ranges, in the output text, of aggregate type, aggregate id, event type, event
    /// version, payload and metadata.
    pub spans: [(usize, usize); 6],
    /// Stored sequence.
    pub sequence: i64,
}

/// A line that is not an export record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an export record: {0}")]
pub struct LineError(pub String);

/// The record as any JSON parser reads it (the reference path).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    aggregate_id: String,
    aggregate_type: String,
    event_type: String,
    event_version: String,
    metadata: String,
    payload: String,
    sequence: i64,
}

/// Decodes one line (without its newline), appending the six text columns to `out` (see
/// [`DecodedLine::spans`]). A line that is not exactly the canonical line of its record is an
/// error. On error `out` is left as it was.
pub fn decode_line(line: &str, out: &mut String) -> Result<DecodedLine, LineError> {
    let start = out.len();
    if let Some(decoded) = decode_fast(line, out) {
        return Ok(decoded);
    }
    out.truncate(start);
    let record: Record = serde_json::from_str(line).map_err(|e| LineError(e.to_string()))?;
    // The record, but not in its one form: say where its bytes depart from it.
    let mut canonical = String::with_capacity(line.len() + 1);
    write_line(
        &mut canonical,
        &StoredRow {
            aggregate_type: &record.aggregate_type,
            aggregate_id: &record.aggregate_id,
            sequence: record.sequence,
            event_type: &record.event_type,
            event_version: &record.event_version,
            payload: &record.payload,
            metadata: &record.metadata,
        },
    );
    let canonical = canonical.trim_end_matches('\n');
    let differs = line
        .bytes()
        .zip(canonical.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(line.len().min(canonical.len()));
    Err(LineError(format!(
        "a record, but not in canonical form (its canonical line differs from byte {})",
        differs + 1
    )))
}

/// The columns of `record`, appended to `out`.
#[cfg(test)]
fn decode_record(record: &Record, out: &mut String) -> DecodedLine {
    let mut spans = [(0, 0); 6];
    for (span, column) in spans.iter_mut().zip([
        &record.aggregate_type,
        &record.aggregate_id,
        &record.event_type,
        &record.event_version,
        &record.payload,
        &record.metadata,
    ]) {
        let from = out.len();
        out.push_str(column);
        *span = (from, out.len());
    }
    DecodedLine {
        spans,
        sequence: record.sequence,
    }
}

/// The fast path: lines in exactly the form [`write_line`] writes; `None` for anything else.
/// One pass: each literal is checked and decoded together.
fn decode_fast(line: &str, out: &mut String) -> Option<DecodedLine> {
    let bytes = line.as_bytes();
    let mut spans = [(0usize, 0usize); 6];
    let mut pos = 0;
    // Members in the line's order, and the column each one is.
    for (prefix, column) in MEMBERS[..6].iter().zip([1, 0, 2, 3, 5, 4]) {
        if !bytes.get(pos..)?.starts_with(prefix.as_bytes()) {
            return None;
        }
        let from = out.len();
        pos = literal_into(line, pos + prefix.len(), out)?;
        spans[column] = (from, out.len());
    }
    if !bytes.get(pos..)?.starts_with(MEMBERS[6].as_bytes()) || !line.ends_with('}') {
        return None;
    }
    let sequence = canonical_integer(line.get(pos + MEMBERS[6].len()..line.len() - 1)?)?;
    Some(DecodedLine { spans, sequence })
}

/// Checks and decodes the canonical string literal whose opening quote is at `start`,
/// appending the text it stands for to `out`; returns the index just past its closing quote.
/// `None` when there is no canonical literal there (escapes only `\"`, `\\`, `\b`, `\f`, `\n`,
/// `\r`, `\t`, and `\u00xx` in lowercase hex for the other controls; no raw controls).
fn literal_into(line: &str, start: usize, out: &mut String) -> Option<usize> {
    let bytes = line.as_bytes();
    if bytes.get(start) != Some(&b'"') {
        return None;
    }
    let mut run = start + 1;
    let mut i = run;
    loop {
        match *bytes.get(i)? {
            b'"' => {
                out.push_str(line.get(run..i)?);
                return Some(i + 1);
            }
            b'\\' => {
                out.push_str(line.get(run..i)?);
                let (decoded, len) = match *bytes.get(i + 1)? {
                    b'"' => ('"', 2),
                    b'\\' => ('\\', 2),
                    b'b' => ('\u{8}', 2),
                    b'f' => ('\u{c}', 2),
                    b'n' => ('\n', 2),
                    b'r' => ('\r', 2),
                    b't' => ('\t', 2),
                    b'u' => {
                        let [b'0', b'0', high @ (b'0' | b'1'), low] = *bytes.get(i + 2..i + 6)?
                        else {
                            return None;
                        };
                        let low = match low {
                            b'0'..=b'9' => low - b'0',
                            b'a'..=b'f' => low - b'a' + 10,
                            _ => return None,
                        };
                        let code = ((high - b'0') << 4) | low;
                        // These five have a short form, which is the canonical one.
                        if matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                            return None;
                        }
                        (char::from(code), 6)
                    }
                    _ => return None,
                };
                out.push(decoded);
                i += len;
                run = i;
            }
            0..=0x1f => return None,
            _ => i += 1,
        }
    }
}

/// An integer in canonical form (no leading zeros, no `+`, no `-0`).
fn canonical_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let well_formed = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !well_formed {
        return None;
    }
    text.parse().ok()
}

/// Index of the first `\n` at or after `from`, eight bytes at a time (export lines are long,
/// and splitting them is all a reader does before decoding).
pub fn next_newline(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ (ONES * u64::from(b'\n'));
        if x.wrapping_sub(ONES) & !x & HIGH != 0 {
            break;
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| i + p)
}

/// The row of a line decoded into `text` by [`decode_line`].
pub fn row_at<'a>(text: &'a str, line: &DecodedLine) -> Option<StoredRow<'a>> {
    let column = |i: usize| text.get(line.spans[i].0..line.spans[i].1);
    Some(StoredRow {
        aggregate_type: column(0)?,
        aggregate_id: column(1)?,
        sequence: line.sequence,
        event_type: column(2)?,
        event_version: column(3)?,
        payload: column(4)?,
        metadata: column(5)?,
    })
}

/// The aggregate type and id of a line in the exact form whose two literals hold no escape
/// (so their bodies are the decoded texts), without decoding the rest; `None` otherwise (the
/// line must then be decoded to know its stream). Works on bytes: the line need not have been
/// checked as UTF-8 yet.
pub fn stream_of(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let id_start = MEMBERS[0].len();
    if !line.starts_with(MEMBERS[0].as_bytes()) {
        return None;
    }
    let (id_end, id_escaped) = string_end(line, id_start)?;
    if id_escaped || !line.get(id_end..)?.starts_with(MEMBERS[1].as_bytes()) {
        return None;
    }
    let type_start = id_end + MEMBERS[1].len();
    let (type_end, type_escaped) = string_end(line, type_start)?;
    if type_escaped {
        return None;
    }
    Some((
        line.get(type_start + 1..type_end - 1)?,
        line.get(id_start + 1..id_end - 1)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row<'a>(payload: &'a str, metadata: &'a str, id: &'a str, sequence: i64) -> StoredRow<'a> {
        StoredRow {
            aggregate_type: "Experiment",
            aggregate_id: id,
            sequence,
            event_type: "HealthChecked",
            event_version: "1",
            payload,
            metadata,
        }
    }

    fn round_trip(r: &StoredRow<'_>) -> (String, DecodedLine, String) {
        let mut line = String::new();
        write_line(&mut line, r);
        let mut out = String::from("prefix");
        let decoded = decode_line(line.trim_end_matches('\n'), &mut out).expect("decodes");
        (line, decoded, out)
    }

    #[test]
    fn a_line_is_canonical_json_of_the_record_and_decodes_to_the_same_bytes() {
        let payload = r#"{"HealthChecked":{"note":"a \"quoted\"\n line","sample":1}}"#;
        let metadata = "{\"actor\":\"al\\u0001ice\"} not even json";
        let r = row(payload, metadata, "exp-1", 7);
        let (line, decoded, out) = round_trip(&r);
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(
            format!(
                "{}\n",
                super::super::canonical::to_canonical(&value).expect("canonical")
            ),
            line
        );
        assert_eq!(value["payload"], payload);
        assert_eq!(value["metadata"], metadata);
        let back = row_at(&out, &decoded).expect("row");
        assert_eq!(
            (
                back.payload,
                back.metadata,
                back.aggregate_id,
                back.sequence
            ),
            (payload, metadata, "exp-1", 7)
        );
        assert!(decode_fast(line.trim_end(), &mut String::new()).is_some());
    }

    #[test]
    fn other_encodings_of_the_record_are_refused_saying_where_they_depart() {
        let exact = r#"{"aggregate_id":"a","aggregate_type":"b","event_type":"c","event_version":"1","metadata":"m","payload":"p","sequence":1}"#;
        assert!(decode_line(exact, &mut String::new()).is_ok());
        let pretty = r#"{ "sequence": 2, "payload": "{\"X\":{}}", "metadata": "{}",
            "event_version": "1", "event_type": "X", "aggregate_type": "Experiment",
            "aggregate_id": "e\u002f1" }"#;
        for (other, byte) in [
            (pretty.to_owned(), 2),
            (exact.replace("\"a\"", "\"\\u0061\""), 18),
            (format!("{exact}\r"), 121),
            (exact.replace(":1}", ":01}"), 0),
        ] {
            let mut out = String::from("kept");
            let e = decode_line(&other, &mut out).expect_err("refused");
            assert_eq!(out, "kept");
            if byte > 0 {
                assert_eq!(
                    e.0,
                    format!(
                        "a record, but not in canonical form (its canonical line differs from byte {byte})"
                    ),
                    "{other}"
                );
            }
        }
        let record: Record = serde_json::from_str(pretty).expect("a record");
        let mut out = String::new();
        let decoded = decode_record(&record, &mut out);
        let back = row_at(&out, &decoded).expect("row");
        assert_eq!(
            (back.aggregate_id, back.payload, back.sequence),
            ("e/1", "{\"X\":{}}", 2)
        );
        for bad in [
            "",
            "{}",
            "[1]",
            r#"{"aggregate_id":"a","aggregate_type":"b","event_type":"c","event_version":"1","metadata":"m","payload":"p","sequence":1,"extra":1}"#,
            r#"{"aggregate_id":"a","aggregate_type":"b","event_type":"c","event_version":"1","metadata":"m","payload":"p","sequence":1.5}"#,
        ] {
            let mut out = String::from("kept");
            assert!(decode_line(bad, &mut out).is_err(), "{bad}");
            assert_eq!(out, "kept");
        }
    }

    #[test]
    fn the_stream_of_an_exact_line_is_read_without_decoding() {
        let mut a = String::new();
        write_line(&mut a, &row("{}", "{}", "a\",\"aggregate_type\":\"x", 1));
        let mut b = String::new();
        write_line(&mut b, &row("{}", "{}", "a", 1));
        assert_eq!(
            stream_of(b.as_bytes()),
            Some((&b"Experiment"[..], &b"a"[..]))
        );
        // An escaped id must be decoded to be compared.
        assert_eq!(stream_of(a.as_bytes()), None);
        assert_eq!(stream_of(b"{ \"aggregate_id\": \"a\" }"), None);
    }

    #[test]
    fn newlines_are_found_wherever_they_are() {
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'x'; len];
                bytes[at] = b'\n';
                for from in 0..=at {
                    assert_eq!(next_newline(&bytes, from), Some(at));
                }
                assert_eq!(next_newline(&bytes, at + 1), None);
            }
        }
        assert_eq!(next_newline(b"\x8a\x0b\xff\n", 0), Some(3));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_texts_round_trip_byte_for_byte(
            payload in any::<String>(),
            metadata in any::<String>(),
            id in any::<String>(),
            sequence in any::<i64>(),
        ) {
            let r = row(&payload, &metadata, &id, sequence);
            let (line, decoded, out) = round_trip(&r);
            // Exactly one line.
            prop_assert_eq!(line.matches('\n').count(), 1);
            prop_assert!(decode_fast(line.trim_end_matches('\n'), &mut String::new()).is_some());
            let back = row_at(&out, &decoded).expect("row");
            prop_assert_eq!(back.payload, payload.as_str());
            prop_assert_eq!(back.metadata, metadata.as_str());
            prop_assert_eq!(back.aggregate_id, id.as_str());
            prop_assert_eq!(back.sequence, sequence);
            // The reference path agrees with the fast one.
            let record: Record = serde_json::from_str(line.trim_end()).expect("json");
            prop_assert_eq!(record.payload, payload);
        }
    }
}
