//! One definition, two engines: `step-functions/experiment.asl.json` executed by Step Functions
//! (moto's, over the wire) and by the embedded interpreter ([`asl`]), with the
//! tasks of both answering the same canned results, takes the same steps: the same states
//! entered with the same inputs, the same tasks invoked with the same inputs, the same errors,
//! retries and catches, and the same end.
//!
//! In moto, the tasks are Lambda functions answered from moto's queue of canned results; a
//! canned `{"errorMessage", "errorType"}` is answered as a function error (`moto_server.py`).
//! Each path runs in a region of its own, so their queues do not mix.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use asl::{Definition, Event, Finished, Resources, TaskFailure, Timer};
use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use command_lambdas::tasks::{Task, TaskOutput};
use domain::experiment::{Outcome, Phase, Status};
use serde_json::{Value, json};
use test_support::aws;

/// One observable step, as both engines report it.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Entered(String, Value),
    Invoked(String, Value),
    Answered(String, Value),
    Failed(String, String, String),
    Succeeded(Value),
    ExecutionFailed(String, String),
}

fn definition_text(region: &str) -> String {
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(
            || env!("CARGO_MANIFEST_DIR").into(),
            std::path::PathBuf::from,
        )
        .join("../step-functions/experiment.asl.json");
    let mut text = std::fs::read_to_string(path).expect("read the definition");
    for task in Task::ALL {
        text = text.replace(
            &format!("${{{}FunctionArn}}", task.name()),
            &format!(
                "arn:aws:lambda:{region}:123456789012:function:chaos-{}",
                task.name()
            ),
        );
    }
    text
}

// ---- the canned answers ------------------------------------------------------------------

fn output(status: Status, phase: Option<Phase>, set: impl FnOnce(&mut TaskOutput)) -> Value {
    let mut out = TaskOutput {
        experiment_id: "exp-1".into(),
        status,
        phase,
        done: status.is_terminal(),
        stop: phase == Some(Phase::RollingBack),
        dry_run: false,
        baseline_done: false,
        wait_seconds: 1,
        observation_over: false,
        outcome: None,
    };
    set(&mut out);
    serde_json::to_value(out).expect("serializes")
}

fn running(phase: Phase) -> Value {
    output(Status::Running, Some(phase), |_| {})
}

fn baseline_done() -> Value {
    output(Status::Running, Some(Phase::Injecting), |o| {
        o.baseline_done = true
    })
}

fn observing(over: bool) -> Value {
    output(Status::Running, Some(Phase::ObservingRecovery), |o| {
        o.baseline_done = true;
        o.observation_over = over;
    })
}

fn completed(outcome: Outcome) -> Value {
    output(Status::Completed, None, |o| o.outcome = Some(outcome))
}

fn stopping() -> Value {
    running(Phase::RollingBack)
}

fn ended(status: Status) -> Value {
    output(status, None, |_| {})
}

/// A task's error, as a Lambda reports one.
fn error(name: &str, message: &str) -> Value {
    json!({"errorMessage": message, "errorType": name})
}

// ---- moto --------------------------------------------------------------------------------

fn sfn(region: &str) -> aws_sdk_sfn::Client {
    let config = aws_sdk_sfn::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(aws::moto().endpoint())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    aws_sdk_sfn::Client::from_conf(config)
}

fn parse(text: Option<&str>) -> Value {
    text.map_or(Value::Null, |t| serde_json::from_str(t).expect("JSON"))
}

