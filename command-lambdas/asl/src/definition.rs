//! A state machine definition, parsed and checked: every field known, every transition to a
//! state that exists, every retry and catch well formed.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::path::{Path, Template};

/// Why a definition does not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct DefinitionError {
    /// Where: `States.Baseline.Retry[0].BackoffRate`.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

fn invalid(at: impl Into<String>, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        at: at.into(),
        message: message.into(),
    }
}

/// Where a state goes when it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// To the named state.
    Next(String),
    /// The execution ends with this state's output.
    End,
}

/// A `Retry` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    /// Error names it applies to.
    pub error_equals: Vec<String>,
    /// Seconds before the first retry.
    pub interval_seconds: u64,
    /// Retries at most.
    pub max_attempts: u32,
    /// Factor between successive intervals.
    pub backoff_rate: f64,
    /// Longest interval, if capped.
    pub max_delay_seconds: Option<u64>,
}

/// A `Catch` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    /// Error names it applies to.
    pub error_equals: Vec<String>,
    /// Where the error object goes in the state's input (`None`: discarded).
    pub result_path: Option<Path>,
    /// Where the execution goes.
    pub next: String,
}

/// Whether an error name is matched by a list of `ErrorEquals`.
pub fn matches(error_equals: &[String], error: &str) -> bool {
    error_equals.iter().any(|name| {
        name == error
            || name == "States.ALL"
            || (name == "States.TaskFailed" && error != "States.Timeout")
    })
}

/// Input and output processing shared by most states.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Io {
    /// `InputPath` (`None`: the input is `{}`).
    pub input_path: Option<Path>,
    /// `OutputPath` (`None`: the output is `{}`).
    pub output_path: Option<Path>,
}

/// A `Task` state.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    /// What runs it.
    pub resource: String,
    /// Input and output paths.
    pub io: Io,
    /// Builds the task's input.
    pub parameters: Option<Template>,
    /// Reshapes the task's result.
    pub result_selector: Option<Template>,
    /// Where the result goes in the state's input (`None`: discarded).
    pub result_path: Option<Path>,
    /// Retry policies, first match wins.
    pub retry: Vec<Retrier>,
    /// Error handlers, first match wins.
    pub catch: Vec<Catcher>,
    /// Where next.
    pub transition: Transition,
}

/// A comparison of a `Choice` rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// `StringEquals`.
    StringEquals(String),
    /// `StringEqualsPath`.
    StringEqualsPath(Path),
    /// `BooleanEquals`.
    BooleanEquals(bool),
    /// `BooleanEqualsPath`.
    BooleanEqualsPath(Path),
    /// `NumericEquals`.
    NumericEquals(f64),
    /// `NumericLessThan`.
    NumericLessThan(f64),
    /// `NumericLessThanEquals`.
    NumericLessThanEquals(f64),
    /// `NumericGreaterThan`.
    NumericGreaterThan(f64),
    /// `NumericGreaterThanEquals`.
    NumericGreaterThanEquals(f64),
    /// `IsPresent`.
    IsPresent(bool),
    /// `IsNull`.
    IsNull(bool),
    /// `IsBoolean`.
    IsBoolean(bool),
    /// `IsNumeric`.
    IsNumeric(bool),
    /// `IsString`.
    IsString(bool),
}

/// A condition of a `Choice` rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A comparison of the value at `variable`.
    Compare {
        /// The path compared.
        variable: Path,
        /// How.
        comparison: Comparison,
    },
    /// All of these.
    And(Vec<Condition>),
    /// Any of these.
    Or(Vec<Condition>),
    /// Not this.
    Not(Box<Condition>),
}

/// A `Choice` state.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceState {
    /// Input and output paths.
    pub io: Io,
    /// Rules in order: the first that holds decides.
    pub choices: Vec<(Condition, String)>,
    /// Where to go when none holds.
    pub default: Option<String>,
}

/// How long a `Wait` state waits.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    /// `Seconds`.
    Seconds(u64),
    /// `SecondsPath`.
    SecondsPath(Path),
}

