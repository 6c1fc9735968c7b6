//! The one-pass canonicality check agrees with the reference: parse with serde_json, write the
//! canonical form, compare bytes.
//!
//! The verifier trusts [`is_canonical`] to accept a stored payload without parsing it, so an
//! answer of `true` where the reference says no would let a tampered byte through. The
//! properties cover texts that are canonical (written by `to_canonical` from random values),
//! texts that are almost canonical (other member orders, other escapes, whitespace) and random
//! edits of canonical texts; the examples pin the corners of the rules one by one.

use domain::audit::canonical::{MAX_CHECKED_DEPTH, MAX_SAFE_INTEGER, is_canonical, to_canonical};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The reference answer: `text` parses, its value is in the canonical domain, and its
/// canonical form is `text` itself.
fn reference(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| to_canonical(&value).ok())
        .is_some_and(|canonical| canonical == text)
}

fn agree(text: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(is_canonical(text), reference(text), "text: {:?}", text);
    Ok(())
}

/// Characters where the rules have corners: controls and their short escapes, the quote and
/// backslash, `/`, DEL, and both sides of the UTF-16 versus code point order difference.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or('?')),
        prop::sample::select(vec![
            '"',
            '\\',
            '/',
            '\u{7f}',
            'a',
            'b',
            'A',
            'é',
            '\u{e000}',
            '\u{ff61}',
            '\u{ffff}',
            '\u{10000}',
            '\u{1f600}',
        ]),
        any::<char>(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c]{0,3}",
        prop::collection::vec(tricky_char(), 0..6).prop_map(|cs| cs.into_iter().collect()),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    let max = MAX_SAFE_INTEGER as i64;
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-max - 3..-max + 3).prop_map(Value::from),
        (max - 3..max + 3).prop_map(Value::from),
        (-20i64..20).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![0.0, -0.0, 1.0, 0.5, 1e300]).prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON text of `value` that differs from canonical in the chosen ways (still valid JSON).
fn write_loosely(out: &mut String, value: &Value, reverse: bool, by_code_point: bool) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_loosely(out, item, reverse, by_code_point);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            if by_code_point {
                members.sort_by(|a, b| a.0.cmp(b.0));
            } else {
                members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            }
            if reverse {
                members.reverse();
            }
            out.push('{');
            for (i, (name, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(name).unwrap_or_default());
                out.push(':');
                write_loosely(out, item, reverse, by_code_point);
            }
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
}

