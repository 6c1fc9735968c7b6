//! Golden JSON of every stored event type and version.
//!
//! Stored events are evidence and must load forever: each event type has a fixture,
//! `tests/fixtures/events/<EventType>.v<version>.json`, holding the JSON of a representative
//! sample. The sample must serialize to the fixture and the fixture must deserialize to the
//! sample, so renaming, retyping or removing a field fails here. A new event type needs a
//! fixture; a new shape needs a new version (and an upcaster), never an edited fixture.
//!
//! `UPDATE_GOLDEN=1 cargo test -p domain --test golden` (re)writes the fixtures from the samples;
//! only for a new type or version, and review the diff: it is off unless asked for.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::PathBuf;

use cqrs_es::DomainEvent;
use domain::Timestamp;
use domain::experiment::{
    ExperimentEvent, FailureCode, FailureReason, HealthSnapshot, Outcome, RollbackPlan, StopCause,
};
use domain::ledger::BookRef;
use domain::platform::{PlatformConfig, PlatformEvent, Snapshot, User};
use domain::provenance::Role;
use domain::schedule::BlackoutWindow;
use domain::spec::{
    ApiKeyId, BlackoutId, ExperimentId, ExperimentSpec, ExperimentSpecInput, FailureType,
    Guardrails, RecoveryPolicy, ScheduleId, Selection, StopCondition, Target, TargetId, TargetKind,
    Username, WebhookId,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// This package's directory, as cargo says when it runs the tests: a build shared between
/// two checkouts (one target directory) would otherwise point at the one that built it.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn fixtures_dir() -> PathBuf {
    manifest_dir().join("tests/fixtures/events")
}

fn updating() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}

fn fixture_name(event_type: &str, version: &str) -> String {
    format!("{event_type}.v{version}.json")
}

// ---------------------------------------------------------------------------------------------
// Samples
// ---------------------------------------------------------------------------------------------

/// Millisecond precision shows in the text form.
fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_795_000_000_123 + offset_ms)
}

fn t(id: &str) -> TargetId {
    TargetId::parse(id).expect("valid target id")
}

fn alarm() -> StopCondition {
    StopCondition::Alarm {
        alarm_name: "checkout-5xx".into(),
    }
}

/// A spec as events of version 1 hold it. Read back from its stored shape, not parsed: it
/// pauses members of an Auto Scaling group, which specs written today are refused (the group
/// adapter cannot pause), and events recorded before that rule must still load.
fn spec() -> ExperimentSpec {
    let input = ExperimentSpecInput {
        name: "pause half of checkout".into(),
        description: "Does checkout fail over while half its instances are paused?".into(),
        target: Target {
            kind: TargetKind::AutoScalingGroup,
            group: "checkout-asg".into(),
        },
        selection: Selection::Percent(50),
        max_targets: 4,
        failure: FailureType::Pause { duration_secs: 45 },
        dry_run: false,
        guardrails: Guardrails {
            stop_conditions: vec![alarm(), StopCondition::MaxErrorRate { percent: 25 }],
            max_duration_secs: 900,
        },
        recovery: RecoveryPolicy {
            timeout_secs: 300,
            poll_interval_secs: 5,
            baseline_samples: 3,
        },
    };
    let stored = serde_json::to_value(input).expect("serializes");
    serde_json::from_value(stored).expect("the stored shape loads")
}

fn health() -> HealthSnapshot {
    HealthSnapshot {
        healthy: 3,
        total: 4,
        latency_p95_ms: 182,
        error_rate_bp: 37,
    }
}

