//! The read-model reducers over real event histories.
//!
//! Histories are decided by the aggregate itself (`Experiment::decide` on commands), so the
//! reducers see exactly the event sequences the write side produces. Every figure asserted
//! below is worked out by hand in a comment next to it.

use cqrs_es::Aggregate;
use domain::Timestamp;
use domain::experiment::{
    Experiment, ExperimentCommand as C, ExperimentEvent as E, FailureCode, FailureReason,
    HealthSnapshot, Outcome, Phase, PlatformGate, Status, StopCause,
};
use domain::platform::{PlatformConfig, PlatformEvent};
use domain::provenance::EventMetadata;
use domain::spec::{
    ExperimentId, ExperimentSpec, ExperimentSpecInput, FailureType, Guardrails, RecoveryPolicy,
    Selection, StopCondition, Target, TargetId, TargetKind,
};
use domain::views::activity::ActivityItem;
use domain::views::analytics::{Stats, analytics, nearest_rank, stats};
use domain::views::audit_log::{AuditEntry, AuditedEvent};
use domain::views::experiments::ExperimentRecord;
use domain::views::results::{RunOutcome, RunResult, RunTracker};
use domain::views::{AnyEvent, DecodeError, Envelope, RawRecord};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// 2026-11-18T11:06:40.000Z.
const T0: i64 = 1_795_000_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + secs * 1_000)
}

fn target(name: &str) -> TargetId {
    TargetId::parse(name).expect("valid target id")
}

fn input() -> ExperimentSpecInput {
    ExperimentSpecInput {
        name: "kill one web worker".into(),
        description: "Does the web tier replace a lost worker?".into(),
        target: Target {
            kind: TargetKind::LocalFleet,
            group: "web".into(),
        },
        selection: Selection::Count(1),
        max_targets: 3,
        failure: FailureType::Terminate,
        dry_run: false,
        guardrails: Guardrails {
            stop_conditions: vec![StopCondition::MaxErrorRate { percent: 50 }],
            max_duration_secs: 600,
        },
        recovery: RecoveryPolicy {
            timeout_secs: 120,
            poll_interval_secs: 1,
            baseline_samples: 3,
        },
    }
}

fn spec_with(change: impl FnOnce(&mut ExperimentSpecInput)) -> ExperimentSpec {
    let mut raw = input();
    change(&mut raw);
    ExperimentSpec::parse(raw).expect("test spec is valid")
}

fn gate() -> PlatformGate {
    PlatformGate {
        halted: None,
        max_targets_per_run: 10,
        max_duration_secs: 3_600,
        blackout: None,
    }
}

fn health(healthy: u32, latency_p95_ms: u32, error_rate_bp: u32) -> HealthSnapshot {
    HealthSnapshot {
        healthy,
        total: 3,
        latency_p95_ms,
        error_rate_bp,
    }
}

fn metadata(actor: &str, sequence: u64, recorded_at: Timestamp) -> EventMetadata {
    EventMetadata {
        event_id: format!("event-{sequence}"),
        command_id: format!("command-{sequence}"),
        correlation_id: "correlation-1".into(),
        actor: actor.into(),
        actor_role: "OPERATOR".into(),
        command: None,
        source: "workflow".into(),
        recorded_at: recorded_at.to_string(),
        prev_hash: format!("{:064x}", sequence - 1),
        hash: format!("{sequence:064x}"),
    }
}

/// Decides `commands` one after the other on stream `id` (each must be accepted) and returns
/// the envelopes of every event, as the read side would receive them. The first command is
/// issued by `creator`, the rest by the workflow.
fn decide_all(id: &str, creator: &str, commands: Vec<C>) -> Vec<Envelope> {
    let mut state = Experiment::default();
    let mut out = Vec::new();
    for (i, command) in commands.into_iter().enumerate() {
        let name = command.name();
        let events = state
            .decide(command)
            .unwrap_or_else(|e| panic!("command {i} ({name}) refused: {e}"));
        for event in events {
            state.apply(event.clone());
            let sequence = out.len() as u64 + 1;
            let actor = if i == 0 { creator } else { "workflow" };
            out.push(Envelope {
                aggregate_type: "Experiment".into(),
                aggregate_id: id.into(),
                sequence,
                metadata: metadata(actor, sequence, event.at().plus_millis(5)),
                event: AnyEvent::Experiment(event),
            });
        }
    }
    out
}

fn experiment_event(envelope: &Envelope) -> &E {
    match &envelope.event {
        AnyEvent::Experiment(e) => e,
        AnyEvent::Platform(e) => panic!("not an experiment event: {e:?}"),
    }
}

fn record_of(envelopes: &[Envelope]) -> ExperimentRecord {
    let mut record = None;
    for envelope in envelopes {
        record = Some(ExperimentRecord::apply(
            record,
            envelope,
            experiment_event(envelope),
        ));
    }
    record.expect("at least one event")
}

/// Folds a whole stream through a tracker; returns each result with the sequence that
/// produced it.
fn results_of(envelopes: &[Envelope]) -> Vec<(u64, RunResult)> {
    let mut tracker = RunTracker::default();
    envelopes
        .iter()
        .filter_map(|e| {
            tracker
                .apply(&e.aggregate_id, experiment_event(e))
                .map(|r| (e.sequence, r))
        })
        .collect()
}

fn create(id: &str, spec: ExperimentSpec, secs: i64) -> C {
    C::CreateExperiment {
        id: ExperimentId::parse(id).expect("valid id"),
        spec,
        at: at(secs),
    }
}

/// Start, resolve one target of three, three healthy baseline samples and the baseline,
/// at seconds 2 to 7.
fn up_to_baseline() -> Vec<C> {
    let mut commands = vec![
        C::StartExperiment {
            gate: gate(),
            at: at(2),
        },
        C::ResolveTargets {
            candidates: 3,
            targets: vec![target("worker-1")],
            at: at(3),
        },
    ];
    for s in 4..=6 {
        commands.push(C::RecordHealthCheck {
            health: health(3, 10, 0),
            at: at(s),
        });
    }
    commands.push(C::RecordBaseline {
        health: health(3, 10, 0),
        at: at(7),
    });
    commands
}

