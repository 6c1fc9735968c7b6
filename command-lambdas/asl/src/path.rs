//! The JSONPath subset of Amazon States Language: reference paths (`$`, `$.a.b`, `$.a[0]`),
//! payload templates (`Parameters`, `ResultSelector`: keys ending in `.$` take a path's value)
//! and result paths (`ResultPath`: where a result goes in the state's input).
//!
//! Context-object paths (`$$.`) and intrinsic functions (`States.Format(...)`) are refused when
//! the definition is loaded: the workflow does not use them, and a field this engine would
//! read differently from Step Functions must not load at all.

use serde_json::{Map, Value};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Field(String),
    Index(usize),
}

/// A reference path into a state's input: `$`, `$.a.b`, `$.list[2].name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    text: String,
    segments: Vec<Segment>,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_field_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

impl Path {
    /// Parses a reference path; says what is wrong with one this engine does not take.
    pub fn parse(text: &str) -> Result<Path, String> {
        if text.starts_with("$$") {
            return Err(format!(
                "{text:?} reads the context object, which this engine does not provide"
            ));
        }
        let Some(mut rest) = text.strip_prefix('$') else {
            return Err(format!("{text:?} is not a path: a path starts with $"));
        };
        let mut segments = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(|c| !is_field_char(c)).unwrap_or(after.len());
                if end == 0 {
                    return Err(format!("{text:?}: a field name must follow '.'"));
                }
                segments.push(Segment::Field(after[..end].to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after
                    .find(']')
                    .ok_or_else(|| format!("{text:?}: '[' is not closed"))?;
                let index = after[..end].parse::<usize>().map_err(|_| {
                    format!(
                        "{text:?}: only array indexes go in brackets, not {:?}",
                        &after[..end]
                    )
                })?;
                segments.push(Segment::Index(index));
                rest = &after[end + 1..];
            } else {
                return Err(format!(
                    "{text:?}: unexpected {:?}; this engine takes $, .field and [index]",
                    rest.chars().next().unwrap_or(' ')
                ));
            }
        }
        Ok(Path {
            text: text.to_owned(),
            segments,
        })
    }

    /// Parses a path that can say where a result goes: fields only.
    pub fn parse_result(text: &str) -> Result<Path, String> {
        let path = Path::parse(text)?;
        if path.segments.iter().any(|s| matches!(s, Segment::Index(_))) {
            return Err(format!("{text:?}: a result path names fields only"));
        }
        Ok(path)
    }

    /// The value at this path in `input`, if there is one.
    pub fn get<'a>(&self, input: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(input, |value, segment| match segment {
                Segment::Field(name) => value.as_object()?.get(name),
                Segment::Index(i) => value.as_array()?.get(*i),
            })
    }

    /// `input` with `value` placed at this path: the whole of it for `$`; otherwise the fields
    /// on the way are created as needed. Fails when a step on the way is not an object.
    pub fn set(&self, input: Value, value: Value) -> Result<Value, String> {
        let Some((last, init)) = self.segments.split_last() else {
            return Ok(value);
        };
        let mut root = input;
        let mut at = &mut root;
        for segment in init.iter().chain(std::iter::once(last)) {
            let Segment::Field(name) = segment else {
                return Err(format!("{}: a result path names fields only", self.text));
            };
            let object = at.as_object_mut().ok_or_else(|| {
                format!(
                    "the result path {} cannot be placed: the input at {name:?} is not an object",
                    self.text
                )
            })?;
            at = object.entry(name.clone()).or_insert(Value::Null);
            if !std::ptr::eq(segment, last) && at.is_null() {
                *at = Value::Object(Map::new());
            }
        }
        *at = value;
        Ok(root)
    }
}

/// A payload template (`Parameters`, `ResultSelector`).
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// An object: each field a template of its own.
    Object(Vec<(String, Template)>),
    /// An array of templates.
    Array(Vec<Template>),
    /// A value taken as it is.
    Literal(Value),
    /// The value at a path of the input (a key ending in `.$`).
    Path(Path),
}

