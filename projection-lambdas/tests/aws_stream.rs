//! The DynamoDB Streams projection against a local moto server: events are written through
//! the real event store (dynamo-es), the real stream records are read back with the DynamoDB
//! Streams API, turned into the Lambda event JSON and fed to `handle` in-process, as Lambda
//! would: in order, again shuffled and duplicated, with gaps, with poison, concurrently.

use std::sync::Arc;

use command_lambdas::clock::{SystemClock, UuidV7};
use command_lambdas::dynamo::{DynamoStore, create_events_table, repository};
use common::{context, lifecycle};
use domain::experiment::{Experiment, Status};
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::ExperimentRecord;
use domain::views::results::{RunOutcome, RunTracker};
use domain::views::{AnyEvent, Envelope};
use projection_lambdas::dynamo_stream::{
    Checkpoints, ViewStore, create_views_table, decode_record, handle,
};
use projection_lambdas::plan::StreamKey;
use serde_json::{Value, json};
use streams::{event, stream_records};
use test_support::{aws, common, streams};

struct Setup {
    views: ViewStore,
    /// The stream records, in the order the stream gave them, as Lambda event JSON.
    records: Vec<Value>,
}

/// Writes full lifecycles of `experiments` (id, health checks) and returns the stream.
async fn setup(experiments: &[(&str, usize)]) -> Setup {
    let client = aws::dynamodb();
    let events = aws::unique("Events");
    create_events_table(&client, &events)
        .await
        .expect("events table");
    let views_table = aws::unique("Views");
    create_views_table(&client, &views_table)
        .await
        .expect("views table");
    let store = DynamoStore::new(
        repository(client.clone(), &events),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
    );
    for (id, checks) in experiments {
        for (i, command) in lifecycle(id, *checks).into_iter().enumerate() {
            store
                .execute::<Experiment>(id, command, &context(&format!("{id}-{i}")))
                .await
                .expect("accepted");
        }
    }
    let records = stream_records(&client, &events).await;
    let total: usize = experiments.iter().map(|(_, c)| 10 + c).sum();
    assert_eq!(records.len(), total, "one stream record per event");
    Setup {
        views: ViewStore::new(client, views_table),
        records,
    }
}

async fn failures(views: &ViewStore, records: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = handle(views, event(records))
        .await
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.expect("identifier"))
        .collect();
    ids.sort();
    ids
}

fn key(id: &str) -> StreamKey {
    StreamKey {
        aggregate_type: "Experiment".into(),
        aggregate_id: id.into(),
    }
}

fn seq_number(record: &Value) -> String {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .expect("sequence number")
        .to_owned()
}

fn stream_of(record: &Value) -> (String, i64) {
    let image = &record["dynamodb"]["NewImage"];
    (
        image["AggregateId"]["S"].as_str().expect("id").to_owned(),
        image["AggregateIdSequence"]["N"]
            .as_str()
            .expect("sequence")
            .parse()
            .expect("number"),
    )
}

/// The envelopes of one stream, in sequence order, decoded from the records.
fn envelopes(records: &[Value], id: &str) -> Vec<Envelope> {
    let mut out: Vec<Envelope> = event(records)
        .records
        .iter()
        .map(|r| decode_record(r).expect("decodes"))
        .filter(|r| r.aggregate_id == id)
        .map(|r| Envelope::decode(r.raw()).expect("envelope"))
        .collect();
    out.sort_by_key(|e| e.sequence);
    out
}

/// Read models in DynamoDB equal what the reducers give for the same events.
async fn assert_matches_reducers(views: &ViewStore, records: &[Value], id: &str) {
    let envelopes = envelopes(records, id);
    let mut record = None;
    let mut tracker = RunTracker::default();
    let mut result = None;
    for e in &envelopes {
        if let AnyEvent::Experiment(ev) = &e.event {
            record = Some(ExperimentRecord::apply(record, e, ev));
            result = tracker.apply(id, ev).or(result);
        }
    }
    assert_eq!(views.experiment(id).await.expect("record"), record);
    assert_eq!(views.result(id).await.expect("result"), result);
    let entries: Vec<AuditEntry> = envelopes.iter().map(AuditEntry::from_envelope).collect();
    assert_eq!(views.audit_entries(&key(id)).await.expect("audit"), entries);
}

