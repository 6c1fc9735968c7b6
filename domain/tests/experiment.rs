//! Given/when/then tests of the `Experiment` aggregate.
//!
//! Every command has its success path and every refusal `Experiment::decide` can return for it,
//! asserted as the exact error value. Histories are built from events (the log is the state).

use cqrs_es::test::{AggregateTestExecutor, TestFramework};
use domain::Timestamp;
use domain::experiment::{
    Experiment, ExperimentCommand as C, ExperimentError, ExperimentEvent as E, FailureCode,
    FailureReason, HealthSnapshot, Outcome, PlatformGate, RollbackPlan, Status, StopCause,
};
use domain::limits::{MAX_EXPERIMENT_EVENTS, MAX_HEALTH_SAMPLES, MAX_SCHEDULES, MAX_TEXT_CHARS};
use domain::spec::{
    ExperimentId, ExperimentSpec, ExperimentSpecInput, FailureType, Guardrails, Problem,
    RecoveryPolicy, Selection, SpecError, StopCondition, Target, TargetId, TargetKind,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// 2026-11-18T11:06:40.000Z, the origin of every test clock.
const T0_MILLIS: i64 = 1_795_000_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(T0_MILLIS + secs * 1_000)
}

fn id() -> ExperimentId {
    ExperimentId::parse("01931f0e-6f39-7c1a-9a3e-1d2f3a4b5c6d").expect("valid id")
}

fn t(name: &str) -> TargetId {
    TargetId::parse(name).expect("valid target id")
}

fn alarm() -> StopCondition {
    StopCondition::Alarm {
        alarm_name: "web-5xx".into(),
    }
}

fn error_rate() -> StopCondition {
    StopCondition::MaxErrorRate { percent: 50 }
}

/// Terminate two of the `web` fleet; two baseline samples, 120 s recovery timeout.
fn input() -> ExperimentSpecInput {
    ExperimentSpecInput {
        name: "kill two web workers".into(),
        description: "Does the web tier replace lost workers within two minutes?".into(),
        target: Target {
            kind: TargetKind::LocalFleet,
            group: "web".into(),
        },
        selection: Selection::Count(2),
        max_targets: 3,
        failure: FailureType::Terminate,
        dry_run: false,
        guardrails: Guardrails {
            stop_conditions: vec![error_rate(), alarm()],
            max_duration_secs: 600,
        },
        recovery: RecoveryPolicy {
            timeout_secs: 120,
            poll_interval_secs: 2,
            baseline_samples: 2,
        },
    }
}

fn spec_with(change: impl FnOnce(&mut ExperimentSpecInput)) -> ExperimentSpec {
    let mut raw = input();
    change(&mut raw);
    ExperimentSpec::parse(raw).expect("test spec is valid")
}

fn spec() -> ExperimentSpec {
    spec_with(|_| {})
}

fn pause_spec() -> ExperimentSpec {
    spec_with(|s| s.failure = FailureType::Pause { duration_secs: 30 })
}

fn dry_spec() -> ExperimentSpec {
    spec_with(|s| s.dry_run = true)
}

fn gate() -> PlatformGate {
    PlatformGate {
        halted: None,
        max_targets_per_run: 10,
        max_duration_secs: 3_600,
        blackout: None,
    }
}

fn health(healthy: u32, total: u32) -> HealthSnapshot {
    HealthSnapshot {
        healthy,
        total,
        latency_p95_ms: 40,
        error_rate_bp: 10,
    }
}

fn resolved_targets() -> Vec<TargetId> {
    vec![t("w-1"), t("w-2")]
}

fn long_text() -> String {
    "x".repeat(MAX_TEXT_CHARS + 1)
}

/// The refusal `parse_text` gives for `long_text()` in `field`.
fn too_long(field: &str) -> ExperimentError {
    ExperimentError::InvalidInput(SpecError {
        problems: vec![Problem {
            field: field.into(),
            message: format!(
                "must have at most {MAX_TEXT_CHARS} characters (has {})",
                MAX_TEXT_CHARS + 1
            ),
        }],
    })
}

fn has_control(field: &str) -> ExperimentError {
    ExperimentError::InvalidInput(SpecError {
        problems: vec![Problem {
            field: field.into(),
            message: "must not contain control characters".into(),
        }],
    })
}

fn invalid(action: &'static str, status: Status) -> ExperimentError {
    ExperimentError::InvalidState { action, status }
}

fn given(events: Vec<E>) -> AggregateTestExecutor<Experiment> {
    TestFramework::<Experiment>::with(()).given(events)
}

fn created(spec: ExperimentSpec) -> Vec<E> {
    vec![E::ExperimentCreated {
        id: id(),
        spec,
        at: at(0),
    }]
}

fn draft() -> Vec<E> {
    created(spec())
}

fn running_of(spec: ExperimentSpec) -> Vec<E> {
    let mut events = created(spec);
    events.push(E::ExperimentStarted { at: at(1) });
    events
}

fn running() -> Vec<E> {
    running_of(spec())
}

fn resolved_of(spec: ExperimentSpec) -> Vec<E> {
    let mut events = running_of(spec);
    events.push(E::TargetsResolved {
        candidates: 4,
        targets: resolved_targets(),
        at: at(2),
    });
    events
}

fn resolved() -> Vec<E> {
    resolved_of(spec())
}

fn health_checked(sample: u32, secs: i64) -> E {
    E::HealthChecked {
        sample,
        health: health(4, 4),
        at: at(secs),
    }
}

/// Targets resolved and the two baseline samples taken, baseline not yet recorded.
fn sampled_of(spec: ExperimentSpec) -> Vec<E> {
    let mut events = resolved_of(spec);
    events.push(health_checked(1, 3));
    events.push(health_checked(2, 5));
    events
}

fn running_with_baseline_of(spec: ExperimentSpec) -> Vec<E> {
    let mut events = sampled_of(spec);
    events.push(E::BaselineRecorded {
        health: health(4, 4),
        at: at(6),
    });
    events
}

fn running_with_baseline() -> Vec<E> {
    running_with_baseline_of(spec())
}

/// Injection at `at(20)`.
fn injected_of(spec: ExperimentSpec, rollback: RollbackPlan) -> Vec<E> {
    let mut events = running_with_baseline_of(spec);
    events.push(E::FailureInjected {
        targets: vec![t("w-1")],
        rollback,
        at: at(20),
    });
    events
}

fn injected() -> Vec<E> {
    injected_of(spec(), RollbackPlan::None)
}

fn injected_paused() -> Vec<E> {
    injected_of(pause_spec(), RollbackPlan::Resume)
}

fn with(mut events: Vec<E>, more: impl IntoIterator<Item = E>) -> Vec<E> {
    events.extend(more);
    events
}

fn stop_requested(secs: i64) -> E {
    E::StopRequested {
        reason: "operator pressed stop".into(),
        at: at(secs),
    }
}

