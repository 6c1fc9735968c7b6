//! Reading a spec from JSON: every problem at once, each with its path.
//!
//! `serde` stops at the first mismatch and names no field for a value it cannot take
//! (`invalid value: integer -1, expected u32`). A person fixing a spec needs the whole list:
//! [`ExperimentSpecInput::from_json`] walks the document against the spec's shape, records
//! every wrong type, unknown or missing field with its path, puts a neutral stand-in in each
//! place it could not read, then checks the values as [`ExperimentSpec::parse`] does. A value
//! problem in or around a field that could not be read is left out: it would be about the
//! stand-in, not about what was written.

use serde_json::{Map, Value};

use super::{
    ExperimentSpec, ExperimentSpecInput, FailureType, Guardrails, Problem, RecoveryPolicy,
    Selection, SpecError, StopCondition, Target, TargetKind,
};
use crate::limits::HARD_TARGET_CAP;

impl ExperimentSpecInput {
    /// Reads a spec written as JSON, reporting every problem of shape and value at once. When
    /// this succeeds, [`ExperimentSpec::parse`] of the result does too.
    pub fn from_json(value: &Value) -> Result<Self, SpecError> {
        let mut reader = Reader::default();
        let input = reader.spec(value);
        let mut problems = reader.problems;
        if let Err(values) = ExperimentSpec::parse(input.clone()) {
            problems.extend(
                values
                    .problems
                    .into_iter()
                    .filter(|p| !reader.unread.iter().any(|u| related(&p.field, u))),
            );
        }
        if problems.is_empty() {
            Ok(input)
        } else {
            Err(SpecError { problems })
        }
    }
}