/// A `Wait` state.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitState {
    /// Input and output paths.
    pub io: Io,
    /// How long.
    pub wait: WaitFor,
    /// Where next.
    pub transition: Transition,
}

/// A `Pass` state.
#[derive(Debug, Clone, PartialEq)]
pub struct PassState {
    /// Input and output paths.
    pub io: Io,
    /// `Result`, if given.
    pub result: Option<Value>,
    /// `Parameters`, if given.
    pub parameters: Option<Template>,
    /// Where the result goes.
    pub result_path: Option<Path>,
    /// Where next.
    pub transition: Transition,
}

/// A state.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Runs a task.
    Task(TaskState),
    /// Branches on its input.
    Choice(ChoiceState),
    /// Waits.
    Wait(WaitState),
    /// Passes its input on, maybe reshaped.
    Pass(PassState),
    /// Ends the execution successfully.
    Succeed(Io),
    /// Ends the execution as failed.
    Fail {
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
}

/// A loaded state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    start_at: String,
    states: BTreeMap<String, State>,
}

/// Reads the fields of one JSON object, and refuses the ones nobody read.
struct Fields<'a> {
    at: String,
    object: &'a Map<String, Value>,
    read: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn new(at: impl Into<String>, value: &'a Value) -> Result<Self, DefinitionError> {
        let at = at.into();
        let object = value
            .as_object()
            .ok_or_else(|| invalid(&at, "must be a JSON object"))?;
        Ok(Fields {
            at,
            object,
            read: vec!["Comment"],
        })
    }

    fn at(&self, field: &str) -> String {
        format!("{}.{field}", self.at)
    }

    fn get(&mut self, field: &'static str) -> Option<&'a Value> {
        self.read.push(field);
        self.object.get(field)
    }

    fn string(&mut self, field: &'static str) -> Result<Option<String>, DefinitionError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(self.at(field), "must be a string")),
        }
    }

    fn required_string(&mut self, field: &'static str) -> Result<String, DefinitionError> {
        self.string(field)?
            .ok_or_else(|| invalid(self.at(field), "is required"))
    }

    fn unsigned(&mut self, field: &'static str) -> Result<Option<u64>, DefinitionError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(self.at(field), "must be a whole number of at least 0")),
        }
    }

    fn number(&mut self, field: &'static str) -> Result<Option<f64>, DefinitionError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| invalid(self.at(field), "must be a number")),
        }
    }

    fn boolean(&mut self, field: &'static str) -> Result<Option<bool>, DefinitionError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| invalid(self.at(field), "must be true or false")),
        }
    }

    /// A path field that may be `null` (meaning `{}` or "discard"); absent means `$`.
    fn nullable_path(
        &mut self,
        field: &'static str,
        parse: fn(&str) -> Result<Path, String>,
    ) -> Result<Option<Path>, DefinitionError> {
        match self.get(field) {
            None => Ok(Some(
                Path::parse("$").map_err(|e| invalid(self.at(field), e))?,
            )),
            Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse(s).map(Some).map_err(|e| invalid(self.at(field), e)),
            Some(_) => Err(invalid(self.at(field), "must be a path or null")),
        }
    }

    fn path(&mut self, field: &'static str) -> Result<Option<Path>, DefinitionError> {
        match self.string(field)? {
            None => Ok(None),
            Some(s) => Path::parse(&s)
                .map(Some)
                .map_err(|e| invalid(self.at(field), e)),
        }
    }

    fn template(&mut self, field: &'static str) -> Result<Option<Template>, DefinitionError> {
        self.get(field)
            .map(|v| Template::parse(v).map_err(|e| invalid(self.at(field), e)))
            .transpose()
    }

    fn io(&mut self) -> Result<Io, DefinitionError> {
        Ok(Io {
            input_path: self.nullable_path("InputPath", Path::parse)?,
            output_path: self.nullable_path("OutputPath", Path::parse)?,
        })
    }

    fn transition(&mut self) -> Result<Transition, DefinitionError> {
        let next = self.string("Next")?;
        let end = self.boolean("End")?.unwrap_or(false);
        match (next, end) {
            (Some(next), false) => Ok(Transition::Next(next)),
            (None, true) => Ok(Transition::End),
            (Some(_), true) => Err(invalid(&self.at, "has both Next and End")),
            (None, false) => Err(invalid(&self.at, "needs Next or \"End\": true")),
        }
    }

    fn error_equals(&mut self) -> Result<Vec<String>, DefinitionError> {
        let at = self.at("ErrorEquals");
        let names: Vec<String> = self
            .get("ErrorEquals")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(&at, "must be a list of error names"))?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid(&at, "must be a list of error names"))?;
        if names.is_empty() {
            return Err(invalid(&at, "must name at least one error"));
        }
        if names.len() > 1 && names.iter().any(|n| n == "States.ALL") {
            return Err(invalid(&at, "States.ALL must appear alone"));
        }
        Ok(names)
    }

    /// Refuses any field that was not read: this engine would ignore it, Step Functions would not.
    fn finish(self) -> Result<(), DefinitionError> {
        match self
            .object
            .keys()
            .find(|k| !self.read.contains(&k.as_str()))
        {
            Some(field) => Err(invalid(
                format!("{}.{field}", self.at),
                "is not supported by the embedded engine",
            )),
            None => Ok(()),
        }
    }
}

