//! The interpreter: runs a [`Definition`] from a state, with its tasks run by a [`Resources`]
//! and its waits timed by a [`Timer`], reporting every step as an [`Event`].
//!
//! Semantics follow the States Language specification and Step Functions:
//! - a task's input is `InputPath`, then `Parameters`; its result goes through
//!   `ResultSelector`, then into the state's input at `ResultPath`, then `OutputPath`;
//! - on a task error, the first retrier whose `ErrorEquals` matches decides: it retries after
//!   `IntervalSeconds × BackoffRate^n` (capped by `MaxDelaySeconds`) until its `MaxAttempts`
//!   are spent; then the first matching catcher places `{"Error", "Cause"}` at its
//!   `ResultPath` and goes to its `Next`; with none, the execution fails with the error;
//! - a path that finds nothing, a `Wait` whose `SecondsPath` is not a whole number of seconds,
//!   or a result that cannot be placed fails the execution with `States.Runtime`, which no
//!   retrier or catcher handles; a `Choice` with no rule that holds and no `Default` fails it
//!   with `States.NoChoiceMatched`.
//!
//! An execution runs at most [`MAX_TRANSITIONS`] states (Step Functions caps an execution's
//! history at 25,000 events), so a definition that loops forever ends, failed.

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};

use super::definition::{
    ChoiceState, Comparison, Condition, Definition, Io, PassState, State, TaskState, Transition,
    WaitFor, WaitState, matches,
};
use super::path::Path;

/// The most states one execution enters.
pub const MAX_TRANSITIONS: usize = 10_000;

/// The longest wait a `Wait` state or a retry takes (Step Functions' limit: one year).
const MAX_WAIT_SECS: u64 = 31_536_000;

/// A failed task, as Step Functions names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// The error name `Retry` and `Catch` match on.
    pub error: String,
    /// What happened.
    pub cause: String,
}

/// What runs the tasks of a definition.
pub trait Resources: Send + Sync {
    /// Runs the task `resource` of state `state` on `input`.
    fn invoke(
        &self,
        state: &str,
        resource: &str,
        input: Value,
    ) -> impl Future<Output = Result<Value, TaskFailure>> + Send;
}

/// What waits.
pub trait Timer: Send + Sync {
    /// Waits `duration` (an embedded engine may be woken earlier; see the workflow runner).
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// A step of an execution.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A state was entered with this input.
    Entered {
        /// The state.
        state: String,
        /// Its input.
        input: Value,
    },
    /// A task was invoked.
    TaskScheduled {
        /// The state.
        state: String,
        /// Its resource.
        resource: String,
        /// The task's input (after `Parameters`).
        input: Value,
    },
    /// A task answered.
    TaskSucceeded {
        /// The state.
        state: String,
        /// The task's result.
        output: Value,
    },
    /// A task failed.
    TaskFailed {
        /// The state.
        state: String,
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
    },
    /// A wait, by a `Wait` state or before a retry.
    Waited {
        /// The state.
        state: String,
        /// How long.
        seconds: f64,
    },
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// It reached a `Succeed` state or an end.
    Succeeded {
        /// Its output.
        output: Value,
    },
    /// It reached a `Fail` state, or an error ended it.
    Failed {
        /// Error name.
        error: String,
        /// Cause.
        cause: String,
        /// The state it failed in.
        state: String,
    },
}

/// An error that ends the execution.
struct Fatal {
    error: &'static str,
    cause: String,
}

fn runtime(cause: String) -> Fatal {
    Fatal {
        error: "States.Runtime",
        cause,
    }
}

fn apply_path(path: Option<&Path>, value: Value, field: &str) -> Result<Value, Fatal> {
    match path {
        None => Ok(json!({})),
        Some(path) => path.get(&value).cloned().ok_or_else(|| {
            runtime(format!(
                "the {field} {path} has no value in the state's data"
            ))
        }),
    }
}

