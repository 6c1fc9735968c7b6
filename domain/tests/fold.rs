//! Folding the log gives back the state, whatever commands arrive, and the largest stream fits
//! one DynamoDB page.
//!
//! The property test drives a live aggregate with random commands (valid and invalid mixed,
//! time never going backwards), applies what each accepted command produced, then folds the
//! collected events from scratch: the result must equal the live aggregate. Along the way it
//! checks the stream bound, the JSON round trip of every event and a few safety invariants of
//! the produced log.

use cqrs_es::{Aggregate, DomainEvent};
use domain::experiment::{
    Experiment, ExperimentCommand as C, ExperimentEvent as E, FailureCode, FailureReason,
    HealthSnapshot, PlatformGate, RollbackPlan,
};
use domain::limits::{
    HARD_TARGET_CAP, MAX_DESCRIPTION_CHARS, MAX_EXPERIMENT_EVENTS, MAX_GROUP_CHARS,
    MAX_HEALTH_SAMPLES, MAX_ID_CHARS, MAX_NAME_CHARS, MAX_SCHEDULES, MAX_STOP_CONDITIONS,
    MAX_TARGET_ID_CHARS, MAX_TEXT_CHARS, STREAM_BYTE_BUDGET,
};
use domain::provenance::{Actor, CommandContext, EventMetadata, Role, Source};
use domain::spec::{
    ExperimentId, ExperimentSpec, ExperimentSpecInput, FailureType, Guardrails, RecoveryPolicy,
    Selection, StopCondition, Target, TargetId, TargetKind,
};
use domain::{BoundedStream, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

// ---------------------------------------------------------------------------------------------
// Random command sequences
// ---------------------------------------------------------------------------------------------

const T0_MILLIS: i64 = 1_795_000_000_000;

/// Instance ids the generator draws from; a spec never resolves more than three.
const POOL: [&str; 6] = ["w-0", "w-1", "w-2", "w-3", "w-4", "w-5"];

fn pool(i: u8) -> TargetId {
    TargetId::parse(POOL[usize::from(i) % POOL.len()]).expect("valid target id")
}

fn id() -> ExperimentId {
    ExperimentId::parse("exp-fold").expect("valid id")
}

fn stop_conditions() -> [StopCondition; 3] {
    [
        StopCondition::MaxErrorRate { percent: 50 },
        StopCondition::Alarm {
            alarm_name: "web-5xx".into(),
        },
        // Not part of any spec: tripping it is refused.
        StopCondition::MaxErrorRate { percent: 10 },
    ]
}

/// The specs a sequence can create: terminate, pause, dry run, percent selection.
fn specs() -> Vec<ExperimentSpec> {
    let base = || ExperimentSpecInput {
        name: "fold".into(),
        description: String::new(),
        target: Target {
            kind: TargetKind::LocalFleet,
            group: "web".into(),
        },
        selection: Selection::Count(2),
        max_targets: 3,
        failure: FailureType::Terminate,
        dry_run: false,
        guardrails: Guardrails {
            stop_conditions: stop_conditions()[..2].to_vec(),
            max_duration_secs: 600,
        },
        recovery: RecoveryPolicy {
            timeout_secs: 60,
            poll_interval_secs: 5,
            baseline_samples: 2,
        },
    };
    let variants = [
        base(),
        ExperimentSpecInput {
            failure: FailureType::Pause { duration_secs: 30 },
            selection: Selection::Count(1),
            recovery: RecoveryPolicy {
                baseline_samples: 1,
                ..base().recovery
            },
            ..base()
        },
        ExperimentSpecInput {
            dry_run: true,
            selection: Selection::All,
            ..base()
        },
        ExperimentSpecInput {
            failure: FailureType::Pause { duration_secs: 10 },
            selection: Selection::Percent(50),
            ..base()
        },
    ];
    variants
        .into_iter()
        .map(|input| ExperimentSpec::parse(input).expect("generator spec is valid"))
        .collect()
}

/// One step of a random sequence, made concrete against the live state by [`command`].
///
/// `fit` asks for arguments that match the state (the right target count, resolved targets);
/// without it the arguments are drawn blindly and are mostly wrong.
#[derive(Debug, Clone)]
enum Action {
    Create(usize),
    Schedule(i64),
    Cancel(String),
    Start {
        halted: bool,
        max_targets: u32,
        max_duration: u32,
    },
    Resolve {
        fit: bool,
        candidates: u32,
        picks: Vec<u8>,
    },
    Health(HealthSnapshot),
    Baseline(HealthSnapshot),
    Inject {
        fit: bool,
        picks: Vec<u8>,
    },
    Observe(HealthSnapshot),
    Trip(u8, String),
    Stop(String),
    Rollback(String),
    Interrupt(String),
    Complete,
    FinishDryRun,
    Fail(u8, String),
    MarkStopped,
    Archive,
    /// The next forward command a workflow would send from the live state.
    Progress(HealthSnapshot, bool),
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("observed".to_owned()),
        2 => Just(String::new()),
        1 => Just("x".repeat(MAX_TEXT_CHARS + 1)),
        1 => Just("bell\u{7}".to_owned()),
    ]
}

