//! The embedded projector and its queries against a real SQLite store file.
//!
//! Events are written by the real write side (`command_lambdas`), then projected; read
//! models are checked through the queries and, for equivalence, by dumping every read-model
//! table. Crashes are real: a child process running the projector is killed with SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{at, gate, health, store_at};
use domain::experiment::{Experiment, ExperimentCommand as C, Outcome, Phase, Status};
use domain::platform::{PlatformBook, PlatformCommand};
use domain::provenance::{Actor, CommandContext, Role, Source};
use domain::spec::{
    ExperimentId, ExperimentSpec, ExperimentSpecInput, FailureType, Guardrails, RecoveryPolicy,
    Selection, StopCondition, Target, TargetId, TargetKind,
};
use domain::views::results::RunOutcome;
use embedded_read::projector::Projector;
use embedded_read::queries;
use embedded_write::SqliteStore;
use projection_lambdas::reads::{AuditFilter, ExperimentFilter};
use rusqlite::Connection;
use rusqlite::types::Value;
use test_support::common;

// ---------------------------------------------------------------------------------------------
// Writing realistic histories through the write side
// ---------------------------------------------------------------------------------------------

fn ctx(command_id: &str, actor: &str) -> CommandContext {
    let (role, source) = match actor {
        "root" => (Role::Admin, Source::Cli),
        "workflow" => (Role::Operator, Source::Workflow),
        _ => (Role::Operator, Source::Dashboard),
    };
    CommandContext::new(
        command_id,
        "correlation",
        Actor {
            id: actor.into(),
            role,
        },
        source,
    )
    .expect("valid context")
}