/// A full run: injected at 8 s, four degraded samples, recovered at 13 s, completed at 14 s.
fn full_run(id: &str) -> Vec<Envelope> {
    let mut commands = vec![create(id, spec_with(|_| {}), 1)];
    commands.extend(up_to_baseline());
    commands.push(C::InjectFailure {
        targets: vec![target("worker-1")],
        at: at(8),
    });
    for (s, h) in [
        (9, health(2, 12, 150)),
        (10, health(1, 40, 900)),
        (11, health(2, 25, 300)),
        (12, health(2, 15, 100)),
    ] {
        commands.push(C::RecordHealthCheck {
            health: h,
            at: at(s),
        });
    }
    commands.push(C::ObserveRecovery {
        health: health(3, 11, 0),
        at: at(13),
    });
    commands.push(C::CompleteExperiment { at: at(14) });
    decide_all(id, "alice", commands)
}

fn dry_run(id: &str) -> Vec<Envelope> {
    decide_all(
        id,
        "bob",
        vec![
            create(id, spec_with(|s| s.dry_run = true), 1),
            C::StartExperiment {
                gate: gate(),
                at: at(2),
            },
            C::ResolveTargets {
                candidates: 3,
                targets: vec![target("worker-2")],
                at: at(3),
            },
            C::FinishDryRun { at: at(4) },
        ],
    )
}

fn no_targets_run(id: &str) -> Vec<Envelope> {
    decide_all(
        id,
        "carol",
        vec![
            create(id, spec_with(|_| {}), 1),
            C::StartExperiment {
                gate: gate(),
                at: at(2),
            },
            C::ResolveTargets {
                candidates: 0,
                targets: Vec::new(),
                at: at(5),
            },
        ],
    )
}

fn pause_spec() -> ExperimentSpec {
    spec_with(|s| {
        s.name = "pause one api worker".into();
        s.target.group = "api".into();
        s.failure = FailureType::Pause { duration_secs: 30 };
    })
}

/// A pause run stopped on request after one sample, rolled back, marked stopped at 12 s.
fn stopped_run(id: &str) -> Vec<Envelope> {
    let mut commands = vec![create(id, pause_spec(), 1)];
    commands.extend(up_to_baseline());
    commands.extend([
        C::InjectFailure {
            targets: vec![target("worker-1")],
            at: at(8),
        },
        C::RecordHealthCheck {
            health: health(2, 30, 200),
            at: at(9),
        },
        C::RequestStop {
            reason: "operator saw paging alerts".into(),
            at: at(10),
        },
        C::RecordRollback {
            detail: "resumed worker-1".into(),
            at: at(11),
        },
        C::MarkStopped { at: at(12) },
    ]);
    decide_all(id, "dave", commands)
}