fn retriers(fields: &mut Fields<'_>) -> Result<Vec<Retrier>, DefinitionError> {
    let at = fields.at("Retry");
    let Some(list) = fields.get("Retry") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| invalid(&at, "must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let mut f = Fields::new(format!("{at}[{i}]"), item)?;
        let retrier = Retrier {
            error_equals: f.error_equals()?,
            interval_seconds: f.unsigned("IntervalSeconds")?.unwrap_or(1),
            max_attempts: u32::try_from(f.unsigned("MaxAttempts")?.unwrap_or(3))
                .map_err(|_| invalid(f.at("MaxAttempts"), "is too large"))?,
            backoff_rate: f.number("BackoffRate")?.unwrap_or(2.0),
            max_delay_seconds: f.unsigned("MaxDelaySeconds")?,
        };
        if retrier.interval_seconds == 0 {
            return Err(invalid(f.at("IntervalSeconds"), "must be at least 1"));
        }
        if retrier.backoff_rate < 1.0 {
            return Err(invalid(f.at("BackoffRate"), "must be at least 1.0"));
        }
        if retrier.error_equals.iter().any(|n| n == "States.ALL") && i + 1 != list.len() {
            return Err(invalid(
                f.at("ErrorEquals"),
                "States.ALL must be in the last retrier",
            ));
        }
        f.finish()?;
        out.push(retrier);
    }
    Ok(out)
}

fn catchers(fields: &mut Fields<'_>) -> Result<Vec<Catcher>, DefinitionError> {
    let at = fields.at("Catch");
    let Some(list) = fields.get("Catch") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| invalid(&at, "must be a list"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let mut f = Fields::new(format!("{at}[{i}]"), item)?;
        let catcher = Catcher {
            error_equals: f.error_equals()?,
            result_path: f.nullable_path("ResultPath", Path::parse_result)?,
            next: f.required_string("Next")?,
        };
        if catcher.error_equals.iter().any(|n| n == "States.ALL") && i + 1 != list.len() {
            return Err(invalid(
                f.at("ErrorEquals"),
                "States.ALL must be in the last catcher",
            ));
        }
        f.finish()?;
        out.push(catcher);
    }
    Ok(out)
}

const COMPARISONS: [&str; 14] = [
    "StringEquals",
    "StringEqualsPath",
    "BooleanEquals",
    "BooleanEqualsPath",
    "NumericEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "IsPresent",
    "IsNull",
    "IsBoolean",
    "IsNumeric",
    "IsString",
];