fn effective_input(io: &Io, input: Value) -> Result<Value, Fatal> {
    apply_path(io.input_path.as_ref(), input, "InputPath")
}

fn place(result_path: Option<&Path>, input: Value, result: Value) -> Result<Value, Fatal> {
    match result_path {
        None => Ok(input),
        Some(path) => path.set(input, result).map_err(runtime),
    }
}

fn output(io: &Io, value: Value) -> Result<Value, Fatal> {
    apply_path(io.output_path.as_ref(), value, "OutputPath")
}

fn compare(comparison: &Comparison, value: Option<&Value>, input: &Value) -> Result<bool, Fatal> {
    use Comparison as C;
    match comparison {
        C::IsPresent(want) => return Ok(value.is_some() == *want),
        C::IsNull(want) => return Ok(value.is_some_and(Value::is_null) == *want),
        C::IsBoolean(want) => return Ok(value.is_some_and(Value::is_boolean) == *want),
        C::IsNumeric(want) => return Ok(value.is_some_and(Value::is_number) == *want),
        C::IsString(want) => return Ok(value.is_some_and(Value::is_string) == *want),
        _ => {}
    }
    let Some(value) = value else {
        return Err(runtime(
            "a Choice rule's Variable has no value in the input".to_owned(),
        ));
    };
    let other = |path: &Path| {
        path.get(input)
            .ok_or_else(|| runtime(format!("the path {path} of a Choice rule has no value")))
    };
    let number = value.as_f64();
    Ok(match comparison {
        C::StringEquals(s) => value.as_str() == Some(s.as_str()),
        C::StringEqualsPath(p) => value.is_string() && Some(value) == other(p).ok(),
        C::BooleanEquals(b) => value.as_bool() == Some(*b),
        C::BooleanEqualsPath(p) => value.is_boolean() && Some(value) == other(p).ok(),
        C::NumericEquals(n) => number == Some(*n),
        C::NumericLessThan(n) => number.is_some_and(|v| v < *n),
        C::NumericLessThanEquals(n) => number.is_some_and(|v| v <= *n),
        C::NumericGreaterThan(n) => number.is_some_and(|v| v > *n),
        C::NumericGreaterThanEquals(n) => number.is_some_and(|v| v >= *n),
        C::IsPresent(_) | C::IsNull(_) | C::IsBoolean(_) | C::IsNumeric(_) | C::IsString(_) => {
            false
        }
    })
}

