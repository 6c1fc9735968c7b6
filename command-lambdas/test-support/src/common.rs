//! Shared test and bench helpers: a realistic experiment lifecycle as commands.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use command_lambdas::clock::{SystemClock, UuidV7};
use domain::Timestamp;
use domain::experiment::{ExperimentCommand, HealthSnapshot, PlatformGate};
use domain::provenance::{Actor, CommandContext, Role, Source};
use domain::spec::{
    ExperimentId, ExperimentSpec, ExperimentSpecInput, FailureType, Guardrails, RecoveryPolicy,
    Selection, StopCondition, Target, TargetId, TargetKind,
};
use embedded_write::SqliteStore;
use embedded_write::sqlite::{OpenMode, open, repository};

pub const T0: i64 = 1_795_000_000_000;

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + secs * 1_000)
}

pub fn spec() -> ExperimentSpec {
    ExperimentSpec::parse(ExperimentSpecInput {
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
    })
    .expect("valid spec")
}

pub fn gate() -> PlatformGate {
    PlatformGate {
        halted: None,
        max_targets_per_run: 10,
        max_duration_secs: 3_600,
        blackout: None,
    }
}

pub fn health(healthy: u32) -> HealthSnapshot {
    HealthSnapshot {
        healthy,
        total: 3,
        latency_p95_ms: 12,
        error_rate_bp: if healthy == 3 { 0 } else { 150 },
    }
}

/// The commands of one full run producing exactly `10 + checks` events.
pub fn lifecycle(id: &str, checks: usize) -> Vec<ExperimentCommand> {
    use ExperimentCommand as C;
    let mut t = 0;
    let mut next = || {
        t += 1;
        at(t)
    };
    let mut commands = vec![
        C::CreateExperiment {
            id: ExperimentId::parse(id).expect("id"),
            spec: spec(),
            at: next(),
        },
        C::StartExperiment {
            gate: gate(),
            at: next(),
        },
        C::ResolveTargets {
            candidates: 3,
            targets: vec![TargetId::parse("worker-1").expect("target")],
            at: next(),
        },
    ];
    for _ in 0..3 {
        commands.push(C::RecordHealthCheck {
            health: health(3),
            at: next(),
        });
    }
    commands.push(C::RecordBaseline {
        health: health(3),
        at: next(),
    });
    commands.push(C::InjectFailure {
        targets: vec![TargetId::parse("worker-1").expect("target")],
        at: next(),
    });
    for _ in 0..checks {
        commands.push(C::RecordHealthCheck {
            health: health(2),
            at: next(),
        });
    }
    commands.push(C::ObserveRecovery {
        health: health(3),
        at: next(),
    });
    commands.push(C::CompleteExperiment { at: next() });
    commands
}

pub fn context(command_id: &str) -> CommandContext {
    CommandContext::new(
        command_id,
        "test-correlation",
        Actor {
            id: "tester".into(),
            role: Role::Operator,
        },
        Source::Workflow,
    )
    .expect("context")
}

pub async fn store_at(path: &Path) -> (SqliteStore, sqlx::SqlitePool) {
    let pool = open(path, OpenMode::CreateIfMissing)
        .await
        .expect("open store");
    let store = SqliteStore::new(
        repository(pool.clone()),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
    );
    (store, pool)
}

/// A benchmark knob: the environment variable `name` as a number, else `default`.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A duration in milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `p`th percentile of `sorted` (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