/// One sample per event type, in the order of `ExperimentEvent::TYPES`.
fn experiment_samples() -> Vec<ExperimentEvent> {
    use ExperimentEvent as E;
    vec![
        E::ExperimentCreated {
            id: ExperimentId::parse("01931f0e-6f39-7c1a-9a3e-1d2f3a4b5c6d").expect("valid id"),
            spec: spec(),
            at: at(0),
        },
        E::ExperimentScheduled {
            start_at: at(3_600_000),
            at: at(1_000),
        },
        E::ExperimentCancelled {
            reason: "change freeze until Monday".into(),
            at: at(2_000),
        },
        E::ExperimentStarted { at: at(3_000) },
        E::TargetsResolved {
            candidates: 8,
            targets: vec![t("i-0a1b2c3d4e5f60718"), t("i-0f9e8d7c6b5a40392")],
            at: at(4_000),
        },
        E::BaselineRecorded {
            health: HealthSnapshot {
                healthy: 4,
                total: 4,
                latency_p95_ms: 95,
                error_rate_bp: 2,
            },
            at: at(5_000),
        },
        E::FailureInjected {
            targets: vec![t("i-0a1b2c3d4e5f60718")],
            rollback: RollbackPlan::Resume,
            at: at(6_000),
        },
        E::HealthChecked {
            sample: 7,
            health: health(),
            at: at(7_000),
        },
        E::RecoveryObserved {
            recovery_ms: 41_250,
            health: health(),
            at: at(8_000),
        },
        E::StopConditionTripped {
            condition: alarm(),
            detail: "checkout-5xx is in ALARM".into(),
            at: at(9_000),
        },
        E::StopRequested {
            reason: "operator pressed stop".into(),
            at: at(10_000),
        },
        E::RunInterrupted {
            detail: "the server running it stopped; taken up by another".into(),
            at: at(10_500),
        },
        E::RollbackPerformed {
            detail: "resumed i-0a1b2c3d4e5f60718".into(),
            at: at(11_000),
        },
        E::ExperimentCompleted {
            outcome: Outcome::Recovered,
            recovery_ms: Some(41_250),
            at: at(12_000),
        },
        E::ExperimentFailed {
            reason: FailureReason {
                code: FailureCode::TaskError,
                message: "inject task failed after 3 attempts".into(),
            },
            at: at(13_000),
        },
        E::ExperimentStopped {
            cause: StopCause::StopCondition,
            at: at(14_000),
        },
        E::ExperimentArchived { at: at(15_000) },
    ]
}