fn comparison(f: &mut Fields<'_>) -> Result<Comparison, DefinitionError> {
    let present: Vec<&'static str> = COMPARISONS
        .into_iter()
        .filter(|c| f.object.contains_key(*c))
        .collect();
    let [name] = present.as_slice() else {
        return Err(invalid(
            &f.at,
            "a rule compares with exactly one operator (or combines rules with And, Or, Not)",
        ));
    };
    let name = *name;
    let at = f.at(name);
    let value = f.get(name).unwrap_or(&Value::Null);
    let string = || {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid(&at, "must be a string"))
    };
    let number = || {
        value
            .as_f64()
            .ok_or_else(|| invalid(&at, "must be a number"))
    };
    let boolean = || {
        value
            .as_bool()
            .ok_or_else(|| invalid(&at, "must be true or false"))
    };
    let path = || Path::parse(&string()?).map_err(|e| invalid(&at, e));
    Ok(match name {
        "StringEquals" => Comparison::StringEquals(string()?),
        "StringEqualsPath" => Comparison::StringEqualsPath(path()?),
        "BooleanEquals" => Comparison::BooleanEquals(boolean()?),
        "BooleanEqualsPath" => Comparison::BooleanEqualsPath(path()?),
        "NumericEquals" => Comparison::NumericEquals(number()?),
        "NumericLessThan" => Comparison::NumericLessThan(number()?),
        "NumericLessThanEquals" => Comparison::NumericLessThanEquals(number()?),
        "NumericGreaterThan" => Comparison::NumericGreaterThan(number()?),
        "NumericGreaterThanEquals" => Comparison::NumericGreaterThanEquals(number()?),
        "IsPresent" => Comparison::IsPresent(boolean()?),
        "IsNull" => Comparison::IsNull(boolean()?),
        "IsBoolean" => Comparison::IsBoolean(boolean()?),
        "IsNumeric" => Comparison::IsNumeric(boolean()?),
        _ => Comparison::IsString(boolean()?),
    })
}

fn condition(
    at: String,
    value: &Value,
    top: bool,
) -> Result<(Condition, Option<String>), DefinitionError> {
    let mut f = Fields::new(at, value)?;
    let next = if top {
        Some(f.required_string("Next")?)
    } else {
        None
    };
    let nested =
        |f: &mut Fields<'_>, name: &'static str| -> Result<Vec<Condition>, DefinitionError> {
            let at = f.at(name);
            let list = f
                .get(name)
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .ok_or_else(|| invalid(&at, "must be a non-empty list of rules"))?;
            list.iter()
                .enumerate()
                .map(|(i, v)| condition(format!("{at}[{i}]"), v, false).map(|(c, _)| c))
                .collect()
        };
    let condition = if f.object.contains_key("And") {
        Condition::And(nested(&mut f, "And")?)
    } else if f.object.contains_key("Or") {
        Condition::Or(nested(&mut f, "Or")?)
    } else if f.object.contains_key("Not") {
        let at = f.at("Not");
        let inner = f.get("Not").unwrap_or(&Value::Null);
        Condition::Not(Box::new(condition(at, inner, false)?.0))
    } else {
        let variable = f
            .path("Variable")?
            .ok_or_else(|| invalid(f.at("Variable"), "is required"))?;
        Condition::Compare {
            variable,
            comparison: comparison(&mut f)?,
        }
    };
    f.finish()?;
    Ok((condition, next))
}