impl Template {
    /// Parses a template; every `.$` key must hold a reference path.
    pub fn parse(value: &Value) -> Result<Template, String> {
        match value {
            Value::Object(fields) => {
                let mut out = Vec::with_capacity(fields.len());
                for (key, value) in fields {
                    if let Some(name) = key.strip_suffix(".$") {
                        let text = value.as_str().ok_or_else(|| {
                            format!("{key:?} ends in .$, so its value must be a path")
                        })?;
                        if text.starts_with("States.") {
                            return Err(format!(
                                "{key:?}: intrinsic functions are not supported by this engine"
                            ));
                        }
                        let path = Path::parse(text).map_err(|e| format!("{key:?}: {e}"))?;
                        out.push((name.to_owned(), Template::Path(path)));
                    } else {
                        out.push((key.clone(), Template::parse(value)?));
                    }
                }
                Ok(Template::Object(out))
            }
            Value::Array(items) => Ok(Template::Array(
                items
                    .iter()
                    .map(Template::parse)
                    .collect::<Result<_, _>>()?,
            )),
            other => Ok(Template::Literal(other.clone())),
        }
    }

    /// The template filled in from `input`; a path with nothing at it is an error.
    pub fn render(&self, input: &Value) -> Result<Value, String> {
        Ok(match self {
            Template::Literal(value) => value.clone(),
            Template::Path(path) => path.get(input).cloned().ok_or_else(|| {
                format!("the path {path} of a payload template has no value in the input")
            })?,
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(input))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (name, template) in fields {
                    out.insert(name.clone(), template.render(input)?);
                }
                Value::Object(out)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(text: &str) -> Path {
        Path::parse(text).expect("parses")
    }

    #[test]
    fn paths_read_fields_and_indexes() {
        let input = json!({"a": {"b": [10, {"c": "x"}]}, "k-1": true});
        assert_eq!(path("$").get(&input), Some(&input));
        assert_eq!(path("$.a.b[0]").get(&input), Some(&json!(10)));
        assert_eq!(path("$.a.b[1].c").get(&input), Some(&json!("x")));
        assert_eq!(path("$.k-1").get(&input), Some(&json!(true)));
        assert_eq!(path("$.a.missing").get(&input), None);
        assert_eq!(path("$.a.b[7]").get(&input), None);
        assert_eq!(path("$.a.b.c").get(&input), None);
    }

    #[test]
    fn paths_outside_the_subset_are_refused_with_the_reason() {
        for (text, says) in [
            ("a.b", "starts with $"),
            ("$$.Execution.Id", "context object"),
            ("$.a..b", "field name"),
            ("$.a[*]", "indexes"),
            ("$.a[0", "not closed"),
            ("$['a']", "indexes"),
            ("$.a b", "unexpected"),
        ] {
            let error = Path::parse(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
        assert!(Path::parse_result("$.a[0]").is_err());
    }

    #[test]
    fn result_paths_replace_or_place_the_result() {
        let input = json!({"keep": 1, "error": "old"});
        assert_eq!(
            path("$").set(input.clone(), json!("r")).expect("set"),
            json!("r")
        );
        assert_eq!(
            path("$.error")
                .set(input.clone(), json!({"Error": "E"}))
                .expect("set"),
            json!({"keep": 1, "error": {"Error": "E"}})
        );
        assert_eq!(
            path("$.new.deep")
                .set(input.clone(), json!(2))
                .expect("set"),
            json!({"keep": 1, "error": "old", "new": {"deep": 2}})
        );
        let error = path("$.keep.x")
            .set(input, json!(2))
            .expect_err("1 is no object");
        assert!(error.contains("not an object"), "{error}");
    }

    #[test]
    fn templates_fill_paths_and_keep_literals() {
        let template = Template::parse(&json!({
            "experimentId.$": "$.id",
            "fixed": {"n": 1, "nested.$": "$.list[1]"},
            "items": [{"v.$": "$.id"}, 3],
        }))
        .expect("parses");
        assert_eq!(
            template
                .render(&json!({"id": "e-1", "list": [0, "second"]}))
                .expect("renders"),
            json!({
                "experimentId": "e-1",
                "fixed": {"n": 1, "nested": "second"},
                "items": [{"v": "e-1"}, 3],
            })
        );
        let error = template.render(&json!({"list": []})).expect_err("no id");
        assert!(error.contains("$.id"), "{error}");
        assert!(Template::parse(&json!({"x.$": 5})).is_err());
        assert!(Template::parse(&json!({"x.$": "States.Format('{}', $.a)"})).is_err());
    }
}