fn steps_of(history: &[HistoryEvent]) -> Vec<Step> {
    let mut state = String::new();
    let mut steps = Vec::new();
    for event in history {
        if let Some(d) = event.state_entered_event_details() {
            state = d.name().to_owned();
            steps.push(Step::Entered(state.clone(), parse(d.input())));
        }
        match event.r#type() {
            HistoryEventType::LambdaFunctionScheduled => {
                let d = event
                    .lambda_function_scheduled_event_details()
                    .expect("details");
                steps.push(Step::Invoked(state.clone(), parse(d.input())));
            }
            HistoryEventType::LambdaFunctionSucceeded => {
                let d = event
                    .lambda_function_succeeded_event_details()
                    .expect("details");
                steps.push(Step::Answered(state.clone(), parse(d.output())));
            }
            HistoryEventType::LambdaFunctionFailed => {
                let d = event
                    .lambda_function_failed_event_details()
                    .expect("details");
                steps.push(Step::Failed(
                    state.clone(),
                    d.error().unwrap_or_default().to_owned(),
                    d.cause().unwrap_or_default().to_owned(),
                ));
            }
            HistoryEventType::ExecutionSucceeded => {
                let d = event.execution_succeeded_event_details().expect("details");
                steps.push(Step::Succeeded(parse(d.output())));
            }
            HistoryEventType::ExecutionFailed => {
                let d = event.execution_failed_event_details().expect("details");
                steps.push(Step::ExecutionFailed(
                    d.error().unwrap_or_default().to_owned(),
                    d.cause().unwrap_or_default().to_owned(),
                ));
            }
            _ => {}
        }
    }
    steps
}

async fn through_step_functions(region: &str, answers: &[Value]) -> Vec<Step> {
    let results: Vec<String> = answers.iter().map(Value::to_string).collect();
    aws::post_json(
        "/moto-api/static/lambda-simple/response",
        &json!({"results": results, "region": region}),
    );
    let client = sfn(region);
    let machine = client
        .create_state_machine()
        .name(aws::unique("experiment"))
        .definition(definition_text(region))
        .role_arn("arn:aws:iam::123456789012:role/chaos-workflow")
        .send()
        .await
        .expect("create the state machine")
        .state_machine_arn()
        .to_owned();
    let execution = client
        .start_execution()
        .state_machine_arn(&machine)
        .name("exp-1")
        .input(json!({"experimentId": "exp-1"}).to_string())
        .send()
        .await
        .expect("start")
        .execution_arn()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let described = client
            .describe_execution()
            .execution_arn(&execution)
            .send()
            .await
            .expect("describe");
        if described.status() != &ExecutionStatus::Running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the execution did not end in 90 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut history = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .get_execution_history()
            .execution_arn(&execution)
            .set_next_token(token)
            .send()
            .await
            .expect("history");
        history.extend_from_slice(page.events());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    steps_of(&history)
}

// ---- the embedded engine -----------------------------------------------------------------

/// Answers each task with the next canned result, as moto's Lambda does.
struct Canned(Mutex<VecDeque<Value>>);

impl Resources for Canned {
    async fn invoke(&self, _: &str, _: &str, input: Value) -> Result<Value, TaskFailure> {
        let Some(answer) = self.0.lock().expect("lock").pop_front() else {
            return Ok(input);
        };
        match (answer.get("errorType"), answer.get("errorMessage")) {
            (Some(Value::String(name)), Some(_))
                if answer.as_object().map(|o| o.len()) == Some(2) =>
            {
                Err(TaskFailure {
                    error: name.clone(),
                    cause: answer.to_string(),
                })
            }
            _ => Ok(answer),
        }
    }
}

/// Waits no time: the waits are the same by construction of the steps compared.
struct NoWait;

impl Timer for NoWait {
    async fn sleep(&self, _: Duration) {}
}