fn state(name: &str, value: &Value) -> Result<State, DefinitionError> {
    let mut f = Fields::new(format!("States.{name}"), value)?;
    let kind = f.required_string("Type")?;
    let state = match kind.as_str() {
        "Task" => State::Task(TaskState {
            resource: f.required_string("Resource")?,
            io: f.io()?,
            parameters: f.template("Parameters")?,
            result_selector: f.template("ResultSelector")?,
            result_path: f.nullable_path("ResultPath", Path::parse_result)?,
            retry: retriers(&mut f)?,
            catch: catchers(&mut f)?,
            transition: f.transition()?,
        }),
        "Choice" => {
            let at = f.at("Choices");
            let rules = f
                .get("Choices")
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .ok_or_else(|| invalid(&at, "must be a non-empty list of rules"))?;
            let choices = rules
                .iter()
                .enumerate()
                .map(|(i, rule)| {
                    condition(format!("{at}[{i}]"), rule, true)
                        .map(|(c, next)| (c, next.unwrap_or_default()))
                })
                .collect::<Result<_, _>>()?;
            State::Choice(ChoiceState {
                io: f.io()?,
                choices,
                default: f.string("Default")?,
            })
        }
        "Wait" => {
            let seconds = f.unsigned("Seconds")?;
            let seconds_path = f.path("SecondsPath")?;
            let wait = match (seconds, seconds_path) {
                (Some(s), None) => WaitFor::Seconds(s),
                (None, Some(p)) => WaitFor::SecondsPath(p),
                _ => {
                    return Err(invalid(
                        &f.at,
                        "a Wait needs exactly one of Seconds and SecondsPath (timestamps are not supported by the embedded engine)",
                    ));
                }
            };
            State::Wait(WaitState {
                io: f.io()?,
                wait,
                transition: f.transition()?,
            })
        }
        "Pass" => State::Pass(PassState {
            io: f.io()?,
            result: f.get("Result").cloned(),
            parameters: f.template("Parameters")?,
            result_path: f.nullable_path("ResultPath", Path::parse_result)?,
            transition: f.transition()?,
        }),
        "Succeed" => State::Succeed(f.io()?),
        "Fail" => State::Fail {
            error: f.string("Error")?.unwrap_or_default(),
            cause: f.string("Cause")?.unwrap_or_default(),
        },
        other => {
            return Err(invalid(
                f.at("Type"),
                format!("{other} states are not supported by the embedded engine"),
            ));
        }
    };
    f.finish()?;
    Ok(state)
}

