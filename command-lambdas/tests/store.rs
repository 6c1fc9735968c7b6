//! The event store layer over a real SQLite file: chain, idempotency, concurrency, crashes.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use command_lambdas::StoreError;
use common::{at, context, health, lifecycle, store_at};
use domain::experiment::{Experiment, ExperimentCommand, ExperimentError, Status};
use domain::platform::{PlatformBook, PlatformCommand};
use domain::spec::TargetId;
use embedded_write::sqlite::{stats, verify_file};
use test_support::common;

#[tokio::test]
async fn a_full_run_is_stored_with_a_verifiable_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    let commands = lifecycle("exp-1", 5);
    for (i, command) in commands.iter().enumerate() {
        let outcome = store
            .execute::<Experiment>("exp-1", command.clone(), &context(&format!("c{i}")))
            .await
            .expect("accepted");
        assert_eq!(outcome.events.len(), 1);
        assert_eq!(outcome.events[0].sequence, i + 1);
        assert!(!outcome.deduplicated);
    }
    let loaded = store.load::<Experiment>("exp-1").await.expect("load");
    assert_eq!(loaded.version, 15);
    assert_eq!(loaded.aggregate.status(), Status::Completed);
    assert_eq!(loaded.aggregate.recovery_ms(), Some(6_000));
    // Links: each prev_hash is the previous hash; the first links to the genesis hash.
    let mut prev = domain::audit::GENESIS_HASH.to_owned();
    for e in &loaded.events {
        assert_eq!(e.metadata.prev_hash, prev);
        assert_eq!(e.metadata.actor, "tester");
        assert_eq!(e.metadata.actor_role, "OPERATOR");
        assert_eq!(e.metadata.source, "workflow");
        assert!(
            uuid::Uuid::parse_str(&e.metadata.event_id).is_ok_and(|u| u.get_version_num() == 7)
        );
        prev.clone_from(&e.metadata.hash);
    }
    assert_eq!(loaded.head, prev);
    let report = verify_file(&db, 0, |_| {}).expect("verify");
    assert!(report.is_ok(), "{:?}", report.faults);
    assert_eq!((report.events, report.streams), (15, 1));
}

#[tokio::test]
async fn a_repeated_command_id_appends_nothing_and_returns_the_first_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, pool) = store_at(&db).await;
    let commands = lifecycle("exp-1", 0);
    store
        .execute::<Experiment>("exp-1", commands[0].clone(), &context("create"))
        .await
        .expect("create");
    let first = store
        .execute::<Experiment>("exp-1", commands[1].clone(), &context("start"))
        .await
        .expect("start");
    // The client never saw `first` (a lost response) and retries with the same id.
    let again = store
        .execute::<Experiment>("exp-1", commands[1].clone(), &context("start"))
        .await
        .expect("answered from the log");
    assert!(again.deduplicated);
    assert_eq!(again.events, first.events);
    assert_eq!(stats(&pool).await.expect("stats").events, 2);
}

#[tokio::test]
async fn a_rejected_command_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, pool) = store_at(&db).await;
    let commands = lifecycle("exp-1", 0);
    store
        .execute::<Experiment>("exp-1", commands[0].clone(), &context("create"))
        .await
        .expect("create");
    let err = store
        .execute::<Experiment>(
            "exp-1",
            ExperimentCommand::InjectFailure {
                targets: vec![TargetId::parse("worker-1").expect("id")],
                at: at(50),
            },
            &context("inject-too-early"),
        )
        .await
        .expect_err("refused");
    assert!(matches!(
        err,
        StoreError::Rejected(ExperimentError::InvalidState { .. })
    ));
    assert!(!err.is_retryable());
    assert_eq!(stats(&pool).await.expect("stats").events, 1);
    let err = store
        .execute::<Experiment>("missing", commands[1].clone(), &context("x"))
        .await
        .expect_err("refused");
    assert!(matches!(
        err,
        StoreError::Rejected(ExperimentError::NotFound)
    ));
}