/// One sample per event type, in the order of `PlatformEvent::TYPES`.
fn platform_samples() -> Vec<PlatformEvent> {
    vec![
        PlatformEvent::PlatformHalted {
            reason: "incident 42: elevated 5xx on checkout".into(),
            at: at(0),
        },
        PlatformEvent::HaltLifted { at: at(60_000) },
        PlatformEvent::ConfigUpdated {
            config: PlatformConfig {
                max_targets_per_run: 5,
                max_duration_secs: 1_800,
            },
            at: at(120_000),
        },
        PlatformEvent::WebhookAdded {
            id: WebhookId::parse("sre-pager").expect("webhook id"),
            url: "https://hooks.example.com/chaos?team=sre".into(),
            events: vec!["ExperimentCompleted".into(), "ExperimentFailed".into()],
            at: at(180_000),
        },
        PlatformEvent::WebhookRemoved {
            id: WebhookId::parse("sre-pager").expect("webhook id"),
            at: at(240_000),
        },
        PlatformEvent::WebhookSecretIssued {
            id: WebhookId::parse("sre-pager").expect("webhook id"),
            fingerprint: "3f6c0a9d2b81e7c4".into(),
            at: at(250_000),
        },
        PlatformEvent::ScheduleAdded {
            id: ScheduleId::parse("weekday-web-kill").expect("schedule id"),
            cron: "30 10 * * MON-FRI".into(),
            time_zone: "Europe/Berlin".into(),
            spec: spec(),
            at: at(300_000),
        },
        PlatformEvent::ScheduleRemoved {
            id: ScheduleId::parse("weekday-web-kill").expect("schedule id"),
            at: at(360_000),
        },
        PlatformEvent::BlackoutAdded {
            id: BlackoutId::parse("nights").expect("blackout id"),
            window: BlackoutWindow::Daily {
                time_zone: "Europe/Berlin".into(),
                start: "22:00".into(),
                end: "06:00".into(),
                days: vec!["FRI".into(), "SAT".into()],
            },
            at: at(420_000),
        },
        PlatformEvent::BlackoutRemoved {
            id: BlackoutId::parse("nights").expect("blackout id"),
            at: at(480_000),
        },
        PlatformEvent::ApiKeyCreated {
            id: ApiKeyId::parse("ci-deploy-gate").expect("api key id"),
            name: "deploy pipeline: gate on the web kill test".into(),
            role: Role::Operator,
            secret_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                .into(),
            at: at(540_000),
        },
        PlatformEvent::ApiKeyRevoked {
            id: ApiKeyId::parse("ci-deploy-gate").expect("api key id"),
            at: at(600_000),
        },
        PlatformEvent::UserAdded {
            username: Username::parse("alice.sre").expect("username"),
            role: Role::Viewer,
            at: at(660_000),
        },
        PlatformEvent::UserRoleChanged {
            username: Username::parse("alice.sre").expect("username"),
            role: Role::Operator,
            at: at(720_000),
        },
        PlatformEvent::UserRemoved {
            username: Username::parse("alice.sre").expect("username"),
            at: at(780_000),
        },
        PlatformEvent::BookOpened {
            previous: BookRef {
                stream: "users.1".into(),
                sequence: 1_000,
                hash: "3f9a".repeat(16),
            },
            state: Snapshot::Users {
                users: [(
                    Username::parse("alice.sre").expect("username"),
                    User {
                        role: Role::Operator,
                        added_at: at(660_000),
                    },
                )]
                .into(),
            },
            at: at(840_000),
        },
        PlatformEvent::BookClosed {
            next: "users.2".into(),
            at: at(840_000),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Compares one sample with its fixture in both directions; returns the problems found.
fn check<T>(sample: &T) -> Vec<String>
where
    T: DomainEvent + Serialize + DeserializeOwned + PartialEq + Debug,
{
    let event_type = sample.event_type();
    let version = sample.event_version();
    let mut problems = Vec::new();
    if version != "1" {
        problems.push(format!(
            "{event_type}: version {version}, expected 1 (add a fixture for the new version)"
        ));
    }
    let name = fixture_name(&event_type, &version);
    let path = fixtures_dir().join(&name);
    let serialized = serde_json::to_value(sample).expect("serialize sample");

    if updating() {
        let text = serde_json::to_string_pretty(sample).expect("pretty sample") + "\n";
        std::fs::create_dir_all(fixtures_dir()).expect("create fixtures dir");
        std::fs::write(&path, text).expect("write fixture");
    }

    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(format!("{name}: cannot read the fixture: {e}"));
            return problems;
        }
    };
    let golden: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(e) => {
            problems.push(format!("{name}: not JSON: {e}"));
            return problems;
        }
    };
    if serialized != golden {
        problems.push(format!(
            "{name}: the sample serializes differently\n  now:    {serialized}\n  golden: {golden}"
        ));
    }
    match serde_json::from_value::<T>(golden) {
        Ok(read) if &read == sample => {}
        Ok(read) => problems.push(format!(
            "{name}: the fixture reads as another value\n  read:   {read:?}\n  sample: {sample:?}"
        )),
        Err(e) => problems.push(format!("{name}: the fixture no longer deserializes: {e}")),
    }
    problems
}

fn assert_no_problems(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} golden mismatch(es):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn experiment_events_match_their_golden_files() {
    assert_no_problems(experiment_samples().iter().flat_map(check).collect());
}

#[test]
fn platform_events_match_their_golden_files() {
    assert_no_problems(platform_samples().iter().flat_map(check).collect());
}

#[test]
fn there_is_one_sample_per_event_type() {
    let experiment: Vec<_> = experiment_samples()
        .iter()
        .map(DomainEvent::event_type)
        .collect();
    assert_eq!(experiment, ExperimentEvent::TYPES);
    let platform: Vec<_> = platform_samples()
        .iter()
        .map(DomainEvent::event_type)
        .collect();
    assert_eq!(platform, PlatformEvent::TYPES);
}