fn health() -> impl Strategy<Value = HealthSnapshot> {
    let figures = (
        0u32..=2_000,
        prop_oneof![Just(0u32), Just(250), Just(10_000), Just(10_001)],
    );
    prop_oneof![
        8 => (1u32..=5, figures.clone()).prop_flat_map(|(total, (latency, error_rate))| {
            (0..=total).prop_map(move |healthy| HealthSnapshot {
                healthy,
                total,
                latency_p95_ms: latency,
                error_rate_bp: error_rate,
            })
        }),
        1 => (0u32..=6, 0u32..=6, figures).prop_map(|(healthy, total, (latency, error_rate))| {
            HealthSnapshot {
                healthy,
                total,
                latency_p95_ms: latency,
                error_rate_bp: error_rate,
            }
        }),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let picks = || prop::collection::vec(0u8..6, 0..4);
    prop_oneof![
        1 => (0..specs().len()).prop_map(Action::Create),
        2 => (-5_000i64..600_000).prop_map(Action::Schedule),
        1 => text().prop_map(Action::Cancel),
        4 => (
            prop::bool::weighted(0.05),
            prop_oneof![3 => 3u32..=10, 1 => 1u32..3],
            prop_oneof![1 => Just(100u32), 3 => Just(3_600)],
        )
            .prop_map(|(halted, max_targets, max_duration)| Action::Start {
                halted,
                max_targets,
                max_duration,
            }),
        5 => (prop::bool::weighted(0.8), prop_oneof![1 => Just(0u32), 4 => 1u32..6], picks())
            .prop_map(|(fit, candidates, picks)| Action::Resolve { fit, candidates, picks }),
        8 => health().prop_map(Action::Health),
        4 => health().prop_map(Action::Baseline),
        4 => (prop::bool::weighted(0.8), picks())
            .prop_map(|(fit, picks)| Action::Inject { fit, picks }),
        3 => health().prop_map(Action::Observe),
        2 => (0u8..3, text()).prop_map(|(which, detail)| Action::Trip(which, detail)),
        2 => text().prop_map(Action::Stop),
        1 => text().prop_map(Action::Rollback),
        1 => text().prop_map(Action::Interrupt),
        3 => Just(Action::Complete),
        2 => Just(Action::FinishDryRun),
        1 => (0u8..4, text()).prop_map(|(code, message)| Action::Fail(code, message)),
        3 => Just(Action::MarkStopped),
        1 => Just(Action::Archive),
        30 => (health(), any::<bool>()).prop_map(|(health, coin)| Action::Progress(health, coin)),
    ]
}

/// Milliseconds to the next step (never negative: time does not run backwards).
fn step() -> impl Strategy<Value = (i64, Action)> {
    (
        prop_oneof![3 => 0i64..5_000, 1 => 5_000i64..90_000],
        action(),
    )
}

fn sequence() -> impl Strategy<Value = Vec<(i64, Action)>> {
    (
        prop::option::weighted(0.9, 0..specs().len()),
        prop::collection::vec(step(), 0..80),
    )
        .prop_map(|(create, mut steps)| {
            if let Some(spec) = create {
                steps.insert(0, (0, Action::Create(spec)));
            }
            steps
        })
}

fn command(action: Action, live: &Experiment, specs: &[ExperimentSpec], at: Timestamp) -> C {
    match action {
        Action::Create(i) => C::CreateExperiment {
            id: id(),
            spec: specs[i].clone(),
            at,
        },
        Action::Schedule(ahead_ms) => C::ScheduleExperiment {
            start_at: at.plus_millis(ahead_ms),
            at,
        },
        Action::Cancel(reason) => C::CancelExperiment { reason, at },
        Action::Start {
            halted,
            max_targets,
            max_duration,
        } => C::StartExperiment {
            gate: PlatformGate {
                halted: halted.then(|| "halted".to_owned()),
                max_targets_per_run: max_targets,
                max_duration_secs: max_duration,
                blackout: None,
            },
            at,
        },
        Action::Resolve {
            fit,
            candidates,
            picks,
        } => {
            let targets = match live.spec() {
                Some(spec) if fit => {
                    let n = spec
                        .selection()
                        .resolve_count(candidates, spec.max_targets());
                    (0..n).map(|i| pool(u8::try_from(i).unwrap_or(0))).collect()
                }
                _ => picks.into_iter().map(pool).collect(),
            };
            C::ResolveTargets {
                candidates,
                targets,
                at,
            }
        }
        Action::Health(health) => C::RecordHealthCheck { health, at },
        Action::Baseline(health) => C::RecordBaseline { health, at },
        Action::Inject { fit, picks } => {
            let targets = match live.targets() {
                Some(resolved) if fit && !resolved.is_empty() => {
                    let n = picks.len().clamp(1, resolved.len());
                    resolved[..n].to_vec()
                }
                _ => picks.into_iter().map(pool).collect(),
            };
            C::InjectFailure { targets, at }
        }
        Action::Observe(health) => C::ObserveRecovery { health, at },
        Action::Trip(which, detail) => C::TripStopCondition {
            condition: stop_conditions()[usize::from(which) % 3].clone(),
            detail,
            at,
        },
        Action::Stop(reason) => C::RequestStop { reason, at },
        Action::Rollback(detail) => C::RecordRollback { detail, at },
        Action::Interrupt(detail) => C::InterruptRun { detail, at },
        Action::Complete => C::CompleteExperiment { at },
        Action::FinishDryRun => C::FinishDryRun { at },
        Action::Fail(code, message) => C::FailExperiment {
            reason: FailureReason {
                code: [
                    FailureCode::NoTargets,
                    FailureCode::TaskError,
                    FailureCode::RollbackFailed,
                    FailureCode::RunnerLost,
                    FailureCode::TargetBusy,
                ][usize::from(code) % 5],
                message,
            },
            at,
        },
        Action::MarkStopped => C::MarkStopped { at },
        Action::Archive => C::ArchiveExperiment { at },
        Action::Progress(health, coin) => progress(live, specs, health, coin, at),
    }
}

fn progress(
    live: &Experiment,
    specs: &[ExperimentSpec],
    health: HealthSnapshot,
    coin: bool,
    at: Timestamp,
) -> C {
    use domain::experiment::{Phase, Status};
    let Some(spec) = live.spec() else {
        return C::CreateExperiment {
            id: id(),
            spec: specs[usize::from(coin)].clone(),
            at,
        };
    };
    match (live.status(), live.phase()) {
        (Status::Draft | Status::Scheduled, _) => C::StartExperiment {
            gate: PlatformGate {
                halted: None,
                max_targets_per_run: 10,
                max_duration_secs: 3_600,
                blackout: None,
            },
            at,
        },
        (_, Some(Phase::ResolvingTargets)) => {
            let n = spec.selection().resolve_count(4, spec.max_targets());
            C::ResolveTargets {
                candidates: 4,
                targets: (0..n).map(|i| pool(u8::try_from(i).unwrap_or(0))).collect(),
                at,
            }
        }
        (_, Some(Phase::Baseline)) if spec.dry_run() => C::FinishDryRun { at },
        (_, Some(Phase::Baseline)) if live.health_samples() < spec.recovery().baseline_samples => {
            C::RecordHealthCheck { health, at }
        }
        (_, Some(Phase::Baseline)) => C::RecordBaseline { health, at },
        (_, Some(Phase::Injecting)) => C::InjectFailure {
            targets: live.targets().unwrap_or_default()[..1].to_vec(),
            at,
        },
        (_, Some(Phase::ObservingRecovery)) if coin => C::ObserveRecovery { health, at },
        (_, Some(Phase::ObservingRecovery)) => C::CompleteExperiment { at },
        (_, Some(Phase::RollingBack)) if coin => C::RecordRollback {
            detail: "resumed".into(),
            at,
        },
        (_, Some(Phase::RollingBack)) => C::MarkStopped { at },
        _ => C::ArchiveExperiment { at },
    }
}

fn fold(events: &[E]) -> Experiment {
    let mut experiment = Experiment::default();
    for event in events {
        experiment.apply(event.clone());
    }
    experiment
}

fn is_terminal(event: &E) -> bool {
    matches!(
        event,
        E::ExperimentCancelled { .. }
            | E::ExperimentCompleted { .. }
            | E::ExperimentFailed { .. }
            | E::ExperimentStopped { .. }
    )
}

/// Safety properties of any log the aggregate produces.
fn check_log(events: &[E]) -> Result<(), TestCaseError> {
    let mut resolved: Option<&[TargetId]> = None;
    let mut pending_resume = false;
    let (mut injected, mut recovered, mut interrupted) = (false, false, false);
    let mut ended = false;
    let mut archived = false;
    let mut samples = 0;
    for (i, event) in events.iter().enumerate() {
        prop_assert!(!archived, "event {i} after the archive: {event:?}");
        prop_assert!(
            !ended || matches!(event, E::ExperimentArchived { .. }),
            "event {i} after the end: {event:?}"
        );
        match event {
            E::TargetsResolved { targets, .. } => {
                prop_assert!(!targets.is_empty() && targets.len() <= HARD_TARGET_CAP as usize);
                resolved = Some(targets);
            }
            E::FailureInjected {
                targets, rollback, ..
            } => {
                let known = resolved.unwrap_or_default();
                prop_assert!(
                    targets.iter().all(|t| known.contains(t)),
                    "injected {targets:?} outside {known:?}"
                );
                pending_resume = *rollback == RollbackPlan::Resume;
                injected = true;
            }
            E::RecoveryObserved { .. } => recovered = true,
            E::RunInterrupted { .. } => {
                prop_assert!(
                    injected && !recovered,
                    "interrupted before injection or after recovery"
                );
                prop_assert!(!interrupted, "interrupted twice");
                interrupted = true;
            }
            E::ExperimentCompleted { .. } => {
                prop_assert!(
                    !interrupted,
                    "an interrupted run completed as if it measured something"
                );
            }
            E::RollbackPerformed { .. } => pending_resume = false,
            E::HealthChecked { sample, .. } => {
                samples += 1;
                prop_assert_eq!(*sample, samples);
            }
            E::ExperimentStopped { .. } => {
                prop_assert!(!pending_resume, "stopped with paused targets not resumed");
            }
            E::ExperimentArchived { .. } => archived = true,
            _ => {}
        }
        ended |= is_terminal(event);
    }
    prop_assert!(samples <= MAX_HEALTH_SAMPLES);
    Ok(())
}

/// Runs a sequence against a live aggregate; returns it with every event it accepted.
fn drive(steps: Vec<(i64, Action)>) -> Result<(Experiment, Vec<E>), TestCaseError> {
    let specs = specs();
    let mut live = Experiment::default();
    let mut log: Vec<E> = Vec::new();
    let mut now = T0_MILLIS;
    for (delta, action) in steps {
        now += delta;
        let cmd = command(action, &live, &specs, Timestamp::from_unix_millis(now));
        let result = live.decide(cmd.clone());
        prop_assert_eq!(&live.decide(cmd), &result, "decide is not deterministic");
        if let Ok(events) = result {
            for event in events {
                live.apply(event.clone());
                log.push(event);
            }
        }
        prop_assert_eq!(live.version(), log.len());
        prop_assert!(log.len() <= MAX_EXPERIMENT_EVENTS);
    }
    Ok((live, log))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn folding_the_log_gives_the_live_state(steps in sequence()) {
        let (live, log) = drive(steps)?;

        prop_assert_eq!(&fold(&log), &live);

        for event in &log {
            let json = serde_json::to_string(event).expect("serialize event");
            let back: E = serde_json::from_str(&json).expect("deserialize event");
            prop_assert_eq!(&back, event);
            prop_assert_eq!(event.event_version(), "1");
        }
        let state = serde_json::to_string(&live).expect("serialize state");
        let back: Experiment = serde_json::from_str(&state).expect("deserialize state");
        prop_assert_eq!(&back, &live);

        check_log(&log)?;
    }
}

/// The property above is only as strong as the states it reaches: the generator must produce
/// every event type, including the deep ones (recovery, rollback, every ending).
#[test]
fn the_generator_reaches_every_event_type() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;

    let mut runner = TestRunner::deterministic();
    let strategy = sequence();
    let mut seen = BTreeSet::new();
    let mut outcomes = BTreeSet::new();
    for _ in 0..512 {
        let steps = strategy
            .new_tree(&mut runner)
            .expect("generate a sequence")
            .current();
        let (_, log) = drive(steps).expect("drive a sequence");
        for event in &log {
            seen.insert(event.type_name());
            if let E::ExperimentCompleted { outcome, .. } = event {
                outcomes.insert(format!("{outcome:?}"));
            }
        }
    }
    let all: BTreeSet<_> = E::TYPES.into_iter().collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "never produced: {missing:?}");
    assert_eq!(outcomes.len(), 3, "outcomes produced: {outcomes:?}");
}