fn completed() -> Vec<E> {
    with(
        injected(),
        [
            E::RecoveryObserved {
                recovery_ms: 9_000,
                health: health(4, 4),
                at: at(29),
            },
            E::ExperimentCompleted {
                outcome: Outcome::Recovered,
                recovery_ms: Some(9_000),
                at: at(30),
            },
        ],
    )
}

fn archived() -> Vec<E> {
    with(draft(), [E::ExperimentArchived { at: at(1) }])
}

/// One command of every kind, each valid for some state.
fn one_of_each() -> Vec<C> {
    vec![
        C::CreateExperiment {
            id: id(),
            spec: spec(),
            at: at(50),
        },
        C::ScheduleExperiment {
            start_at: at(100),
            at: at(50),
        },
        C::CancelExperiment {
            reason: "not today".into(),
            at: at(50),
        },
        C::StartExperiment {
            gate: gate(),
            at: at(50),
        },
        C::ResolveTargets {
            candidates: 4,
            targets: resolved_targets(),
            at: at(50),
        },
        C::RecordHealthCheck {
            health: health(4, 4),
            at: at(50),
        },
        C::RecordBaseline {
            health: health(4, 4),
            at: at(50),
        },
        C::InjectFailure {
            targets: vec![t("w-1")],
            at: at(50),
        },
        C::ObserveRecovery {
            health: health(4, 4),
            at: at(50),
        },
        C::TripStopCondition {
            condition: alarm(),
            detail: "alarm in ALARM".into(),
            at: at(50),
        },
        C::RequestStop {
            reason: "enough".into(),
            at: at(50),
        },
        C::RecordRollback {
            detail: "resumed".into(),
            at: at(50),
        },
        C::CompleteExperiment { at: at(50) },
        C::FinishDryRun { at: at(50) },
        C::FailExperiment {
            reason: FailureReason {
                code: FailureCode::TaskError,
                message: "boom".into(),
            },
            at: at(50),
        },
        C::MarkStopped { at: at(50) },
        C::ArchiveExperiment { at: at(50) },
    ]
}

// ---------------------------------------------------------------------------------------------
// Any command: existence and archival
// ---------------------------------------------------------------------------------------------

#[test]
fn every_command_kind_is_covered_by_one_of_each() {
    let names: Vec<_> = one_of_each().iter().map(C::name).collect();
    assert_eq!(names.len(), 17);
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate kind in {names:?}");
}

#[test]
fn commands_other_than_create_on_an_empty_stream_are_not_found() {
    for command in one_of_each() {
        if matches!(command, C::CreateExperiment { .. }) {
            continue;
        }
        let name = command.name();
        let result = given(vec![]).when(command).inspect_result();
        assert_eq!(result, Err(ExperimentError::NotFound), "{name}");
    }
}