#[tokio::test]
async fn platform_commands_are_chained_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    let halt = PlatformCommand::HaltAll {
        reason: "incident".into(),
        at: at(1),
    };
    store
        .execute_in_ledger::<PlatformBook>("halt-switch", halt, &context("halt"))
        .await
        .expect("halt");
    let loaded = store
        .ledger::<PlatformBook>("halt-switch")
        .await
        .expect("load");
    assert_eq!(loaded.book, "halt-switch.1");
    assert_eq!(
        loaded.aggregate.state().halted().map(|h| h.0),
        Some("incident")
    );
    let report = verify_file(&db, 0, |_| {}).expect("verify");
    assert!(report.is_ok());
}

/// Eight writers send the same 200 commands, in order, with the same command ids: every
/// command lands exactly once, in order, whoever wins each race. The writers are split over
/// two independent stores (two nodes, two connection pools) on one file, so commits really
/// collide in SQLite, not only in one process's stream lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_writers_on_one_stream_leave_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = store_at(&db).await;
    let (other_node, _other_pool) = store_at(&db).await;
    let stores = [Arc::new(store), Arc::new(other_node)];
    let store = Arc::clone(&stores[0]);
    let commands = Arc::new(lifecycle("hot", 190));
    assert_eq!(commands.len(), 200);
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(&stores[w % 2]);
        let commands = Arc::clone(&commands);
        writers.push(tokio::spawn(async move {
            let mut deduplicated = 0;
            for (i, command) in commands.iter().enumerate() {
                let outcome = store
                    .execute::<Experiment>("hot", command.clone(), &context(&format!("cmd-{i}")))
                    .await
                    .unwrap_or_else(|e| panic!("writer {w}, command {i}: {e}"));
                assert_eq!(outcome.events.len(), 1, "command {i}");
                assert_eq!(outcome.events[0].sequence, i + 1);
                deduplicated += usize::from(outcome.deduplicated);
            }
            deduplicated
        }));
    }
    let mut deduplicated = 0;
    for w in writers {
        deduplicated += w.await.expect("writer");
    }
    // 1,600 commands sent, 200 appended: the rest were answered from the log.
    assert_eq!(deduplicated, 7 * 200);
    let loaded = store.load::<Experiment>("hot").await.expect("load");
    let sequences: Vec<usize> = loaded.events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=200).collect::<Vec<_>>());
    let command_ids: Vec<String> = loaded
        .events
        .iter()
        .map(|e| e.metadata.command_id.clone())
        .collect();
    assert_eq!(
        command_ids,
        (0..200).map(|i| format!("cmd-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(loaded.aggregate.status(), Status::Completed);
    let report = verify_file(&db, 0, |_| {}).expect("verify");
    assert!(report.is_ok(), "{:?}", report.faults);
    assert_eq!(report.events, 200);
}

/// Eight writers race for the same transition with different command ids: one wins, the
/// others are refused by the aggregate after reloading, and exactly one event is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_get_exactly_one_winner_per_transition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, pool) = store_at(&db).await;
    let store = Arc::new(store);
    let commands = lifecycle("race", 0);
    for (i, command) in commands[..7].iter().enumerate() {
        store
            .execute::<Experiment>("race", command.clone(), &context(&format!("setup-{i}")))
            .await
            .expect("setup");
    }
    let inject = commands[7].clone();
    assert!(matches!(inject, ExperimentCommand::InjectFailure { .. }));
    let mut racers = Vec::new();
    for r in 0..8 {
        let store = Arc::clone(&store);
        let inject = inject.clone();
        racers.push(tokio::spawn(async move {
            store
                .execute::<Experiment>("race", inject, &context(&format!("inject-{r}")))
                .await
        }));
    }
    let mut won = 0;
    for r in racers {
        match r.await.expect("racer") {
            Ok(outcome) => {
                assert_eq!(outcome.events.len(), 1);
                won += 1;
            }
            Err(StoreError::Rejected(ExperimentError::AlreadyInjected)) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(stats(&pool).await.expect("stats").events, 8);
    assert!(verify_file(&db, 0, |_| {}).expect("verify").is_ok());
}

const CHILD_ENV: &str = "CHAOS_CRASH_CHILD_DB";

/// The child half of the crash test: append forever, printing each acknowledged command.
async fn append_until_killed(db: &str) {
    let (store, _pool) = store_at(std::path::Path::new(db)).await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for task in 0..4 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for round in 0.. {
                let id = format!("crash-{task}-{round}");
                for (i, command) in lifecycle(&id, 40).into_iter().enumerate() {
                    let command_id = format!("{id}-c{i}");
                    match store
                        .execute::<Experiment>(&id, command, &context(&command_id))
                        .await
                    {
                        Ok(outcome) => {
                            use std::io::Write;
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(
                                out,
                                "ACK {id} {command_id} {}",
                                outcome.events[0].sequence
                            );
                            let _ = out.flush();
                        }
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// A child process appends in a loop and is killed with SIGKILL mid-write: every command it
/// acknowledged is in the store afterwards, and every chain verifies.
#[test]
fn acknowledged_commands_survive_sigkill() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    if let Ok(db) = std::env::var(CHILD_ENV) {
        runtime.block_on(append_until_killed(&db));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    // Create the store first so the child only appends.
    runtime.block_on(async {
        store_at(&db).await;
    });
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "acknowledged_commands_survive_sigkill",
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
    let mut acked: Vec<(String, String, usize)> = Vec::new();
    while acked.len() < 600 {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child keeps acknowledging commands");
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let ["ACK", id, command_id, sequence] = parts[..] {
            acked.push((
                id.into(),
                command_id.into(),
                sequence.parse().expect("sequence"),
            ));
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // Acknowledgements printed between our last read and the kill count too.
    while let Ok(line) = rx.try_recv() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let ["ACK", id, command_id, sequence] = parts[..] {
            acked.push((
                id.into(),
                command_id.into(),
                sequence.parse().expect("sequence"),
            ));
        }
    }

    runtime.block_on(async {
        let (store, _pool) = store_at(&db).await;
        let mut streams: HashSet<String> = HashSet::new();
        for (id, command_id, sequence) in &acked {
            let loaded = store.load::<Experiment>(id).await.expect("load");
            let stored = loaded
                .events
                .iter()
                .find(|e| e.sequence == *sequence)
                .unwrap_or_else(|| panic!("acknowledged {command_id} missing from {id}"));
            assert_eq!(&stored.metadata.command_id, command_id);
            streams.insert(id.clone());
        }
        let report = verify_file(&db, 0, |_| {}).expect("verify");
        assert!(report.is_ok(), "{:?}", report.faults);
        assert!(report.events >= acked.len() as u64);
        assert!(!streams.is_empty());
    });
}

#[tokio::test]
async fn health_values_survive_the_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _pool) = store_at(&dir.path().join("chaos.db")).await;
    for (i, command) in lifecycle("exp-h", 2).into_iter().take(5).enumerate() {
        store
            .execute::<Experiment>("exp-h", command, &context(&format!("h{i}")))
            .await
            .expect("accepted");
    }
    let loaded = store.load::<Experiment>("exp-h").await.expect("load");
    let last = loaded.events.last().expect("events");
    assert_eq!(
        last.event,
        domain::experiment::ExperimentEvent::HealthChecked {
            sample: 2,
            health: health(3),
            at: at(5),
        }
    );
}

/// A real SQLite repository whose first commit is preceded by a rival's commit to the same
/// stream (as if another node wrote between our load and our commit).
struct RivalWritesFirst {
    inner: embedded_write::sqlite::SqliteRepository,
    rival: std::sync::Mutex<Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>>,
    commits: std::sync::atomic::AtomicUsize,
}

impl cqrs_es::persist::PersistedEventRepository for RivalWritesFirst {
    async fn get_events<A: cqrs_es::Aggregate>(
        &self,
        id: &str,
    ) -> Result<Vec<cqrs_es::persist::SerializedEvent>, cqrs_es::persist::PersistenceError> {
        self.inner.get_events::<A>(id).await
    }
    async fn get_last_events<A: cqrs_es::Aggregate>(
        &self,
        id: &str,
        last: usize,
    ) -> Result<Vec<cqrs_es::persist::SerializedEvent>, cqrs_es::persist::PersistenceError> {
        self.inner.get_last_events::<A>(id, last).await
    }
    async fn get_snapshot<A: cqrs_es::Aggregate>(
        &self,
        id: &str,
    ) -> Result<Option<cqrs_es::persist::SerializedSnapshot>, cqrs_es::persist::PersistenceError>
    {
        self.inner.get_snapshot::<A>(id).await
    }
    async fn persist<A: cqrs_es::Aggregate>(
        &self,
        events: &[cqrs_es::persist::SerializedEvent],
        snapshot: Option<(String, serde_json::Value, usize)>,
    ) -> Result<(), cqrs_es::persist::PersistenceError> {
        let rival = self.rival.lock().expect("lock").take();
        if let Some(rival) = rival {
            rival.await;
        }
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.persist::<A>(events, snapshot).await
    }
    async fn stream_events<A: cqrs_es::Aggregate>(
        &self,
        id: &str,
    ) -> Result<cqrs_es::persist::ReplayStream, cqrs_es::persist::PersistenceError> {
        self.inner.stream_events::<A>(id).await
    }
    async fn stream_all_events<A: cqrs_es::Aggregate>(
        &self,
    ) -> Result<cqrs_es::persist::ReplayStream, cqrs_es::persist::PersistenceError> {
        self.inner.stream_all_events::<A>().await
    }
}

#[tokio::test]
async fn a_commit_that_loses_a_race_is_decided_again_on_fresh_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (rival_store, pool) = store_at(&db).await;
    let commands = lifecycle("contended", 3);
    for (i, command) in commands[..6].iter().enumerate() {
        rival_store
            .execute::<Experiment>("contended", command.clone(), &context(&format!("s{i}")))
            .await
            .expect("setup");
    }
    // Our store decides RecordBaseline; before it commits, the rival records a health sample.
    let rival_command = ExperimentCommand::RecordHealthCheck {
        health: health(3),
        at: at(6),
    };
    let rival = async move {
        rival_store
            .execute::<Experiment>("contended", rival_command, &context("rival"))
            .await
            .expect("rival commit");
    };
    let ours = command_lambdas::EventStore::new(
        RivalWritesFirst {
            inner: embedded_write::sqlite::repository(pool.clone()),
            rival: std::sync::Mutex::new(Some(Box::pin(rival))),
            commits: std::sync::atomic::AtomicUsize::new(0),
        },
        Arc::new(command_lambdas::clock::SystemClock),
        Arc::new(command_lambdas::clock::UuidV7),
    );
    let baseline = commands[6].clone();
    assert!(matches!(baseline, ExperimentCommand::RecordBaseline { .. }));
    let outcome = ours
        .execute::<Experiment>("contended", baseline, &context("baseline"))
        .await
        .expect("decided again and committed");
    assert_eq!(outcome.events[0].sequence, 8, "after the rival's event 7");
    assert_eq!(
        ours.repository()
            .commits
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    let loaded = ours.load::<Experiment>("contended").await.expect("load");
    assert_eq!(loaded.aggregate.health_samples(), 4);
    let command_ids: Vec<String> = loaded
        .events
        .iter()
        .map(|e| e.metadata.command_id.clone())
        .collect();
    assert_eq!(&command_ids[6..], ["rival", "baseline"]);
    assert!(verify_file(&db, 0, |_| {}).expect("verify").is_ok());
}