// ---------------------------------------------------------------------------------------------
// Worst-case stream size
// ---------------------------------------------------------------------------------------------

/// The widest character JSON lets through a text field that refuses control characters: four
/// UTF-8 bytes, never escaped.
const WIDE: char = '\u{1F600}';

fn wide(chars: usize) -> String {
    std::iter::repeat_n(WIDE, chars).collect()
}

/// 255 four-byte characters, distinct per condition (duplicates are refused).
fn worst_alarm(i: u8) -> String {
    let mut name = wide(254);
    name.push(char::from(b'a' + i));
    name
}

fn worst_spec() -> ExperimentSpec {
    let input = ExperimentSpecInput {
        name: wide(MAX_NAME_CHARS),
        description: wide(MAX_DESCRIPTION_CHARS),
        target: Target {
            kind: TargetKind::AutoScalingGroup,
            group: wide(MAX_GROUP_CHARS),
        },
        selection: Selection::Percent(100),
        max_targets: HARD_TARGET_CAP,
        failure: FailureType::Pause {
            duration_secs: 3_600,
        },
        dry_run: false,
        guardrails: Guardrails {
            stop_conditions: (0..MAX_STOP_CONDITIONS)
                .map(|i| StopCondition::Alarm {
                    alarm_name: worst_alarm(u8::try_from(i).expect("few conditions")),
                })
                .collect(),
            max_duration_secs: 14_400,
        },
        recovery: RecoveryPolicy {
            timeout_secs: 3_600,
            poll_interval_secs: 300,
            baseline_samples: 10,
        },
    };
    // Pausing a group's instances is refused today, but specs stored before that rule hold
    // it and stay on record: read back from the stored shape, the largest a store can hold.
    let stored = serde_json::to_value(input).expect("serializes");
    serde_json::from_value(stored).expect("the worst case on record")
}