#[test]
fn an_archived_experiment_refuses_every_command() {
    for command in one_of_each() {
        let name = command.name();
        let expected = if matches!(command, C::CreateExperiment { .. }) {
            ExperimentError::AlreadyExists
        } else {
            ExperimentError::Archived
        };
        let result = given(archived()).when(command).inspect_result();
        assert_eq!(result, Err(expected), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// CreateExperiment
// ---------------------------------------------------------------------------------------------

#[test]
fn create_records_the_spec() {
    given(vec![])
        .when(C::CreateExperiment {
            id: id(),
            spec: spec(),
            at: at(0),
        })
        .then_expect_events(created(spec()));
}

#[test]
fn create_twice_is_refused() {
    given(draft())
        .when(C::CreateExperiment {
            id: id(),
            spec: pause_spec(),
            at: at(5),
        })
        .then_expect_error(ExperimentError::AlreadyExists);
}

#[test]
fn create_over_a_finished_run_is_refused() {
    given(completed())
        .when(C::CreateExperiment {
            id: id(),
            spec: spec(),
            at: at(50),
        })
        .then_expect_error(ExperimentError::AlreadyExists);
}

// ---------------------------------------------------------------------------------------------
// ScheduleExperiment
// ---------------------------------------------------------------------------------------------

#[test]
fn schedule_a_draft() {
    given(draft())
        .when(C::ScheduleExperiment {
            start_at: at(3_600),
            at: at(10),
        })
        .then_expect_events(vec![E::ExperimentScheduled {
            start_at: at(3_600),
            at: at(10),
        }]);
}

#[test]
fn reschedule_a_scheduled_experiment() {
    let history = with(
        draft(),
        [E::ExperimentScheduled {
            start_at: at(3_600),
            at: at(10),
        }],
    );
    given(history)
        .when(C::ScheduleExperiment {
            start_at: at(7_200),
            at: at(20),
        })
        .then_expect_events(vec![E::ExperimentScheduled {
            start_at: at(7_200),
            at: at(20),
        }]);
}

#[test]
fn schedule_at_the_present_instant_is_in_the_past() {
    given(draft())
        .when(C::ScheduleExperiment {
            start_at: at(10),
            at: at(10),
        })
        .then_expect_error(ExperimentError::ScheduleInPast {
            start_at: "2026-11-18T11:06:50.000Z".into(),
        });
}

#[test]
fn schedule_limit_is_enforced() {
    let reschedules = (0..MAX_SCHEDULES).map(|i| E::ExperimentScheduled {
        start_at: at(3_600),
        at: at(i64::from(i) + 1),
    });
    let history = with(draft(), reschedules);
    // One below the limit is still accepted...
    let mut one_less = history.clone();
    one_less.pop();
    given(one_less)
        .when(C::ScheduleExperiment {
            start_at: at(3_600),
            at: at(100),
        })
        .then_expect_events(vec![E::ExperimentScheduled {
            start_at: at(3_600),
            at: at(100),
        }]);
    // ...the limit is not.
    given(history)
        .when(C::ScheduleExperiment {
            start_at: at(3_600),
            at: at(100),
        })
        .then_expect_error(ExperimentError::TooManySchedules { max: MAX_SCHEDULES });
}

#[test]
fn schedule_a_running_experiment_is_refused() {
    given(running())
        .when(C::ScheduleExperiment {
            start_at: at(3_600),
            at: at(10),
        })
        .then_expect_error(invalid("schedule", Status::Running));
}

// ---------------------------------------------------------------------------------------------
// CancelExperiment
// ---------------------------------------------------------------------------------------------

#[test]
fn cancel_a_draft_or_a_scheduled_experiment() {
    given(draft())
        .when(C::CancelExperiment {
            reason: "change freeze".into(),
            at: at(10),
        })
        .then_expect_events(vec![E::ExperimentCancelled {
            reason: "change freeze".into(),
            at: at(10),
        }]);
    let scheduled = with(
        draft(),
        [E::ExperimentScheduled {
            start_at: at(3_600),
            at: at(5),
        }],
    );
    given(scheduled)
        .when(C::CancelExperiment {
            reason: String::new(),
            at: at(10),
        })
        .then_expect_events(vec![E::ExperimentCancelled {
            reason: String::new(),
            at: at(10),
        }]);
}

#[test]
fn cancel_a_running_experiment_is_refused() {
    given(running())
        .when(C::CancelExperiment {
            reason: "too late".into(),
            at: at(10),
        })
        .then_expect_error(invalid("cancel", Status::Running));
}

#[test]
fn cancel_reason_is_checked() {
    given(draft())
        .when(C::CancelExperiment {
            reason: long_text(),
            at: at(10),
        })
        .then_expect_error(too_long("reason"));
    given(draft())
        .when(C::CancelExperiment {
            reason: "bell\u{7}".into(),
            at: at(10),
        })
        .then_expect_error(has_control("reason"));
}

// ---------------------------------------------------------------------------------------------
// StartExperiment
// ---------------------------------------------------------------------------------------------

#[test]
fn start_a_draft() {
    given(draft())
        .when(C::StartExperiment {
            gate: gate(),
            at: at(1),
        })
        .then_expect_events(vec![E::ExperimentStarted { at: at(1) }]);
}

#[test]
fn start_a_scheduled_experiment() {
    let scheduled = with(
        draft(),
        [E::ExperimentScheduled {
            start_at: at(60),
            at: at(5),
        }],
    );
    given(scheduled)
        .when(C::StartExperiment {
            gate: gate(),
            at: at(60),
        })
        .then_expect_events(vec![E::ExperimentStarted { at: at(60) }]);
}

#[test]
fn start_while_halted_is_refused() {
    given(draft())
        .when(C::StartExperiment {
            gate: PlatformGate {
                halted: Some("incident 42".into()),
                ..gate()
            },
            at: at(1),
        })
        .then_expect_error(ExperimentError::PlatformHalted {
            reason: "incident 42".into(),
        });
}

#[test]
fn start_while_archived_is_refused() {
    given(archived())
        .when(C::StartExperiment {
            gate: gate(),
            at: at(2),
        })
        .then_expect_error(ExperimentError::Archived);
}

#[test]
fn start_above_the_platform_target_cap_is_refused() {
    given(draft())
        .when(C::StartExperiment {
            gate: PlatformGate {
                max_targets_per_run: 2,
                ..gate()
            },
            at: at(1),
        })
        .then_expect_error(ExperimentError::ExceedsPlatformCap {
            what: "max_targets",
            value: 3,
            limit: 2,
        });
}

#[test]
fn start_at_exactly_the_platform_caps_is_accepted() {
    given(draft())
        .when(C::StartExperiment {
            gate: PlatformGate {
                max_targets_per_run: 3,
                max_duration_secs: 600,
                ..gate()
            },
            at: at(1),
        })
        .then_expect_events(vec![E::ExperimentStarted { at: at(1) }]);
}

#[test]
fn start_above_the_platform_duration_cap_is_refused() {
    given(draft())
        .when(C::StartExperiment {
            gate: PlatformGate {
                max_duration_secs: 599,
                ..gate()
            },
            at: at(1),
        })
        .then_expect_error(ExperimentError::ExceedsPlatformCap {
            what: "guardrails.max_duration_secs",
            value: 600,
            limit: 599,
        });
}

#[test]
fn start_twice_or_after_the_end_is_refused() {
    given(running())
        .when(C::StartExperiment {
            gate: gate(),
            at: at(2),
        })
        .then_expect_error(invalid("start", Status::Running));
    let cancelled = with(
        draft(),
        [E::ExperimentCancelled {
            reason: "no".into(),
            at: at(1),
        }],
    );
    given(cancelled)
        .when(C::StartExperiment {
            gate: gate(),
            at: at(2),
        })
        .then_expect_error(invalid("start", Status::Cancelled));
}

// ---------------------------------------------------------------------------------------------
// ResolveTargets
// ---------------------------------------------------------------------------------------------

#[test]
fn resolve_targets() {
    given(running())
        .when(C::ResolveTargets {
            candidates: 4,
            targets: resolved_targets(),
            at: at(2),
        })
        .then_expect_events(vec![E::TargetsResolved {
            candidates: 4,
            targets: resolved_targets(),
            at: at(2),
        }]);
}

#[test]
fn resolve_fewer_candidates_than_the_count() {
    given(running())
        .when(C::ResolveTargets {
            candidates: 1,
            targets: vec![t("w-7")],
            at: at(2),
        })
        .then_expect_events(vec![E::TargetsResolved {
            candidates: 1,
            targets: vec![t("w-7")],
            at: at(2),
        }]);
}

#[test]
fn zero_candidates_fail_the_run_with_no_targets() {
    given(running_of(spec_with(|s| s.selection = Selection::All)))
        .when(C::ResolveTargets {
            candidates: 0,
            targets: vec![],
            at: at(2),
        })
        .then_expect_events(vec![E::ExperimentFailed {
            reason: FailureReason {
                code: FailureCode::NoTargets,
                message: "no instance matched target fleet:web: refusing to widen the selection"
                    .into(),
            },
            at: at(2),
        }]);
}

#[test]
fn zero_candidates_never_widen_to_all() {
    // Reporting targets although nothing matched is refused: the selection gives zero.
    given(running_of(spec_with(|s| s.selection = Selection::All)))
        .when(C::ResolveTargets {
            candidates: 0,
            targets: vec![t("w-1")],
            at: at(2),
        })
        .then_expect_error(ExperimentError::TargetCountMismatch {
            candidates: 0,
            expected: 0,
            got: 1,
        });
}

#[test]
fn all_is_still_bounded_by_max_targets() {
    let many: Vec<_> = (0..40).map(|i| t(&format!("w-{i}"))).collect();
    given(running_of(spec_with(|s| s.selection = Selection::All)))
        .when(C::ResolveTargets {
            candidates: 40,
            targets: many,
            at: at(2),
        })
        .then_expect_error(ExperimentError::TargetCountMismatch {
            candidates: 40,
            expected: 3,
            got: 40,
        });
}

#[test]
fn resolve_with_the_wrong_count_is_refused() {
    given(running())
        .when(C::ResolveTargets {
            candidates: 4,
            targets: vec![t("w-1")],
            at: at(2),
        })
        .then_expect_error(ExperimentError::TargetCountMismatch {
            candidates: 4,
            expected: 2,
            got: 1,
        });
    given(running())
        .when(C::ResolveTargets {
            candidates: 4,
            targets: vec![],
            at: at(2),
        })
        .then_expect_error(ExperimentError::TargetCountMismatch {
            candidates: 4,
            expected: 2,
            got: 0,
        });
}

#[test]
fn resolve_with_a_duplicate_target_is_refused() {
    given(running())
        .when(C::ResolveTargets {
            candidates: 4,
            targets: vec![t("w-3"), t("w-3")],
            at: at(2),
        })
        .then_expect_error(ExperimentError::DuplicateTarget(t("w-3")));
}

#[test]
fn resolve_twice_is_refused() {
    given(resolved())
        .when(C::ResolveTargets {
            candidates: 4,
            targets: resolved_targets(),
            at: at(3),
        })
        .then_expect_error(ExperimentError::TargetsAlreadyResolved);
}

#[test]
fn resolve_before_start_is_refused() {
    given(draft())
        .when(C::ResolveTargets {
            candidates: 4,
            targets: resolved_targets(),
            at: at(2),
        })
        .then_expect_error(invalid("resolve targets", Status::Draft));
}

#[test]
fn resolve_while_a_stop_is_pending_is_refused() {
    given(with(running(), [stop_requested(2)]))
        .when(C::ResolveTargets {
            candidates: 4,
            targets: resolved_targets(),
            at: at(3),
        })
        .then_expect_error(ExperimentError::StopPending);
}

// ---------------------------------------------------------------------------------------------
// RecordHealthCheck
// ---------------------------------------------------------------------------------------------

#[test]
fn health_checks_are_numbered_from_one() {
    given(resolved())
        .when(C::RecordHealthCheck {
            health: health(4, 4),
            at: at(3),
        })
        .then_expect_events(vec![health_checked(1, 3)]);
    given(sampled_of(spec()))
        .when(C::RecordHealthCheck {
            health: health(3, 4),
            at: at(7),
        })
        .then_expect_events(vec![E::HealthChecked {
            sample: 3,
            health: health(3, 4),
            at: at(7),
        }]);
}

#[test]
fn health_checks_continue_after_injection() {
    given(injected())
        .when(C::RecordHealthCheck {
            health: health(3, 4),
            at: at(22),
        })
        .then_expect_events(vec![E::HealthChecked {
            sample: 3,
            health: health(3, 4),
            at: at(22),
        }]);
}

#[test]
fn health_sample_limit_is_enforced() {
    let samples = |n: u32| (1..=n).map(|i| health_checked(i, 3 + i64::from(i)));
    given(with(resolved(), samples(MAX_HEALTH_SAMPLES - 1)))
        .when(C::RecordHealthCheck {
            health: health(4, 4),
            at: at(1_000),
        })
        .then_expect_events(vec![E::HealthChecked {
            sample: MAX_HEALTH_SAMPLES,
            health: health(4, 4),
            at: at(1_000),
        }]);
    given(with(resolved(), samples(MAX_HEALTH_SAMPLES)))
        .when(C::RecordHealthCheck {
            health: health(4, 4),
            at: at(1_000),
        })
        .then_expect_error(ExperimentError::HealthSampleLimit {
            max: MAX_HEALTH_SAMPLES,
        });
}

#[test]
fn health_check_before_targets_is_refused() {
    given(running())
        .when(C::RecordHealthCheck {
            health: health(4, 4),
            at: at(3),
        })
        .then_expect_error(ExperimentError::TargetsNotResolved);
}

#[test]
fn impossible_health_is_refused() {
    given(resolved())
        .when(C::RecordHealthCheck {
            health: health(5, 4),
            at: at(3),
        })
        .then_expect_error(ExperimentError::InvalidHealth("healthy exceeds total"));
    given(resolved())
        .when(C::RecordHealthCheck {
            health: HealthSnapshot {
                error_rate_bp: 10_001,
                ..health(4, 4)
            },
            at: at(3),
        })
        .then_expect_error(ExperimentError::InvalidHealth(
            "error_rate_bp exceeds 10000",
        ));
}

#[test]
fn full_error_rate_and_no_healthy_instances_are_possible_health() {
    let worst = HealthSnapshot {
        healthy: 0,
        total: 4,
        latency_p95_ms: u32::MAX,
        error_rate_bp: 10_000,
    };
    given(resolved())
        .when(C::RecordHealthCheck {
            health: worst,
            at: at(3),
        })
        .then_expect_events(vec![E::HealthChecked {
            sample: 1,
            health: worst,
            at: at(3),
        }]);
}

#[test]
fn health_check_before_start_is_refused() {
    given(draft())
        .when(C::RecordHealthCheck {
            health: health(4, 4),
            at: at(3),
        })
        .then_expect_error(invalid("record health", Status::Draft));
}

#[test]
fn health_check_while_a_stop_is_pending_is_refused() {
    given(with(resolved(), [stop_requested(3)]))
        .when(C::RecordHealthCheck {
            health: health(4, 4),
            at: at(4),
        })
        .then_expect_error(ExperimentError::StopPending);
}

// ---------------------------------------------------------------------------------------------
// RecordBaseline
// ---------------------------------------------------------------------------------------------

#[test]
fn baseline_after_its_samples() {
    given(sampled_of(spec()))
        .when(C::RecordBaseline {
            health: health(4, 4),
            at: at(6),
        })
        .then_expect_events(vec![E::BaselineRecorded {
            health: health(4, 4),
            at: at(6),
        }]);
}

#[test]
fn baseline_without_enough_samples_is_refused() {
    given(with(resolved(), [health_checked(1, 3)]))
        .when(C::RecordBaseline {
            health: health(4, 4),
            at: at(6),
        })
        .then_expect_error(ExperimentError::BaselineIncomplete {
            needed: 2,
            recorded: 1,
        });
}

#[test]
fn baseline_twice_is_refused() {
    given(running_with_baseline())
        .when(C::RecordBaseline {
            health: health(4, 4),
            at: at(7),
        })
        .then_expect_error(ExperimentError::BaselineAlreadyRecorded);
}

#[test]
fn baseline_before_targets_is_refused() {
    given(running())
        .when(C::RecordBaseline {
            health: health(4, 4),
            at: at(6),
        })
        .then_expect_error(ExperimentError::TargetsNotResolved);
}

#[test]
fn impossible_baseline_health_is_refused() {
    given(sampled_of(spec()))
        .when(C::RecordBaseline {
            health: health(5, 4),
            at: at(6),
        })
        .then_expect_error(ExperimentError::InvalidHealth("healthy exceeds total"));
    given(sampled_of(spec()))
        .when(C::RecordBaseline {
            health: HealthSnapshot {
                error_rate_bp: 20_000,
                ..health(4, 4)
            },
            at: at(6),
        })
        .then_expect_error(ExperimentError::InvalidHealth(
            "error_rate_bp exceeds 10000",
        ));
}

#[test]
fn baseline_before_start_is_refused() {
    given(draft())
        .when(C::RecordBaseline {
            health: health(4, 4),
            at: at(6),
        })
        .then_expect_error(invalid("record baseline", Status::Draft));
}

#[test]
fn baseline_while_a_stop_is_pending_is_refused() {
    given(with(sampled_of(spec()), [stop_requested(6)]))
        .when(C::RecordBaseline {
            health: health(4, 4),
            at: at(7),
        })
        .then_expect_error(ExperimentError::StopPending);
}

// ---------------------------------------------------------------------------------------------
// InjectFailure
// ---------------------------------------------------------------------------------------------

#[test]
fn inject_terminate_needs_no_rollback() {
    given(running_with_baseline())
        .when(C::InjectFailure {
            targets: vec![t("w-1")],
            at: at(20),
        })
        .then_expect_events(vec![E::FailureInjected {
            targets: vec![t("w-1")],
            rollback: RollbackPlan::None,
            at: at(20),
        }]);
}

#[test]
fn inject_pause_plans_a_resume() {
    given(running_with_baseline_of(pause_spec()))
        .when(C::InjectFailure {
            targets: resolved_targets(),
            at: at(20),
        })
        .then_expect_events(vec![E::FailureInjected {
            targets: resolved_targets(),
            rollback: RollbackPlan::Resume,
            at: at(20),
        }]);
}

#[test]
fn inject_before_targets_are_resolved_is_refused() {
    given(running())
        .when(C::InjectFailure {
            targets: vec![t("w-1")],
            at: at(20),
        })
        .then_expect_error(ExperimentError::TargetsNotResolved);
}

#[test]
fn inject_before_the_baseline_is_refused() {
    given(sampled_of(spec()))
        .when(C::InjectFailure {
            targets: vec![t("w-1")],
            at: at(20),
        })
        .then_expect_error(ExperimentError::BaselineNotRecorded);
}

#[test]
fn inject_twice_is_refused() {
    given(injected())
        .when(C::InjectFailure {
            targets: vec![t("w-2")],
            at: at(21),
        })
        .then_expect_error(ExperimentError::AlreadyInjected);
}

#[test]
fn inject_nothing_is_refused() {
    given(running_with_baseline())
        .when(C::InjectFailure {
            targets: vec![],
            at: at(20),
        })
        .then_expect_error(ExperimentError::NoTargetsToInject);
}

#[test]
fn inject_a_target_twice_is_refused() {
    given(running_with_baseline())
        .when(C::InjectFailure {
            targets: vec![t("w-2"), t("w-1"), t("w-2")],
            at: at(20),
        })
        .then_expect_error(ExperimentError::DuplicateTarget(t("w-2")));
}

#[test]
fn inject_an_unresolved_target_is_refused() {
    given(running_with_baseline())
        .when(C::InjectFailure {
            targets: vec![t("w-1"), t("w-9")],
            at: at(20),
        })
        .then_expect_error(ExperimentError::UnknownTarget(t("w-9")));
}

#[test]
fn inject_before_start_is_refused() {
    given(draft())
        .when(C::InjectFailure {
            targets: vec![t("w-1")],
            at: at(20),
        })
        .then_expect_error(invalid("inject", Status::Draft));
}

#[test]
fn inject_while_a_stop_is_pending_is_refused() {
    let history = with(
        running_with_baseline(),
        [E::StopConditionTripped {
            condition: alarm(),
            detail: "web-5xx in ALARM".into(),
            at: at(10),
        }],
    );
    given(history)
        .when(C::InjectFailure {
            targets: vec![t("w-1")],
            at: at(20),
        })
        .then_expect_error(ExperimentError::StopPending);
}

#[test]
fn inject_after_a_rollback_is_refused() {
    // A rollback recorded before the injection must not count as undoing it: otherwise a
    // paused target could be left paused by a run that then stops without rolling back.
    let history = with(
        running_with_baseline_of(pause_spec()),
        [E::RollbackPerformed {
            detail: "nothing injected yet".into(),
            at: at(10),
        }],
    );
    given(history)
        .when(C::InjectFailure {
            targets: vec![t("w-1")],
            at: at(20),
        })
        .then_expect_error(ExperimentError::AlreadyRolledBack);
}

// ---------------------------------------------------------------------------------------------
// ObserveRecovery
// ---------------------------------------------------------------------------------------------

#[test]
fn observe_recovery_measures_from_the_injection() {
    given(injected())
        .when(C::ObserveRecovery {
            health: health(4, 4),
            at: Timestamp::from_unix_millis(at(20).unix_millis() + 12_345),
        })
        .then_expect_events(vec![E::RecoveryObserved {
            recovery_ms: 12_345,
            health: health(4, 4),
            at: Timestamp::from_unix_millis(at(20).unix_millis() + 12_345),
        }]);
}

#[test]
fn observe_recovery_at_the_injection_instant_is_zero() {
    given(injected())
        .when(C::ObserveRecovery {
            health: health(4, 4),
            at: at(20),
        })
        .then_expect_events(vec![E::RecoveryObserved {
            recovery_ms: 0,
            health: health(4, 4),
            at: at(20),
        }]);
}

#[test]
fn observe_recovery_before_the_injection_is_clock_skew() {
    given(injected())
        .when(C::ObserveRecovery {
            health: health(4, 4),
            at: at(19),
        })
        .then_expect_error(ExperimentError::ClockSkew {
            at: "2026-11-18T11:06:59.000Z".into(),
            injected_at: "2026-11-18T11:07:00.000Z".into(),
        });
}

#[test]
fn observe_recovery_before_injecting_is_refused() {
    given(running_with_baseline())
        .when(C::ObserveRecovery {
            health: health(4, 4),
            at: at(20),
        })
        .then_expect_error(ExperimentError::NotInjected);
}

#[test]
fn observe_recovery_twice_is_refused() {
    given(with(
        injected(),
        [E::RecoveryObserved {
            recovery_ms: 5_000,
            health: health(4, 4),
            at: at(25),
        }],
    ))
    .when(C::ObserveRecovery {
        health: health(4, 4),
        at: at(26),
    })
    .then_expect_error(ExperimentError::AlreadyRecovered);
}

#[test]
fn observe_impossible_recovery_health_is_refused() {
    given(injected())
        .when(C::ObserveRecovery {
            health: health(4, 3),
            at: at(25),
        })
        .then_expect_error(ExperimentError::InvalidHealth("healthy exceeds total"));
    given(injected())
        .when(C::ObserveRecovery {
            health: HealthSnapshot {
                error_rate_bp: u32::MAX,
                ..health(4, 4)
            },
            at: at(25),
        })
        .then_expect_error(ExperimentError::InvalidHealth(
            "error_rate_bp exceeds 10000",
        ));
}

#[test]
fn observe_recovery_before_start_is_refused() {
    given(draft())
        .when(C::ObserveRecovery {
            health: health(4, 4),
            at: at(25),
        })
        .then_expect_error(invalid("observe recovery", Status::Draft));
}

#[test]
fn observe_recovery_while_a_stop_is_pending_is_refused() {
    given(with(injected(), [stop_requested(21)]))
        .when(C::ObserveRecovery {
            health: health(4, 4),
            at: at(25),
        })
        .then_expect_error(ExperimentError::StopPending);
}

// ---------------------------------------------------------------------------------------------
// CompleteExperiment
// ---------------------------------------------------------------------------------------------

#[test]
fn complete_after_recovery() {
    let history = with(
        injected(),
        [E::RecoveryObserved {
            recovery_ms: 9_000,
            health: health(4, 4),
            at: at(29),
        }],
    );
    given(history)
        .when(C::CompleteExperiment { at: at(30) })
        .then_expect_events(vec![E::ExperimentCompleted {
            outcome: Outcome::Recovered,
            recovery_ms: Some(9_000),
            at: at(30),
        }]);
}

#[test]
fn complete_without_recovery_before_the_timeout_is_pending() {
    // Injected at 20 s with a 120 s timeout: the deadline is 140 s.
    given(injected())
        .when(C::CompleteExperiment { at: at(100) })
        .then_expect_error(ExperimentError::RecoveryPending {
            remaining_ms: 40_000,
        });
    given(injected())
        .when(C::CompleteExperiment {
            at: Timestamp::from_unix_millis(at(140).unix_millis() - 1),
        })
        .then_expect_error(ExperimentError::RecoveryPending { remaining_ms: 1 });
}

#[test]
fn complete_without_recovery_after_the_timeout_is_not_recovered() {
    for secs in [140, 500] {
        given(injected())
            .when(C::CompleteExperiment { at: at(secs) })
            .then_expect_events(vec![E::ExperimentCompleted {
                outcome: Outcome::NotRecovered,
                recovery_ms: None,
                at: at(secs),
            }]);
    }
}

#[test]
fn complete_before_injecting_is_refused() {
    given(running_with_baseline())
        .when(C::CompleteExperiment { at: at(500) })
        .then_expect_error(ExperimentError::NotInjected);
}

#[test]
fn complete_before_start_or_after_the_end_is_refused() {
    given(draft())
        .when(C::CompleteExperiment { at: at(30) })
        .then_expect_error(invalid("complete", Status::Draft));
    given(completed())
        .when(C::CompleteExperiment { at: at(31) })
        .then_expect_error(invalid("complete", Status::Completed));
}

#[test]
fn complete_while_a_stop_is_pending_is_refused() {
    given(with(injected(), [stop_requested(21)]))
        .when(C::CompleteExperiment { at: at(500) })
        .then_expect_error(ExperimentError::StopPending);
}

// ---------------------------------------------------------------------------------------------
// Dry runs and FinishDryRun
// ---------------------------------------------------------------------------------------------

#[test]
fn a_dry_run_resolves_targets() {
    given(running_of(dry_spec()))
        .when(C::ResolveTargets {
            candidates: 4,
            targets: resolved_targets(),
            at: at(2),
        })
        .then_expect_events(vec![E::TargetsResolved {
            candidates: 4,
            targets: resolved_targets(),
            at: at(2),
        }]);
}

#[test]
fn a_dry_run_refuses_health_baseline_inject_and_complete() {
    let commands = [
        C::RecordHealthCheck {
            health: health(4, 4),
            at: at(3),
        },
        C::RecordBaseline {
            health: health(4, 4),
            at: at(3),
        },
        C::InjectFailure {
            targets: vec![t("w-1")],
            at: at(3),
        },
        C::CompleteExperiment { at: at(3) },
    ];
    for command in commands {
        let name = command.name();
        let result = given(resolved_of(dry_spec()))
            .when(command)
            .inspect_result();
        assert_eq!(result, Err(ExperimentError::DryRun), "{name}");
    }
}

#[test]
fn a_dry_run_refuses_health_even_before_targets() {
    // The dry-run check comes first for health and baseline.
    for command in [
        C::RecordHealthCheck {
            health: health(4, 4),
            at: at(3),
        },
        C::RecordBaseline {
            health: health(4, 4),
            at: at(3),
        },
    ] {
        let name = command.name();
        let result = given(running_of(dry_spec())).when(command).inspect_result();
        assert_eq!(result, Err(ExperimentError::DryRun), "{name}");
    }
}

#[test]
fn finish_a_dry_run() {
    given(resolved_of(dry_spec()))
        .when(C::FinishDryRun { at: at(3) })
        .then_expect_events(vec![E::ExperimentCompleted {
            outcome: Outcome::DryRun,
            recovery_ms: None,
            at: at(3),
        }]);
}

#[test]
fn finish_a_dry_run_before_targets_is_refused() {
    given(running_of(dry_spec()))
        .when(C::FinishDryRun { at: at(3) })
        .then_expect_error(ExperimentError::TargetsNotResolved);
}

#[test]
fn finish_a_real_run_as_dry_is_refused() {
    given(resolved())
        .when(C::FinishDryRun { at: at(3) })
        .then_expect_error(ExperimentError::NotDryRun);
}

#[test]
fn finish_a_dry_run_before_start_is_refused() {
    given(created(dry_spec()))
        .when(C::FinishDryRun { at: at(3) })
        .then_expect_error(invalid("finish dry run", Status::Draft));
}

#[test]
fn finish_a_dry_run_while_a_stop_is_pending_is_refused() {
    given(with(resolved_of(dry_spec()), [stop_requested(3)]))
        .when(C::FinishDryRun { at: at(4) })
        .then_expect_error(ExperimentError::StopPending);
}

// ---------------------------------------------------------------------------------------------
// TripStopCondition
// ---------------------------------------------------------------------------------------------

#[test]
fn trip_a_stop_condition() {
    given(injected())
        .when(C::TripStopCondition {
            condition: error_rate(),
            detail: "error rate 61 %".into(),
            at: at(25),
        })
        .then_expect_events(vec![E::StopConditionTripped {
            condition: error_rate(),
            detail: "error rate 61 %".into(),
            at: at(25),
        }]);
}

#[test]
fn trip_an_unknown_stop_condition_is_refused() {
    given(injected())
        .when(C::TripStopCondition {
            condition: StopCondition::MaxErrorRate { percent: 10 },
            detail: "error rate 11 %".into(),
            at: at(25),
        })
        .then_expect_error(ExperimentError::UnknownStopCondition);
}

#[test]
fn trip_detail_is_checked() {
    given(injected())
        .when(C::TripStopCondition {
            condition: alarm(),
            detail: long_text(),
            at: at(25),
        })
        .then_expect_error(too_long("detail"));
}

#[test]
fn trip_while_stopping_changes_nothing() {
    for pending in [
        stop_requested(21),
        E::StopConditionTripped {
            condition: alarm(),
            detail: "web-5xx in ALARM".into(),
            at: at(21),
        },
    ] {
        given(with(injected(), [pending]))
            .when(C::TripStopCondition {
                condition: error_rate(),
                detail: "error rate 70 %".into(),
                at: at(25),
            })
            .then_expect_events(vec![]);
    }
}

#[test]
fn trip_when_not_running_is_refused() {
    given(draft())
        .when(C::TripStopCondition {
            condition: alarm(),
            detail: "web-5xx in ALARM".into(),
            at: at(25),
        })
        .then_expect_error(invalid("trip a stop condition", Status::Draft));
}

// ---------------------------------------------------------------------------------------------
// RequestStop
// ---------------------------------------------------------------------------------------------

#[test]
fn request_stop() {
    given(injected())
        .when(C::RequestStop {
            reason: "operator pressed stop".into(),
            at: at(25),
        })
        .then_expect_events(vec![stop_requested(25)]);
}

#[test]
fn stop_requested_twice_is_a_no_op() {
    given(with(injected(), [stop_requested(21)]))
        .when(C::RequestStop {
            reason: "pressed again".into(),
            at: at(25),
        })
        .then_expect_events(vec![]);
}

#[test]
fn stop_after_a_tripped_condition_is_a_no_op() {
    let history = with(
        injected(),
        [E::StopConditionTripped {
            condition: alarm(),
            detail: "web-5xx in ALARM".into(),
            at: at(21),
        }],
    );
    given(history)
        .when(C::RequestStop {
            reason: "halt switch".into(),
            at: at(25),
        })
        .then_expect_events(vec![]);
}

#[test]
fn stop_reason_is_checked() {
    given(injected())
        .when(C::RequestStop {
            reason: "nul\u{0}".into(),
            at: at(25),
        })
        .then_expect_error(has_control("reason"));
}

#[test]
fn stop_when_not_running_is_refused() {
    given(draft())
        .when(C::RequestStop {
            reason: "nothing to stop".into(),
            at: at(25),
        })
        .then_expect_error(invalid("stop", Status::Draft));
    given(completed())
        .when(C::RequestStop {
            reason: "too late".into(),
            at: at(40),
        })
        .then_expect_error(invalid("stop", Status::Completed));
}

// ---------------------------------------------------------------------------------------------
// RecordRollback
// ---------------------------------------------------------------------------------------------

#[test]
fn record_a_rollback() {
    given(with(injected_paused(), [stop_requested(21)]))
        .when(C::RecordRollback {
            detail: "resumed w-1".into(),
            at: at(22),
        })
        .then_expect_events(vec![E::RollbackPerformed {
            detail: "resumed w-1".into(),
            at: at(22),
        }]);
}

#[test]
fn rollback_twice_is_refused() {
    let history = with(
        injected_paused(),
        [
            stop_requested(21),
            E::RollbackPerformed {
                detail: "resumed w-1".into(),
                at: at(22),
            },
        ],
    );
    given(history)
        .when(C::RecordRollback {
            detail: "resumed again".into(),
            at: at(23),
        })
        .then_expect_error(ExperimentError::AlreadyRolledBack);
}

#[test]
fn rollback_detail_is_checked() {
    given(with(injected_paused(), [stop_requested(21)]))
        .when(C::RecordRollback {
            detail: long_text(),
            at: at(22),
        })
        .then_expect_error(too_long("detail"));
}

#[test]
fn rollback_when_not_running_is_refused() {
    given(draft())
        .when(C::RecordRollback {
            detail: "nothing".into(),
            at: at(22),
        })
        .then_expect_error(invalid("roll back", Status::Draft));
}

// ---------------------------------------------------------------------------------------------
// MarkStopped
// ---------------------------------------------------------------------------------------------

#[test]
fn mark_stopped_without_a_stop_is_refused() {
    given(injected())
        .when(C::MarkStopped { at: at(25) })
        .then_expect_error(ExperimentError::StopNotRequested);
}

#[test]
fn mark_stopped_after_a_pause_needs_a_rollback() {
    given(with(injected_paused(), [stop_requested(21)]))
        .when(C::MarkStopped { at: at(25) })
        .then_expect_error(ExperimentError::RollbackRequired);
}

#[test]
fn mark_stopped_after_a_pause_and_its_rollback() {
    let history = with(
        injected_paused(),
        [
            E::StopConditionTripped {
                condition: alarm(),
                detail: "web-5xx in ALARM".into(),
                at: at(21),
            },
            E::RollbackPerformed {
                detail: "resumed w-1".into(),
                at: at(22),
            },
        ],
    );
    given(history)
        .when(C::MarkStopped { at: at(25) })
        .then_expect_events(vec![E::ExperimentStopped {
            cause: StopCause::StopCondition,
            at: at(25),
        }]);
}

#[test]
fn mark_stopped_after_a_terminate_needs_no_rollback() {
    given(with(injected(), [stop_requested(21)]))
        .when(C::MarkStopped { at: at(25) })
        .then_expect_events(vec![E::ExperimentStopped {
            cause: StopCause::Requested,
            at: at(25),
        }]);
}

#[test]
fn mark_stopped_before_any_injection_needs_no_rollback() {
    given(with(resolved_of(pause_spec()), [stop_requested(3)]))
        .when(C::MarkStopped { at: at(4) })
        .then_expect_events(vec![E::ExperimentStopped {
            cause: StopCause::Requested,
            at: at(4),
        }]);
}

#[test]
fn mark_stopped_when_not_running_is_refused() {
    given(draft())
        .when(C::MarkStopped { at: at(4) })
        .then_expect_error(invalid("mark stopped", Status::Draft));
}

// ---------------------------------------------------------------------------------------------
// InterruptRun
// ---------------------------------------------------------------------------------------------

fn interrupted(secs: i64) -> E {
    E::RunInterrupted {
        detail: "the server running it stopped".into(),
        at: at(secs),
    }
}

#[test]
fn a_run_lost_while_its_failure_is_in_effect_is_interrupted() {
    given(injected_paused())
        .when(C::InterruptRun {
            detail: "the server running it stopped".into(),
            at: at(30),
        })
        .then_expect_events(vec![interrupted(30)]);
}

#[test]
fn an_interrupted_run_is_rolled_back_and_stopped_as_interrupted_never_completed() {
    let after = with(injected_paused(), [interrupted(30)]);
    let mut state = Experiment::default();
    for e in after.clone() {
        cqrs_es::Aggregate::apply(&mut state, e);
    }
    assert_eq!(state.phase(), Some(domain::experiment::Phase::RollingBack));
    given(after.clone())
        .when(C::CompleteExperiment { at: at(90) })
        .then_expect_error(ExperimentError::StopPending);
    given(after.clone())
        .when(C::MarkStopped { at: at(31) })
        .then_expect_error(ExperimentError::RollbackRequired);
    given(with(
        after,
        [E::RollbackPerformed {
            detail: "nothing paused any more".into(),
            at: at(31),
        }],
    ))
    .when(C::MarkStopped { at: at(32) })
    .then_expect_events(vec![E::ExperimentStopped {
        cause: StopCause::Interrupted,
        at: at(32),
    }]);
}

#[test]
fn a_run_lost_before_injection_goes_on_and_is_not_interrupted() {
    given(running_with_baseline())
        .when(C::InterruptRun {
            detail: "lost".into(),
            at: at(30),
        })
        .then_expect_error(ExperimentError::NotInjected);
}

#[test]
fn a_recovery_measured_before_the_loss_stands() {
    given(completed()[..completed().len() - 1].to_vec())
        .when(C::InterruptRun {
            detail: "lost".into(),
            at: at(30),
        })
        .then_expect_error(ExperimentError::AlreadyRecovered);
}

#[test]
fn a_run_already_stopping_keeps_its_stop_cause() {
    given(with(injected_paused(), [stop_requested(21)]))
        .when(C::InterruptRun {
            detail: "lost".into(),
            at: at(30),
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_finished_run_cannot_be_interrupted() {
    given(completed())
        .when(C::InterruptRun {
            detail: "lost".into(),
            at: at(30),
        })
        .then_expect_error(invalid("interrupt", Status::Completed));
}

// ---------------------------------------------------------------------------------------------
// FailExperiment
// ---------------------------------------------------------------------------------------------

#[test]
fn fail_a_run() {
    let reason = FailureReason {
        code: FailureCode::RollbackFailed,
        message: "SIGCONT to w-1 failed: no such process".into(),
    };
    given(with(injected_paused(), [stop_requested(21)]))
        .when(C::FailExperiment {
            reason: reason.clone(),
            at: at(25),
        })
        .then_expect_events(vec![E::ExperimentFailed { reason, at: at(25) }]);
}

#[test]
fn fail_message_is_checked() {
    given(injected())
        .when(C::FailExperiment {
            reason: FailureReason {
                code: FailureCode::TaskError,
                message: long_text(),
            },
            at: at(25),
        })
        .then_expect_error(too_long("reason.message"));
}

#[test]
fn fail_when_not_running_is_refused() {
    given(draft())
        .when(C::FailExperiment {
            reason: FailureReason {
                code: FailureCode::RunnerLost,
                message: "gone".into(),
            },
            at: at(25),
        })
        .then_expect_error(invalid("fail", Status::Draft));
}

// ---------------------------------------------------------------------------------------------
// ArchiveExperiment
// ---------------------------------------------------------------------------------------------

#[test]
fn archive_a_draft_or_a_finished_run() {
    given(draft())
        .when(C::ArchiveExperiment { at: at(5) })
        .then_expect_events(vec![E::ExperimentArchived { at: at(5) }]);
    given(completed())
        .when(C::ArchiveExperiment { at: at(50) })
        .then_expect_events(vec![E::ExperimentArchived { at: at(50) }]);
}

#[test]
fn archive_a_running_experiment_is_refused() {
    given(injected())
        .when(C::ArchiveExperiment { at: at(50) })
        .then_expect_error(invalid("archive", Status::Running));
}

#[test]
fn archive_twice_is_refused() {
    given(archived())
        .when(C::ArchiveExperiment { at: at(50) })
        .then_expect_error(ExperimentError::Archived);
}

// ---------------------------------------------------------------------------------------------
// Stream bound
// ---------------------------------------------------------------------------------------------

/// A running stream of exactly `len` events: the prefix, then health samples.
fn running_stream_of_len(len: usize) -> Vec<E> {
    let mut events = resolved();
    let mut sample = 0;
    while events.len() < len {
        sample += 1;
        events.push(health_checked(sample, 3));
    }
    assert_eq!(events.len(), len, "prefix longer than {len}");
    events
}

#[test]
fn a_full_stream_refuses_a_new_event() {
    given(running_stream_of_len(MAX_EXPERIMENT_EVENTS))
        .when(C::RequestStop {
            reason: "stop".into(),
            at: at(400),
        })
        .then_expect_error(ExperimentError::StreamFull {
            max: MAX_EXPERIMENT_EVENTS,
        });
    given(running_stream_of_len(MAX_EXPERIMENT_EVENTS))
        .when(C::FailExperiment {
            reason: FailureReason {
                code: FailureCode::RunnerLost,
                message: "gone".into(),
            },
            at: at(400),
        })
        .then_expect_error(ExperimentError::StreamFull {
            max: MAX_EXPERIMENT_EVENTS,
        });
}

#[test]
fn the_last_free_slot_is_usable() {
    given(running_stream_of_len(MAX_EXPERIMENT_EVENTS - 1))
        .when(C::RequestStop {
            reason: "stop".into(),
            at: at(400),
        })
        .then_expect_events(vec![E::StopRequested {
            reason: "stop".into(),
            at: at(400),
        }]);
}

#[test]
fn a_no_op_on_a_full_stream_is_still_a_no_op() {
    let mut history = running_stream_of_len(MAX_EXPERIMENT_EVENTS - 1);
    history.push(stop_requested(300));
    given(history)
        .when(C::RequestStop {
            reason: "again".into(),
            at: at(400),
        })
        .then_expect_events(vec![]);
}

// ---------------------------------------------------------------------------------------------
// Whole runs
// ---------------------------------------------------------------------------------------------

/// Runs commands through `decide`, applying what each produces; panics on a refusal.
fn run(commands: Vec<C>) -> (Experiment, Vec<E>) {
    use cqrs_es::Aggregate;
    let mut experiment = Experiment::default();
    let mut all = Vec::new();
    for command in commands {
        let name = command.name();
        let events = experiment
            .decide(command)
            .unwrap_or_else(|e| panic!("{name} refused: {e}"));
        for event in events {
            experiment.apply(event.clone());
            all.push(event);
        }
    }
    (experiment, all)
}

#[test]
fn a_paused_run_that_is_stopped_is_rolled_back_first() {
    let (experiment, events) = run(vec![
        C::CreateExperiment {
            id: id(),
            spec: pause_spec(),
            at: at(0),
        },
        C::StartExperiment {
            gate: gate(),
            at: at(1),
        },
        C::ResolveTargets {
            candidates: 5,
            targets: resolved_targets(),
            at: at(2),
        },
        C::RecordHealthCheck {
            health: health(5, 5),
            at: at(3),
        },
        C::RecordHealthCheck {
            health: health(5, 5),
            at: at(4),
        },
        C::RecordBaseline {
            health: health(5, 5),
            at: at(5),
        },
        C::InjectFailure {
            targets: vec![t("w-2")],
            at: at(6),
        },
        C::TripStopCondition {
            condition: alarm(),
            detail: "web-5xx in ALARM".into(),
            at: at(7),
        },
        C::RecordRollback {
            detail: "resumed w-2".into(),
            at: at(8),
        },
        C::MarkStopped { at: at(9) },
        C::ArchiveExperiment { at: at(10) },
    ]);
    assert_eq!(events.len(), 11);
    assert_eq!(experiment.status(), Status::Stopped);
    assert!(experiment.is_archived());
    assert_eq!(experiment.stop_cause(), Some(StopCause::StopCondition));
    assert_eq!(experiment.ended_at(), Some(at(9)));
    assert_eq!(experiment.health_samples(), 2);
    assert_eq!(experiment.targets(), Some(resolved_targets().as_slice()));
}

#[test]
fn phases_follow_the_workflow() {
    use cqrs_es::Aggregate;
    use domain::experiment::Phase;
    let mut experiment = Experiment::default();
    let mut phases = Vec::new();
    for event in with(injected(), [stop_requested(21)]) {
        experiment.apply(event);
        phases.push(experiment.phase());
    }
    phases.dedup();
    assert_eq!(
        phases,
        [
            None,
            Some(Phase::ResolvingTargets),
            Some(Phase::Baseline),
            Some(Phase::Injecting),
            Some(Phase::ObservingRecovery),
            Some(Phase::RollingBack),
        ]
    );
}