impl Definition {
    /// Parses and checks a definition.
    pub fn parse(value: &Value) -> Result<Definition, DefinitionError> {
        let mut f = Fields::new("", value)?;
        let start_at = f.required_string("StartAt")?;
        let states_at = f.at("States");
        let states = f
            .get("States")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(&states_at, "must be an object of states"))?
            .iter()
            .map(|(name, v)| state(name, v).map(|s| (name.clone(), s)))
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        f.read.push("Version");
        f.finish()?;
        let definition = Definition { start_at, states };
        definition.check_transitions()?;
        Ok(definition)
    }

    /// Parses a definition from its JSON text.
    pub fn from_json(text: &str) -> Result<Definition, DefinitionError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| invalid("(definition)", e.to_string()))?;
        Definition::parse(&value)
    }

    fn check_transitions(&self) -> Result<(), DefinitionError> {
        let known = |at: String, to: &str| {
            if self.states.contains_key(to) {
                Ok(())
            } else {
                Err(invalid(at, format!("goes to {to:?}, which is not a state")))
            }
        };
        known(".StartAt".into(), &self.start_at)?;
        for (name, state) in &self.states {
            let at = |field: &str| format!("States.{name}.{field}");
            let transition = match state {
                State::Task(t) => {
                    for (i, c) in t.catch.iter().enumerate() {
                        known(at(&format!("Catch[{i}].Next")), &c.next)?;
                    }
                    Some(&t.transition)
                }
                State::Wait(w) => Some(&w.transition),
                State::Pass(p) => Some(&p.transition),
                State::Choice(c) => {
                    for (i, (_, next)) in c.choices.iter().enumerate() {
                        known(at(&format!("Choices[{i}].Next")), next)?;
                    }
                    if let Some(default) = &c.default {
                        known(at("Default"), default)?;
                    }
                    None
                }
                State::Succeed(_) | State::Fail { .. } => None,
            };
            if let Some(Transition::Next(next)) = transition {
                known(at("Next"), next)?;
            }
        }
        Ok(())
    }

    /// The state an execution starts in.
    pub fn start_at(&self) -> &str {
        &self.start_at
    }

    /// A state by name.
    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }

    /// Every state, by name.
    pub fn states(&self) -> impl Iterator<Item = (&str, &State)> {
        self.states.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// The definition with every `Resource` passed through `rename` (substituting
    /// `${...FunctionArn}` placeholders, as a deployment does).
    pub fn map_resources(mut self, rename: impl Fn(&str) -> String) -> Definition {
        for state in self.states.values_mut() {
            if let State::Task(task) = state {
                task.resource = rename(&task.resource);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error_of(definition: Value) -> DefinitionError {
        Definition::parse(&definition).expect_err("refused")
    }

    fn one_state(state: Value) -> Value {
        json!({"StartAt": "S", "States": {"S": state, "Done": {"Type": "Succeed"}}})
    }

    #[test]
    fn the_experiment_workflow_loads() {
        let text = include_str!("../../../step-functions/experiment.asl.json");
        let definition = Definition::from_json(text).expect("loads");
        assert_eq!(definition.start_at(), "ResolveTargets");
        assert!(matches!(definition.state("Rollback"), Some(State::Task(_))));
    }

    #[test]
    fn what_the_engine_would_run_differently_does_not_load() {
        let cases = [
            (
                one_state(
                    json!({"Type": "Task", "Resource": "r", "End": true, "TimeoutSeconds": 5}),
                ),
                "States.S.TimeoutSeconds",
                "not supported",
            ),
            (
                one_state(json!({"Type": "Map", "End": true})),
                "States.S.Type",
                "Map states",
            ),
            (
                one_state(
                    json!({"Type": "Wait", "Timestamp": "2026-01-01T00:00:00Z", "Next": "Done"}),
                ),
                "States.S",
                "exactly one of Seconds",
            ),
            (
                one_state(json!({"Type": "Pass", "Next": "Nowhere"})),
                "States.S.Next",
                "not a state",
            ),
            (one_state(json!({"Type": "Pass"})), "States.S", "needs Next"),
            (
                one_state(json!({"Type": "Task", "Resource": "r", "End": true,
                    "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]})),
                "States.S.Retry[0].ErrorEquals",
                "last retrier",
            ),
            (
                one_state(json!({"Type": "Task", "Resource": "r", "End": true,
                    "Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "FULL"}]})),
                "States.S.Retry[0].JitterStrategy",
                "not supported",
            ),
            (
                one_state(json!({"Type": "Task", "Resource": "r", "End": true,
                    "Parameters": {"id.$": "$$.Execution.Id"}})),
                "States.S.Parameters",
                "context object",
            ),
            (
                one_state(json!({"Type": "Choice", "Choices": [
                    {"Variable": "$.a", "StringEquals": "x", "BooleanEquals": true, "Next": "Done"}]})),
                "States.S.Choices[0]",
                "exactly one operator",
            ),
            (
                one_state(json!({"Type": "Choice", "Choices": [
                    {"Variable": "$.a", "TimestampEquals": "x", "Next": "Done"}]})),
                "States.S.Choices[0]",
                "exactly one operator",
            ),
            (
                json!({"StartAt": "Missing", "States": {"Done": {"Type": "Succeed"}}}),
                ".StartAt",
                "not a state",
            ),
            (
                json!({"StartAt": "Done", "QueryLanguage": "JSONata", "States": {"Done": {"Type": "Succeed"}}}),
                ".QueryLanguage",
                "not supported",
            ),
        ];
        for (definition, at, says) in cases {
            let error = error_of(definition);
            assert_eq!(error.at, at, "{error}");
            assert!(error.message.contains(says), "{error}");
        }
    }

    #[test]
    fn error_names_match_as_step_functions_matches_them() {
        let names = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(matches(&names(&["Chaos.Retryable"]), "Chaos.Retryable"));
        assert!(!matches(&names(&["Chaos.Retryable"]), "Chaos.Failed"));
        assert!(matches(&names(&["States.ALL"]), "Anything"));
        assert!(matches(&names(&["States.TaskFailed"]), "Chaos.Failed"));
        assert!(!matches(&names(&["States.TaskFailed"]), "States.Timeout"));
    }
}