fn spec(name: &str, group: &str, dry_run: bool, pause: bool) -> ExperimentSpec {
    ExperimentSpec::parse(ExperimentSpecInput {
        name: name.into(),
        description: String::new(),
        target: Target {
            kind: TargetKind::LocalFleet,
            group: group.into(),
        },
        selection: Selection::Count(1),
        max_targets: 3,
        failure: if pause {
            FailureType::Pause { duration_secs: 30 }
        } else {
            FailureType::Terminate
        },
        dry_run,
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

#[derive(Debug, Clone, Copy)]
enum Run {
    /// A recovered run with `checks` samples after the injection (10 + checks events).
    Full(usize),
    /// Dry run (4 events).
    Dry,
    /// No instance matched (3 events).
    NoTargets,
    /// Scheduled, then cancelled (3 events).
    Cancelled,
    /// Paused, stopped on request, rolled back (11 events).
    Stopped,
    /// Started and left running (3 events).
    Running,
}

/// The commands of one experiment, the first at `base + 1` seconds, one second apart.
fn script(id: &str, name: &str, group: &str, base: i64, run: Run) -> Vec<C> {
    let mut t = base;
    let mut next = || {
        t += 1;
        at(t)
    };
    let worker = || vec![TargetId::parse("worker-1").expect("target")];
    let create = |spec, at| C::CreateExperiment {
        id: ExperimentId::parse(id).expect("id"),
        spec,
        at,
    };
    let dry = matches!(run, Run::Dry);
    let pause = matches!(run, Run::Stopped);
    let mut commands = vec![create(spec(name, group, dry, pause), next())];
    if let Run::Cancelled = run {
        commands.push(C::ScheduleExperiment {
            start_at: at(base + 3_600),
            at: next(),
        });
        commands.push(C::CancelExperiment {
            reason: "change freeze".into(),
            at: next(),
        });
        return commands;
    }
    commands.push(C::StartExperiment {
        gate: gate(),
        at: next(),
    });
    if let Run::NoTargets = run {
        commands.push(C::ResolveTargets {
            candidates: 0,
            targets: Vec::new(),
            at: next(),
        });
        return commands;
    }
    commands.push(C::ResolveTargets {
        candidates: 3,
        targets: worker(),
        at: next(),
    });
    match run {
        Run::Running => return commands,
        Run::Dry => {
            commands.push(C::FinishDryRun { at: next() });
            return commands;
        }
        _ => {}
    }
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
        targets: worker(),
        at: next(),
    });
    if let Run::Full(checks) = run {
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
    } else {
        commands.push(C::RequestStop {
            reason: "operator saw paging alerts".into(),
            at: next(),
        });
        commands.push(C::RecordRollback {
            detail: "resumed worker-1".into(),
            at: next(),
        });
        commands.push(C::MarkStopped { at: next() });
    }
    commands
}

/// Runs command `i` of `id`'s script: the first by `creator`, the rest by the workflow.
async fn exec(store: &SqliteStore, id: &str, i: usize, command: C, creator: &str) {
    let actor = if i == 0 { creator } else { "workflow" };
    store
        .execute::<Experiment>(id, command, &ctx(&format!("{id}-{i}"), actor))
        .await
        .unwrap_or_else(|e| panic!("{id} command {i} refused: {e}"));
}

async fn write_all(store: &SqliteStore, id: &str, commands: Vec<C>, creator: &str) {
    for (i, command) in commands.into_iter().enumerate() {
        exec(store, id, i, command, creator).await;
    }
}

async fn platform(store: &SqliteStore, command_id: &str, command: PlatformCommand) {
    store
        .execute_in_ledger::<PlatformBook>(
            command.concern().ledger(),
            command,
            &ctx(command_id, "root"),
        )
        .await
        .expect("platform command accepted");
}

// ---------------------------------------------------------------------------------------------
// Inspecting the file
// ---------------------------------------------------------------------------------------------

type Dump = BTreeMap<&'static str, Vec<Vec<Value>>>;

/// Every read-model table, in a deterministic order; the activity feed without its local id.
fn dump(conn: &Connection) -> Dump {
    let tables: [(&str, &str); 7] = [
        (
            "view_experiments",
            "SELECT * FROM view_experiments ORDER BY id",
        ),
        (
            "view_run_trackers",
            "SELECT * FROM view_run_trackers ORDER BY experiment_id",
        ),
        (
            "view_results",
            "SELECT * FROM view_results ORDER BY experiment_id",
        ),
        (
            "view_audit_log",
            "SELECT * FROM view_audit_log ORDER BY aggregate_type, aggregate_id, sequence",
        ),
        (
            "view_activity",
            "SELECT aggregate_type, aggregate_id, sequence, item FROM view_activity \
             ORDER BY aggregate_type, aggregate_id, sequence",
        ),
        (
            "projection_checkpoints",
            "SELECT * FROM projection_checkpoints ORDER BY projection, aggregate_type, aggregate_id",
        ),
        (
            "projection_parked",
            "SELECT * FROM projection_parked ORDER BY event_rowid",
        ),
    ];
    tables
        .into_iter()
        .map(|(name, sql)| {
            let mut statement = conn.prepare(sql).expect("dump query");
            let columns = statement.column_count();
            let rows = statement
                .query_map([], |row| {
                    (0..columns)
                        .map(|i| row.get::<_, Value>(i))
                        .collect::<Result<Vec<_>, _>>()
                })
                .expect("dump rows")
                .collect::<Result<Vec<_>, _>>()
                .expect("dump row");
            (name, rows)
        })
        .collect()
}

fn assert_dumps_equal(left: &Dump, right: &Dump) {
    for (table, rows) in left {
        let other = &right[table];
        assert_eq!(rows.len(), other.len(), "{table}: row count");
        for (a, b) in rows.iter().zip(other) {
            assert_eq!(a, b, "{table}");
        }
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect("count")
}

fn head(conn: &Connection) -> i64 {
    count(conn, "SELECT coalesce(max(rowid), 0) FROM events")
}

fn ids(items: &[domain::views::experiments::ExperimentSummary]) -> Vec<String> {
    items.iter().map(|s| s.id.clone()).collect()
}

fn list(conn: &Connection, filter: &ExperimentFilter) -> Vec<String> {
    ids(&queries::experiments(conn, filter, None, 1_000)
        .expect("list")
        .items)
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// (a) Read models through the queries
// ---------------------------------------------------------------------------------------------

/// id, name, group, base second, run, creator.
const FLEET: [(&str, &str, &str, i64, Run, &str); 11] = [
    (
        "exp-01",
        "kill one web worker",
        "web",
        0,
        Run::Full(2),
        "alice",
    ),
    (
        "exp-02",
        "kill another Web worker",
        "web",
        100,
        Run::Full(0),
        "bob",
    ),
    ("exp-03", "dry run on api", "api", 200, Run::Dry, "alice"),
    (
        "exp-04",
        "empty group",
        "ghost",
        300,
        Run::NoTargets,
        "carol",
    ),
    (
        "exp-05",
        "cancelled 50% plan",
        "web",
        400,
        Run::Cancelled,
        "alice",
    ),
    (
        "exp-06",
        "pause api worker",
        "api",
        500,
        Run::Stopped,
        "bob",
    ),
    ("exp-07", "running web", "web", 600, Run::Running, "alice"),
    ("exp-08", "web drill 8", "web", 700, Run::Full(1), "carol"),
    ("exp-09", "web drill 9", "web", 800, Run::Full(1), "carol"),
    // Two created in the same millisecond: the id breaks the tie.
    ("exp-10", "web drill 10", "web", 900, Run::Full(1), "carol"),
    ("exp-11", "web drill 11", "web", 900, Run::Full(1), "carol"),
];

async fn write_fleet(store: &SqliteStore) -> usize {
    let mut events = 0;
    for (id, name, group, base, run, creator) in FLEET {
        let commands = script(id, name, group, base, run);
        events += commands.len();
        write_all(store, id, commands, creator).await;
    }
    platform(
        store,
        "halt-1",
        PlatformCommand::HaltAll {
            reason: "incident 42".into(),
            at: at(2_000),
        },
    )
    .await;
    store
        .execute::<Experiment>(
            "exp-05",
            C::ArchiveExperiment { at: at(2_001) },
            &ctx("exp-05-archive", "alice"),
        )
        .await
        .expect("archive");
    events + 2
}

/// Every query of the read models over one projected log. Long because it is a table of queries
/// over one fixture.
#[tokio::test]
async fn read_models_answer_the_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    let events = write_fleet(&store).await;

    let mut projector = Projector::open(&db, None).expect("projector");
    let report = projector.catch_up().expect("catch up");
    assert_eq!(report.applied, events);
    assert_eq!(report.parked, 0);
    assert_eq!(report.duplicates, 0);
    let conn = projector.connection();
    assert_eq!(report.position, head(conn));
    assert_eq!(
        queries::status(conn).expect("status").behind,
        0,
        "nothing left behind"
    );

    // Detail and timeline.
    let detail = queries::experiment(conn, "exp-01")
        .expect("query")
        .expect("exp-01 projected");
    let s = detail.record.summary().expect("summary");
    assert_eq!(s.status, Status::Completed);
    assert_eq!(s.outcome, Some(Outcome::Recovered));
    assert_eq!(s.recovery_ms, Some(3_000));
    assert_eq!(s.created_by, "alice");
    let stream = store.load::<Experiment>("exp-01").await.expect("load");
    assert_eq!(stream.version, 12);
    assert_eq!(detail.timeline.len(), stream.version);
    for (entry, stored) in detail.timeline.iter().zip(&stream.events) {
        assert_eq!(entry.sequence, stored.sequence as u64);
        assert_eq!(entry.event_id, stored.metadata.event_id);
        assert_eq!(entry.hash, stored.metadata.hash);
        assert_eq!(entry.actor, stored.metadata.actor);
    }
    assert_eq!(detail.timeline[0].actor, "alice");
    assert_eq!(detail.timeline[1].actor, "workflow");
    assert_eq!(
        detail.timeline[11].action,
        "completed: recovered in 3000 ms"
    );
    let running = queries::experiment(conn, "exp-07")
        .expect("query")
        .expect("exp-07 projected");
    assert_eq!(running.record.state.phase(), Some(Phase::Baseline));
    assert_eq!(queries::experiment(conn, "exp-99").expect("query"), None);

    // Results: one per finished run; none for the cancelled or the running one.
    let results = queries::results(conn).expect("results");
    let by_id: BTreeMap<&str, _> = results
        .iter()
        .map(|r| (r.experiment_id.as_str(), r))
        .collect();
    assert_eq!(
        by_id.keys().copied().collect::<BTreeSet<_>>(),
        [
            "exp-01", "exp-02", "exp-03", "exp-04", "exp-06", "exp-08", "exp-09", "exp-10",
            "exp-11"
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(by_id["exp-01"].outcome, RunOutcome::Recovered);
    assert_eq!(by_id["exp-01"].recovery_ms, Some(3_000));
    assert_eq!(by_id["exp-01"].samples, 5);
    assert_eq!(by_id["exp-03"].outcome, RunOutcome::DryRun);
    assert_eq!(by_id["exp-04"].outcome, RunOutcome::Failed);
    assert_eq!(by_id["exp-06"].outcome, RunOutcome::Stopped);
    assert_eq!(by_id["exp-06"].failure_type, "PAUSE");
    // Oldest first.
    let ends: Vec<_> = results.iter().map(|r| r.ended_at).collect();
    let mut sorted = ends.clone();
    sorted.sort();
    assert_eq!(ends, sorted);

    // Analytics: 9 runs; 1 dry; recovered 01 (3000), 02 (1000), 08 to 11 (2000 each);
    // failed 04; stopped 06. Real runs 8: success 6/8, failure 1/8; MTTR 12000 / 6 = 2000;
    // sorted [1000, 2000, 2000, 2000, 2000, 3000]: p50 rank 3 -> 2000, p95 rank 6 -> 3000.
    let a = queries::run_analytics(conn).expect("analytics");
    assert_eq!(a.overall.runs, 9);
    assert_eq!(a.overall.dry_runs, 1);
    assert_eq!(a.overall.recovered, 6);
    assert_eq!(a.overall.success_rate_bp, Some(7_500));
    assert_eq!(a.overall.failure_rate_bp, Some(1_250));
    assert_eq!(a.overall.mttr_ms, Some(2_000));
    assert_eq!(a.overall.p50_recovery_ms, Some(2_000));
    assert_eq!(a.overall.p95_recovery_ms, Some(3_000));
    assert_eq!(
        a.by_target.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["fleet:api", "fleet:ghost", "fleet:web"]
    );
    assert_eq!(a.by_target["fleet:api"].stopped, 1);
    assert_eq!(a.by_target["fleet:api"].success_rate_bp, Some(0));
    assert_eq!(a.by_failure_type["PAUSE"].runs, 1);

    // Audit log: every event once; filters by actor and by stream.
    let all = queries::audit_log(conn, &AuditFilter::default(), None, usize::MAX).expect("audit");
    assert_eq!(all.len(), events);
    for actor in ["alice", "bob", "carol", "workflow", "root"] {
        let entries = queries::audit_log(
            conn,
            &AuditFilter {
                actor: Some(actor.into()),
                ..AuditFilter::default()
            },
            None,
            usize::MAX,
        )
        .expect("audit by actor");
        let stored = conn
            .query_row(
                "SELECT count(*) FROM events WHERE json_extract(metadata, '$.actor') = ?1",
                [actor],
                |r| r.get::<_, i64>(0),
            )
            .expect("count");
        assert_eq!(entries.len() as i64, stored, "{actor}");
        assert!(entries.iter().all(|e| e.actor == actor));
        assert!(!entries.is_empty(), "{actor} did something");
    }
    let exp06 = queries::audit_log(
        conn,
        &AuditFilter {
            aggregate_id: Some("exp-06".into()),
            ..AuditFilter::default()
        },
        None,
        usize::MAX,
    )
    .expect("audit by stream");
    assert_eq!(exp06.len(), 11);
    assert_eq!(
        exp06.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=11).collect::<Vec<u64>>()
    );
    let alice_on_05 = queries::audit_log(
        conn,
        &AuditFilter {
            actor: Some("alice".into()),
            aggregate_id: Some("exp-05".into()),
            ..AuditFilter::default()
        },
        None,
        usize::MAX,
    )
    .expect("audit by both");
    assert_eq!(
        alice_on_05
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        vec!["ExperimentCreated", "ExperimentArchived"]
    );
    let halts = queries::audit_log(
        conn,
        &AuditFilter {
            aggregate_id: Some("halt-switch.1".into()),
            ..AuditFilter::default()
        },
        None,
        usize::MAX,
    )
    .expect("platform audit");
    assert_eq!(halts.len(), 1);
    assert_eq!(halts[0].aggregate_type, "Platform");
    assert_eq!(halts[0].actor, "root");
    assert_eq!(halts[0].actor_role, "ADMIN");
    assert_eq!(halts[0].source, "cli");
    assert_eq!(halts[0].action, "platform halted: incident 42");
    // Paging through the audit log with the cursor gives everything once, in order.
    let mut paged = Vec::new();
    loop {
        let after = paged
            .last()
            .map(|e: &domain::views::audit_log::AuditEntry| {
                (e.recorded_at.clone(), e.aggregate_id.clone(), e.sequence)
            });
        let page = queries::audit_log(
            conn,
            &AuditFilter::default(),
            after.as_ref().map(|(r, a, s)| (r.as_str(), a.as_str(), *s)),
            7,
        )
        .expect("audit page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        paged.extend(page);
    }
    assert_eq!(paged, all);

    // Experiments list: newest first, archived hidden unless asked for.
    let everything = list(conn, &ExperimentFilter::default());
    assert_eq!(
        everything,
        vec![
            "exp-11", "exp-10", "exp-09", "exp-08", "exp-07", "exp-06", "exp-04", "exp-03",
            "exp-02", "exp-01"
        ]
    );
    let with_archived = list(
        conn,
        &ExperimentFilter {
            include_archived: true,
            ..ExperimentFilter::default()
        },
    );
    assert_eq!(with_archived.len(), 11);
    assert_eq!(with_archived[6], "exp-05");
    let by = |f: ExperimentFilter| list(conn, &f).into_iter().collect::<BTreeSet<_>>();
    assert_eq!(
        by(ExperimentFilter {
            status: Some("COMPLETED".into()),
            ..ExperimentFilter::default()
        }),
        set(&[
            "exp-01", "exp-02", "exp-03", "exp-08", "exp-09", "exp-10", "exp-11"
        ])
    );
    assert_eq!(
        by(ExperimentFilter {
            status: Some("RUNNING".into()),
            ..ExperimentFilter::default()
        }),
        set(&["exp-07"])
    );
    assert_eq!(
        by(ExperimentFilter {
            status: Some("CANCELLED".into()),
            include_archived: true,
            ..ExperimentFilter::default()
        }),
        set(&["exp-05"])
    );
    assert_eq!(
        by(ExperimentFilter {
            target: Some("fleet:api".into()),
            ..ExperimentFilter::default()
        }),
        set(&["exp-03", "exp-06"])
    );
    assert_eq!(
        by(ExperimentFilter {
            target: Some("fleet:web".into()),
            status: Some("COMPLETED".into()),
            ..ExperimentFilter::default()
        }),
        set(&["exp-01", "exp-02", "exp-08", "exp-09", "exp-10", "exp-11"])
    );
    // Search is a case-insensitive substring; % and _ are literal.
    assert_eq!(
        by(ExperimentFilter {
            search: Some("WEB WORKER".into()),
            ..ExperimentFilter::default()
        }),
        set(&["exp-01", "exp-02"])
    );
    assert_eq!(
        by(ExperimentFilter {
            search: Some("%".into()),
            include_archived: true,
            ..ExperimentFilter::default()
        }),
        set(&["exp-05"])
    );
    assert_eq!(
        by(ExperimentFilter {
            search: Some("_".into()),
            include_archived: true,
            ..ExperimentFilter::default()
        }),
        BTreeSet::new()
    );
    // Created in [at(300), at(600)): exp-04 (301) and exp-06 (501); exp-05 is archived.
    assert_eq!(
        by(ExperimentFilter {
            created_from: Some(at(300).to_string()),
            created_to: Some(at(600).to_string()),
            ..ExperimentFilter::default()
        }),
        set(&["exp-04", "exp-06"])
    );

    // Cursor pagination: every page size gives every item once, in order.
    for limit in [1, 2, 3, 4, 10, 11] {
        for filter in [
            ExperimentFilter::default(),
            ExperimentFilter {
                target: Some("fleet:web".into()),
                include_archived: true,
                ..ExperimentFilter::default()
            },
        ] {
            let full = list(conn, &filter);
            let mut paged: Vec<String> = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let page =
                    queries::experiments(conn, &filter, cursor.as_deref(), limit).expect("page");
                pages += 1;
                assert!(page.items.len() <= limit);
                paged.extend(ids(&page.items));
                match page.next {
                    Some(next) => {
                        assert_eq!(page.items.len(), limit, "only a full page has a next");
                        cursor = Some(next);
                    }
                    None => break,
                }
                assert!(pages <= full.len() + 1, "pagination terminates");
            }
            assert_eq!(paged, full, "limit {limit}");
            assert_eq!(pages, full.len().div_ceil(limit).max(1), "limit {limit}");
        }
    }
}

#[tokio::test]
async fn an_experiment_named_platform_has_only_its_own_timeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    // Ids are chosen by the caller; "platform" is a valid experiment id.
    write_all(
        &store,
        "platform",
        script("platform", "named like the platform", "web", 0, Run::Dry),
        "alice",
    )
    .await;
    platform(
        &store,
        "halt",
        PlatformCommand::HaltAll {
            reason: "drill".into(),
            at: at(100),
        },
    )
    .await;
    let mut projector = Projector::open(&db, None).expect("projector");
    projector.catch_up().expect("catch up");
    let detail = queries::experiment(projector.connection(), "platform")
        .expect("query")
        .expect("projected");
    assert_eq!(detail.record.version, 4);
    assert_eq!(
        detail
            .timeline
            .iter()
            .map(|e| (e.aggregate_type.as_str(), e.sequence))
            .collect::<Vec<_>>(),
        vec![
            ("Experiment", 1),
            ("Experiment", 2),
            ("Experiment", 3),
            ("Experiment", 4)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// (b) Rebuild equals incremental
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rebuilding_gives_what_incremental_application_gave() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    let mut projector = Projector::open(&db, None).expect("projector").with_batch(7);

    // Several experiments advance one command at a time, round robin, with platform halts
    // and lifts in between; the projector steps every few commands, so batches cut streams
    // at arbitrary points and runs finish in different batches than they start.
    let scripts: Vec<(String, Vec<C>, &str)> = FLEET
        .iter()
        .map(|(id, name, group, base, run, creator)| {
            (
                (*id).to_owned(),
                script(id, name, group, *base, *run),
                *creator,
            )
        })
        .collect();
    let longest = scripts.iter().map(|(_, s, _)| s.len()).max().unwrap_or(0);
    let mut written = 0usize;
    let mut steps = 0usize;
    for round in 0..longest {
        for (id, commands, creator) in &scripts {
            if let Some(command) = commands.get(round) {
                exec(&store, id, round, command.clone(), creator).await;
                written += 1;
                if written.is_multiple_of(5) {
                    projector.step().expect("step");
                    steps += 1;
                }
            }
        }
        let command = if round % 2 == 0 {
            PlatformCommand::HaltAll {
                reason: format!("drill {round}"),
                at: at(3_000 + i64::try_from(round).expect("small")),
            }
        } else {
            PlatformCommand::LiftHalt {
                at: at(3_000 + i64::try_from(round).expect("small")),
            }
        };
        platform(&store, &format!("platform-{round}"), command).await;
        written += 1;
    }
    let position_before = projector.position().expect("position");
    assert!(
        position_before < head(projector.connection()),
        "the projector lagged behind the writes"
    );
    assert!(steps > 10);
    projector.catch_up().expect("catch up");
    let conn = projector.connection();
    assert_eq!(
        count(conn, "SELECT count(*) FROM view_audit_log"),
        written as i64
    );
    assert_eq!(
        count(conn, "SELECT count(*) FROM view_activity"),
        written as i64
    );
    assert_eq!(count(conn, "SELECT count(*) FROM view_results"), 9);
    assert_eq!(count(conn, "SELECT count(*) FROM view_experiments"), 11);
    let incremental = dump(conn);

    let report = projector.rebuild().expect("rebuild");
    assert_eq!(report.applied, written);
    let rebuilt = dump(projector.connection());
    assert_dumps_equal(&incremental, &rebuilt);

    // And a rebuild in one big batch gives the same again.
    let mut big = Projector::open(&db, None).expect("projector");
    big.rebuild().expect("rebuild");
    assert_dumps_equal(&incremental, &dump(big.connection()));
}

// ---------------------------------------------------------------------------------------------
// Resuming from the durable position
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_projector_resumes_from_its_durable_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    write_all(
        &store,
        "exp-a",
        script("exp-a", "a", "web", 0, Run::Full(1)),
        "alice",
    )
    .await;
    write_all(
        &store,
        "exp-b",
        script("exp-b", "b", "web", 0, Run::Running),
        "bob",
    )
    .await;

    let first_position = {
        let mut projector = Projector::open(&db, None).expect("projector");
        let report = projector.catch_up().expect("catch up");
        assert_eq!(report.applied, 14);
        projector.position().expect("position")
    };
    assert_eq!(first_position, 14);

    // More events while no projector runs: exp-b goes on, exp-c is new.
    let rest = script("exp-b", "b", "web", 0, Run::Full(0));
    for (i, command) in rest.into_iter().enumerate().skip(3) {
        exec(&store, "exp-b", i, command, "bob").await;
    }
    write_all(
        &store,
        "exp-c",
        script("exp-c", "c", "api", 50, Run::Dry),
        "carol",
    )
    .await;

    let mut projector = Projector::open(&db, None).expect("reopened");
    assert_eq!(projector.position().expect("position"), first_position);
    let report = projector.step().expect("step");
    // Only the new rows are read: exp-b 4..=10 and exp-c 1..=4.
    assert_eq!(report.read, 11);
    assert_eq!(report.applied, 11);
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.position, 25);
    let conn = projector.connection();
    let b = queries::experiment(conn, "exp-b")
        .expect("query")
        .expect("exp-b");
    assert_eq!(b.record.version, 10);
    assert_eq!(b.record.state.status(), Status::Completed);
    assert_eq!(b.timeline.len(), 10);
    assert_eq!(queries::results(conn).expect("results").len(), 3);
    let settled = dump(conn);

    // A lost position (as after restoring an old copy of projection_feed) re-reads the whole
    // log: every record is a duplicate and nothing changes.
    conn.execute("UPDATE projection_feed SET position = 0", [])
        .expect("reset position");
    let report = projector.catch_up().expect("catch up again");
    assert_eq!(report.applied, 0);
    assert_eq!(report.duplicates, 25);
    assert_dumps_equal(&settled, &dump(projector.connection()));
}

// ---------------------------------------------------------------------------------------------
// (c) Killed between batches
// ---------------------------------------------------------------------------------------------

const CHILD_ENV: &str = "PROJECTION_TEST_KILL_CHILD_DB";

/// Child side: step with tiny batches forever, reporting each step.
fn step_until_killed(db: &Path) -> ! {
    let mut projector = Projector::open(db, None)
        .expect("child projector")
        .with_batch(3);
    let mut out = std::io::stdout().lock();
    loop {
        let report = projector.step().expect("child step");
        writeln!(out, "STEP {} {}", report.applied, report.position).expect("stdout");
        out.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A projector process is SIGKILLed after a few batches: a new one resumes, applies nothing
/// twice, and ends with the read models a rebuild gives.
#[test]
fn a_projector_killed_between_batches_resumes_without_applying_twice() {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        step_until_killed(&PathBuf::from(db));
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let events = runtime.block_on(async {
        let (store, _pool) = store_at(&db).await;
        let mut events = 0;
        for n in 0..12 {
            let id = format!("exp-{n:02}");
            let commands = script(&id, "kill drill", "web", n * 100, Run::Full(3));
            events += commands.len();
            write_all(&store, &id, commands, "alice").await;
            if n % 4 == 0 {
                platform(
                    &store,
                    &format!("halt-{n}"),
                    PlatformCommand::HaltAll {
                        reason: "drill".into(),
                        at: at(5_000 + n),
                    },
                )
                .await;
                platform(
                    &store,
                    &format!("lift-{n}"),
                    PlatformCommand::LiftHalt { at: at(5_001 + n) },
                )
                .await;
                events += 2;
            }
        }
        events
    });
    assert_eq!(events, 12 * 13 + 6);

    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_projector_killed_between_batches_resumes_without_applying_twice",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut steps = 0;
    while steps < 5 {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child keeps stepping");
        if line.starts_with("STEP ") {
            steps += 1;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let total = i64::try_from(events).expect("small");
    let mut projector = Projector::open(&db, None).expect("projector after the kill");
    let position = projector.position().expect("position");
    assert!(
        position >= 15 && position < total,
        "killed part way through (position {position} of {total})"
    );
    let report = projector.catch_up().expect("catch up");
    assert_eq!(report.parked, 0);
    let conn = projector.connection();
    assert_eq!(report.position, total);
    // Exactly one audit entry and one activity item per event: nothing was applied twice
    // (the activity feed has no key that would refuse a second copy).
    assert_eq!(count(conn, "SELECT count(*) FROM view_audit_log"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_activity"), total);
    assert_eq!(
        count(
            conn,
            "SELECT count(*) FROM (SELECT 1 FROM view_activity \
             GROUP BY aggregate_type, aggregate_id, sequence)"
        ),
        total
    );
    assert_eq!(count(conn, "SELECT count(*) FROM view_results"), 12);
    for n in 0..12 {
        let id = format!("exp-{n:02}");
        let detail = queries::experiment(conn, &id)
            .expect("query")
            .expect("projected");
        assert_eq!(detail.record.version, 13, "{id}");
        assert_eq!(detail.timeline.len(), 13, "{id}");
    }
    let resumed = dump(conn);
    projector.rebuild().expect("rebuild");
    assert_dumps_equal(&resumed, &dump(projector.connection()));
}

// ---------------------------------------------------------------------------------------------
// (d) A poison record
// ---------------------------------------------------------------------------------------------

/// A store where exp-p's third event (of 14) is a torn payload, with exp-q (11 events)
/// around it, exp-r (4) and a platform halt after it. Returns the store's file and a scratch
/// file holding exp-p's valid history.
async fn poisoned_store(dir: &Path) -> (PathBuf, PathBuf) {
    let db = dir.join("chaos.db");
    let scratch = dir.join("scratch.db");
    let (store, _pool) = store_at(&db).await;
    // exp-p's valid history is written elsewhere, then copied into the store with its third
    // event corrupted, as a bad restore or a manual edit might leave it.
    {
        let (other, _other_pool) = store_at(&scratch).await;
        write_all(
            &other,
            "exp-p",
            script("exp-p", "poisoned", "web", 0, Run::Full(4)),
            "alice",
        )
        .await;
    }
    let q = script("exp-q", "neighbour", "api", 100, Run::Full(1));
    for (i, command) in q.iter().take(5).enumerate() {
        exec(&store, "exp-q", i, command.clone(), "bob").await;
    }
    {
        let conn = Connection::open(&db).expect("raw connection");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.execute(
            "ATTACH DATABASE ?1 AS scratch",
            [scratch.to_str().expect("utf-8")],
        )
        .expect("attach");
        let copied = conn
            .execute(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) \
                 SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, \
                 CASE WHEN sequence = 3 THEN substr(payload, 1, 20) ELSE payload END, metadata \
                 FROM scratch.events WHERE aggregate_id = 'exp-p' ORDER BY sequence",
                [],
            )
            .expect("copy exp-p");
        assert_eq!(copied, 14);
    }
    for (i, command) in q.iter().enumerate().skip(5) {
        exec(&store, "exp-q", i, command.clone(), "bob").await;
    }
    write_all(
        &store,
        "exp-r",
        script("exp-r", "other", "web", 200, Run::Dry),
        "carol",
    )
    .await;
    platform(
        &store,
        "halt",
        PlatformCommand::HaltAll {
            reason: "drill".into(),
            at: at(500),
        },
    )
    .await;
    (db, scratch)
}

#[tokio::test]
async fn a_poison_record_parks_its_stream_only_until_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, scratch) = poisoned_store(dir.path()).await;

    // Small batches: some steps read nothing but exp-p's parked records.
    let mut projector = Projector::open(&db, None).expect("projector").with_batch(4);
    let report = projector.catch_up().expect("catch up");
    let conn = projector.connection();
    assert_eq!(report.position, head(conn), "every row was read");
    let parked = queries::parked(conn).expect("parked");
    assert_eq!(
        parked
            .iter()
            .map(|p| (p.aggregate_id.as_str(), p.sequence))
            .collect::<Vec<_>>(),
        (3..=14).map(|s| ("exp-p", s)).collect::<Vec<_>>()
    );
    assert!(
        parked[0]
            .reason
            .starts_with("poison record: payload of TargetsResolved v1"),
        "{}",
        parked[0].reason
    );
    for p in &parked[1..] {
        assert_eq!(p.reason, "blocked behind sequence 3 of the same stream");
    }
    let status = queries::status(conn).expect("status");
    assert_eq!(status.behind, 0);
    assert_eq!(status.parked.len(), 12);

    // exp-p stopped before its poison record; the other streams are complete.
    let p = queries::experiment(conn, "exp-p")
        .expect("query")
        .expect("exp-p");
    assert_eq!(p.record.version, 2);
    assert_eq!(p.record.state.status(), Status::Running);
    assert_eq!(p.timeline.len(), 2);
    let q_detail = queries::experiment(conn, "exp-q")
        .expect("query")
        .expect("exp-q");
    assert_eq!(q_detail.record.version, 11);
    assert_eq!(q_detail.record.state.status(), Status::Completed);
    let r_detail = queries::experiment(conn, "exp-r")
        .expect("query")
        .expect("exp-r");
    assert_eq!(r_detail.record.version, 4);
    let results: BTreeSet<String> = queries::results(conn)
        .expect("results")
        .into_iter()
        .map(|r| r.experiment_id)
        .collect();
    assert_eq!(results, set(&["exp-q", "exp-r"]));
    assert_eq!(
        queries::audit_log(
            conn,
            &AuditFilter {
                aggregate_id: Some("halt-switch.1".into()),
                ..AuditFilter::default()
            },
            None,
            usize::MAX
        )
        .expect("audit")
        .len(),
        1
    );

    // Retried every step, still parked, attempts counted.
    let before = queries::parked(conn).expect("parked");
    let report = projector.step().expect("step");
    assert_eq!((report.read, report.applied, report.parked), (12, 0, 12));
    let after = queries::parked(projector.connection()).expect("parked");
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(b.attempts, a.attempts + 1);
    }

    // Repair the record from the valid copy: everything applies, nothing stays parked.
    {
        let conn = Connection::open(&db).expect("raw connection");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.execute(
            "ATTACH DATABASE ?1 AS scratch",
            [scratch.to_str().expect("utf-8")],
        )
        .expect("attach");
        let repaired = conn
            .execute(
                "UPDATE events SET payload = (SELECT payload FROM scratch.events \
                 WHERE aggregate_id = 'exp-p' AND sequence = 3) \
                 WHERE aggregate_type = 'Experiment' AND aggregate_id = 'exp-p' AND sequence = 3",
                [],
            )
            .expect("repair");
        assert_eq!(repaired, 1);
    }
    let report = projector.step().expect("step after the repair");
    assert_eq!(report.applied, 12);
    assert_eq!(report.parked, 0);
    let conn = projector.connection();
    assert_eq!(queries::parked(conn).expect("parked"), Vec::new());
    let p = queries::experiment(conn, "exp-p")
        .expect("query")
        .expect("exp-p");
    assert_eq!(p.record.version, 14);
    assert_eq!(p.record.state.status(), Status::Completed);
    assert_eq!(p.timeline.len(), 14);
    assert_eq!(queries::results(conn).expect("results").len(), 3);
    let repaired = dump(conn);
    projector.rebuild().expect("rebuild");
    assert_dumps_equal(&repaired, &dump(projector.connection()));
}

/// The serving loop does not idle while rows wait behind a step whose new rows were all
/// parked: with a ten-second idle poll, it must still reach the head at once.
#[tokio::test]
async fn the_serving_loop_does_not_idle_while_rows_wait_behind_parked_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, _scratch) = poisoned_store(dir.path()).await;
    let total = head(&Connection::open(&db).expect("raw connection"));
    let started = std::time::Instant::now();
    let handle = std::thread::spawn(move || {
        let mut projector = Projector::open(&db, None).expect("projector").with_batch(4);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let mut steps = 0;
        projector.run(&stop, Duration::from_secs(10), |report| {
            steps += 1;
            if report.position == total {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        steps
    });
    let steps = tokio::task::spawn_blocking(move || handle.join().expect("projector thread"))
        .await
        .expect("joined");
    assert!(steps >= 8, "{steps} steps");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the loop slept with rows waiting ({:?})",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Timelines and concurrent projectors
// ---------------------------------------------------------------------------------------------

/// A wall clock that steps back a second on every reading (as after an NTP correction).
#[derive(Debug)]
struct SteppingBack(std::sync::atomic::AtomicI64);

impl command_lambdas::clock::Clock for SteppingBack {
    fn now(&self) -> domain::Timestamp {
        let millis = self
            .0
            .fetch_sub(1_000, std::sync::atomic::Ordering::Relaxed);
        domain::Timestamp::from_unix_millis(millis)
    }
}

#[tokio::test]
async fn a_timeline_is_in_stream_order_even_when_the_clock_steps_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let pool = embedded_write::sqlite::open(&db, embedded_write::sqlite::OpenMode::CreateIfMissing)
        .await
        .expect("open store");
    let store = SqliteStore::new(
        embedded_write::sqlite::repository(pool),
        std::sync::Arc::new(SteppingBack(std::sync::atomic::AtomicI64::new(
            common::T0 + 60_000,
        ))),
        std::sync::Arc::new(command_lambdas::clock::UuidV7),
    );
    write_all(
        &store,
        "exp-t",
        script("exp-t", "t", "web", 0, Run::Dry),
        "alice",
    )
    .await;
    let mut projector = Projector::open(&db, None).expect("projector");
    projector.catch_up().expect("catch up");
    let detail = queries::experiment(projector.connection(), "exp-t")
        .expect("query")
        .expect("projected");
    assert_eq!(
        detail
            .timeline
            .iter()
            .map(|e| e.sequence)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
}

/// ARCHITECTURE.md: two projectors on one file are safe. Both step concurrently while
/// commands land; every event is applied once and the read models equal a rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_on_one_file_apply_each_event_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    let stop = Arc::new(AtomicBool::new(false));
    let projectors: Vec<_> = [3usize, 8]
        .into_iter()
        .map(|batch| {
            let db = db.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut projector = Projector::open(&db, None)
                    .expect("projector")
                    .with_batch(batch);
                while !stop.load(Ordering::Relaxed) {
                    projector.step().expect("step");
                }
                projector.catch_up().expect("final catch up");
            })
        })
        .collect();
    let mut events = 0;
    for n in 0..10i64 {
        let id = format!("exp-{n:02}");
        let commands = script(&id, "concurrent", "web", n * 100, Run::Full(2));
        events += commands.len();
        write_all(&store, &id, commands, "alice").await;
    }
    stop.store(true, Ordering::Relaxed);
    for p in projectors {
        tokio::task::spawn_blocking(move || p.join().expect("projector thread"))
            .await
            .expect("joined");
    }
    let mut projector = Projector::open(&db, None).expect("projector");
    projector.catch_up().expect("catch up");
    let conn = projector.connection();
    let total = i64::try_from(events).expect("small");
    assert_eq!(count(conn, "SELECT count(*) FROM view_audit_log"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_activity"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_results"), 10);
    assert_eq!(projector.position().expect("position"), total);
    let concurrent = dump(conn);
    projector.rebuild().expect("rebuild");
    assert_dumps_equal(&concurrent, &dump(projector.connection()));
}

/// `chaos projections rebuild` while `chaos serve` projects: the serving projector may have
/// read its next rows before the rebuild cleared the read models and commit after. Nothing
/// may be lost: the rebuild must still project the whole log.
#[test]
fn a_rebuild_racing_a_serving_projector_loses_nothing() {
    use std::sync::Arc;

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = runtime.block_on(store_at(&db));
    let write = |from: i64, to: i64| {
        runtime.block_on(async {
            for n in from..to {
                let id = format!("exp-{n:02}");
                write_all(
                    &store,
                    &id,
                    script(&id, "race", "web", n * 100, Run::Full(1)),
                    "alice",
                )
                .await;
            }
        });
    };
    write(0, 4);
    // The serving projector shares the process's write lane, and is up to date.
    let lane = Arc::new(tokio::sync::Mutex::new(()));
    let mut serving = Projector::open(&db, Some(Arc::clone(&lane)))
        .expect("serving projector")
        .with_batch(5);
    serving.catch_up().expect("catch up");
    write(4, 6);
    let total = 6 * 11;

    // The serving projector steps while the rebuild's first transaction holds the lane.
    let held = lane.blocking_lock();
    let stepping = std::thread::spawn(move || {
        serving.step().expect("serving step");
    });
    std::thread::sleep(Duration::from_millis(200));
    // What `rebuild` does first: clear every read model, checkpoint and the position.
    let rebuild = Connection::open(&db).expect("rebuild connection");
    rebuild
        .busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    rebuild
        .execute_batch(
            "BEGIN IMMEDIATE; DELETE FROM projection_checkpoints; DELETE FROM projection_feed; \
             DELETE FROM projection_parked; DELETE FROM view_experiments; \
             DELETE FROM view_run_trackers; DELETE FROM view_results; \
             DELETE FROM view_audit_log; DELETE FROM view_activity; COMMIT;",
        )
        .expect("clear");
    drop(held);
    stepping.join().expect("serving thread");
    // Then the rebuild projects from where the feed position says.
    let mut rebuilding = Projector::open(&db, None).expect("rebuilding projector");
    rebuilding.catch_up().expect("rebuild catch up");

    let conn = rebuilding.connection();
    assert_eq!(count(conn, "SELECT count(*) FROM view_audit_log"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_activity"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_results"), 6);
    let raced = dump(conn);
    rebuilding.rebuild().expect("clean rebuild");
    assert_dumps_equal(&raced, &dump(rebuilding.connection()));
}

/// The activity feed keeps the newest items by event time, whatever the batching: pruned
/// incrementally in small batches it holds exactly what a rebuild in one batch holds.
#[tokio::test]
async fn activity_retention_does_not_depend_on_batching() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    let mut small = Projector::open(&db, None)
        .expect("projector")
        .with_batch(3)
        .with_activity_retained(25);
    for (i, (id, name, group, base, run, creator)) in FLEET.into_iter().enumerate() {
        write_all(&store, id, script(id, name, group, base, run), creator).await;
        if i % 2 == 0 {
            small.step().expect("step");
        }
    }
    small.catch_up().expect("catch up");
    let kept = |conn: &Connection| {
        let mut statement = conn
            .prepare("SELECT aggregate_id, sequence, at FROM view_activity ORDER BY at, aggregate_id, sequence")
            .expect("query");
        statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .expect("rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows")
    };
    let incremental = kept(small.connection());
    assert_eq!(incremental.len(), 25);
    let newest_in_log: String = small
        .connection()
        .query_row("SELECT max(at) FROM view_audit_log", [], |r| r.get(0))
        .expect("max");
    assert_eq!(incremental.last().map(|k| k.2.clone()), Some(newest_in_log));

    let mut big = Projector::open(&db, None)
        .expect("projector")
        .with_batch(10_000)
        .with_activity_retained(25);
    big.rebuild().expect("rebuild");
    assert_eq!(kept(big.connection()), incremental);
}

// ---------------------------------------------------------------------------------------------
// (e) Rebuilding stream by stream, with other writers about
// ---------------------------------------------------------------------------------------------

fn parked_rows(conn: &Connection) -> Vec<(i64, String, i64, String)> {
    queries::parked(conn)
        .expect("parked")
        .into_iter()
        .map(|p| (p.event_rowid, p.aggregate_id, p.sequence, p.reason))
        .collect()
}

/// A rebuild reads each stream whole, in key order, yet parks a poison record and what
/// queues behind it exactly as incremental application in log order does; and once the
/// record is repaired, a step applies them.
#[tokio::test]
async fn a_rebuild_parks_a_poison_record_as_incremental_application_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, _scratch) = poisoned_store(dir.path()).await;
    let mut incremental = Projector::open(&db, None).expect("projector").with_batch(4);
    incremental.catch_up().expect("catch up");
    let parked = parked_rows(incremental.connection());
    assert_eq!(parked.len(), 12);
    let stepped = dump(incremental.connection());

    for batch in [3, 5, 1_000] {
        let mut rebuilding = Projector::open(&db, None)
            .expect("projector")
            .with_batch(batch);
        let report = rebuilding.rebuild().expect("rebuild");
        assert_eq!(report.parked, 12, "batch {batch}");
        let conn = rebuilding.connection();
        assert_eq!(parked_rows(conn), parked, "batch {batch}");
        let rebuilt = dump(conn);
        for table in stepped.keys().filter(|t| **t != "projection_parked") {
            assert_eq!(stepped[table], rebuilt[table], "{table}, batch {batch}");
        }
        assert_eq!(queries::status(conn).expect("status").behind, 0);
    }
}