async fn through_embedded(region: &str, answers: &[Value]) -> Vec<Step> {
    let definition = Definition::from_json(&definition_text(region)).expect("loads");
    let canned = Canned(Mutex::new(answers.iter().cloned().collect()));
    let mut events = Vec::new();
    let finished = asl::engine::run(
        &definition,
        definition.start_at(),
        json!({"experimentId": "exp-1"}),
        &canned,
        &NoWait,
        &mut |e| events.push(e.clone()),
    )
    .await;
    let mut steps: Vec<Step> = events
        .into_iter()
        .filter_map(|e| match e {
            Event::Entered { state, input } => Some(Step::Entered(state, input)),
            Event::TaskScheduled { state, input, .. } => Some(Step::Invoked(state, input)),
            Event::TaskSucceeded { state, output } => Some(Step::Answered(state, output)),
            Event::TaskFailed {
                state,
                error,
                cause,
            } => Some(Step::Failed(state, error, cause)),
            Event::Waited { .. } => None,
        })
        .collect();
    steps.push(match finished {
        Finished::Succeeded { output } => Step::Succeeded(output),
        Finished::Failed { error, cause, .. } => Step::ExecutionFailed(error, cause),
    });
    steps
}

/// Runs `answers` through both engines; both take the same steps, entering `path`.
async fn both_engines(region: &str, answers: Vec<Value>, path: &[&str]) -> Vec<Step> {
    let embedded = through_embedded(region, &answers).await;
    let aws = through_step_functions(region, &answers).await;
    let entered: Vec<&str> = embedded
        .iter()
        .filter_map(|s| match s {
            Step::Entered(state, _) => Some(state.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(entered, path, "the embedded engine's path");
    for (i, (a, e)) in aws.iter().zip(&embedded).enumerate() {
        assert_eq!(
            a, e,
            "step {i} differs between Step Functions and the embedded engine"
        );
    }
    assert_eq!(aws.len(), embedded.len(), "{aws:#?}\n{embedded:#?}");
    let invoked = embedded
        .iter()
        .filter(|s| matches!(s, Step::Invoked(..)))
        .count();
    assert_eq!(invoked, answers.len(), "every canned answer is used once");
    embedded
}

fn last(steps: &[Step]) -> &Step {
    steps.last().expect("steps")
}

#[tokio::test]
async fn success() {
    let steps = both_engines(
        "us-east-2",
        vec![
            running(Phase::Baseline),
            running(Phase::Baseline),
            baseline_done(),
            observing(false),
            observing(false),
            observing(true),
            completed(Outcome::Recovered),
        ],
        &[
            "ResolveTargets",
            "AfterResolve",
            "Baseline",
            "AfterBaseline",
            "WaitForBaseline",
            "Baseline",
            "AfterBaseline",
            "Inject",
            "AfterInject",
            "WaitForRecovery",
            "CheckHealth",
            "AfterCheck",
            "WaitForRecovery",
            "CheckHealth",
            "AfterCheck",
            "Finish",
            "Ended",
        ],
    )
    .await;
    assert_eq!(
        last(&steps),
        &Step::Succeeded(completed(Outcome::Recovered))
    );
}

#[tokio::test]
async fn not_recovered_in_time() {
    let steps = both_engines(
        "us-west-1",
        vec![
            running(Phase::Baseline),
            baseline_done(),
            observing(false),
            observing(false),
            observing(false),
            observing(true),
            completed(Outcome::NotRecovered),
        ],
        &[
            "ResolveTargets",
            "AfterResolve",
            "Baseline",
            "AfterBaseline",
            "Inject",
            "AfterInject",
            "WaitForRecovery",
            "CheckHealth",
            "AfterCheck",
            "WaitForRecovery",
            "CheckHealth",
            "AfterCheck",
            "WaitForRecovery",
            "CheckHealth",
            "AfterCheck",
            "Finish",
            "Ended",
        ],
    )
    .await;
    assert_eq!(
        last(&steps),
        &Step::Succeeded(completed(Outcome::NotRecovered))
    );
}

#[tokio::test]
async fn stop_requested_while_observing() {
    let steps = both_engines(
        "us-west-2",
        vec![
            running(Phase::Baseline),
            baseline_done(),
            observing(false),
            stopping(),
            ended(Status::Stopped),
        ],
        &[
            "ResolveTargets",
            "AfterResolve",
            "Baseline",
            "AfterBaseline",
            "Inject",
            "AfterInject",
            "WaitForRecovery",
            "CheckHealth",
            "AfterCheck",
            "Rollback",
            "AfterRollback",
            "Ended",
        ],
    )
    .await;
    // The rollback task is given the whole state: the run's last answer.
    assert!(steps.contains(&Step::Invoked("Rollback".into(), stopping())));
    assert_eq!(last(&steps), &Step::Succeeded(ended(Status::Stopped)));
}

#[tokio::test]
async fn stop_condition_tripped_at_baseline() {
    let steps = both_engines(
        "eu-west-1",
        vec![running(Phase::Baseline), stopping(), ended(Status::Stopped)],
        &[
            "ResolveTargets",
            "AfterResolve",
            "Baseline",
            "AfterBaseline",
            "Rollback",
            "AfterRollback",
            "Ended",
        ],
    )
    .await;
    assert_eq!(last(&steps), &Step::Succeeded(ended(Status::Stopped)));
}

#[tokio::test]
async fn dry_run() {
    let dry = output(Status::Running, Some(Phase::Baseline), |o| o.dry_run = true);
    let steps = both_engines(
        "eu-west-2",
        vec![dry, completed(Outcome::DryRun)],
        &["ResolveTargets", "AfterResolve", "Finish", "Ended"],
    )
    .await;
    assert_eq!(last(&steps), &Step::Succeeded(completed(Outcome::DryRun)));
}

#[tokio::test]
async fn retryable_task_error_then_success() {
    let steps = both_engines(
        "eu-central-1",
        vec![
            running(Phase::Baseline),
            baseline_done(),
            error("Chaos.Retryable", "auto scaling unavailable: throttled"),
            observing(false),
            observing(true),
            completed(Outcome::Recovered),
        ],
        &[
            "ResolveTargets",
            "AfterResolve",
            "Baseline",
            "AfterBaseline",
            "Inject",
            "AfterInject",
            "WaitForRecovery",
            "CheckHealth",
            "AfterCheck",
            "Finish",
            "Ended",
        ],
    )
    .await;
    let injects = steps
        .iter()
        .filter(|s| matches!(s, Step::Invoked(state, _) if state == "Inject"))
        .count();
    assert_eq!(
        injects, 2,
        "the inject task ran again after its retryable error"
    );
    assert_eq!(
        last(&steps),
        &Step::Succeeded(completed(Outcome::Recovered))
    );
}

#[tokio::test]
async fn task_error_rolls_back_and_fails_the_run() {
    let steps = both_engines(
        "ap-southeast-1",
        vec![
            running(Phase::Baseline),
            baseline_done(),
            error("Chaos.Failed", "targets cannot pause"),
            ended(Status::Failed),
        ],
        &[
            "ResolveTargets",
            "AfterResolve",
            "Baseline",
            "AfterBaseline",
            "Inject",
            "Rollback",
            "AfterRollback",
            "RunFailed",
        ],
    )
    .await;
    // The rollback task is told why: the caught error beside the state it was caught in.
    let mut caught = baseline_done();
    caught["error"] = json!({
        "Error": "Chaos.Failed",
        "Cause": error("Chaos.Failed", "targets cannot pause").to_string(),
    });
    assert!(
        steps.contains(&Step::Invoked("Rollback".into(), caught)),
        "{steps:#?}"
    );
    assert!(matches!(last(&steps), Step::ExecutionFailed(e, _) if e == "Chaos.RunFailed"));
}

#[tokio::test]
async fn a_rollback_that_fails_ends_in_rollback_failed() {
    let steps = both_engines(
        "ap-northeast-1",
        vec![
            running(Phase::Baseline),
            stopping(),
            error("Chaos.Failed", "the event store refused"),
        ],
        &[
            "ResolveTargets",
            "AfterResolve",
            "Baseline",
            "AfterBaseline",
            "Rollback",
            "RollbackFailed",
        ],
    )
    .await;
    assert!(matches!(last(&steps), Step::ExecutionFailed(e, _) if e == "Chaos.RollbackFailed"));
}
