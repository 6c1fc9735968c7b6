//! The AWS read models answer every query as the embedded ones do.
//!
//! One varied history is written through the real write side twice, into a SQLite store and
//! into a DynamoDB events table on a local moto server, with the same recording clock and
//! event ids, so both logs hold the same events byte for byte. The embedded projector projects
//! the store; the projection Lambda's `handle` projects the real stream records of the table.
//! Then every query is asked of both, page by page, and the answers must be equal; a few
//! answers are also checked against what the history says, so that both cannot be wrong alike.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use command_lambdas::clock::{Clock, IdSource};
use command_lambdas::dynamo::{DynamoStore, create_events_table};
use common::{T0, at, gate, health};
use domain::Timestamp;
use domain::experiment::{Experiment, ExperimentCommand as C};
use domain::platform::{PlatformBook, PlatformCommand};
use domain::provenance::{Actor, CommandContext, Role, Source};
use domain::spec::{
    ExperimentId, ExperimentSpec, ExperimentSpecInput, FailureType, Guardrails, RecoveryPolicy,
    Selection, StopCondition, Target, TargetId, TargetKind,
};
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::ExperimentSummary;
use embedded_read::projector::{ProjectionError, Projector};
use embedded_read::queries;
use embedded_write::SqliteStore;
use projection_lambdas::dynamo_queries::{DynamoReads, ReadError};
use projection_lambdas::dynamo_stream::{ViewStore, create_views_table, handle};
use projection_lambdas::reads::{AuditFilter, ExperimentFilter};
use rusqlite::Connection;
use streams::{event, stream_records};
use test_support::{aws, common, streams};

// ---------------------------------------------------------------------------------------------
// One history, written twice
// ---------------------------------------------------------------------------------------------

/// The recording clock of both stores: three commits in each millisecond, and every seventh
/// reading two seconds back (as after an NTP correction). Entries of different streams share
/// a `recorded_at`, and the audit log's order is neither the commits' nor the streams'.
#[derive(Debug, Default)]
struct RecordingClock(AtomicI64);

impl Clock for RecordingClock {
    fn now(&self) -> Timestamp {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let back = if n % 7 == 6 { 2_000 } else { 0 };
        Timestamp::from_unix_millis(T0 + 86_400_000 + (n / 3) * 1_000 - back)
    }
}

/// Event ids in order of issue.
#[derive(Debug, Default)]
struct CountingIds(AtomicU64);

impl IdSource for CountingIds {
    fn event_id(&self) -> String {
        format!("event-{:06}", self.0.fetch_add(1, Ordering::Relaxed))
    }
}

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