fn cancelled(id: &str) -> Vec<Envelope> {
    decide_all(
        id,
        "erin",
        vec![
            create(id, spec_with(|_| {}), 1),
            C::ScheduleExperiment {
                start_at: at(3_600),
                at: at(2),
            },
            C::CancelExperiment {
                reason: "change freeze".into(),
                at: at(3),
            },
            C::ArchiveExperiment { at: at(4) },
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Experiments read model
// ---------------------------------------------------------------------------------------------

#[test]
fn a_full_run_summarizes_as_completed_and_recovered() {
    let envelopes = full_run("exp-full");
    assert_eq!(envelopes.len(), 14);
    // Phase along the way, from the record after each event.
    let mut record = None;
    let mut phases = Vec::new();
    for envelope in &envelopes {
        let r = ExperimentRecord::apply(record, envelope, experiment_event(envelope));
        phases.push(r.summary().expect("created").phase);
        record = Some(r);
    }
    assert_eq!(phases[0], None, "draft has no phase");
    assert_eq!(phases[1], Some(Phase::ResolvingTargets));
    assert_eq!(phases[2], Some(Phase::Baseline));
    assert_eq!(phases[6], Some(Phase::Injecting));
    assert_eq!(phases[7], Some(Phase::ObservingRecovery));
    assert_eq!(phases[13], None, "ended");

    let record = record.expect("folded");
    let s = record.summary().expect("summary");
    assert_eq!(s.id, "exp-full");
    assert_eq!(s.name, "kill one web worker");
    assert_eq!(s.target, "fleet:web");
    assert_eq!(s.target_kind, TargetKind::LocalFleet);
    assert_eq!(s.failure_type, "TERMINATE");
    assert!(!s.dry_run);
    assert_eq!(s.status, Status::Completed);
    assert_eq!(s.phase, None);
    assert!(!s.archived);
    assert_eq!(s.outcome, Some(Outcome::Recovered));
    // Injected at 8 s, recovered at 13 s.
    assert_eq!(s.recovery_ms, Some(5_000));
    assert_eq!(s.created_at, at(1));
    assert_eq!(s.created_by, "alice", "the creator, not the last actor");
    assert_eq!(s.start_at, None);
    assert_eq!(s.started_at, Some(at(2)));
    assert_eq!(s.ended_at, Some(at(14)));
    assert_eq!(s.updated_at, at(14));
    assert_eq!(s.version, 14);
    assert_eq!(record.failure, None);
    assert_eq!(record.stop_reason, None);

    // The record's state is exactly the aggregate folded from the same events.
    let mut state = Experiment::default();
    for e in &envelopes {
        state.apply(experiment_event(e).clone());
    }
    assert_eq!(record.state, state);
}

#[test]
fn a_dry_run_summarizes_as_completed_dry_run() {
    let record = record_of(&dry_run("exp-dry"));
    let s = record.summary().expect("summary");
    assert!(s.dry_run);
    assert_eq!(s.status, Status::Completed);
    assert_eq!(s.outcome, Some(Outcome::DryRun));
    assert_eq!(s.recovery_ms, None);
    assert_eq!(s.created_by, "bob");
    assert_eq!(s.version, 4);
    assert_eq!(record.failure, None);
    assert_eq!(record.stop_reason, None);
}

#[test]
fn a_run_without_targets_summarizes_as_failed_with_its_reason() {
    let record = record_of(&no_targets_run("exp-none"));
    let s = record.summary().expect("summary");
    assert_eq!(s.status, Status::Failed);
    assert_eq!(s.phase, None);
    assert_eq!(s.outcome, None);
    assert_eq!(s.ended_at, Some(at(5)));
    assert_eq!(s.created_by, "carol");
    let failure = record.failure.expect("failure reason kept");
    assert_eq!(failure.code, FailureCode::NoTargets);
    assert!(failure.message.contains("fleet:web"), "{}", failure.message);
    assert_eq!(record.stop_reason, None);
}

#[test]
fn a_stopped_run_summarizes_as_stopped_with_its_reason() {
    let envelopes = stopped_run("exp-stop");
    // Right after the stop request the run is rolling back.
    let mid = record_of(&envelopes[..envelopes.len() - 2]);
    assert_eq!(
        mid.summary().expect("summary").phase,
        Some(Phase::RollingBack)
    );
    assert_eq!(mid.summary().expect("summary").status, Status::Running);

    let record = record_of(&envelopes);
    let s = record.summary().expect("summary");
    assert_eq!(s.status, Status::Stopped);
    assert_eq!(s.phase, None);
    assert_eq!(s.failure_type, "PAUSE");
    assert_eq!(s.target, "fleet:api");
    assert_eq!(s.outcome, None);
    assert_eq!(s.recovery_ms, None);
    assert_eq!(s.ended_at, Some(at(12)));
    assert_eq!(s.created_by, "dave");
    assert_eq!(record.state.stop_cause(), Some(StopCause::Requested));
    assert_eq!(
        record.stop_reason.as_deref(),
        Some("operator saw paging alerts")
    );
    assert_eq!(record.failure, None);
}

#[test]
fn a_tripped_stop_condition_is_the_stop_reason() {
    let id = "exp-trip";
    let mut commands = vec![create(id, spec_with(|_| {}), 1)];
    commands.extend(up_to_baseline());
    commands.extend([
        C::InjectFailure {
            targets: vec![target("worker-1")],
            at: at(8),
        },
        C::TripStopCondition {
            condition: StopCondition::MaxErrorRate { percent: 50 },
            detail: "error rate 62.00% > 50%".into(),
            at: at(9),
        },
        C::MarkStopped { at: at(10) },
    ]);
    let record = record_of(&decide_all(id, "alice", commands));
    assert_eq!(record.state.status(), Status::Stopped);
    assert_eq!(record.state.stop_cause(), Some(StopCause::StopCondition));
    assert_eq!(
        record.stop_reason.as_deref(),
        Some("error rate 62.00% > 50%")
    );
}

#[test]
fn a_cancelled_and_archived_experiment_summarizes_as_such() {
    let record = record_of(&cancelled("exp-cancel"));
    let s = record.summary().expect("summary");
    assert_eq!(s.status, Status::Cancelled);
    assert!(s.archived);
    assert_eq!(s.start_at, Some(at(3_600)));
    assert_eq!(s.started_at, None);
    assert_eq!(s.ended_at, Some(at(3)));
    assert_eq!(s.updated_at, at(4));
    assert_eq!(s.version, 4);
}

#[test]
fn a_record_survives_a_json_round_trip() {
    // The embedded read model stores the record as JSON and folds later events into it.
    let envelopes = full_run("exp-json");
    let (head, tail) = envelopes.split_at(6);
    let stored = serde_json::to_string(&record_of(head)).expect("serialize");
    let mut record: ExperimentRecord = serde_json::from_str(&stored).expect("deserialize");
    for e in tail {
        record = ExperimentRecord::apply(Some(record), e, experiment_event(e));
    }
    assert_eq!(record, record_of(&envelopes));
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

#[test]
fn a_full_run_yields_one_result_with_its_health_summary() {
    let envelopes = full_run("exp-full");
    let results = results_of(&envelopes);
    assert_eq!(results.len(), 1, "{results:?}");
    let (sequence, r) = &results[0];
    assert_eq!(*sequence, 14, "emitted by the completion");
    assert_eq!(r.experiment_id, "exp-full");
    assert_eq!(r.name, "kill one web worker");
    assert_eq!(r.target, "fleet:web");
    assert_eq!(r.failure_type, "TERMINATE");
    assert_eq!(r.outcome, RunOutcome::Recovered);
    assert_eq!(r.recovery_ms, Some(5_000));
    assert_eq!(r.started_at, at(2));
    assert_eq!(r.ended_at, at(14));
    // 14 s - 2 s.
    assert_eq!(r.duration_ms, 12_000);
    // T0 is 2026-11-18T11:06:40Z; 14 s later is the same day.
    assert_eq!(r.day, "2026-11-18");
    assert_eq!(r.candidates, 3);
    assert_eq!(r.targets_hit, vec!["worker-1".to_owned()]);
    // Three baseline samples and four after the injection.
    assert_eq!(r.samples, 7);
    assert_eq!(r.min_healthy, Some(1));
    assert_eq!(r.max_error_rate_bp, Some(900));
    assert_eq!(r.max_latency_p95_ms, Some(40));
    // Healthy shares: 3/3 three times = 3 * 10000; 2/3 = 6666 (floor) three times; 1/3 = 3333.
    // (30000 + 19998 + 3333) / 7 = 53331 / 7 = 7618 (floor).
    assert_eq!(r.availability_bp, Some(7_618));
}

#[test]
fn a_dry_run_yields_a_dry_run_result_without_health() {
    let results = results_of(&dry_run("exp-dry"));
    assert_eq!(results.len(), 1);
    let (sequence, r) = &results[0];
    assert_eq!(*sequence, 4);
    assert_eq!(r.outcome, RunOutcome::DryRun);
    assert_eq!(r.recovery_ms, None);
    assert_eq!(r.duration_ms, 2_000);
    assert_eq!(r.candidates, 3);
    assert!(r.targets_hit.is_empty(), "a dry run touches nothing");
    assert_eq!(r.would_hit, ["worker-2"], "and says what it would have hit");
    assert_eq!(r.samples, 0);
    assert_eq!(r.min_healthy, None);
    assert_eq!(r.max_error_rate_bp, None);
    assert_eq!(r.max_latency_p95_ms, None);
    assert_eq!(r.availability_bp, None);
}

#[test]
fn a_run_without_targets_yields_a_failed_result() {
    let results = results_of(&no_targets_run("exp-none"));
    assert_eq!(results.len(), 1);
    let (sequence, r) = &results[0];
    assert_eq!(*sequence, 3);
    assert_eq!(r.outcome, RunOutcome::Failed);
    assert_eq!(r.recovery_ms, None);
    // Failed at 5 s, started at 2 s.
    assert_eq!(r.duration_ms, 3_000);
    assert_eq!(r.candidates, 0);
    assert_eq!(r.samples, 0);
    assert_eq!(r.availability_bp, None);
}

#[test]
fn a_stopped_run_yields_a_stopped_result() {
    let results = results_of(&stopped_run("exp-stop"));
    assert_eq!(results.len(), 1);
    let (sequence, r) = &results[0];
    assert_eq!(*sequence, 12);
    assert_eq!(r.outcome, RunOutcome::Stopped);
    assert_eq!(r.failure_type, "PAUSE");
    assert_eq!(r.recovery_ms, None);
    assert_eq!(r.duration_ms, 10_000);
    assert_eq!(r.samples, 4);
    assert_eq!(r.min_healthy, Some(2));
    assert_eq!(r.max_error_rate_bp, Some(200));
    assert_eq!(r.max_latency_p95_ms, Some(30));
    // (3 * 10000 + 6666) / 4 = 36666 / 4 = 9166 (floor).
    assert_eq!(r.availability_bp, Some(9_166));
}

#[test]
fn a_run_not_recovered_within_the_timeout_yields_not_recovered() {
    let id = "exp-slow";
    let mut commands = vec![create(id, spec_with(|_| {}), 1)];
    commands.extend(up_to_baseline());
    commands.push(C::InjectFailure {
        targets: vec![target("worker-1")],
        at: at(8),
    });
    commands.push(C::RecordHealthCheck {
        health: health(0, 0, 10_000),
        at: at(9),
    });
    // Timeout 120 s after the injection at 8 s.
    commands.push(C::CompleteExperiment { at: at(128) });
    let results = results_of(&decide_all(id, "alice", commands));
    assert_eq!(results.len(), 1);
    let r = &results[0].1;
    assert_eq!(r.outcome, RunOutcome::NotRecovered);
    assert_eq!(r.recovery_ms, None);
    assert_eq!(r.min_healthy, Some(0));
    assert_eq!(r.max_error_rate_bp, Some(10_000));
    // (3 * 10000 + 0) / 4 = 7500.
    assert_eq!(r.availability_bp, Some(7_500));
}

#[test]
fn a_cancelled_experiment_yields_no_result() {
    assert_eq!(results_of(&cancelled("exp-cancel")), Vec::new());
}

#[test]
fn archiving_after_a_run_yields_no_second_result() {
    let mut envelopes = full_run("exp-full");
    let mut state = Experiment::default();
    for e in &envelopes {
        state.apply(experiment_event(e).clone());
    }
    let archived = state
        .decide(C::ArchiveExperiment { at: at(100) })
        .expect("archive");
    for event in archived {
        let sequence = envelopes.len() as u64 + 1;
        envelopes.push(Envelope {
            aggregate_type: "Experiment".into(),
            aggregate_id: "exp-full".into(),
            sequence,
            metadata: metadata("alice", sequence, at(100)),
            event: AnyEvent::Experiment(event),
        });
    }
    let results = results_of(&envelopes);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0, 14);
}

#[test]
fn a_tracker_resumes_from_its_stored_state() {
    // The embedded read model stores the tracker between batches.
    let envelopes = full_run("exp-full");
    let mut tracker = RunTracker::default();
    for e in &envelopes[..9] {
        assert_eq!(tracker.apply("exp-full", experiment_event(e)), None);
    }
    let stored = serde_json::to_string(&tracker).expect("serialize");
    let mut tracker: RunTracker = serde_json::from_str(&stored).expect("deserialize");
    let mut results = Vec::new();
    for e in &envelopes[9..] {
        results.extend(tracker.apply("exp-full", experiment_event(e)));
    }
    let expected: Vec<RunResult> = results_of(&envelopes).into_iter().map(|(_, r)| r).collect();
    assert_eq!(results, expected);
}

// ---------------------------------------------------------------------------------------------
// Analytics
// ---------------------------------------------------------------------------------------------

fn result(
    id: &str,
    day: &str,
    target: &str,
    failure_type: &str,
    outcome: RunOutcome,
    recovery_ms: Option<u64>,
    availability_bp: Option<u32>,
) -> RunResult {
    RunResult {
        experiment_id: id.into(),
        name: id.into(),
        target: target.into(),
        failure_type: failure_type.into(),
        outcome,
        recovery_ms,
        started_at: at(0),
        ended_at: at(60),
        duration_ms: 60_000,
        day: day.into(),
        candidates: 3,
        targets_hit: Vec::new(),
        would_hit: Vec::new(),
        samples: u32::from(availability_bp.is_some()),
        min_healthy: None,
        max_error_rate_bp: None,
        max_latency_p95_ms: None,
        availability_bp,
    }
}

const D1: &str = "2026-11-18";
const D2: &str = "2026-11-19";
const WEB: &str = "fleet:web";
const API: &str = "fleet:api";

fn hand_built() -> Vec<RunResult> {
    use RunOutcome::*;
    vec![
        result(
            "r1",
            D1,
            WEB,
            "TERMINATE",
            Recovered,
            Some(1_000),
            Some(9_000),
        ),
        result("r2", D1, WEB, "PAUSE", Recovered, Some(3_000), Some(8_000)),
        result("r3", D1, API, "TERMINATE", NotRecovered, None, Some(5_000)),
        result("r4", D1, WEB, "TERMINATE", DryRun, None, None),
        result(
            "r5",
            D2,
            API,
            "TERMINATE",
            Recovered,
            Some(2_000),
            Some(7_000),
        ),
        result("r6", D2, WEB, "TERMINATE", Failed, None, None),
        result("r7", D2, WEB, "PAUSE", Stopped, None, Some(6_000)),
        result(
            "r8",
            D2,
            WEB,
            "TERMINATE",
            Recovered,
            Some(10_000),
            Some(9_500),
        ),
    ]
}

fn expected(
    (runs, recovered, not_recovered, failed, stopped, dry_runs): (u32, u32, u32, u32, u32, u32),
    success_rate_bp: Option<u32>,
    failure_rate_bp: Option<u32>,
    mttr_ms: Option<u64>,
    p50_recovery_ms: Option<u64>,
    p95_recovery_ms: Option<u64>,
    availability_bp: Option<u32>,
) -> Stats {
    Stats {
        runs,
        recovered,
        not_recovered,
        failed,
        stopped,
        dry_runs,
        interrupted: 0,
        success_rate_bp,
        failure_rate_bp,
        mttr_ms,
        p50_recovery_ms,
        p95_recovery_ms,
        availability_bp,
    }
}

#[test]
fn analytics_overall_by_hand() {
    let a = analytics(&hand_built());
    // 8 runs, 1 dry: 7 real. Recovered 4/7 = 5714 bp; not recovered + failed 2/7 = 2857 bp.
    // Recovery times sorted [1000, 2000, 3000, 10000]: mean 16000 / 4 = 4000;
    // p50 rank ceil(0.5 * 4) = 2 -> 2000; p95 rank ceil(0.95 * 4) = 4 -> 10000.
    // Availability over the six runs with samples: 44500 / 6 = 7416.
    assert_eq!(
        a.overall,
        expected(
            (8, 4, 1, 1, 1, 1),
            Some(5_714),
            Some(2_857),
            Some(4_000),
            Some(2_000),
            Some(10_000),
            Some(7_416)
        )
    );
}

#[test]
fn analytics_by_day_by_hand() {
    let a = analytics(&hand_built());
    assert_eq!(a.by_day.len(), 2);
    // D1: r1 r2 r3 r4; real 3; recovered [1000, 3000]: 2/3 = 6666, 1/3 = 3333, mean 2000,
    // p50 rank 1 -> 1000, p95 rank 2 -> 3000; availability 22000 / 3 = 7333.
    assert_eq!(
        a.by_day[D1],
        expected(
            (4, 2, 1, 0, 0, 1),
            Some(6_666),
            Some(3_333),
            Some(2_000),
            Some(1_000),
            Some(3_000),
            Some(7_333)
        )
    );
    // D2: r5 r6 r7 r8; real 4; recovered [2000, 10000]: 2/4, failed 1/4, mean 6000,
    // p50 rank 1 -> 2000, p95 rank 2 -> 10000; availability 22500 / 3 = 7500.
    assert_eq!(
        a.by_day[D2],
        expected(
            (4, 2, 0, 1, 1, 0),
            Some(5_000),
            Some(2_500),
            Some(6_000),
            Some(2_000),
            Some(10_000),
            Some(7_500)
        )
    );
}

#[test]
fn analytics_by_target_by_hand() {
    let a = analytics(&hand_built());
    assert_eq!(a.by_target.len(), 2);
    // web: r1 r2 r4 r6 r7 r8; real 5; recovered [1000, 3000, 10000]: 3/5 = 6000, failed
    // 1/5 = 2000, mean 14000 / 3 = 4666, p50 rank ceil(1.5) = 2 -> 3000, p95 rank
    // ceil(2.85) = 3 -> 10000; availability (9000 + 8000 + 6000 + 9500) / 4 = 8125.
    assert_eq!(
        a.by_target[WEB],
        expected(
            (6, 3, 0, 1, 1, 1),
            Some(6_000),
            Some(2_000),
            Some(4_666),
            Some(3_000),
            Some(10_000),
            Some(8_125)
        )
    );
    // api: r3 r5; recovered [2000]: 1/2, not recovered 1/2; availability 12000 / 2.
    assert_eq!(
        a.by_target[API],
        expected(
            (2, 1, 1, 0, 0, 0),
            Some(5_000),
            Some(5_000),
            Some(2_000),
            Some(2_000),
            Some(2_000),
            Some(6_000)
        )
    );
}

#[test]
fn analytics_by_failure_type_by_hand() {
    let a = analytics(&hand_built());
    assert_eq!(a.by_failure_type.len(), 2);
    // TERMINATE: r1 r3 r4 r5 r6 r8; real 5; recovered [1000, 2000, 10000]: 3/5 = 6000,
    // not recovered + failed 2/5 = 4000, mean 13000 / 3 = 4333, p50 rank 2 -> 2000, p95 rank 3
    // -> 10000; availability (9000 + 5000 + 7000 + 9500) / 4 = 7625.
    assert_eq!(
        a.by_failure_type["TERMINATE"],
        expected(
            (6, 3, 1, 1, 0, 1),
            Some(6_000),
            Some(4_000),
            Some(4_333),
            Some(2_000),
            Some(10_000),
            Some(7_625)
        )
    );
    // PAUSE: r2 r7; recovered [3000] 1/2; a stopped run is neither success nor failure.
    assert_eq!(
        a.by_failure_type["PAUSE"],
        expected(
            (2, 1, 0, 0, 1, 0),
            Some(5_000),
            Some(0),
            Some(3_000),
            Some(3_000),
            Some(3_000),
            Some(7_000)
        )
    );
}

#[test]
fn interrupted_runs_are_counted_but_excluded_from_rates_recovery_times_and_availability() {
    use RunOutcome::*;
    let measured = hand_built();
    let mut with_interrupted = measured.clone();
    with_interrupted.push(result(
        "i1",
        D1,
        WEB,
        "PAUSE",
        Interrupted,
        Some(10),
        Some(10_000),
    ));
    with_interrupted.push(result(
        "i2",
        D1,
        WEB,
        "TERMINATE",
        Interrupted,
        None,
        Some(0),
    ));
    let (a, b) = (stats(&with_interrupted), stats(&measured));
    assert_eq!((a.runs, a.interrupted), (b.runs + 2, 2));
    assert_eq!(a.success_rate_bp, b.success_rate_bp);
    assert_eq!(a.failure_rate_bp, b.failure_rate_bp);
    assert_eq!(a.mttr_ms, b.mttr_ms);
    assert_eq!(a.p50_recovery_ms, b.p50_recovery_ms);
    assert_eq!(a.availability_bp, b.availability_bp);
    let only = stats(&with_interrupted[with_interrupted.len() - 2..]);
    assert_eq!((only.success_rate_bp, only.mttr_ms), (None, None));
}

/// A run the platform lost while its failure was in effect is interrupted in the results,
/// whether it was taken up and stopped (embedded) or failed as lost (AWS).
#[test]
fn a_run_lost_by_the_platform_is_an_interrupted_result() {
    use domain::experiment::{FailureCode, FailureReason};
    let injected = |id: &str| {
        let mut commands = vec![create(id, pause_spec(), 1)];
        commands.extend(up_to_baseline());
        commands.push(C::InjectFailure {
            targets: vec![target("worker-1")],
            at: at(8),
        });
        commands
    };
    let mut taken_up = injected("exp-taken-up");
    taken_up.extend([
        C::InterruptRun {
            detail: "the server running it stopped".into(),
            at: at(20),
        },
        C::RecordRollback {
            detail: "nothing paused any more".into(),
            at: at(21),
        },
        C::MarkStopped { at: at(22) },
    ]);
    let mut lost = injected("exp-lost");
    lost.push(C::FailExperiment {
        reason: FailureReason {
            code: FailureCode::RunnerLost,
            message: "the workflow execution ended ABORTED".into(),
        },
        at: at(22),
    });
    for (id, commands) in [("exp-taken-up", taken_up), ("exp-lost", lost)] {
        let results = results_of(&decide_all(id, "dave", commands));
        assert_eq!(results.len(), 1, "{id}");
        assert_eq!(results[0].1.outcome, RunOutcome::Interrupted, "{id}");
    }
}

#[test]
fn dry_runs_are_counted_but_excluded_from_rates() {
    use RunOutcome::*;
    let only_dry = [
        result("d1", D1, WEB, "TERMINATE", DryRun, None, None),
        result("d2", D1, WEB, "TERMINATE", DryRun, None, None),
    ];
    let s = stats(&only_dry);
    assert_eq!((s.runs, s.dry_runs), (2, 2));
    assert_eq!(s.success_rate_bp, None, "no real run, no rate");
    assert_eq!(s.failure_rate_bp, None);
    assert_eq!(s.mttr_ms, None);
    assert_eq!(s.p50_recovery_ms, None);
    assert_eq!(s.availability_bp, None);

    // Adding dry runs to a set changes no rate.
    let mut with_dry = hand_built();
    let without: Vec<RunResult> = with_dry
        .iter()
        .filter(|r| r.outcome != DryRun)
        .cloned()
        .collect();
    with_dry.extend(only_dry);
    let (a, b) = (stats(&with_dry), stats(&without));
    assert_eq!(a.runs, b.runs + 3);
    assert_eq!(a.success_rate_bp, b.success_rate_bp);
    assert_eq!(a.failure_rate_bp, b.failure_rate_bp);
    assert_eq!(a.mttr_ms, b.mttr_ms);
    assert_eq!(a.p95_recovery_ms, b.p95_recovery_ms);

    assert_eq!(stats(&[]), Stats::default());
}

#[test]
fn nearest_rank_by_hand() {
    // Ten values: p50 is the 5th, p95 the 10th (ceil(9.5)), p90 the 9th, p0 the first.
    let v: Vec<u64> = (1..=10).collect();
    assert_eq!(nearest_rank(&v, 50), Some(5));
    assert_eq!(nearest_rank(&v, 95), Some(10));
    assert_eq!(nearest_rank(&v, 90), Some(9));
    assert_eq!(nearest_rank(&v, 91), Some(10));
    assert_eq!(nearest_rank(&v, 0), Some(1));
    assert_eq!(nearest_rank(&v, 100), Some(10));
    // Three values: p50 rank ceil(1.5) = 2.
    assert_eq!(nearest_rank(&[10, 20, 30], 50), Some(20));
    assert_eq!(nearest_rank(&[10, 20, 30], 34), Some(20));
    assert_eq!(nearest_rank(&[10, 20, 30], 33), Some(10));
}

#[test]
fn analytics_of_real_runs() {
    // The reducers chained: results from real histories, then analytics.
    let mut results = Vec::new();
    for (i, history) in [
        full_run("a"),
        dry_run("b"),
        no_targets_run("c"),
        stopped_run("d"),
        cancelled("e"),
    ]
    .iter()
    .enumerate()
    {
        let found = results_of(history);
        assert_eq!(found.len(), usize::from(i != 4), "history {i}");
        results.extend(found.into_iter().map(|(_, r)| r));
    }
    let a = analytics(&results);
    // Four runs, one dry: recovered 1/3, failed 1/3, stopped 1.
    assert_eq!(a.overall.runs, 4);
    assert_eq!(a.overall.success_rate_bp, Some(3_333));
    assert_eq!(a.overall.failure_rate_bp, Some(3_333));
    assert_eq!(a.overall.mttr_ms, Some(5_000));
    // Availability: (7618 + 9166) / 2 = 8392.
    assert_eq!(a.overall.availability_bp, Some(8_392));
    assert_eq!(
        a.by_target.keys().collect::<Vec<_>>(),
        vec!["fleet:api", "fleet:web"]
    );
    assert_eq!(a.by_day.keys().collect::<Vec<_>>(), vec!["2026-11-18"]);
}

// ---------------------------------------------------------------------------------------------
// Audit log, activity and descriptions
// ---------------------------------------------------------------------------------------------

#[test]
fn audit_entries_and_activity_items_carry_provenance() {
    let envelopes = full_run("exp-full");
    let e = &envelopes[0];
    let entry = AuditEntry::from_envelope(e);
    assert_eq!(entry.aggregate_type, "Experiment");
    assert_eq!(entry.aggregate_id, "exp-full");
    assert_eq!(entry.sequence, 1);
    assert_eq!(entry.event_type, "ExperimentCreated");
    assert_eq!(
        entry.action,
        "created \"kill one web worker\" against fleet:web"
    );
    assert_eq!(entry.actor, "alice");
    assert_eq!(entry.actor_role, "OPERATOR");
    assert_eq!(entry.source, "workflow");
    assert_eq!(entry.at, at(1));
    assert_eq!(entry.recorded_at, at(1).plus_millis(5).to_string());
    assert_eq!(entry.command_id, "command-1");
    assert_eq!(entry.correlation_id, "correlation-1");
    assert_eq!(entry.event_id, "event-1");
    assert_eq!(entry.prev_hash, format!("{:064x}", 0));
    assert_eq!(entry.hash, format!("{:064x}", 1));

    let last = envelopes.last().expect("events");
    let item = ActivityItem::from_envelope(last);
    assert_eq!(item.aggregate_id, "exp-full");
    assert_eq!(item.sequence, 14);
    assert_eq!(item.event_type, "ExperimentCompleted");
    assert_eq!(item.summary, "completed: recovered in 5000 ms");
    assert_eq!(item.at, at(14));
    assert_eq!(item.actor, "workflow");
}

fn described(event: E) -> String {
    Envelope {
        aggregate_type: "Experiment".into(),
        aggregate_id: "x".into(),
        sequence: 1,
        metadata: metadata("a", 1, at(0)),
        event: AnyEvent::Experiment(event),
    }
    .describe()
}

fn described_platform(event: PlatformEvent) -> String {
    Envelope {
        aggregate_type: "Platform".into(),
        aggregate_id: "platform".into(),
        sequence: 1,
        metadata: metadata("a", 1, at(0)),
        event: AnyEvent::Platform(event),
    }
    .describe()
}

#[test]
fn descriptions_of_a_whole_run_read_well() {
    let texts: Vec<String> = full_run("exp-full")
        .iter()
        .map(Envelope::describe)
        .collect();
    assert_eq!(
        texts,
        vec![
            "created \"kill one web worker\" against fleet:web",
            "started",
            "resolved 1 of 3 matching instances: worker-1",
            "health sample 1: 3/3 healthy, p95 10 ms, errors 0.00%",
            "health sample 2: 3/3 healthy, p95 10 ms, errors 0.00%",
            "health sample 3: 3/3 healthy, p95 10 ms, errors 0.00%",
            "baseline recorded: 3/3 healthy, p95 10 ms, errors 0.00%",
            "failure injected into worker-1",
            "health sample 4: 2/3 healthy, p95 12 ms, errors 1.50%",
            "health sample 5: 1/3 healthy, p95 40 ms, errors 9.00%",
            "health sample 6: 2/3 healthy, p95 25 ms, errors 3.00%",
            "health sample 7: 2/3 healthy, p95 15 ms, errors 1.00%",
            "recovered after 5000 ms",
            "completed: recovered in 5000 ms",
        ]
    );
}

#[test]
fn descriptions_of_other_events_read_well() {
    let dry = dry_run("exp-dry");
    assert_eq!(
        dry[0].describe(),
        "created \"kill one web worker\" against fleet:web (dry run)"
    );
    assert_eq!(dry[3].describe(), "dry run completed: nothing was touched");

    let failed = no_targets_run("exp-none");
    let text = failed[2].describe();
    assert!(text.starts_with("failed ("), "{text}");
    assert!(
        text.contains("no instance matched target fleet:web"),
        "{text}"
    );

    let stopped = stopped_run("exp-stop");
    let texts: Vec<String> = stopped[stopped.len() - 3..]
        .iter()
        .map(Envelope::describe)
        .collect();
    assert_eq!(
        texts,
        vec![
            "stop requested: operator saw paging alerts",
            "rolled back: resumed worker-1",
            "stopped on request",
        ]
    );

    let cancelled = cancelled("exp-cancel");
    assert_eq!(
        cancelled[1].describe(),
        format!("scheduled to start at {}", at(3_600))
    );
    assert_eq!(cancelled[2].describe(), "cancelled: change freeze");
    assert_eq!(cancelled[3].describe(), "archived");

    assert_eq!(
        described(E::ExperimentCompleted {
            outcome: Outcome::NotRecovered,
            recovery_ms: None,
            at: at(1)
        }),
        "completed: not recovered within the recovery timeout"
    );
    assert_eq!(
        described(E::ExperimentStopped {
            cause: StopCause::StopCondition,
            at: at(1)
        }),
        "stopped by a stop condition"
    );
    assert_eq!(
        described(E::StopConditionTripped {
            condition: StopCondition::MaxErrorRate { percent: 50 },
            detail: "error rate 62.00% > 50%".into(),
            at: at(1)
        }),
        "stop condition tripped: error rate 62.00% > 50%"
    );
    assert_eq!(
        described(E::ExperimentFailed {
            reason: FailureReason {
                code: FailureCode::TaskError,
                message: "inject timed out".into()
            },
            at: at(1)
        }),
        "failed (TASK_ERROR): inject timed out"
    );
    assert_eq!(
        described(E::HealthChecked {
            sample: 9,
            health: HealthSnapshot {
                healthy: 5,
                total: 7,
                latency_p95_ms: 250,
                error_rate_bp: 10_000
            },
            at: at(1)
        }),
        "health sample 9: 5/7 healthy, p95 250 ms, errors 100.00%"
    );
    assert_eq!(
        described(E::HealthChecked {
            sample: 1,
            health: HealthSnapshot {
                healthy: 1,
                total: 1,
                latency_p95_ms: 1,
                error_rate_bp: 5
            },
            at: at(1)
        }),
        "health sample 1: 1/1 healthy, p95 1 ms, errors 0.05%"
    );

    assert_eq!(
        described_platform(PlatformEvent::PlatformHalted {
            reason: "incident 42".into(),
            at: at(1)
        }),
        "platform halted: incident 42"
    );
    assert_eq!(
        described_platform(PlatformEvent::HaltLifted { at: at(1) }),
        "halt lifted"
    );
    assert_eq!(
        described_platform(PlatformEvent::ConfigUpdated {
            config: PlatformConfig {
                max_targets_per_run: 5,
                max_duration_secs: 900
            },
            at: at(1)
        }),
        "configuration: at most 5 targets and 900 s per run"
    );
}

// ---------------------------------------------------------------------------------------------
// Decoding stored records
// ---------------------------------------------------------------------------------------------

struct Stored {
    aggregate_type: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

impl Stored {
    fn halted() -> Self {
        let event = PlatformEvent::PlatformHalted {
            reason: "incident 42".into(),
            at: at(1),
        };
        Self {
            aggregate_type: "Platform".into(),
            sequence: 1,
            event_type: "PlatformHalted".into(),
            event_version: "1".into(),
            payload: serde_json::to_string(&event).expect("payload"),
            metadata: serde_json::to_string(&metadata("root", 1, at(1))).expect("metadata"),
        }
    }

    fn raw(&self) -> RawRecord<'_> {
        RawRecord {
            aggregate_type: &self.aggregate_type,
            aggregate_id: "platform",
            sequence: self.sequence,
            event_type: &self.event_type,
            event_version: &self.event_version,
            payload: &self.payload,
            metadata: &self.metadata,
        }
    }

    fn decode(&self) -> Result<Envelope, DecodeError> {
        Envelope::decode(self.raw())
    }
}

#[test]
fn a_valid_record_decodes() {
    let envelope = Stored::halted().decode().expect("decodes");
    assert_eq!(envelope.aggregate_type, "Platform");
    assert_eq!(envelope.aggregate_id, "platform");
    assert_eq!(envelope.sequence, 1);
    assert_eq!(envelope.event_type(), "PlatformHalted");
    assert_eq!(envelope.at(), at(1));
    assert_eq!(envelope.metadata.actor, "root");

    // Every event of a real run decodes from its stored form back to the same envelope.
    let full = full_run("exp-full");
    for e in &full {
        let payload = serde_json::to_string(experiment_event(e)).expect("payload");
        let metadata = serde_json::to_string(&e.metadata).expect("metadata");
        let event_type = e.event_type();
        let decoded = Envelope::decode(RawRecord {
            aggregate_type: "Experiment",
            aggregate_id: "exp-full",
            sequence: i64::try_from(e.sequence).expect("small"),
            event_type: &event_type,
            event_version: "1",
            payload: &payload,
            metadata: &metadata,
        })
        .expect("decodes");
        assert_eq!(&decoded, e);
    }
}

#[test]
fn an_unknown_aggregate_type_is_refused() {
    let mut s = Stored::halted();
    s.aggregate_type = "Tenant".into();
    assert_eq!(
        s.decode(),
        Err(DecodeError::UnknownAggregate("Tenant".into()))
    );
    s.aggregate_type = "platform".into();
    assert!(matches!(s.decode(), Err(DecodeError::UnknownAggregate(_))));
}

#[test]
fn columns_that_disagree_with_the_payload_are_refused() {
    let mut s = Stored::halted();
    s.event_type = "HaltLifted".into();
    assert_eq!(
        s.decode(),
        Err(DecodeError::Mismatch {
            stored: "HaltLifted v1".into(),
            decoded: "PlatformHalted v1".into()
        })
    );
    let mut s = Stored::halted();
    s.event_version = "2".into();
    assert!(
        matches!(s.decode(), Err(DecodeError::Mismatch { ref stored, .. }) if stored == "PlatformHalted v2")
    );
    // A platform payload under the experiment aggregate does not decode at all.
    let mut s = Stored::halted();
    s.aggregate_type = "Experiment".into();
    assert!(matches!(s.decode(), Err(DecodeError::Payload { .. })));
}

#[test]
fn a_bad_payload_is_refused() {
    for payload in [
        "",
        "{",
        "null",
        "{\"PlatformHalted\":{\"reason\":\"x\"}}",
        "{\"PlatformHalted\":{\"reason\":\"x\",\"at\":\"yesterday\"}}",
        "{\"Nonsense\":{}}",
    ] {
        let mut s = Stored::halted();
        s.payload = payload.into();
        assert!(
            matches!(s.decode(), Err(DecodeError::Payload { .. })),
            "{payload:?}: {:?}",
            s.decode()
        );
    }
}

#[test]
fn bad_metadata_is_refused() {
    let good: serde_json::Value =
        serde_json::from_str(&Stored::halted().metadata).expect("metadata is JSON");
    let mut missing = good.clone();
    missing
        .as_object_mut()
        .expect("object")
        .remove("hash")
        .expect("had a hash");
    let mut extra = good.clone();
    extra
        .as_object_mut()
        .expect("object")
        .insert("tenant".into(), "acme".into());
    let mut wrong_type = good;
    wrong_type
        .as_object_mut()
        .expect("object")
        .insert("actor".into(), 7.into());
    for metadata in [
        String::new(),
        "{}".into(),
        "[]".into(),
        missing.to_string(),
        extra.to_string(),
        wrong_type.to_string(),
    ] {
        let mut s = Stored::halted();
        s.metadata = metadata.clone();
        assert!(
            matches!(s.decode(), Err(DecodeError::Metadata(_))),
            "{metadata:?}: {:?}",
            s.decode()
        );
    }
}

#[test]
fn a_sequence_below_one_is_refused() {
    for sequence in [0, -1, i64::MIN] {
        let mut s = Stored::halted();
        s.sequence = sequence;
        assert_eq!(s.decode(), Err(DecodeError::Sequence(sequence)));
    }
    let mut s = Stored::halted();
    s.sequence = i64::MAX;
    assert_eq!(
        s.decode().expect("large sequences are fine").sequence,
        i64::MAX as u64
    );
}

/// The projector describes each event once for the audit log and the activity feed, and
/// makes audit entries again from what its read model keeps and the log's metadata: both
/// give exactly what the plain constructors give, for every kind of event.
#[test]
fn entries_and_items_made_from_one_description_are_the_same() {
    let mut envelopes: Vec<Envelope> = [
        full_run("exp-a"),
        dry_run("exp-b"),
        no_targets_run("exp-c"),
        stopped_run("exp-d"),
        cancelled("exp-e"),
    ]
    .concat();
    for (i, event) in [
        PlatformEvent::PlatformHalted {
            reason: "incident \"42\"\n".into(),
            at: at(1),
        },
        PlatformEvent::HaltLifted { at: at(2) },
    ]
    .into_iter()
    .enumerate()
    {
        envelopes.push(Envelope {
            aggregate_type: "Platform".into(),
            aggregate_id: "platform".into(),
            sequence: i as u64 + 1,
            metadata: metadata("root", i as u64 + 1, at(i as i64)),
            event: AnyEvent::Platform(event),
        });
    }
    for e in &envelopes {
        let entry = AuditEntry::from_envelope(e);
        assert_eq!(AuditEntry::described(e, e.describe()), entry);
        let kept = AuditedEvent {
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            event_type: e.event_type(),
            action: e.describe(),
            at: e.at(),
        };
        assert_eq!(AuditEntry::of_parts(kept, e.metadata.clone()), entry);
        assert_eq!(
            ActivityItem::described(e, e.describe()),
            ActivityItem::from_envelope(e)
        );
    }
}