fn holds(condition: &Condition, input: &Value) -> Result<bool, Fatal> {
    match condition {
        Condition::Compare {
            variable,
            comparison,
        } => {
            let value = variable.get(input);
            if value.is_none() && !matches!(comparison, Comparison::IsPresent(_)) {
                return Err(runtime(format!(
                    "the Choice rule's Variable {variable} has no value in the input"
                )));
            }
            compare(comparison, value, input)
        }
        Condition::And(all) => {
            for c in all {
                if !holds(c, input)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Condition::Or(any) => {
            for c in any {
                if holds(c, input)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Condition::Not(c) => Ok(!holds(c, input)?),
    }
}

fn choose(choice: &ChoiceState, input: &Value) -> Result<String, Fatal> {
    for (condition, next) in &choice.choices {
        if holds(condition, input)? {
            return Ok(next.clone());
        }
    }
    choice.default.clone().ok_or_else(|| Fatal {
        error: "States.NoChoiceMatched",
        cause: "no Choice rule matched and there is no Default".to_owned(),
    })
}

fn wait_seconds(wait: &WaitFor, input: &Value) -> Result<u64, Fatal> {
    let seconds = match wait {
        WaitFor::Seconds(s) => *s,
        WaitFor::SecondsPath(path) => path.get(input).and_then(Value::as_u64).ok_or_else(|| {
            runtime(format!(
                "the SecondsPath {path} does not hold a whole number of seconds"
            ))
        })?,
    };
    Ok(seconds.min(MAX_WAIT_SECS))
}

/// Where a state leaves to: the next state, or the end with an output.
enum Step {
    Next(String, Value),
    End(Value),
}

fn transition(transition: &Transition, value: Value) -> Step {
    match transition {
        Transition::Next(next) => Step::Next(next.clone(), value),
        Transition::End => Step::End(value),
    }
}

fn run_choice(choice: &ChoiceState, input: Value) -> Result<Step, Fatal> {
    let effective = effective_input(&choice.io, input)?;
    let next = choose(choice, &effective)?;
    Ok(Step::Next(next, output(&choice.io, effective)?))
}

async fn run_wait<T: Timer>(
    name: &str,
    wait: &WaitState,
    input: Value,
    timer: &T,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<Step, Fatal> {
    let effective = effective_input(&wait.io, input)?;
    let seconds = wait_seconds(&wait.wait, &effective)?;
    on_event(&Event::Waited {
        state: name.to_owned(),
        seconds: seconds as f64,
    });
    timer.sleep(Duration::from_secs(seconds)).await;
    Ok(transition(&wait.transition, output(&wait.io, effective)?))
}

fn run_pass(pass: &PassState, input: Value) -> Result<Step, Fatal> {
    let effective = effective_input(&pass.io, input.clone())?;
    let result = match (&pass.result, &pass.parameters) {
        (Some(result), _) => result.clone(),
        (None, Some(parameters)) => parameters.render(&effective).map_err(runtime)?,
        (None, None) => effective,
    };
    let placed = place(pass.result_path.as_ref(), input, result)?;
    Ok(transition(&pass.transition, output(&pass.io, placed)?))
}

/// Runs `definition` from the state `from` with `input`: until it succeeds or fails.
pub async fn run<R: Resources, T: Timer>(
    definition: &Definition,
    from: &str,
    input: Value,
    resources: &R,
    timer: &T,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Finished {
    let mut name = from.to_owned();
    let mut input = input;
    for _ in 0..MAX_TRANSITIONS {
        let Some(state) = definition.state(&name) else {
            return Finished::Failed {
                error: "States.Runtime".into(),
                cause: format!("there is no state {name:?} to run"),
                state: name,
            };
        };
        on_event(&Event::Entered {
            state: name.clone(),
            input: input.clone(),
        });
        let step = match state {
            State::Task(task) => run_task(&name, task, input, resources, timer, on_event).await,
            State::Choice(choice) => run_choice(choice, input).map_err(TaskEnd::Fatal),
            State::Wait(wait) => run_wait(&name, wait, input, timer, on_event)
                .await
                .map_err(TaskEnd::Fatal),
            State::Pass(pass) => run_pass(pass, input).map_err(TaskEnd::Fatal),
            State::Succeed(io) => effective_input(io, input)
                .and_then(|effective| output(io, effective))
                .map(Step::End)
                .map_err(TaskEnd::Fatal),
            State::Fail { error, cause } => {
                return Finished::Failed {
                    error: error.clone(),
                    cause: cause.clone(),
                    state: name,
                };
            }
        };
        match step {
            Ok(Step::Next(next, value)) => {
                name = next;
                input = value;
            }
            Ok(Step::End(output)) => return Finished::Succeeded { output },
            Err(TaskEnd::Fatal(fatal)) => {
                return Finished::Failed {
                    error: fatal.error.to_owned(),
                    cause: fatal.cause,
                    state: name,
                };
            }
            Err(TaskEnd::Uncaught(failure)) => {
                return Finished::Failed {
                    error: failure.error,
                    cause: failure.cause,
                    state: name,
                };
            }
        }
    }
    Finished::Failed {
        error: "States.Runtime".into(),
        cause: format!("the execution ran more than {MAX_TRANSITIONS} states"),
        state: name,
    }
}

/// Why a state ended the execution.
enum TaskEnd {
    Fatal(Fatal),
    Uncaught(TaskFailure),
}

impl From<Fatal> for TaskEnd {
    fn from(fatal: Fatal) -> Self {
        TaskEnd::Fatal(fatal)
    }
}

/// The wait before retry number `attempt` (0 for the first) of `retrier`.
fn backoff(retrier: &super::definition::Retrier, attempt: u32) -> Duration {
    let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
    let mut seconds = retrier.interval_seconds as f64 * retrier.backoff_rate.powi(exponent);
    if let Some(max) = retrier.max_delay_seconds {
        seconds = seconds.min(max as f64);
    }
    Duration::from_secs_f64(seconds.min(MAX_WAIT_SECS as f64))
}

async fn run_task<R: Resources, T: Timer>(
    name: &str,
    task: &TaskState,
    input: Value,
    resources: &R,
    timer: &T,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<Step, TaskEnd> {
    let effective = effective_input(&task.io, input.clone())?;
    let parameters = match &task.parameters {
        Some(template) => template.render(&effective).map_err(runtime)?,
        None => effective,
    };
    let mut attempts = vec![0u32; task.retry.len()];
    loop {
        on_event(&Event::TaskScheduled {
            state: name.to_owned(),
            resource: task.resource.clone(),
            input: parameters.clone(),
        });
        let failure = match resources
            .invoke(name, &task.resource, parameters.clone())
            .await
        {
            Ok(result) => {
                on_event(&Event::TaskSucceeded {
                    state: name.to_owned(),
                    output: result.clone(),
                });
                let result = match &task.result_selector {
                    Some(selector) => selector.render(&result).map_err(runtime)?,
                    None => result,
                };
                let placed = place(task.result_path.as_ref(), input, result)?;
                return Ok(transition(&task.transition, output(&task.io, placed)?));
            }
            Err(failure) => failure,
        };
        on_event(&Event::TaskFailed {
            state: name.to_owned(),
            error: failure.error.clone(),
            cause: failure.cause.clone(),
        });
        if let Some(i) = task
            .retry
            .iter()
            .position(|r| matches(&r.error_equals, &failure.error))
        {
            let retrier = &task.retry[i];
            if attempts[i] < retrier.max_attempts {
                let delay = backoff(retrier, attempts[i]);
                attempts[i] += 1;
                on_event(&Event::Waited {
                    state: name.to_owned(),
                    seconds: delay.as_secs_f64(),
                });
                timer.sleep(delay).await;
                continue;
            }
        }
        let Some(catcher) = task
            .catch
            .iter()
            .find(|c| matches(&c.error_equals, &failure.error))
        else {
            return Err(TaskEnd::Uncaught(failure));
        };
        let error = json!({"Error": failure.error, "Cause": failure.cause});
        let placed = place(catcher.result_path.as_ref(), input, error)?;
        return Ok(Step::Next(catcher.next.clone(), placed));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    /// Answers tasks from a queue and records what it was asked.
    struct Canned {
        answers: Mutex<VecDeque<Result<Value, TaskFailure>>>,
    }

    impl Canned {
        fn new(answers: Vec<Result<Value, TaskFailure>>) -> Self {
            Canned {
                answers: Mutex::new(answers.into()),
            }
        }
    }

    impl Resources for Canned {
        async fn invoke(&self, _: &str, _: &str, input: Value) -> Result<Value, TaskFailure> {
            self.answers
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or(Ok(input))
        }
    }

    /// Waits no time; the events say how long was asked.
    struct NoWait;

    impl Timer for NoWait {
        async fn sleep(&self, _: Duration) {}
    }

    fn fail(error: &str) -> Result<Value, TaskFailure> {
        Err(TaskFailure {
            error: error.into(),
            cause: format!("{error} happened"),
        })
    }

    async fn execute(
        definition: Value,
        input: Value,
        answers: Vec<Result<Value, TaskFailure>>,
    ) -> (Finished, Vec<Event>) {
        let definition = Definition::parse(&definition).expect("loads");
        let mut events = Vec::new();
        let finished = run(
            &definition,
            definition.start_at(),
            input,
            &Canned::new(answers),
            &NoWait,
            &mut |e| events.push(e.clone()),
        )
        .await;
        (finished, events)
    }

    fn entered(events: &[Event]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Entered { state, .. } => Some(state.as_str()),
                _ => None,
            })
            .collect()
    }

    fn waits(events: &[Event]) -> Vec<f64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Waited { seconds, .. } => Some(*seconds),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn input_and_output_processing_follow_the_specification() {
        let definition = json!({
            "StartAt": "T",
            "States": {
                "T": {
                    "Type": "Task", "Resource": "r",
                    "InputPath": "$.in",
                    "Parameters": {"id.$": "$.id", "fixed": 1},
                    "ResultSelector": {"value.$": "$.v"},
                    "ResultPath": "$.result",
                    "OutputPath": "$.result",
                    "Next": "P"
                },
                "P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.pass", "Next": "D"},
                "D": {"Type": "Pass", "ResultPath": null, "Parameters": {"ignored.$": "$.value"}, "Next": "E"},
                "E": {"Type": "Succeed"}
            }
        });
        let (finished, events) = execute(
            definition,
            json!({"in": {"id": "e-1", "other": true}}),
            vec![Ok(json!({"v": 42, "noise": "n"}))],
        )
        .await;
        assert!(events.contains(&Event::TaskScheduled {
            state: "T".into(),
            resource: "r".into(),
            input: json!({"id": "e-1", "fixed": 1}),
        }));
        assert_eq!(
            finished,
            Finished::Succeeded {
                output: json!({"value": 42, "pass": {"x": 1}})
            }
        );
    }

    fn retrying_task(max_attempts: u32) -> Value {
        json!({
            "StartAt": "T",
            "States": {
                "T": {
                    "Type": "Task", "Resource": "r",
                    "Retry": [
                        {"ErrorEquals": ["Busy"], "IntervalSeconds": 2, "MaxAttempts": max_attempts, "BackoffRate": 3.0, "MaxDelaySeconds": 10},
                        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 1}
                    ],
                    "Catch": [
                        {"ErrorEquals": ["Busy"], "ResultPath": "$.error", "Next": "Handle"}
                    ],
                    "End": true
                },
                "Handle": {"Type": "Pass", "End": true}
            }
        })
    }

    #[tokio::test]
    async fn retries_back_off_then_succeed() {
        let (finished, events) = execute(
            retrying_task(4),
            json!({"k": 1}),
            vec![fail("Busy"), fail("Busy"), fail("Busy"), Ok(json!("done"))],
        )
        .await;
        assert_eq!(waits(&events), vec![2.0, 6.0, 10.0]);
        assert_eq!(
            finished,
            Finished::Succeeded {
                output: json!("done")
            }
        );
    }

    #[tokio::test]
    async fn spent_retries_go_to_the_catcher_with_the_error_in_place() {
        let (finished, events) = execute(
            retrying_task(1),
            json!({"k": 1}),
            vec![fail("Busy"), fail("Busy")],
        )
        .await;
        assert_eq!(entered(&events), vec!["T", "Handle"]);
        assert_eq!(
            finished,
            Finished::Succeeded {
                output: json!({"k": 1, "error": {"Error": "Busy", "Cause": "Busy happened"}})
            }
        );
    }

    #[tokio::test]
    async fn an_error_no_catcher_takes_fails_the_execution_after_its_retrier() {
        let (finished, events) = execute(
            retrying_task(1),
            json!({}),
            vec![fail("Other"), fail("Other")],
        )
        .await;
        assert_eq!(waits(&events), vec![1.0]);
        assert_eq!(
            finished,
            Finished::Failed {
                error: "Other".into(),
                cause: "Other happened".into(),
                state: "T".into()
            }
        );
    }

    #[tokio::test]
    async fn choices_branch_on_the_first_rule_that_holds() {
        let definition = json!({
            "StartAt": "C",
            "States": {
                "C": {
                    "Type": "Choice",
                    "Choices": [
                        {"And": [
                            {"Variable": "$.n", "NumericGreaterThan": 5},
                            {"Not": {"Variable": "$.s", "StringEquals": "skip"}}
                        ], "Next": "Big"},
                        {"Or": [
                            {"Variable": "$.flag", "BooleanEquals": true},
                            {"Variable": "$.maybe", "IsPresent": true}
                        ], "Next": "Flagged"},
                        {"Variable": "$.s", "StringEqualsPath": "$.t", "Next": "Same"}
                    ],
                    "Default": "Other"
                },
                "Big": {"Type": "Succeed"},
                "Flagged": {"Type": "Succeed"},
                "Same": {"Type": "Succeed"},
                "Other": {"Type": "Fail", "Error": "E", "Cause": "c"}
            }
        });
        for (input, expected) in [
            (json!({"n": 6, "s": "go", "flag": false, "t": "x"}), "Big"),
            (
                json!({"n": 6, "s": "skip", "flag": true, "t": "x"}),
                "Flagged",
            ),
            (
                json!({"n": 1, "s": "a", "flag": false, "maybe": null, "t": "x"}),
                "Flagged",
            ),
            (json!({"n": 1, "s": "a", "flag": false, "t": "a"}), "Same"),
            (
                json!({"n": "6", "s": "a", "flag": "true", "t": "b"}),
                "Other",
            ),
        ] {
            let (_, events) = execute(definition.clone(), input.clone(), vec![]).await;
            assert_eq!(entered(&events), vec!["C", expected], "{input}");
        }
        let (finished, _) = execute(definition, json!({"s": "a"}), vec![]).await;
        assert!(
            matches!(finished, Finished::Failed { ref error, .. } if error == "States.Runtime"),
            "{finished:?}"
        );
    }

    #[tokio::test]
    async fn runtime_errors_are_not_caught() {
        let definition = json!({
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "T"},
                "T": {
                    "Type": "Task", "Resource": "r",
                    "Parameters": {"id.$": "$.id"},
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                    "End": true
                },
                "Caught": {"Type": "Succeed"}
            }
        });
        let (finished, events) = execute(definition.clone(), json!({"wait": 3}), vec![]).await;
        assert_eq!(waits(&events), vec![3.0]);
        assert!(
            matches!(&finished, Finished::Failed { error, state, cause } if error == "States.Runtime" && state == "T" && cause.contains("$.id")),
            "{finished:?}"
        );
        let (finished, _) = execute(definition, json!({"wait": -1, "id": 1}), vec![]).await;
        assert!(
            matches!(&finished, Finished::Failed { error, state, .. } if error == "States.Runtime" && state == "W"),
            "{finished:?}"
        );
    }

    #[tokio::test]
    async fn a_choice_without_a_match_or_default_fails_and_loops_end() {
        let (finished, _) = execute(
            json!({"StartAt": "C", "States": {"C": {"Type": "Choice",
                "Choices": [{"Variable": "$.a", "BooleanEquals": true, "Next": "C"}]}}}),
            json!({"a": false}),
            vec![],
        )
        .await;
        assert!(
            matches!(&finished, Finished::Failed { error, .. } if error == "States.NoChoiceMatched")
        );
        let (finished, events) = execute(
            json!({"StartAt": "C", "States": {"C": {"Type": "Choice",
                "Choices": [{"Variable": "$.a", "BooleanEquals": true, "Next": "C"}]}}}),
            json!({"a": true}),
            vec![],
        )
        .await;
        assert_eq!(events.len(), MAX_TRANSITIONS);
        assert!(matches!(&finished, Finished::Failed { error, .. } if error == "States.Runtime"));
    }
}
