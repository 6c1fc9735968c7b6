//! The workflow definition (`step-functions/experiment.asl.json`) against the code it drives:
//! valid per asl-validator, one task binary per Task state and the other way round, every
//! field its Choice and Wait states read written by the tasks, retries only for retryable
//! errors, and every error caught into rollback.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use command_lambdas::tasks::{Task, TaskOutput};
use domain::experiment::Status;
use serde_json::Value;

/// This package's directory, as cargo says when it runs the tests.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn definition_path() -> PathBuf {
    manifest_dir().join("../step-functions/experiment.asl.json")
}

fn definition() -> Value {
    let text = std::fs::read_to_string(definition_path()).expect("read the definition");
    serde_json::from_str(&text).expect("the definition is JSON")
}

fn states(definition: &Value) -> &serde_json::Map<String, Value> {
    definition["States"].as_object().expect("States")
}

/// asl-validator: `ASL_VALIDATOR` (set by `cargo xtask test`), or the one `cargo xtask test`
/// installed last, or on PATH.
fn validate(path: &std::path::Path) -> (bool, String) {
    let installed = std::env::var("HOME")
        .ok()
        .map(|home| {
            format!("{home}/.cache/chaos-platform/tools/node/node_modules/.bin/asl-validator")
        })
        .filter(|path| std::path::Path::new(path).exists());
    let validator = std::env::var("ASL_VALIDATOR")
        .ok()
        .or(installed)
        .unwrap_or_else(|| "asl-validator".into());
    let out = Command::new(&validator)
        .arg("--json-path")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("run {validator} (install it with `cargo xtask test`): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn asl_validator_accepts_the_definition_and_refuses_a_broken_one() {
    let (ok, says) = validate(&definition_path());
    assert!(ok, "{says}");

    let mut broken = definition();
    broken["States"]["AfterInject"]["Default"] = Value::String("NoSuchState".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.asl.json");
    std::fs::write(&path, broken.to_string()).expect("write");
    let (ok, says) = validate(&path);
    assert!(!ok, "a transition to a missing state passed: {says}");
}

/// `ResolveTargetsFunctionArn` → `task-resolve-targets`.
fn binary_of(resource: &str) -> String {
    let name = resource
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix("FunctionArn}"))
        .unwrap_or_else(|| panic!("resource {resource} is not a ${{...FunctionArn}} substitution"));
    let mut binary = String::from("task");
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            binary.push('-');
        }
        binary.push(c.to_ascii_lowercase());
    }
    binary
}

#[test]
fn every_task_state_has_its_binary_and_every_task_binary_its_state() {
    let definition = definition();
    let used: BTreeSet<String> = states(&definition)
        .values()
        .filter(|s| s["Type"] == "Task")
        .map(|s| binary_of(s["Resource"].as_str().expect("Resource")))
        .collect();
    let built: BTreeSet<String> = std::fs::read_dir(manifest_dir().join("src/bin"))
        .expect("src/bin")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".rs")?;
            stem.starts_with("task-").then(|| stem.to_owned())
        })
        .collect();
    assert_eq!(used, built);
}

/// A stop or halt ends a run whose execution is in a `Wait` by stopping the execution there
/// and taking its next step itself (`command::settle`). That is safe only because the state
/// after every `Wait` is a task that runs the guards first: if the wait ended in the
/// meantime, the task that started sees the stop and acts on nothing.
#[test]
fn every_wait_leads_to_a_task_that_runs_the_guards_first() {
    let definition = definition();
    let states = states(&definition);
    let mut waits = 0;
    for (name, state) in states {
        if state["Type"] != "Wait" {
            continue;
        }
        waits += 1;
        let next = state["Next"]
            .as_str()
            .unwrap_or_else(|| panic!("Wait {name} has no Next"));
        let task = states[next]["Resource"]
            .as_str()
            .and_then(Task::from_resource)
            .unwrap_or_else(|| panic!("Wait {name} leads to {next}, which is not a task"));
        assert!(
            task.guards_first(),
            "Wait {name} leads to {next}, which acts before its guards"
        );
    }
    assert!(waits > 0, "the definition has no Wait state");
}

#[test]
fn every_field_the_definition_reads_is_one_the_tasks_write() {
    let output = TaskOutput {
        experiment_id: "exp".into(),
        status: Status::Running,
        phase: None,
        done: false,
        stop: false,
        dry_run: false,
        baseline_done: false,
        wait_seconds: 1,
        observation_over: false,
        outcome: None,
    };
    let written = serde_json::to_value(&output).expect("serializes");
    let definition = definition();
    let mut read = BTreeSet::new();
    for state in states(&definition).values() {
        if let Some(choices) = state["Choices"].as_array() {
            for choice in choices {
                read.insert(choice["Variable"].as_str().expect("Variable").to_owned());
            }
        }
        if let Some(path) = state["SecondsPath"].as_str() {
            read.insert(path.to_owned());
        }
        if let Some(parameters) = state["Parameters"].as_object() {
            for path in parameters.values().filter_map(Value::as_str) {
                read.insert(path.to_owned());
            }
        }
    }
    assert!(!read.is_empty());
    for path in &read {
        let field = path.strip_prefix("$.").expect("a top-level path");
        assert!(
            written.get(field).is_some(),
            "the definition reads {path}, which no task writes"
        );
    }
    // The status the definition compares with is the text the tasks write.
    assert_eq!(
        serde_json::to_value(Status::Failed).expect("serializes"),
        Value::String("FAILED".into())
    );
}

#[test]
fn only_retryable_errors_are_retried_and_every_error_is_caught() {
    let definition = definition();
    for (name, state) in states(&definition) {
        if state["Type"] != "Task" {
            continue;
        }
        let retried: Vec<&str> = state["Retry"]
            .as_array()
            .expect("every task retries")
            .iter()
            .flat_map(|r| r["ErrorEquals"].as_array().expect("ErrorEquals"))
            .filter_map(Value::as_str)
            .collect();
        assert!(retried.contains(&"Chaos.Retryable"), "{name}");
        assert!(
            !retried.contains(&"Chaos.Failed"),
            "{name} retries a refusal"
        );
        assert!(
            !retried.contains(&"States.ALL"),
            "{name} retries everything"
        );
        let catches = state["Catch"].as_array().expect("every task catches");
        assert!(
            catches
                .iter()
                .any(|c| c["ErrorEquals"] == serde_json::json!(["States.ALL"])),
            "{name} lets an error end the execution uncaught"
        );
        let to = catches[0]["Next"].as_str().expect("Next");
        if name == "Rollback" {
            assert_eq!(to, "RollbackFailed");
        } else {
            assert_eq!(to, "Rollback", "{name}");
        }
    }
}