#[test]
fn the_fixture_files_are_exactly_the_event_types() {
    let expected: BTreeSet<String> = ExperimentEvent::TYPES
        .iter()
        .chain(PlatformEvent::TYPES.iter())
        .map(|event_type| fixture_name(event_type, "1"))
        .collect();
    assert_eq!(
        expected.len(),
        ExperimentEvent::TYPES.len() + PlatformEvent::TYPES.len(),
        "an event type name is shared by both aggregates"
    );
    let present: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir exists")
        .map(|entry| {
            entry
                .expect("read dir entry")
                .file_name()
                .into_string()
                .expect("UTF-8 file name")
        })
        .collect();
    let missing: Vec<_> = expected.difference(&present).collect();
    let extra: Vec<_> = present.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing fixtures: {missing:?}; files that are no event type: {extra:?}"
    );
}

#[test]
fn every_event_is_version_one() {
    for sample in experiment_samples() {
        assert_eq!(sample.event_version(), "1", "{}", sample.event_type());
    }
    for sample in platform_samples() {
        assert_eq!(sample.event_version(), "1", "{}", sample.event_type());
    }
}

/// The variants the samples above do not show, pinned in both directions.
#[test]
fn value_enums_have_stable_json() {
    fn both_ways<T>(value: T, expected: Value)
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        assert_eq!(
            serde_json::to_value(&value).expect("serialize"),
            expected,
            "{value:?}"
        );
        assert_eq!(
            serde_json::from_value::<T>(expected).expect("deserialize"),
            value
        );
    }
    both_ways(Selection::Count(3), json!({"mode": "COUNT", "value": 3}));
    both_ways(
        Selection::Percent(50),
        json!({"mode": "PERCENT", "value": 50}),
    );
    both_ways(Selection::All, json!({"mode": "ALL"}));
    both_ways(FailureType::Terminate, json!({"type": "TERMINATE"}));
    both_ways(
        FailureType::Pause { duration_secs: 30 },
        json!({"type": "PAUSE", "duration_secs": 30}),
    );
    both_ways(
        StopCondition::MaxErrorRate { percent: 25 },
        json!({"type": "MAX_ERROR_RATE", "percent": 25}),
    );
    both_ways(
        StopCondition::Alarm {
            alarm_name: "a".into(),
        },
        json!({"type": "ALARM", "alarm_name": "a"}),
    );
    both_ways(TargetKind::LocalFleet, json!("LOCAL_FLEET"));
    both_ways(TargetKind::AutoScalingGroup, json!("AUTO_SCALING_GROUP"));
    both_ways(Outcome::Recovered, json!("RECOVERED"));
    both_ways(Outcome::NotRecovered, json!("NOT_RECOVERED"));
    both_ways(Outcome::DryRun, json!("DRY_RUN"));
    both_ways(RollbackPlan::None, json!({"action": "NONE"}));
    both_ways(RollbackPlan::Resume, json!({"action": "RESUME"}));
    both_ways(StopCause::Requested, json!("REQUESTED"));
    both_ways(StopCause::StopCondition, json!("STOP_CONDITION"));
    both_ways(StopCause::Interrupted, json!("INTERRUPTED"));
    both_ways(FailureCode::NoTargets, json!("NO_TARGETS"));
    both_ways(FailureCode::TaskError, json!("TASK_ERROR"));
    both_ways(FailureCode::RollbackFailed, json!("ROLLBACK_FAILED"));
    both_ways(FailureCode::RunnerLost, json!("RUNNER_LOST"));
    both_ways(FailureCode::TargetBusy, json!("TARGET_BUSY"));
    both_ways(
        FailureCode::UnobservableStopCondition,
        json!("UNOBSERVABLE_STOP_CONDITION"),
    );
    both_ways(
        BlackoutWindow::Once {
            from: at(86_400_000),
            to: at(3 * 86_400_000),
        },
        json!({"kind": "ONCE", "from": "2026-11-19T11:06:40.123Z", "to": "2026-11-21T11:06:40.123Z"}),
    );
    both_ways(
        ExperimentEvent::ExperimentCompleted {
            outcome: Outcome::DryRun,
            recovery_ms: None,
            at: Timestamp::from_unix_millis(0),
        },
        json!({"ExperimentCompleted": {
            "outcome": "DRY_RUN", "recovery_ms": null, "at": "1970-01-01T00:00:00.000Z"
        }}),
    );
}
