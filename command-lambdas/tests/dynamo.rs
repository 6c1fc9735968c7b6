//! The event store layer over dynamo-es, against DynamoDB spoken over the wire to a local
//! moto server: the same guarantees as the embedded store.

use std::sync::Arc;

use command_lambdas::StoreError;
use command_lambdas::clock::{SystemClock, UuidV7};
use command_lambdas::dynamo::{DynamoStore, create_events_table, repository, verify_table};
use common::{at, context, lifecycle};
use domain::experiment::{
    Experiment, ExperimentCommand, ExperimentError, HealthSnapshot, PlatformGate, Status,
};
use domain::limits::{
    HARD_TARGET_CAP, MAX_DESCRIPTION_CHARS, MAX_GROUP_CHARS, MAX_HEALTH_SAMPLES, MAX_NAME_CHARS,
    MAX_SCHEDULES, MAX_STOP_CONDITIONS, MAX_TARGET_ID_CHARS, MAX_TEXT_CHARS,
};
use domain::spec::{
    ExperimentId, ExperimentSpec, ExperimentSpecInput, FailureType, Guardrails, RecoveryPolicy,
    Selection, StopCondition, Target, TargetId, TargetKind,
};
use test_support::{aws, common};

async fn table() -> (aws_sdk_dynamodb::Client, String) {
    let client = aws::dynamodb();
    let name = aws::unique("Events");
    create_events_table(&client, &name)
        .await
        .expect("create table");
    (client, name)
}

fn store(client: &aws_sdk_dynamodb::Client, table: &str) -> DynamoStore {
    DynamoStore::new(
        repository(client.clone(), table),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
    )
}