/// One edit of a text, at character granularity so the result stays a `&str`.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Replace(usize, char),
    Delete(usize),
    Swap(usize, usize),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    let c = prop_oneof![
        prop::sample::select(vec![
            '{', '}', '[', ']', ',', ':', '"', '\\', ' ', '\n', '-', '+', '.', 'e', 'E', '0', '1',
            '9', 'u', 'a', 'f', 'F', 'n', 't', 'b', 'r', '/',
        ]),
        tricky_char(),
    ];
    prop_oneof![
        (at, c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (at, c).prop_map(|(i, c)| Edit::Replace(i, c)),
        at.prop_map(Edit::Delete),
        (at, at).prop_map(|(i, j)| Edit::Swap(i, j)),
        (at, at).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let n = chars.len();
        match *edit {
            Edit::Insert(i, c) => chars.insert(i % (n + 1), c),
            Edit::Replace(i, c) if n > 0 => chars[i % n] = c,
            Edit::Delete(i) if n > 0 => {
                chars.remove(i % n);
            }
            Edit::Swap(i, j) if n > 0 => chars.swap(i % n, j % n),
            Edit::Duplicate(i, len) if n > 0 => {
                let start = i % n;
                let end = (start + 1 + len % 12).min(n);
                let copy: Vec<char> = chars[start..end].to_vec();
                chars.splice(end..end, copy);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn canonical_texts_are_accepted_and_others_refused(value in value()) {
        if let Ok(canonical) = to_canonical(&value) {
            prop_assert!(is_canonical(&canonical), "refused {:?}", canonical);
        }
        agree(&serde_json::to_string(&value).unwrap_or_default())?;
        agree(&serde_json::to_string_pretty(&value).unwrap_or_default())?;
        for (reverse, by_code_point) in [(true, false), (false, true), (true, true)] {
            let mut loose = String::new();
            write_loosely(&mut loose, &value, reverse, by_code_point);
            agree(&loose)?;
        }
    }

    #[test]
    fn edits_of_canonical_texts_are_judged_like_the_reference(
        value in value(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let base = to_canonical(&value)
            .unwrap_or_else(|_| serde_json::to_string(&value).unwrap_or_default());
        agree(&apply(&base, &edits))?;
    }

    #[test]
    fn any_short_text_is_judged_like_the_reference(
        chars in prop::collection::vec(
            prop::sample::select(vec!['{', '}', '[', ']', ',', ':', '"', '\\', 'u', '0', '1', 'a', '-', ' ']),
            0..10,
        ),
    ) {
        agree(&chars.into_iter().collect::<String>())?;
    }
}

#[test]
fn corners_of_the_rules() {
    let cases = [
        // Literals and whitespace.
        "null",
        "true",
        "false",
        "nul",
        "truee",
        " 1",
        "1 ",
        "",
        "[1, 2]",
        "{\"a\": 1}",
        // Integers.
        "0",
        "-0",
        "-",
        "01",
        "-01",
        "1.0",
        "1e2",
        "1E2",
        "+1",
        "10",
        "-10",
        "9007199254740991",
        "9007199254740992",
        "-9007199254740991",
        "-9007199254740992",
        "00000000000000001",
        "12345678901234567890123",
        // Strings and escapes.
        r#""""#,
        r#""\u001f""#,
        r#""\u001F""#,
        r#""\u0008""#,
        r#""\b""#,
        r#""\/""#,
        r#""/""#,
        r#""\u0041""#,
        r#""\u007f""#,
        "\"\u{7f}\"",
        r#""\ud83d\ude00""#,
        "\"\u{1f600}\"",
        r#""\x""#,
        r#""\""#,
        r#""\\""#,
        r#""\"""#,
        "\"\t\"",
        r#""\t""#,
        r#""\u000a""#,
        r#""\u000b""#,
        r#""\u00""#,
        "\"abc",
        "\"",
        // Members.
        "{}",
        "[]",
        r#"{"a":1,"b":2}"#,
        r#"{"b":2,"a":1}"#,
        r#"{"a":1,"a":1}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"":1,"a":2}"#,
        r#"{"a":1,}"#,
        "[1,]",
        "[,1]",
        r#"{"a"}"#,
        r#"{"a":}"#,
        r#"{1:1}"#,
        "{\"\u{1f600}\":1,\"\u{ff61}\":2}",
        "{\"\u{ff61}\":2,\"\u{1f600}\":1}",
        r#"{"\u0001":1,"\b":2}"#,
        r#"{"\b":2,"\u0001":1}"#,
        r#"{"\"":1,"\\":2}"#,
        r#"{"a\"":1,"a":2}"#,
        r#"{"a":1,"a\"":2}"#,
        // Several values.
        "1 2",
        "[1][2]",
        "{}{}",
        "\"a\"\"b\"",
    ];
    for case in cases {
        assert_eq!(is_canonical(case), reference(case), "{case:?}");
    }
}

#[test]
fn the_integer_limits_are_those_of_the_canonical_domain() {
    let max = MAX_SAFE_INTEGER;
    assert!(is_canonical(&max.to_string()));
    assert!(is_canonical(&format!("-{max}")));
    assert!(!is_canonical(&(max + 1).to_string()));
    assert!(!is_canonical(&format!("-{}", max + 1)));
    assert!(is_canonical(&json!([0, -1, 1, 10, -10]).to_string()));
}

#[test]
fn nesting_is_followed_to_the_checked_depth_and_refused_beyond() {
    for depth in 1..=200 {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let objects = format!("{}null{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        for text in [arrays, objects] {
            if depth <= MAX_CHECKED_DEPTH {
                assert!(reference(&text), "{depth}");
                assert!(is_canonical(&text), "{depth}");
            } else {
                // Deeper texts are the reference path's to judge (serde_json stops at 128).
                assert!(!is_canonical(&text), "{depth}");
            }
        }
    }
}

#[test]
fn every_short_unicode_escape_is_judged_like_the_reference() {
    for code in 0..=0xffu32 {
        for text in [
            format!("\"\\u{code:04x}\""),
            format!("\"\\u{code:04X}\""),
            format!("{{\"\\u{code:04x}\":0}}"),
        ] {
            assert_eq!(is_canonical(&text), reference(&text), "{text:?}");
        }
    }
}