/// A rebuild while a serving projector steps and commands keep landing: nothing is lost,
/// nothing is applied twice, and the result is what a rebuild on a quiet store gives.
#[test]
fn a_rebuild_amid_commands_and_a_serving_projector_loses_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = runtime.block_on(store_at(&db));
    let store = Arc::new(store);
    let write = |from: i64, to: i64| {
        let store = Arc::clone(&store);
        async move {
            for n in from..to {
                let id = format!("exp-{n:03}");
                write_all(
                    &store,
                    &id,
                    script(&id, "amid", "web", n * 100, Run::Full(2)),
                    "alice",
                )
                .await;
            }
        }
    };
    runtime.block_on(write(0, 40));

    let stop = Arc::new(AtomicBool::new(false));
    let serving = {
        let db = db.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut projector = Projector::open(&db, None)
                .expect("serving projector")
                .with_batch(7);
            projector.run(&stop, Duration::from_millis(1), |_| {});
        })
    };
    let writing = runtime.spawn(write(40, 60));
    for batch in [13, 50] {
        let mut rebuilding = Projector::open(&db, None)
            .expect("rebuilding projector")
            .with_batch(batch);
        rebuilding.rebuild().expect("rebuild");
    }
    runtime.block_on(writing).expect("writer");
    stop.store(true, Ordering::Relaxed);
    serving.join().expect("serving projector");

    let mut projector = Projector::open(&db, None).expect("projector");
    projector.catch_up().expect("catch up");
    let conn = projector.connection();
    let total = 60 * 12;
    assert_eq!(head(conn), total);
    assert_eq!(projector.position().expect("position"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_audit_log"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_activity"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_results"), 60);
    let amid = dump(conn);
    projector.rebuild().expect("quiet rebuild");
    assert_dumps_equal(&amid, &dump(projector.connection()));
}

/// Two rebuilds at once: the one that cleared last owns the read models, the other one
/// stops without moving the position for it; both end with every event applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rebuilds_at_once_apply_each_event_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    for n in 0..30i64 {
        let id = format!("exp-{n:02}");
        write_all(
            &store,
            &id,
            script(&id, "twice", "web", n * 100, Run::Full(1)),
            "alice",
        )
        .await;
    }
    let total = 30 * 11;
    let rebuilds: Vec<_> = [4usize, 9]
        .into_iter()
        .map(|batch| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut projector = Projector::open(&db, None)
                    .expect("projector")
                    .with_batch(batch);
                for _ in 0..3 {
                    projector.rebuild().expect("rebuild");
                }
                projector.position().expect("position")
            })
        })
        .collect();
    for r in rebuilds {
        let position = tokio::task::spawn_blocking(move || r.join().expect("rebuild thread"))
            .await
            .expect("joined");
        assert_eq!(position, total);
    }
    let mut projector = Projector::open(&db, None).expect("projector");
    let report = projector.catch_up().expect("catch up");
    assert_eq!(report.applied, 0, "the rebuilds left nothing to do");
    let conn = projector.connection();
    assert_eq!(count(conn, "SELECT count(*) FROM view_audit_log"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_activity"), total);
    let raced = dump(conn);
    projector.rebuild().expect("rebuild");
    assert_dumps_equal(&raced, &dump(projector.connection()));
}

const REBUILD_CHILD_ENV: &str = "PROJECTION_TEST_REBUILD_CHILD_DB";

/// A rebuild process is SIGKILLed in the middle of its pass (the read models part rebuilt,
/// the position still at zero): a later catch-up finishes it, applying nothing twice.
#[test]
fn a_rebuild_killed_part_way_is_finished_by_a_catch_up() {
    if let Ok(db) = std::env::var(REBUILD_CHILD_ENV) {
        let mut projector = Projector::open(Path::new(&db), None)
            .expect("child projector")
            .with_batch(11);
        let mut out = std::io::stdout().lock();
        loop {
            projector.rebuild().expect("child rebuild");
            writeln!(out, "REBUILT").expect("stdout");
            out.flush().expect("flush");
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let total = runtime.block_on(async {
        let (store, _pool) = store_at(&db).await;
        for n in 0..80i64 {
            let id = format!("exp-{n:02}");
            write_all(
                &store,
                &id,
                script(&id, "kill drill", "web", n * 100, Run::Full(3)),
                "alice",
            )
            .await;
        }
        80 * 13
    });

    let mut killed_part_way = false;
    for attempt in 0..40u64 {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "a_rebuild_killed_part_way_is_finished_by_a_catch_up",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(REBUILD_CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines
                .next()
                .expect("child keeps rebuilding")
                .expect("child output");
            if line == "REBUILT" {
                break;
            }
        }
        // At a varying moment of a later rebuild.
        std::thread::sleep(Duration::from_micros(2_000 + 1_500 * (attempt % 12)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");

        let conn = Connection::open(&db).expect("raw connection");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        let position: i64 = conn
            .query_row(
                "SELECT coalesce((SELECT position FROM projection_feed WHERE name = 'events'), 0)",
                [],
                |r| r.get(0),
            )
            .expect("position");
        let entries = count(&conn, "SELECT count(*) FROM view_audit_log");
        if position == 0 && entries > 0 && entries < total {
            killed_part_way = true;
            break;
        }
    }
    assert!(killed_part_way, "no kill landed in the middle of a rebuild");

    let mut projector = Projector::open(&db, None).expect("projector after the kill");
    let report = projector.catch_up().expect("catch up");
    let conn = projector.connection();
    assert_eq!(report.position, total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_audit_log"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_activity"), total);
    assert_eq!(count(conn, "SELECT count(*) FROM view_results"), 80);
    let finished = dump(conn);
    projector.rebuild().expect("rebuild");
    assert_dumps_equal(&finished, &dump(projector.connection()));
}

// ---------------------------------------------------------------------------------------------
// (f) Read models of another version
// ---------------------------------------------------------------------------------------------

/// The first version's audit log table: a copy of each event's metadata in every row.
const VERSION_1_AUDIT_LOG: &str = "
CREATE TABLE view_audit_log (
  aggregate_type TEXT    NOT NULL,
  aggregate_id   TEXT    NOT NULL,
  sequence       INTEGER NOT NULL,
  event_type     TEXT    NOT NULL,
  actor          TEXT    NOT NULL,
  recorded_at    TEXT    NOT NULL,
  entry          TEXT    NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT, WITHOUT ROWID;
CREATE INDEX view_audit_log_by_actor ON view_audit_log (actor, recorded_at);
CREATE INDEX view_audit_log_by_time ON view_audit_log (recorded_at);
";

/// A store whose read models the first version made (they did not say their version) is
/// upgraded when a projector opens it: the old tables are dropped, the position goes back to
/// the start, and a catch-up projects the whole log again, so the read models come out as a
/// rebuild makes them. The webhook outbox, which is not a read model, is left alone.
#[tokio::test]
async fn read_models_of_the_first_version_are_made_again_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    for n in 0..6i64 {
        let id = format!("exp-{n}");
        write_all(
            &store,
            &id,
            script(&id, "old", "web", n * 100, Run::Full(2)),
            "alice",
        )
        .await;
    }
    let expected = {
        let mut projector = Projector::open(&db, None).expect("projector");
        projector.rebuild().expect("rebuild");
        dump(projector.connection())
    };
    let total = 6 * 12;
    {
        let conn = Connection::open(&db).expect("raw connection");
        conn.execute_batch(&format!(
            "DROP TABLE view_audit_log; {VERSION_1_AUDIT_LOG}
             DELETE FROM projection_feed WHERE name = 'read_models';
             INSERT INTO view_audit_log VALUES ('Experiment', 'exp-0', 1, 'ExperimentCreated', 'alice', 'then', '{{}}');
             CREATE TABLE webhook_outbox_probe (kept INTEGER);"
        ))
        .expect("version 1 read models");
    }

    let mut projector = Projector::open(&db, None).expect("projector opens the old store");
    assert_eq!(projector.position().expect("position"), 0);
    let conn = projector.connection();
    assert_eq!(count(conn, "SELECT count(*) FROM view_audit_log"), 0);
    assert_eq!(count(conn, "SELECT count(*) FROM view_experiments"), 0);
    assert_eq!(
        count(
            conn,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'webhook_outbox_probe'"
        ),
        1
    );
    let report = projector.catch_up().expect("catch up");
    assert_eq!(report.applied, total);
    assert_dumps_equal(&expected, &dump(projector.connection()));
    let entries = queries::audit_log(
        projector.connection(),
        &AuditFilter::default(),
        None,
        usize::MAX,
    )
    .expect("audit log");
    assert_eq!(entries.len(), total);

    // Opening it again changes nothing.
    drop(projector);
    let again = Projector::open(&db, None).expect("projector");
    assert_eq!(again.position().expect("position"), total as i64);
    assert_dumps_equal(&expected, &dump(again.connection()));
}

/// Read models a later release made are refused, with what to do, and left as they are.
#[tokio::test]
async fn read_models_of_a_later_version_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    write_all(
        &store,
        "exp-0",
        script("exp-0", "new", "web", 0, Run::Full(1)),
        "alice",
    )
    .await;
    let before = {
        let mut projector = Projector::open(&db, None).expect("projector");
        projector.catch_up().expect("catch up");
        projector
            .connection()
            .execute(
                "UPDATE projection_feed SET position = 99 WHERE name = 'read_models'",
                [],
            )
            .expect("a later version");
        dump(projector.connection())
    };
    let Err(e) = Projector::open(&db, None) else {
        panic!("read models of a later version were opened");
    };
    let message = e.to_string();
    assert!(message.contains("version 99"), "{message}");
    assert!(message.contains("later release"), "{message}");
    let conn = Connection::open(&db).expect("raw connection");
    assert_dumps_equal(&before, &dump(&conn));
}