fn worst_health() -> HealthSnapshot {
    HealthSnapshot {
        healthy: u32::MAX,
        total: u32::MAX,
        latency_p95_ms: u32::MAX,
        error_rate_bp: 10_000,
    }
}

/// The longest text a `Timestamp` can have (a six-digit signed year).
fn worst_time(offset_ms: i64) -> Timestamp {
    let last = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis();
    Timestamp::from_unix_millis(last - 100_000_000 + offset_ms)
}

/// The largest stream `decide` accepts: every string at its longest and widest, every
/// repeatable event repeated to its limit, and the largest event of each alternative.
fn worst_stream() -> (ExperimentId, Vec<E>) {
    let id = ExperimentId::parse("e".repeat(MAX_ID_CHARS)).expect("longest id is valid");
    let targets: Vec<TargetId> = (0..HARD_TARGET_CAP)
        .map(|i| {
            let text = format!("i-{i:0>width$}", width = MAX_TARGET_ID_CHARS - 2);
            TargetId::parse(text).expect("longest target id is valid")
        })
        .collect();
    let spec = worst_spec();
    let baseline_samples = spec.recovery().baseline_samples;
    let mut clock = 0;
    let mut now = || {
        clock += 1_000;
        worst_time(clock)
    };
    let mut commands = vec![C::CreateExperiment {
        id: id.clone(),
        spec,
        at: now(),
    }];
    for _ in 0..MAX_SCHEDULES {
        let at = now();
        commands.push(C::ScheduleExperiment {
            start_at: worst_time(50_000_000),
            at,
        });
    }
    commands.push(C::StartExperiment {
        gate: PlatformGate {
            halted: None,
            max_targets_per_run: HARD_TARGET_CAP,
            max_duration_secs: 14_400,
            blackout: None,
        },
        at: now(),
    });
    commands.push(C::ResolveTargets {
        candidates: u32::MAX,
        targets: targets.clone(),
        at: now(),
    });
    let health = |at| C::RecordHealthCheck {
        health: worst_health(),
        at,
    };
    for _ in 0..baseline_samples {
        commands.push(health(now()));
    }
    commands.push(C::RecordBaseline {
        health: worst_health(),
        at: now(),
    });
    commands.push(C::InjectFailure { targets, at: now() });
    for _ in baseline_samples..MAX_HEALTH_SAMPLES {
        commands.push(health(now()));
    }
    commands.push(C::ObserveRecovery {
        health: worst_health(),
        at: now(),
    });
    commands.push(C::TripStopCondition {
        condition: StopCondition::Alarm {
            alarm_name: worst_alarm(0),
        },
        detail: wide(MAX_TEXT_CHARS),
        at: now(),
    });
    commands.push(C::RecordRollback {
        detail: wide(MAX_TEXT_CHARS),
        at: now(),
    });
    // A failure carries a full-length message: larger than `ExperimentStopped`.
    commands.push(C::FailExperiment {
        reason: FailureReason {
            code: FailureCode::RollbackFailed,
            message: wide(MAX_TEXT_CHARS),
        },
        at: now(),
    });
    commands.push(C::ArchiveExperiment { at: now() });

    let mut experiment = Experiment::default();
    let mut events = Vec::new();
    for cmd in commands {
        let name = cmd.name();
        let produced = experiment
            .decide(cmd)
            .unwrap_or_else(|e| panic!("worst-case {name} refused: {e}"));
        assert_eq!(produced.len(), 1, "{name} must add one event");
        for event in produced {
            experiment.apply(event.clone());
            events.push(event);
        }
    }
    (id, events)
}