async fn checkpoints(views: &ViewStore, id: &str) -> Checkpoints {
    views.checkpoints(&key(id)).await.expect("checkpoints")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_order_then_shuffled_and_duplicated_applies_every_event_once() {
    let Setup { views, records } = setup(&[("exp-a", 2), ("exp-b", 3), ("exp-c", 0)]).await;

    // (a) in order, in two batches as Lambda might cut them.
    let (first, second) = records.split_at(records.len() / 2);
    assert_eq!(failures(&views, first).await, Vec::<String>::new());
    assert_eq!(failures(&views, second).await, Vec::<String>::new());
    for (id, events) in [("exp-a", 12u64), ("exp-b", 13), ("exp-c", 10)] {
        let record = views.experiment(id).await.expect("read").expect("record");
        assert_eq!(record.state.status(), Status::Completed);
        assert_eq!(record.version, events);
        let result = views.result(id).await.expect("read").expect("result");
        assert_eq!(result.outcome, RunOutcome::Recovered);
        assert!(result.recovery_ms.is_some());
        assert_eq!(
            views.audit_entries(&key(id)).await.expect("audit").len() as u64,
            events
        );
        assert_eq!(checkpoints(&views, id).await, [events; 3]);
        assert_matches_reducers(&views, &records, id).await;
    }

    // (b) everything again, duplicated and shuffled, in several batches: nothing changes.
    let mut again: Vec<Value> = records.iter().chain(records.iter()).cloned().collect();
    fastrand::Rng::with_seed(7).shuffle(&mut again);
    for batch in again.chunks(9) {
        assert_eq!(failures(&views, batch).await, Vec::<String>::new());
    }
    for (id, events) in [("exp-a", 12u64), ("exp-b", 13), ("exp-c", 10)] {
        assert_eq!(
            views.audit_entries(&key(id)).await.expect("audit").len() as u64,
            events
        );
        assert_eq!(checkpoints(&views, id).await, [events; 3]);
        assert_matches_reducers(&views, &records, id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_first_delivery_applies_in_order_once_retried() {
    let Setup { views, records } = setup(&[("exp-s", 4)]).await;
    let mut shuffled = records.clone();
    fastrand::Rng::with_seed(3).shuffle(&mut shuffled);
    // Small batches out of order: whatever fails is delivered again, as Lambda would.
    let mut pending = shuffled;
    for _ in 0..20 {
        let mut failed = Vec::new();
        for batch in pending.chunks(4) {
            let ids = failures(&views, batch).await;
            failed.extend(
                batch
                    .iter()
                    .filter(|r| ids.contains(&seq_number(r)))
                    .cloned(),
            );
        }
        pending = failed;
        if pending.is_empty() {
            break;
        }
    }
    assert!(pending.is_empty(), "every record is applied in the end");
    assert_eq!(checkpoints(&views, "exp-s").await, [14; 3]);
    assert_matches_reducers(&views, &records, "exp-s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_holds_back_its_stream_only_until_the_withheld_record_arrives() {
    let Setup { views, records } = setup(&[("exp-g", 2), ("exp-h", 1)]).await;
    let withheld_at = records
        .iter()
        .position(|r| stream_of(r) == ("exp-g".into(), 5))
        .expect("record 5");
    let withheld = records[withheld_at].clone();
    let rest: Vec<Value> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != withheld_at)
        .map(|(_, r)| r.clone())
        .collect();

    // (c) exp-g's records after 5 fail; exp-h is applied whole.
    let mut expected: Vec<String> = rest
        .iter()
        .filter(|r| {
            let (id, seq) = stream_of(r);
            id == "exp-g" && seq > 5
        })
        .map(seq_number)
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 7);
    assert_eq!(failures(&views, &rest).await, expected);
    assert_eq!(checkpoints(&views, "exp-g").await, [4; 3]);
    assert_eq!(
        views
            .audit_entries(&key("exp-g"))
            .await
            .expect("audit")
            .len(),
        4
    );
    assert_eq!(checkpoints(&views, "exp-h").await, [11; 3]);
    assert_matches_reducers(&views, &records, "exp-h").await;

    // The withheld record arrives, then Lambda retries the failed ones.
    assert_eq!(
        failures(&views, std::slice::from_ref(&withheld)).await,
        Vec::<String>::new()
    );
    assert_eq!(checkpoints(&views, "exp-g").await, [5; 3]);
    let retried: Vec<Value> = rest
        .iter()
        .filter(|r| expected.contains(&seq_number(r)))
        .cloned()
        .collect();
    assert_eq!(failures(&views, &retried).await, Vec::<String>::new());
    assert_eq!(checkpoints(&views, "exp-g").await, [12; 3]);
    let record = views
        .experiment("exp-g")
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record.state.status(), Status::Completed);
    assert_matches_reducers(&views, &records, "exp-g").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_reported_and_the_others_applied() {
    let Setup { views, records } = setup(&[("exp-p", 1)]).await;
    let poison = |id: &str, seq_number: &str, payload: Value| {
        let mut r = records[0].clone();
        let image = &mut r["dynamodb"]["NewImage"];
        image["AggregateTypeAndId"] = json!({ "S": format!("Experiment:{id}") });
        image["AggregateId"] = json!({ "S": id });
        image["Payload"] = payload;
        r["dynamodb"]["SequenceNumber"] = json!(seq_number);
        r["eventID"] = json!(format!("poison-{id}"));
        r
    };
    let mut batch = records.clone();
    // Bytes that are not UTF-8 ("/w==" is 0xff), JSON that is no event, no image at all.
    batch.insert(
        3,
        poison("ghost-1", "900000000000000000001", json!({ "B": "/w==" })),
    );
    batch.insert(
        5,
        poison(
            "ghost-2",
            "900000000000000000002",
            json!({ "B": "bm90IGpzb24=" }),
        ),
    );
    let mut empty = records[0].clone();
    empty["dynamodb"]["NewImage"] = json!({});
    empty["dynamodb"]["SequenceNumber"] = json!("900000000000000000003");
    batch.push(empty);

    assert_eq!(
        failures(&views, &batch).await,
        vec![
            "900000000000000000001".to_owned(),
            "900000000000000000002".to_owned(),
            "900000000000000000003".to_owned(),
        ]
    );
    assert_eq!(checkpoints(&views, "exp-p").await, [11; 3]);
    assert_matches_reducers(&views, &records, "exp-p").await;
    assert_eq!(checkpoints(&views, "ghost-2").await, [0; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_invocations_apply_each_event_once() {
    let Setup { views, records } = setup(&[("exp-x", 3), ("exp-y", 3)]).await;
    let mut shuffled = records.clone();
    fastrand::Rng::with_seed(11).shuffle(&mut shuffled);
    // A loser may give up on a contended stream (and report its records), but never applies
    // anything twice; a redelivery then finds everything applied.
    let _ = tokio::join!(
        failures(&views, &records),
        failures(&views, &records),
        failures(&views, &shuffled),
    );
    assert_eq!(failures(&views, &records).await, Vec::<String>::new());
    for id in ["exp-x", "exp-y"] {
        assert_eq!(checkpoints(&views, id).await, [13; 3]);
        assert_matches_reducers(&views, &records, id).await;
    }
}

/// The AWS housekeeping reads the scheduled and running experiments from this table's
/// `ByStatus` index: scheduled starts and recurring schedules fire once, a run whose execution
/// was never started gets one, and a run whose execution ended is ended.
///
/// One long test because each case is a state the cases before left in the table.
#[tokio::test]
async fn housekeeping_reads_the_status_index_and_keeps_runs_and_executions_in_step() {
    use command_lambdas::housekeeping::Housekeeping;
    use command_lambdas::scheduler::{Fired, occurrence_id};
    use command_lambdas::service::ExperimentService;
    use command_lambdas::sfn::{ExecutionEnd, StepFunctions};
    use domain::platform::{PlatformBook, PlatformCommand};
    use domain::spec::ScheduleId;

    let client = aws::dynamodb();
    let events = aws::unique("Events");
    create_events_table(&client, &events)
        .await
        .expect("events table");
    let views_table = aws::unique("Views");
    create_views_table(&client, &views_table)
        .await
        .expect("views table");
    let store = Arc::new(DynamoStore::new(
        repository(client.clone(), &events),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
    ));
    let service = ExperimentService::new(store.clone(), Arc::new(SystemClock));
    let sfn = aws::client!(aws_sdk_sfn);
    let machine = sfn
        .create_state_machine()
        .name(aws::unique("experiment"))
        .definition(
            json!({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": true}}})
                .to_string(),
        )
        .role_arn("arn:aws:iam::123456789012:role/chaos-workflow")
        .send()
        .await
        .expect("state machine")
        .state_machine_arn()
        .to_owned();
    let workflow = StepFunctions::new(sfn.clone(), machine);

    let now = domain::Timestamp::from_datetime(chrono::Utc::now());
    let input = || -> domain::spec::ExperimentSpecInput {
        serde_json::from_value(serde_json::to_value(common::spec()).expect("json")).expect("input")
    };
    // A one-shot start due in a minute, a run never given its execution, a run whose execution
    // was aborted, and a recurring schedule every minute.
    for id in ["later", "orphan", "aborted"] {
        service
            .create(id, input(), &context(&format!("create-{id}")))
            .await
            .expect("create");
    }
    let due = domain::Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::minutes(1));
    service
        .schedule("later", due, &context("schedule-later"))
        .await
        .expect("schedule");
    for id in ["orphan", "aborted"] {
        service
            .start(id, &context(&format!("start-{id}")))
            .await
            .expect("start");
    }
    use command_lambdas::adapters::WorkflowEngine;
    workflow
        .start("aborted", &json!({"experimentId": "aborted"}))
        .await
        .expect("execution");
    sfn.stop_execution()
        .execution_arn(workflow.execution_arn("aborted"))
        .error("Lambda.Unknown")
        .cause("the account ran out of concurrency")
        .send()
        .await
        .expect("abort");
    store
        .execute_in_ledger::<PlatformBook>(
            "schedules",
            PlatformCommand::AddSchedule {
                id: ScheduleId::parse("minutely").expect("id"),
                cron: "* * * * *".into(),
                time_zone: "UTC".into(),
                spec: common::spec(),
                at: now,
            },
            &context("add-schedule"),
        )
        .await
        .expect("schedule added");
    let views = ViewStore::new(client.clone(), &views_table);
    assert!(
        failures(&views, &stream_records(&client, &events).await)
            .await
            .is_empty()
    );

    let housekeeping = Housekeeping::new(
        service.clone(),
        workflow.clone(),
        client.clone(),
        &views_table,
    );
    let mut scheduled = housekeeping
        .in_status(Status::Scheduled)
        .await
        .expect("index");
    scheduled.sort();
    assert_eq!(scheduled, ["later"]);
    let mut running = housekeeping
        .in_status(Status::Running)
        .await
        .expect("index");
    running.sort();
    assert_eq!(running, ["aborted", "orphan"]);

    // Two minutes on: the one-shot start is due, and the schedule's minute has come.
    let later = domain::Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::minutes(2));
    let report = housekeeping.run(later).await.expect("housekeeping");
    let mut started: Vec<String> = report
        .fired
        .iter()
        .filter_map(|f| match f {
            Fired::Started { experiment, .. } => Some(experiment.clone()),
            _ => None,
        })
        .collect();
    started.sort();
    use chrono::Timelike;
    let occurrence = later
        .to_datetime()
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("minute");
    let minutely = occurrence_id("minutely", domain::Timestamp::from_datetime(occurrence));
    assert_eq!(started, ["later".to_owned(), minutely.clone()]);
    assert_eq!(report.started_executions, ["orphan"]);
    assert_eq!(report.ended, ["aborted"]);
    for id in ["later", minutely.as_str(), "orphan"] {
        assert_eq!(
            workflow.execution(id).await.expect("describe"),
            Some(ExecutionEnd::Running),
            "{id} has its execution"
        );
        assert_eq!(
            service.load(id).await.expect("load").aggregate.status(),
            Status::Running
        );
    }
    let aborted = service.load("aborted").await.expect("load");
    assert_eq!(aborted.aggregate.status(), Status::Failed);
    let last = aborted.events.last().expect("events");
    assert!(
        serde_json::to_string(&last.event)
            .expect("json")
            .contains("RUNNER_LOST"),
        "{:?}",
        last.event
    );

    // Again, with the read models brought up to date: nothing more to do.
    assert!(
        failures(&views, &stream_records(&client, &events).await)
            .await
            .is_empty()
    );
    let again = housekeeping.run(later).await.expect("housekeeping");
    assert!(again.fired.is_empty(), "{:?}", again.fired);
    assert!(again.started_executions.is_empty() && again.ended.is_empty());
    assert!(again.past_limit.is_empty(), "{:?}", again.past_limit);

    // Hours on, with no workflow stepping: every run still running is past its time limit,
    // and counted for the alarm.
    let hours_on =
        domain::Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::hours(3));
    let stuck = housekeeping.run(hours_on).await.expect("housekeeping");
    for id in ["later", minutely.as_str(), "orphan"] {
        assert!(
            stuck.past_limit.iter().any(|p| p == id),
            "{id} is not counted: {:?}",
            stuck.past_limit
        );
    }
    let line: Value = serde_json::from_str(&command_lambdas::housekeeping::metric_line(
        &stuck, hours_on,
    ))
    .expect("JSON");
    assert_eq!(line["RunsPastLimit"], stuck.past_limit.len());
}