async fn items(client: &aws_sdk_dynamodb::Client, table: &str) -> i32 {
    client
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("scan")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_is_stored_as_dynamo_es_expects_and_its_chain_verifies() {
    let (client, table) = table().await;
    let store = store(&client, &table);
    for (i, command) in lifecycle("exp-1", 4).into_iter().enumerate() {
        store
            .execute::<Experiment>("exp-1", command, &context(&format!("c{i}")))
            .await
            .expect("accepted");
    }
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "AggregateTypeAndId",
            aws_sdk_dynamodb::types::AttributeValue::S("Experiment:exp-1".into()),
        )
        .key(
            "AggregateIdSequence",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .send()
        .await
        .expect("get item")
        .item
        .expect("event 1 stored");
    assert_eq!(item["EventType"].as_s().expect("type"), "ExperimentCreated");
    let payload = item["Payload"].as_b().expect("binary payload");
    assert!(
        std::str::from_utf8(payload.as_ref())
            .expect("utf-8")
            .starts_with("{\"ExperimentCreated\":")
    );

    let report = verify_table(&client, &table).await.expect("verify");
    assert!(report.is_ok(), "{:?}", report.faults);
    assert_eq!((report.events, report.streams), (14, 1));
    // A fresh node (empty cache) loads the same state.
    let loaded = self::store(&client, &table)
        .load::<Experiment>("exp-1")
        .await
        .expect("load");
    assert_eq!(loaded.version, 14);
    assert_eq!(loaded.aggregate.status(), Status::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_two_nodes_leave_one_winner_per_version_and_no_gap() {
    let (client, table) = table().await;
    let nodes = [
        Arc::new(store(&client, &table)),
        Arc::new(store(&client, &table)),
    ];
    let commands = Arc::new(lifecycle("hot", 30));
    let mut writers = Vec::new();
    for w in 0..6 {
        let node = Arc::clone(&nodes[w % 2]);
        let commands = Arc::clone(&commands);
        writers.push(tokio::spawn(async move {
            for (i, command) in commands.iter().enumerate() {
                let outcome = node
                    .execute::<Experiment>("hot", command.clone(), &context(&format!("cmd-{i}")))
                    .await
                    .unwrap_or_else(|e| panic!("writer {w}, command {i}: {e}"));
                assert_eq!(outcome.events[0].sequence, i + 1);
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    assert_eq!(items(&client, &table).await, 40);
    let report = verify_table(&client, &table).await.expect("verify");
    assert!(report.is_ok(), "{:?}", report.faults);

    // Different command ids racing for one transition: exactly one wins.
    let racers: Vec<_> = (0..6)
        .map(|r| {
            let node = Arc::clone(&nodes[r % 2]);
            tokio::spawn(async move {
                node.execute::<Experiment>(
                    "hot",
                    ExperimentCommand::ArchiveExperiment { at: at(500) },
                    &context(&format!("archive-{r}")),
                )
                .await
            })
        })
        .collect();
    let mut won = 0;
    for r in racers {
        match r.await.expect("racer") {
            Ok(_) => won += 1,
            Err(StoreError::Rejected(ExperimentError::Archived)) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(items(&client, &table).await, 41);
}

#[tokio::test]
async fn a_rejected_command_writes_nothing_and_a_retried_one_is_not_appended_twice() {
    let (client, table) = table().await;
    let first_node = store(&client, &table);
    let commands = lifecycle("e", 0);
    first_node
        .execute::<Experiment>("e", commands[0].clone(), &context("create"))
        .await
        .expect("create");
    let err = first_node
        .execute::<Experiment>("e", commands[7].clone(), &context("inject-early"))
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::Rejected(_)));
    assert_eq!(items(&client, &table).await, 1);

    let first = first_node
        .execute::<Experiment>("e", commands[1].clone(), &context("start"))
        .await
        .expect("start");
    // The response was lost; the client retries through another node with the same id.
    let retried = store(&client, &table)
        .execute::<Experiment>("e", commands[1].clone(), &context("start"))
        .await
        .expect("answered from the log");
    assert!(retried.deduplicated);
    assert_eq!(retried.events, first.events);
    assert_eq!(items(&client, &table).await, 2);
}

/// Widest characters a text field accepts: four UTF-8 bytes each.
fn wide(chars: usize) -> String {
    std::iter::repeat_n('\u{1F600}', chars).collect()
}

fn worst_spec() -> ExperimentSpec {
    let input = ExperimentSpecInput {
        name: wide(MAX_NAME_CHARS),
        description: wide(MAX_DESCRIPTION_CHARS),
        target: Target {
            kind: TargetKind::AutoScalingGroup,
            group: wide(MAX_GROUP_CHARS),
        },
        selection: Selection::All,
        max_targets: HARD_TARGET_CAP,
        failure: FailureType::Pause {
            duration_secs: 3_600,
        },
        dry_run: false,
        guardrails: Guardrails {
            stop_conditions: (0..MAX_STOP_CONDITIONS)
                .map(|i| StopCondition::Alarm {
                    alarm_name: format!("{}{i}", wide(254)),
                })
                .collect(),
            max_duration_secs: 14_400,
        },
        recovery: RecoveryPolicy {
            timeout_secs: 1_900,
            poll_interval_secs: 10,
            baseline_samples: 10,
        },
    };
    // Pausing a group's instances is refused today, but specs stored before that rule hold
    // it and stay on record: read back from the stored shape, the largest a store can hold.
    let stored = serde_json::to_value(input).expect("serializes");
    serde_json::from_value(stored).expect("the largest spec on record")
}

/// The longest stream the domain allows, every field at its largest, written through the
/// store and loaded back whole by a node with an empty cache.
#[tokio::test]
async fn an_experiment_at_its_maximum_event_count_loads_whole() {
    use ExperimentCommand as C;
    let (client, table) = table().await;
    let node = store(&client, &table);
    let id = "x".repeat(domain::limits::MAX_ID_CHARS);
    let spec = worst_spec();
    let alarm = spec.guardrails().stop_conditions[0].clone();
    let targets: Vec<TargetId> = (0..HARD_TARGET_CAP)
        .map(|n| {
            TargetId::parse(format!("i-{n:0width$}", width = MAX_TARGET_ID_CHARS - 2))
                .expect("target")
        })
        .collect();
    let health = HealthSnapshot {
        healthy: u32::MAX,
        total: u32::MAX,
        latency_p95_ms: u32::MAX,
        error_rate_bp: 10_000,
    };
    let mut t = 0;
    let mut next = || {
        t += 1;
        at(t)
    };
    let mut commands = vec![C::CreateExperiment {
        id: ExperimentId::parse(id.clone()).expect("id"),
        spec,
        at: next(),
    }];
    for i in 0..MAX_SCHEDULES {
        commands.push(C::ScheduleExperiment {
            start_at: at(1_000_000 + i64::from(i)),
            at: next(),
        });
    }
    commands.push(C::StartExperiment {
        gate: PlatformGate {
            halted: None,
            max_targets_per_run: HARD_TARGET_CAP,
            max_duration_secs: 14_400,
            blackout: None,
        },
        at: next(),
    });
    commands.push(C::ResolveTargets {
        candidates: HARD_TARGET_CAP,
        targets: targets.clone(),
        at: next(),
    });
    for _ in 0..10 {
        commands.push(C::RecordHealthCheck { health, at: next() });
    }
    commands.push(C::RecordBaseline { health, at: next() });
    commands.push(C::InjectFailure {
        targets,
        at: next(),
    });
    for _ in 10..MAX_HEALTH_SAMPLES {
        commands.push(C::RecordHealthCheck { health, at: next() });
    }
    commands.push(C::ObserveRecovery { health, at: next() });
    commands.push(C::TripStopCondition {
        condition: alarm,
        detail: wide(MAX_TEXT_CHARS),
        at: next(),
    });
    commands.push(C::RecordRollback {
        detail: wide(MAX_TEXT_CHARS),
        at: next(),
    });
    commands.push(C::MarkStopped { at: next() });
    commands.push(C::ArchiveExperiment { at: next() });
    for (i, command) in commands.into_iter().enumerate() {
        node.execute::<Experiment>(
            &id,
            command,
            &context(&format!("{}-{i:03}", "w".repeat(100))),
        )
        .await
        .unwrap_or_else(|e| panic!("command {i}: {e}"));
    }

    let loaded = store(&client, &table)
        .load::<Experiment>(&id)
        .await
        .expect("load");
    assert_eq!(loaded.version, 220, "every event came back in one load");
    assert_eq!(loaded.aggregate.status(), Status::Stopped);
    assert!(loaded.aggregate.is_archived());
    let report = verify_table(&client, &table).await.expect("verify");
    assert!(report.is_ok(), "{:?}", report.faults);
    assert_eq!(report.events, 220);
}