/// The largest metadata the store can write: the ids validated by `CommandContext` at their
/// longest, made of characters JSON escapes (`"` and `\`, two bytes each), a UUIDv7 event id
/// (assigned by the store), the longest role, source and timestamp, and two SHA-256 hex digests.
fn worst_metadata_bytes() -> usize {
    let quotes = "\"".repeat(MAX_ID_CHARS);
    let backslashes = "\\".repeat(MAX_ID_CHARS);
    let actor = Actor {
        id: quotes.clone(),
        role: Role::Operator,
    };
    let longest_source = [
        Source::Dashboard,
        Source::Api,
        Source::Schedule,
        Source::Workflow,
        Source::Cli,
    ]
    .into_iter()
    .max_by_key(|s| s.as_str().len())
    .expect("sources");
    let longest_role = [Role::Viewer, Role::Operator, Role::Admin]
        .into_iter()
        .max_by_key(|r| r.as_str().len())
        .expect("roles");
    assert_eq!(longest_role, Role::Operator, "update the actor above");
    let context = CommandContext::new(quotes, backslashes, actor, longest_source)
        .expect("the worst-case context is accepted");
    let mut metadata = EventMetadata::unsealed(
        "019ac0de-0000-7000-8000-000000000001".into(),
        &context,
        worst_time(0),
    );
    metadata.prev_hash = "f".repeat(64);
    metadata.hash = "f".repeat(64);
    serde_json::to_vec(&metadata)
        .expect("serialize metadata")
        .len()
}