/// Whether one path lies within the other (or they are the same).
fn related(a: &str, b: &str) -> bool {
    let within = |inner: &str, outer: &str| {
        inner == outer
            || outer.is_empty()
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    within(a, b) || within(b, a)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// What a JSON value is, in words.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The problems found so far, and the paths that could not be read.
#[derive(Debug, Default)]
struct Reader {
    problems: Vec<Problem>,
    unread: Vec<String>,
}

/// An object's fields, as far as it is one.
struct Fields<'v> {
    path: String,
    map: Option<&'v Map<String, Value>>,
}

impl<'v> Fields<'v> {
    fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

impl Reader {
    fn unreadable(&mut self, path: String, message: String) {
        self.unread.push(path.clone());
        self.problems.push(Problem {
            field: path,
            message,
        });
    }

    /// `value` as an object with at most the fields `known`; every other field is a problem.
    fn object<'v>(&mut self, path: &str, value: Option<&'v Value>, known: &[&str]) -> Fields<'v> {
        let map = match value {
            Some(Value::Object(map)) => {
                for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
                    self.problems.push(Problem {
                        field: join(path, key),
                        message: format!("unknown field; expected one of {}", known.join(", ")),
                    });
                }
                Some(map)
            }
            Some(other) => {
                self.unreadable(
                    path.to_owned(),
                    format!("must be an object (got {})", kind(other)),
                );
                None
            }
            None => None,
        };
        Fields {
            path: path.to_owned(),
            map,
        }
    }

    /// Field `key`, reporting it missing when the object is there and `required`. A null
    /// counts as missing.
    fn field<'v>(&mut self, fields: &Fields<'v>, key: &str, required: bool) -> Option<&'v Value> {
        let map = fields.map?;
        match map.get(key) {
            Some(Value::Null) | None if required => {
                self.unreadable(fields.path(key), "is required".to_owned());
                None
            }
            Some(Value::Null) | None => None,
            Some(value) => Some(value),
        }
    }

    fn string(&mut self, fields: &Fields<'_>, key: &str, stand_in: &str) -> String {
        self.optional_string(fields, key, true)
            .unwrap_or_else(|| stand_in.to_owned())
    }

    fn optional_string(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        required: bool,
    ) -> Option<String> {
        match self.field(fields, key, required)? {
            Value::String(text) => Some(text.clone()),
            other => {
                self.unreadable(
                    fields.path(key),
                    format!("must be a string (got {})", kind(other)),
                );
                None
            }
        }
    }

    fn number(&mut self, fields: &Fields<'_>, key: &str, stand_in: u32) -> u32 {
        let Some(value) = self.field(fields, key, true) else {
            return stand_in;
        };
        match value.as_u64().map(u32::try_from) {
            Some(Ok(n)) => n,
            _ => {
                let got = match value {
                    Value::Number(n) => n.to_string(),
                    other => kind(other).to_owned(),
                };
                self.unreadable(
                    fields.path(key),
                    format!("must be a whole number from 0 to {} (got {got})", u32::MAX),
                );
                stand_in
            }
        }
    }

    fn flag(&mut self, fields: &Fields<'_>, key: &str) -> bool {
        match self.field(fields, key, false) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.unreadable(
                    fields.path(key),
                    format!("must be true or false (got {})", kind(other)),
                );
                false
            }
        }
    }

    /// Which of `choices` field `key` names, if it names one.
    fn choice<'c>(
        &mut self,
        fields: &Fields<'_>,
        key: &str,
        choices: &[&'c str],
    ) -> Option<&'c str> {
        let text = self.optional_string(fields, key, true)?;
        let found = choices.iter().find(|c| **c == text).copied();
        if found.is_none() {
            self.unreadable(
                fields.path(key),
                format!("must be one of {} (got \"{text}\")", choices.join(", ")),
            );
        }
        found
    }

    fn spec(&mut self, value: &Value) -> ExperimentSpecInput {
        let root = self.object(
            "",
            Some(value),
            &[
                "name",
                "description",
                "target",
                "selection",
                "max_targets",
                "failure",
                "dry_run",
                "guardrails",
                "recovery",
            ],
        );
        ExperimentSpecInput {
            name: self.string(&root, "name", "-"),
            description: self
                .optional_string(&root, "description", false)
                .unwrap_or_default(),
            target: self.target(&root),
            selection: self.selection(&root),
            max_targets: self.number(&root, "max_targets", HARD_TARGET_CAP),
            failure: self.failure(&root),
            dry_run: self.flag(&root, "dry_run"),
            guardrails: self.guardrails(&root),
            recovery: self.recovery(&root),
        }
    }

    fn target(&mut self, root: &Fields<'_>) -> Target {
        let value = self.field(root, "target", true);
        let fields = self.object("target", value, &["kind", "group"]);
        let kind = match self.choice(&fields, "kind", &["AUTO_SCALING_GROUP", "LOCAL_FLEET"]) {
            Some("AUTO_SCALING_GROUP") => TargetKind::AutoScalingGroup,
            _ => TargetKind::LocalFleet,
        };
        Target {
            kind,
            group: self.string(&fields, "group", "-"),
        }
    }

    fn selection(&mut self, root: &Fields<'_>) -> Selection {
        let value = self.field(root, "selection", true);
        let fields = self.object("selection", value, &["mode", "value"]);
        match self.choice(&fields, "mode", &["COUNT", "PERCENT", "ALL"]) {
            Some("COUNT") => Selection::Count(self.number(&fields, "value", 1)),
            Some("PERCENT") => Selection::Percent(self.number(&fields, "value", 1)),
            Some(_) => {
                if self.field(&fields, "value", false).is_some() {
                    self.problems.push(Problem {
                        field: fields.path("value"),
                        message: "must be left out with mode ALL".to_owned(),
                    });
                }
                Selection::All
            }
            None => Selection::Count(1),
        }
    }

    fn failure(&mut self, root: &Fields<'_>) -> FailureType {
        let value = self.field(root, "failure", true);
        let fields = self.object("failure", value, &["type", "duration_secs"]);
        match self.choice(&fields, "type", &["TERMINATE", "PAUSE"]) {
            Some("PAUSE") => FailureType::Pause {
                duration_secs: self.number(&fields, "duration_secs", 1),
            },
            Some(_) => {
                if self.field(&fields, "duration_secs", false).is_some() {
                    self.problems.push(Problem {
                        field: fields.path("duration_secs"),
                        message: "applies to PAUSE only: TERMINATE takes no duration".to_owned(),
                    });
                }
                FailureType::Terminate
            }
            None => FailureType::Terminate,
        }
    }

    fn guardrails(&mut self, root: &Fields<'_>) -> Guardrails {
        let value = self.field(root, "guardrails", true);
        let fields = self.object(
            "guardrails",
            value,
            &["stop_conditions", "max_duration_secs"],
        );
        let path = fields.path("stop_conditions");
        let stop_conditions = match self.field(&fields, "stop_conditions", true) {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.stop_condition(&format!("{path}[{i}]"), item))
                .collect(),
            Some(other) => {
                self.unreadable(path, format!("must be a list (got {})", kind(other)));
                Vec::new()
            }
            None => Vec::new(),
        };
        Guardrails {
            stop_conditions,
            max_duration_secs: self.number(&fields, "max_duration_secs", 14_400),
        }
    }

    fn stop_condition(&mut self, path: &str, value: &Value) -> StopCondition {
        let fields = self.object(path, Some(value), &["type", "alarm_name", "percent"]);
        let kind = self.choice(&fields, "type", &["ALARM", "MAX_ERROR_RATE"]);
        let (own, other) = match kind {
            Some("ALARM") => ("alarm_name", "percent"),
            Some(_) => ("percent", "alarm_name"),
            None => return StopCondition::MaxErrorRate { percent: 1 },
        };
        if self.field(&fields, other, false).is_some() {
            self.problems.push(Problem {
                field: fields.path(other),
                message: format!("does not apply to {}", kind.unwrap_or_default()),
            });
        }
        if own == "alarm_name" {
            StopCondition::Alarm {
                alarm_name: self.string(&fields, "alarm_name", "-"),
            }
        } else {
            StopCondition::MaxErrorRate {
                percent: self.number(&fields, "percent", 1),
            }
        }
    }

    fn recovery(&mut self, root: &Fields<'_>) -> RecoveryPolicy {
        let value = self.field(root, "recovery", true);
        let fields = self.object(
            "recovery",
            value,
            &["timeout_secs", "poll_interval_secs", "baseline_samples"],
        );
        RecoveryPolicy {
            timeout_secs: self.number(&fields, "timeout_secs", 5),
            poll_interval_secs: self.number(&fields, "poll_interval_secs", 1),
            baseline_samples: self.number(&fields, "baseline_samples", 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::tests::input;

    fn problems(value: &Value) -> Vec<(String, String)> {
        ExperimentSpecInput::from_json(value)
            .expect_err("the spec is refused")
            .problems
            .into_iter()
            .map(|p| (p.field, p.message))
            .collect()
    }

    fn fields(value: &Value) -> Vec<String> {
        problems(value)
            .into_iter()
            .map(|(field, _)| field)
            .collect()
    }

    #[test]
    fn a_written_spec_reads_as_serde_reads_it() {
        let written = serde_json::to_value(input()).expect("encodes");
        let read = ExperimentSpecInput::from_json(&written).expect("reads");
        assert_eq!(read, input());
        let mut pause = input();
        pause.failure = FailureType::Pause { duration_secs: 20 };
        pause.selection = Selection::All;
        pause.guardrails.stop_conditions = vec![StopCondition::Alarm {
            alarm_name: "p95".into(),
        }];
        let written = serde_json::to_value(&pause).expect("encodes");
        assert_eq!(ExperimentSpecInput::from_json(&written), Ok(pause));
    }

    #[test]
    fn optional_fields_may_be_left_out_or_null() {
        let mut written = serde_json::to_value(input()).expect("encodes");
        let object = written.as_object_mut().expect("an object");
        object.remove("description");
        object.insert("dry_run".into(), Value::Null);
        let read = ExperimentSpecInput::from_json(&written).expect("reads");
        assert_eq!(read.description, "");
        assert!(!read.dry_run);
    }

    #[test]
    fn every_problem_of_type_and_value_is_reported_with_its_path() {
        let written = json!({
            "name": "",
            "target": {"kind": "LOCAL_FLEET", "group": 7},
            "selection": {"mode": "EXPLODE", "value": 1},
            "max_targets": -1,
            "failure": {"type": "PAUSE", "duration_secs": 5000, "signal": "KILL"},
            "guardrails": {
                "stop_conditions": [{"type": "MAX_ERROR_RATE", "percent": 1.5}, "x"],
                "max_duration_secs": 600
            },
            "recovery": {"timeout_secs": 120, "poll_interval_secs": 2},
            "owner": "me"
        });
        assert_eq!(
            problems(&written),
            [
                ("owner", "unknown field; expected one of name, description, target, selection, max_targets, failure, dry_run, guardrails, recovery"),
                ("target.group", "must be a string (got a number)"),
                ("selection.mode", "must be one of COUNT, PERCENT, ALL (got \"EXPLODE\")"),
                ("max_targets", "must be a whole number from 0 to 4294967295 (got -1)"),
                ("failure.signal", "unknown field; expected one of type, duration_secs"),
                ("guardrails.stop_conditions[0].percent", "must be a whole number from 0 to 4294967295 (got 1.5)"),
                ("guardrails.stop_conditions[1]", "must be an object (got a string)"),
                ("recovery.baseline_samples", "is required"),
                ("name", "must not be empty"),
                ("failure.duration_secs", "must be between 1 and 3600 (got 5000)"),
                ("guardrails.max_duration_secs", "must be at least the recovery timeout plus the pause duration (5120 s)"),
            ]
            .map(|(f, m)| (f.to_owned(), m.to_owned()))
        );
    }

    #[test]
    fn fields_that_belong_to_another_variant_are_refused() {
        let mut written = serde_json::to_value(input()).expect("encodes");
        written["failure"] = json!({"type": "TERMINATE", "duration_secs": 5});
        written["selection"] = json!({"mode": "ALL", "value": 3});
        written["guardrails"]["stop_conditions"] =
            json!([{"type": "ALARM", "alarm_name": "a", "percent": 5}]);
        assert_eq!(
            fields(&written),
            [
                "selection.value",
                "failure.duration_secs",
                "guardrails.stop_conditions[0].percent"
            ]
        );
    }

    #[test]
    fn a_value_problem_about_a_stand_in_is_not_reported() {
        // max_targets unreadable: COUNT 5 is not compared with a stand-in cap; recovery
        // unreadable: the duration limit is not compared with a stand-in timeout.
        let mut written = serde_json::to_value(input()).expect("encodes");
        written["max_targets"] = json!("3");
        written["selection"] = json!({"mode": "COUNT", "value": 5});
        written["recovery"]["timeout_secs"] = json!(null);
        written["guardrails"]["max_duration_secs"] = json!(10);
        assert_eq!(fields(&written), ["max_targets", "recovery.timeout_secs"]);
    }

    #[test]
    fn a_document_that_is_not_an_object_says_so() {
        assert_eq!(
            problems(&json!([1])),
            [(String::new(), "must be an object (got a list)".to_owned())]
        );
    }
}