fn spec(name: &str, target: &str, dry_run: bool, pause: bool) -> ExperimentSpec {
    let (kind, group) = match target.split_once(':') {
        Some(("asg", group)) => (TargetKind::AutoScalingGroup, group),
        _ => (TargetKind::LocalFleet, target),
    };
    ExperimentSpec::parse(ExperimentSpecInput {
        name: name.into(),
        description: String::new(),
        target: Target {
            kind,
            group: group.into(),
        },
        selection: Selection::Count(1),
        max_targets: 3,
        // Only local workers can be paused: a stopped group run terminated its instance.
        failure: if pause && kind == TargetKind::LocalFleet {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Created only.
    Draft,
    /// Scheduled for an hour on.
    Scheduled,
    /// Started and left running.
    Running,
    /// A recovered run with this many samples after the injection.
    Full(usize),
    /// A dry run.
    Dry,
    /// No instance matched.
    NoTargets,
    /// Scheduled, then cancelled by its creator.
    Cancelled,
    /// Paused, stopped on request, rolled back.
    Stopped,
}

impl Run {
    /// Whether the run ends with a result.
    fn finishes(self) -> bool {
        matches!(
            self,
            Run::Full(_) | Run::Dry | Run::NoTargets | Run::Stopped
        )
    }
}

/// One experiment of the history.
#[derive(Debug, Clone, Copy)]
struct Planned {
    id: &'static str,
    name: &'static str,
    /// Target key (`web` is `fleet:web`; `asg:web-prod`).
    target: &'static str,
    /// Created at `at(base + 1)`.
    base: i64,
    run: Run,
    creator: &'static str,
    archived: bool,
}

const fn plan(
    id: &'static str,
    name: &'static str,
    target: &'static str,
    base: i64,
    run: Run,
    creator: &'static str,
    archived: bool,
) -> Planned {
    Planned {
        id,
        name,
        target,
        base,
        run,
        creator,
        archived,
    }
}

/// Ids that are prefixes of one another, created at the same instant in several statuses;
/// names with `%`, `_` and letters beyond ASCII; archived runs; several creators.
#[rustfmt::skip]
const HISTORY: [Planned; 24] = [
    plan("e-1", "Kill one Web worker", "web", 0, Run::Full(1), "alice", false),
    plan("e-10", "kill WEB worker again", "web", 0, Run::Running, "bob", false),
    plan("e-100", "50% of api", "api", 0, Run::Dry, "carol", false),
    plan("e-1.b", "under_score drill", "web", 0, Run::Stopped, "alice", true),
    plan("E-2", "Straße Ümlaut", "api", 20, Run::Cancelled, "bob", true),
    plan("e-2", "strasse ümlaut", "ghost", 20, Run::NoTargets, "carol", false),
    plan("e-3", "draft only", "web", 30, Run::Draft, "dave", false),
    plan("e-4", "scheduled for later", "web", 40, Run::Scheduled, "alice", false),
    plan("e-5", "running web", "web", 50, Run::Running, "bob", false),
    plan("e-6", "ASG drill", "asg:web-prod", 60, Run::Full(2), "carol", false),
    plan("platforms", "named like the platform", "api", 70, Run::Dry, "alice", false),
    plan("e-7", "web drill 7", "web", 80, Run::Full(0), "dave", true),
    plan("e-8", "web drill 8", "web", 80, Run::Full(3), "alice", false),
    plan("e-9", "api pause", "api", 90, Run::Stopped, "bob", false),
    plan("g:1", "ghost town", "ghost", 100, Run::NoTargets, "carol", false),
    plan("g:2", "ghost town 2", "ghost", 100, Run::Cancelled, "carol", false),
    plan("h_1", "half web", "web", 110, Run::Full(1), "alice", false),
    plan("h_2", "half api", "api", 110, Run::Dry, "bob", true),
    plan("i.1", "Web latency", "web", 120, Run::Draft, "dave", false),
    plan("i.2", "web LATENCY 2", "web", 120, Run::Scheduled, "dave", false),
    plan("j-1", "asg again", "asg:web-prod", 130, Run::Full(0), "carol", false),
    plan("j-2", "asg stop", "asg:web-prod", 130, Run::Stopped, "alice", false),
    plan("k", "k", "web", 140, Run::Running, "bob", false),
    plan("k-0", "k zero", "web", 140, Run::Full(1), "alice", false),
];

/// The commands of one experiment, each with its actor, one second apart from `base + 1`.
fn script(p: &Planned) -> Vec<(C, &'static str)> {
    let mut t = p.base;
    let mut next = || {
        t += 1;
        at(t)
    };
    let worker = || vec![TargetId::parse("worker-1").expect("target")];
    let mut out = vec![(
        C::CreateExperiment {
            id: ExperimentId::parse(p.id).expect("id"),
            spec: spec(p.name, p.target, p.run == Run::Dry, p.run == Run::Stopped),
            at: next(),
        },
        p.creator,
    )];
    let flow = "workflow";
    match p.run {
        Run::Draft => {}
        Run::Scheduled | Run::Cancelled => {
            out.push((
                C::ScheduleExperiment {
                    start_at: at(p.base + 3_600),
                    at: next(),
                },
                p.creator,
            ));
            if p.run == Run::Cancelled {
                out.push((
                    C::CancelExperiment {
                        reason: "change freeze".into(),
                        at: next(),
                    },
                    p.creator,
                ));
            }
        }
        Run::NoTargets => {
            out.push((
                C::StartExperiment {
                    gate: gate(),
                    at: next(),
                },
                p.creator,
            ));
            out.push((
                C::ResolveTargets {
                    candidates: 0,
                    targets: Vec::new(),
                    at: next(),
                },
                flow,
            ));
        }
        Run::Running | Run::Dry | Run::Full(_) | Run::Stopped => {
            out.push((
                C::StartExperiment {
                    gate: gate(),
                    at: next(),
                },
                p.creator,
            ));
            out.push((
                C::ResolveTargets {
                    candidates: 3,
                    targets: worker(),
                    at: next(),
                },
                flow,
            ));
            if p.run == Run::Dry {
                out.push((C::FinishDryRun { at: next() }, flow));
            }
            if let Run::Full(_) | Run::Stopped = p.run {
                for _ in 0..3 {
                    out.push((
                        C::RecordHealthCheck {
                            health: health(3),
                            at: next(),
                        },
                        flow,
                    ));
                }
                out.push((
                    C::RecordBaseline {
                        health: health(3),
                        at: next(),
                    },
                    flow,
                ));
                out.push((
                    C::InjectFailure {
                        targets: worker(),
                        at: next(),
                    },
                    flow,
                ));
            }
            if let Run::Full(checks) = p.run {
                for _ in 0..checks {
                    out.push((
                        C::RecordHealthCheck {
                            health: health(2),
                            at: next(),
                        },
                        flow,
                    ));
                }
                out.push((
                    C::ObserveRecovery {
                        health: health(3),
                        at: next(),
                    },
                    flow,
                ));
                out.push((C::CompleteExperiment { at: next() }, flow));
            }
            if p.run == Run::Stopped {
                out.push((
                    C::RequestStop {
                        reason: "operator saw paging alerts".into(),
                        at: next(),
                    },
                    p.creator,
                ));
                out.push((
                    C::RecordRollback {
                        detail: "resumed worker-1".into(),
                        at: next(),
                    },
                    flow,
                ));
                out.push((C::MarkStopped { at: next() }, flow));
            }
        }
    }
    if p.archived {
        out.push((C::ArchiveExperiment { at: next() }, p.creator));
    }
    out
}

/// The target key of a planned experiment.
fn target_key(p: &Planned) -> String {
    if p.target.contains(':') {
        p.target.to_owned()
    } else {
        format!("fleet:{}", p.target)
    }
}

/// Both stores, written alike.
struct Stores {
    sqlite: SqliteStore,
    dynamo: DynamoStore,
}

impl Stores {
    async fn experiment(&self, id: &str, i: usize, command: C, actor: &str) {
        let context = ctx(&format!("{id}-{i}"), actor);
        self.sqlite
            .execute::<Experiment>(id, command.clone(), &context)
            .await
            .unwrap_or_else(|e| panic!("{id} command {i} refused by SQLite: {e}"));
        self.dynamo
            .execute::<Experiment>(id, command, &context)
            .await
            .unwrap_or_else(|e| panic!("{id} command {i} refused by DynamoDB: {e}"));
    }

    async fn platform(&self, command_id: &str, command: PlatformCommand) {
        let context = ctx(command_id, "root");
        let ledger = command.concern().ledger();
        self.sqlite
            .execute_in_ledger::<PlatformBook>(ledger, command.clone(), &context)
            .await
            .expect("platform command accepted by SQLite");
        self.dynamo
            .execute_in_ledger::<PlatformBook>(ledger, command, &context)
            .await
            .expect("platform command accepted by DynamoDB");
    }
}

/// The read models of one history, embedded and on AWS.
struct Setup {
    _dir: tempfile::TempDir,
    projector: Projector,
    reads: DynamoReads,
    client: aws_sdk_dynamodb::Client,
    views_table: String,
    events: usize,
}

impl Setup {
    fn conn(&self) -> &Connection {
        self.projector.connection()
    }
}

/// Writes [`HISTORY`] to both stores, the experiments' commands round robin with platform
/// halts among them, and projects both.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let pool = embedded_write::sqlite::open(&db, embedded_write::sqlite::OpenMode::CreateIfMissing)
        .await
        .expect("open store");
    let client = aws::dynamodb();
    let events_table = aws::unique("Events");
    create_events_table(&client, &events_table)
        .await
        .expect("events table");
    let views_table = aws::unique("Views");
    create_views_table(&client, &views_table)
        .await
        .expect("views table");
    let stores = Stores {
        sqlite: SqliteStore::new(
            embedded_write::sqlite::repository(pool),
            Arc::new(RecordingClock::default()),
            Arc::new(CountingIds::default()),
        ),
        dynamo: DynamoStore::new(
            command_lambdas::dynamo::repository(client.clone(), &events_table),
            Arc::new(RecordingClock::default()),
            Arc::new(CountingIds::default()),
        ),
    };

    let scripts: Vec<Vec<(C, &str)>> = HISTORY.iter().map(script).collect();
    let rounds = scripts.iter().map(Vec::len).max().unwrap_or(0);
    let mut events = 0;
    for round in 0..rounds {
        for (p, commands) in HISTORY.iter().zip(&scripts) {
            if let Some((command, actor)) = commands.get(round) {
                stores.experiment(p.id, round, command.clone(), actor).await;
                events += 1;
            }
        }
        let platform = match round {
            2 => Some(PlatformCommand::HaltAll {
                reason: "incident 42".into(),
                at: at(1_000),
            }),
            5 => Some(PlatformCommand::LiftHalt { at: at(1_001) }),
            9 => Some(PlatformCommand::HaltAll {
                reason: "game day".into(),
                at: at(1_002),
            }),
            _ => None,
        };
        if let Some(command) = platform {
            stores.platform(&format!("platform-{round}"), command).await;
            events += 1;
        }
    }

    let mut projector = Projector::open(&db, None).expect("projector");
    let report = projector.catch_up().expect("catch up");
    assert_eq!(
        report.applied, events,
        "the embedded projector applied every event"
    );
    assert_eq!(report.parked, 0);

    let views = ViewStore::new(client.clone(), &views_table);
    let records = stream_records(&client, &events_table).await;
    assert_eq!(records.len(), events, "one stream record per event");
    for batch in records.chunks(100) {
        let response = handle(&views, event(batch)).await;
        assert!(
            response.batch_item_failures.is_empty(),
            "every record applied: {:?}",
            response.batch_item_failures
        );
    }
    Setup {
        _dir: dir,
        projector,
        reads: DynamoReads::new(client.clone(), &views_table),
        client,
        views_table,
        events,
    }
}

// ---------------------------------------------------------------------------------------------
// Asking both
// ---------------------------------------------------------------------------------------------

fn ids(items: &[ExperimentSummary]) -> Vec<String> {
    items.iter().map(|s| s.id.clone()).collect()
}

/// Walks the experiments list page by page on both; every page must be the same. Returns the
/// ids listed.
async fn walk_list(setup: &Setup, filter: &ExperimentFilter, limit: usize) -> Vec<String> {
    let mut cursor: Option<String> = None;
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let embedded = queries::experiments(setup.conn(), filter, cursor.as_deref(), limit)
            .expect("embedded page");
        let aws = setup
            .reads
            .experiments(filter, cursor.as_deref(), limit)
            .await
            .expect("DynamoDB page");
        assert_eq!(aws, embedded, "{filter:?}, limit {limit}, after {cursor:?}");
        pages += 1;
        assert!(pages <= HISTORY.len() + 1, "pagination ends");
        out.extend(ids(&embedded.items));
        match embedded.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// Walks the audit log `limit` at a time on both, each page after the last entry of the one
/// before; every page must be the same. Returns every entry.
async fn walk_audit(setup: &Setup, filter: &AuditFilter, limit: usize) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    loop {
        let last = out
            .last()
            .map(|e| (e.recorded_at.clone(), e.aggregate_id.clone(), e.sequence));
        let after = last
            .as_ref()
            .map(|(r, id, s)| (r.as_str(), id.as_str(), *s));
        let embedded =
            queries::audit_log(setup.conn(), filter, after, limit).expect("embedded audit");
        let aws = setup
            .reads
            .audit_log(filter, after, limit)
            .await
            .expect("DynamoDB audit");
        assert_eq!(aws, embedded, "{filter:?}, limit {limit}, after {after:?}");
        let full = embedded.len() == limit;
        out.extend(embedded);
        if !full {
            return out;
        }
        assert!(out.len() <= setup.events, "the audit log ends");
    }
}

fn filters() -> Vec<ExperimentFilter> {
    let f = ExperimentFilter::default;
    let mut out = vec![f()];
    let statuses = [
        "NEW",
        "DRAFT",
        "SCHEDULED",
        "RUNNING",
        "COMPLETED",
        "FAILED",
        "STOPPED",
        "CANCELLED",
        "completed",
        "",
    ];
    for status in statuses {
        out.push(ExperimentFilter {
            status: Some(status.into()),
            ..f()
        });
    }
    for search in [
        "WEB",
        "web worker",
        "%",
        "_",
        "ü",
        "Ü",
        "straße",
        "STRASSE",
        "",
        "zzz",
        "k",
    ] {
        out.push(ExperimentFilter {
            search: Some(search.into()),
            ..f()
        });
    }
    let t = |secs: i64| Some(at(secs).to_string());
    out.push(ExperimentFilter {
        status: Some("COMPLETED".into()),
        target: Some("fleet:web".into()),
        ..f()
    });
    out.push(ExperimentFilter {
        search: Some("web".into()),
        created_from: t(1),
        created_to: t(121),
        ..f()
    });
    out.push(ExperimentFilter {
        target: Some("fleet:api".into()),
        search: Some("ü".into()),
        ..f()
    });
    out.push(ExperimentFilter {
        status: Some("STOPPED".into()),
        search: Some("DRILL".into()),
        ..f()
    });
    // Each of these also with the archived ones.
    let archived: Vec<ExperimentFilter> = out
        .iter()
        .map(|filter| ExperimentFilter {
            include_archived: true,
            ..filter.clone()
        })
        .collect();
    out.extend(archived);

    // These every other one with the archived ones.
    let mut single = Vec::new();
    for target in [
        "fleet:web",
        "fleet:api",
        "asg:web-prod",
        "fleet:nope",
        "",
        "WEB",
        "prod",
        ":",
    ] {
        single.push(ExperimentFilter {
            target: Some(target.into()),
            ..f()
        });
    }
    let bounds = [
        (t(21), t(51)),
        (t(1), t(1)),
        (None, t(1)),
        (None, t(21)),
        (t(81), None),
        (t(131), t(141)),
        (t(141), t(21)),
        (Some("2".into()), None),
        (None, Some("2".into())),
        (Some(String::new()), Some(String::new())),
        (Some(String::new()), None),
        (Some("2030".into()), Some("2020".into())),
    ];
    for (created_from, created_to) in bounds {
        single.push(ExperimentFilter {
            created_from,
            created_to,
            ..f()
        });
    }
    for (i, filter) in single.into_iter().enumerate() {
        out.push(ExperimentFilter {
            include_archived: i % 2 == 1,
            ..filter
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

/// Every query against both read-model stores fed the same log. Long because it is a table of
/// queries over one fixture that costs seconds to project into moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_answers_on_dynamodb_as_on_the_embedded_read_models() {
    let setup = setup().await;
    let conn = setup.conn();
    let reads = &setup.reads;

    // The same log on both sides, and one in which the audit feed's order matters: entries
    // of streams whose ids are prefixes of one another share a `recorded_at`, and the clock
    // stepped back.
    let all = walk_audit(&setup, &AuditFilter::default(), usize::MAX).await;
    assert_eq!(all.len(), setup.events);
    let keys: BTreeSet<_> = all
        .iter()
        .map(|e| (&e.recorded_at, &e.aggregate_id, e.sequence))
        .collect();
    assert_eq!(keys.len(), all.len(), "the audit log's order has no ties");
    assert!(
        all.windows(2).any(|w| w[0].recorded_at == w[1].recorded_at
            && w[1].aggregate_id.starts_with(&w[0].aggregate_id)
            && w[0].aggregate_id != w[1].aggregate_id),
        "ids that are prefixes of one another share an instant"
    );
    assert!(
        all.windows(2).any(|w| w[0].event_id > w[1].event_id),
        "the audit log is not in commit order"
    );

    // Experiment detail with its timeline, for every experiment and a few that are not.
    for p in &HISTORY {
        let embedded = queries::experiment(conn, p.id).expect("embedded detail");
        let aws = reads.experiment(p.id).await.expect("DynamoDB detail");
        assert_eq!(aws, embedded, "{}", p.id);
        let detail = aws.expect("projected");
        assert_eq!(detail.timeline.len() as u64, detail.record.version);
        assert!(
            detail
                .timeline
                .iter()
                .all(|e| e.aggregate_type == "Experiment" && e.aggregate_id == p.id)
        );
    }
    for id in ["nope", "", "Platform", "e-1|x"] {
        assert_eq!(reads.experiment(id).await.expect("DynamoDB detail"), None);
        assert_eq!(
            queries::experiment(conn, id).expect("embedded detail"),
            None
        );
    }

    // The experiments list, what the history says.
    let mut expected: Vec<&Planned> = HISTORY.iter().filter(|p| !p.archived).collect();
    expected.sort_by_key(|p| std::cmp::Reverse((at(p.base + 1).to_string(), p.id)));
    let expected: Vec<String> = expected.iter().map(|p| p.id.to_owned()).collect();
    assert_eq!(
        walk_list(&setup, &ExperimentFilter::default(), 1_000).await,
        expected
    );
    let web: BTreeSet<String> = walk_list(
        &setup,
        &ExperimentFilter {
            target: Some("fleet:web".into()),
            include_archived: true,
            ..ExperimentFilter::default()
        },
        1_000,
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(
        web,
        HISTORY
            .iter()
            .filter(|p| target_key(p) == "fleet:web")
            .map(|p| p.id.to_owned())
            .collect()
    );

    // Every filter, page by page, at several page sizes; a page of 0 has no next.
    for filter in filters() {
        let whole = walk_list(&setup, &filter, 1_000).await;
        let limit = (whole.len() / 3).max(1);
        assert_eq!(walk_list(&setup, &filter, limit).await, whole, "{filter:?}");
        assert_eq!(
            reads
                .experiments(&filter, None, 0)
                .await
                .expect("empty page"),
            queries::experiments(conn, &filter, None, 0).expect("empty page")
        );
    }

    for filter in [
        ExperimentFilter::default(),
        ExperimentFilter {
            include_archived: true,
            ..ExperimentFilter::default()
        },
    ] {
        let whole = walk_list(&setup, &filter, 1_000).await;
        for limit in [1, 2, 5] {
            assert_eq!(walk_list(&setup, &filter, limit).await, whole, "{filter:?}");
        }
    }
    // Cursors: what the API gave out, and others with a `|` (compared as text, as embedded);
    // one without is refused by both.
    let default = ExperimentFilter::default();
    for cursor in [
        format!("{}|e-10", at(1)),
        format!("{}|e-1", at(1)),
        format!("{}|", at(1)),
        format!("{}|zzz", at(21)),
        "|x".to_owned(),
        "zzz|".to_owned(),
        "2|a".to_owned(),
        "2030-01-01T00:00:00.000Z|x|y".to_owned(),
    ] {
        assert_eq!(
            reads
                .experiments(&default, Some(&cursor), 4)
                .await
                .expect("DynamoDB page"),
            queries::experiments(conn, &default, Some(&cursor), 4).expect("embedded page"),
            "{cursor}"
        );
    }
    assert!(matches!(
        reads.experiments(&default, Some("no-bar"), 4).await,
        Err(ReadError::BadCursor(c)) if c == "no-bar"
    ));
    assert!(matches!(
        queries::experiments(conn, &default, Some("no-bar"), 4),
        Err(ProjectionError::BadCursor(_))
    ));

    // Results and analytics, and what the history says of them.
    let results = reads.results().await.expect("DynamoDB results");
    assert_eq!(results, queries::results(conn).expect("embedded results"));
    assert_eq!(
        results
            .iter()
            .map(|r| r.experiment_id.as_str())
            .collect::<BTreeSet<_>>(),
        HISTORY
            .iter()
            .filter(|p| p.run.finishes())
            .map(|p| p.id)
            .collect()
    );
    assert_eq!(
        reads.analytics().await.expect("DynamoDB analytics"),
        queries::run_analytics(conn).expect("embedded analytics")
    );

    // The audit log: each filter, page by page, and arbitrary `after` cursors.
    let mut audit_filters = vec![AuditFilter::default()];
    // Whole actors, and parts of them in any case.
    for actor in [
        "alice", "bob", "carol", "dave", "workflow", "root", "nobody", "ALI", "flow", "o", "",
    ] {
        audit_filters.push(AuditFilter {
            actor: Some(actor.into()),
            ..AuditFilter::default()
        });
    }
    for id in [
        "e-1",
        "e-10",
        "halt-switch.1",
        "platforms",
        "E-2",
        "g:1",
        "nope",
        "",
    ] {
        audit_filters.push(AuditFilter {
            aggregate_id: Some(id.into()),
            ..AuditFilter::default()
        });
    }
    let instant = |i: usize| Some(all[i].recorded_at.clone());
    for (from, to) in [
        (instant(10), instant(60)),
        (instant(0), None),
        (None, instant(30)),
        (instant(all.len() - 1), None),
        (Some("2".into()), None),
        (None, Some("2".into())),
        (Some(String::new()), Some("9".into())),
        (instant(60), instant(10)),
    ] {
        audit_filters.push(AuditFilter {
            from,
            to,
            ..AuditFilter::default()
        });
    }
    audit_filters.push(AuditFilter {
        actor: Some("alice".into()),
        aggregate_id: Some("e-1.b".into()),
        ..AuditFilter::default()
    });
    audit_filters.push(AuditFilter {
        actor: Some("workflow".into()),
        from: instant(20),
        to: instant(120),
        ..AuditFilter::default()
    });
    audit_filters.push(AuditFilter {
        aggregate_id: Some("halt-switch.1".into()),
        from: instant(5),
        ..AuditFilter::default()
    });
    // Each of them newest first too.
    let oldest_first = audit_filters.clone();
    audit_filters.extend(oldest_first.into_iter().map(|filter| AuditFilter {
        newest_first: true,
        ..filter
    }));
    for filter in &audit_filters {
        let whole = walk_audit(&setup, filter, usize::MAX).await;
        assert_eq!(walk_audit(&setup, filter, 7).await, whole, "{filter:?}");
        if filter.newest_first {
            let forward = walk_audit(
                &setup,
                &AuditFilter {
                    newest_first: false,
                    ..filter.clone()
                },
                usize::MAX,
            )
            .await;
            assert_eq!(
                whole.iter().rev().collect::<Vec<_>>(),
                forward.iter().collect::<Vec<_>>(),
                "{filter:?}"
            );
        }
    }
    for (filter, limit) in [
        (AuditFilter::default(), 3),
        (
            AuditFilter {
                actor: Some("alice".into()),
                ..AuditFilter::default()
            },
            1,
        ),
        (
            AuditFilter {
                aggregate_id: Some("halt-switch.1".into()),
                ..AuditFilter::default()
            },
            1,
        ),
    ] {
        let whole = walk_audit(&setup, &filter, usize::MAX).await;
        assert_eq!(
            walk_audit(&setup, &filter, limit).await,
            whole,
            "{filter:?}"
        );
    }
    let platform = walk_audit(
        &setup,
        &AuditFilter {
            aggregate_id: Some("halt-switch.1".into()),
            ..AuditFilter::default()
        },
        usize::MAX,
    )
    .await;
    assert_eq!(
        platform
            .iter()
            .map(|e| e.aggregate_type.as_str())
            .collect::<BTreeSet<_>>(),
        ["Platform"].into_iter().collect(),
        "the halt switch's book"
    );
    let alice = walk_audit(
        &setup,
        &AuditFilter {
            actor: Some("alice".into()),
            ..AuditFilter::default()
        },
        usize::MAX,
    )
    .await;
    assert!(!alice.is_empty() && alice.iter().all(|e| e.actor == "alice"));
    let ali = walk_audit(
        &setup,
        &AuditFilter {
            actor: Some("ALI".into()),
            ..AuditFilter::default()
        },
        usize::MAX,
    )
    .await;
    assert_eq!(ali, alice, "part of a name, in any case");
    let mid = &all[all.len() / 2];
    for after in [
        (
            mid.recorded_at.clone(),
            mid.aggregate_id.clone(),
            mid.sequence,
        ),
        (mid.recorded_at.clone(), String::new(), 0),
        (mid.recorded_at.clone(), "e-1".into(), u64::MAX),
        (mid.recorded_at.clone(), "zzz".into(), 0),
        (String::new(), String::new(), 0),
        ("2".into(), "e".into(), 3),
        ("9".into(), String::new(), 0),
    ] {
        for filter in [
            AuditFilter::default(),
            AuditFilter {
                aggregate_id: Some("e-1".into()),
                ..AuditFilter::default()
            },
            AuditFilter {
                newest_first: true,
                ..AuditFilter::default()
            },
            AuditFilter {
                aggregate_id: Some("e-1".into()),
                newest_first: true,
                ..AuditFilter::default()
            },
        ] {
            let after = Some((after.0.as_str(), after.1.as_str(), after.2));
            assert_eq!(
                reads
                    .audit_log(&filter, after, 5)
                    .await
                    .expect("DynamoDB audit"),
                queries::audit_log(conn, &filter, after, 5).expect("embedded audit"),
                "{filter:?} after {after:?}"
            );
        }
    }
    assert!(
        reads
            .audit_log(&AuditFilter::default(), None, 0)
            .await
            .expect("DynamoDB audit")
            .is_empty()
    );

    // Rows written before record rows had a `Summary` are listed from their `Record`.
    for id in ["e-1", "e-10", "e-1.b", "k"] {
        setup
            .client
            .update_item()
            .table_name(&setup.views_table)
            .key(
                "Pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("Experiment#{id}")),
            )
            .key(
                "Sk",
                aws_sdk_dynamodb::types::AttributeValue::S("record".into()),
            )
            .update_expression("REMOVE Summary, Archived")
            .send()
            .await
            .expect("remove the summary");
    }
    for filter in [
        ExperimentFilter::default(),
        ExperimentFilter {
            include_archived: true,
            search: Some("WEB".into()),
            ..ExperimentFilter::default()
        },
    ] {
        for limit in [1, 3, 1_000] {
            walk_list(&setup, &filter, limit).await;
        }
    }
}