/// DynamoDB's size of one event item as dynamo-es 0.5 writes it: attribute names plus values.
fn item_bytes(id: &ExperimentId, event: &E, metadata_bytes: usize) -> usize {
    let aggregate_type = Experiment::TYPE;
    let payload = serde_json::to_vec(&serde_json::to_value(event).expect("payload value"))
        .expect("payload bytes")
        .len();
    "AggregateTypeAndId".len()
        + aggregate_type.len()
        + 1
        + id.as_str().len()
        + "AggregateIdSequence".len()
        + 10
        // dynamo-es also stores the type and the id as attributes of their own.
        + "AggregateType".len()
        + aggregate_type.len()
        + "AggregateId".len()
        + id.as_str().len()
        + "EventType".len()
        + event.event_type().len()
        + "EventVersion".len()
        + event.event_version().len()
        + "Payload".len()
        + payload
        + "Metadata".len()
        + metadata_bytes
}

#[test]
fn worst_case_stream_fits_one_dynamodb_page() {
    let (id, events) = worst_stream();
    assert!(events.len() <= MAX_EXPERIMENT_EVENTS);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.type_name() == "HealthChecked")
            .count(),
        MAX_HEALTH_SAMPLES as usize
    );

    let metadata = worst_metadata_bytes();
    let sizes: Vec<usize> = events
        .iter()
        .map(|e| item_bytes(&id, e, metadata))
        .collect();
    let reachable: usize = sizes.iter().sum();

    // `decide` produces no more events than this (each other type happens at most once), yet
    // the limits promise that a stream at its event bound fits too: fill the remaining slots
    // with the largest event of a type that may repeat.
    let largest_repeatable = events
        .iter()
        .zip(&sizes)
        .filter(|(e, _)| matches!(e, E::HealthChecked { .. } | E::ExperimentScheduled { .. }))
        .map(|(_, size)| *size)
        .max()
        .expect("repeatable events");
    let padded = reachable + (MAX_EXPERIMENT_EVENTS - events.len()) * largest_repeatable;

    println!(
        "worst case: {} events, {reachable} bytes; padded to {MAX_EXPERIMENT_EVENTS} events: \
         {padded} bytes; metadata {metadata} bytes; largest item {} bytes; budget \
         {STREAM_BYTE_BUDGET} bytes",
        events.len(),
        sizes.iter().max().copied().unwrap_or_default(),
    );
    assert!(
        reachable < STREAM_BYTE_BUDGET,
        "largest reachable stream is {reachable} bytes, budget {STREAM_BYTE_BUDGET}"
    );
    assert!(
        padded < STREAM_BYTE_BUDGET,
        "a stream at the event bound may reach {padded} bytes, budget {STREAM_BYTE_BUDGET}"
    );
}
