//! The event publisher against a local moto server: events are written through the real event
//! store (dynamo-es), the real stream records are read back with the DynamoDB Streams API and
//! fed to `publish` in-process as Lambda would; an EventBridge rule on a custom bus routes some
//! detail types to an SQS queue, and the test reads what arrived there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_eventbridge::types::Target;
use aws_sdk_sqs::types::QueueAttributeName;
use command_lambdas::clock::{SystemClock, UuidV7};
use command_lambdas::dynamo::{DynamoStore, create_events_table, repository};
use common::{context, lifecycle};
use domain::experiment::Experiment;
use domain::views::Envelope;
use projection_lambdas::dynamo_stream::decode_record;
use projection_lambdas::publisher::{EventBus, SCHEMA_VERSION, SOURCE, publish};
use serde_json::{Value, json};
use streams::{event, stream_records};
use test_support::{aws, common, streams, template};

/// Full lifecycles of `ids` written through the event store; their stream records.
async fn write_lifecycles(ids: &[&str]) -> Vec<Value> {
    let client = aws::dynamodb();
    let events = aws::unique("Events");
    create_events_table(&client, &events)
        .await
        .expect("events table");
    let store = DynamoStore::new(
        repository(client.clone(), &events),
        Arc::new(SystemClock),
        Arc::new(UuidV7),
    );
    for id in ids {
        for (i, command) in lifecycle(id, 1).into_iter().enumerate() {
            store
                .execute::<Experiment>(id, command, &context(&format!("{id}-{i}")))
                .await
                .expect("accepted");
        }
    }
    let records = stream_records(&client, &events).await;
    assert_eq!(records.len(), ids.len() * 11, "one stream record per event");
    records
}

struct Routed {
    bus: EventBus,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

/// A custom bus with a rule sending `detail_types` from [`SOURCE`] to a new queue.
async fn routed(detail_types: &[&str]) -> Routed {
    routed_by(json!({ "source": [SOURCE], "detail-type": detail_types })).await
}

/// A custom bus with a rule of `pattern` sending to a new queue.
async fn routed_by(pattern: Value) -> Routed {
    let events = aws::client!(aws_sdk_eventbridge);
    let sqs = aws::client!(aws_sdk_sqs);
    let bus_name = aws::unique("chaos-bus");
    events
        .create_event_bus()
        .name(&bus_name)
        .send()
        .await
        .expect("event bus");
    let queue_url = sqs
        .create_queue()
        .queue_name(aws::unique("chaos-events"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("queue url");
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn");
    let rule = "experiment-lifecycle";
    events
        .put_rule()
        .name(rule)
        .event_bus_name(&bus_name)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("rule");
    let put = events
        .put_targets()
        .rule(rule)
        .event_bus_name(&bus_name)
        .targets(
            Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");
    assert_eq!(put.failed_entry_count, 0);
    Routed {
        bus: EventBus::new(events, bus_name),
        sqs,
        queue_url,
    }
}

/// Message bodies from the queue until `expected` arrived (then one more short look, to
/// catch extras) or 20 s passed.
async fn receive(routed: &Routed, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut bodies = Vec::new();
    let mut extra_look = false;
    loop {
        let out = routed
            .sqs
            .receive_message()
            .queue_url(&routed.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for m in out.messages() {
            bodies.push(serde_json::from_str(m.body().expect("body")).expect("JSON body"));
        }
        if bodies.len() >= expected {
            if extra_look && out.messages().is_empty() {
                break;
            }
            extra_look = true;
        }
        if Instant::now() > deadline {
            break;
        }
    }
    bodies
}

async fn failures(bus: &EventBus, records: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = publish(bus, event(records))
        .await
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.expect("identifier"))
        .collect();
    ids.sort();
    ids
}

/// The envelopes and stored payloads of the records, by event id.
fn stored(records: &[Value]) -> HashMap<String, (Envelope, Value)> {
    event(records)
        .records
        .iter()
        .map(|r| {
            let feed = decode_record(r).expect("decodes");
            let envelope = Envelope::decode(feed.raw()).expect("envelope");
            let payload: Value = serde_json::from_str(&feed.payload).expect("payload JSON");
            (envelope.metadata.event_id.clone(), (envelope, payload))
        })
        .collect()
}

/// Each message is the EventBridge envelope of one stored event of `types`, with the detail
/// schema; together they are exactly those events.
fn assert_delivered(messages: &[Value], records: &[Value], bus: &EventBus, types: &[&str]) {
    let stored = stored(records);
    let mut expected: Vec<String> = stored
        .iter()
        .filter(|(_, (e, _))| types.contains(&e.event_type().as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    expected.sort();
    let mut got = Vec::new();
    for m in messages {
        assert_eq!(m["source"], SOURCE);
        let detail = &m["detail"];
        let event_id = detail["event_id"].as_str().expect("event_id").to_owned();
        let (envelope, payload) = stored.get(&event_id).expect("a stored event");
        let event_type = envelope.event_type();
        assert_eq!(m["detail-type"], event_type.as_str());
        let meta = &envelope.metadata;
        let hash = detail["hash"].as_str().expect("hash");
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(
            *detail,
            json!({
                "schema_version": SCHEMA_VERSION,
                "aggregate_type": "Experiment",
                "aggregate_id": envelope.aggregate_id,
                "sequence": envelope.sequence,
                "event_type": event_type,
                "event_version": "1",
                "event_id": meta.event_id,
                "command_id": meta.command_id,
                "correlation_id": meta.correlation_id,
                "actor": meta.actor,
                "actor_role": meta.actor_role,
                "source": meta.source,
                "recorded_at": meta.recorded_at,
                "at": envelope.at().to_string(),
                "summary": envelope.describe(),
                "hash": meta.hash,
                "event": payload[&event_type],
            }),
            "detail of {event_type}"
        );
        assert!(detail["event"]["at"].is_string(), "the payload body");
        got.push(event_id);
    }
    got.sort();
    assert_eq!(got, expected, "exactly the {types:?} events, once each");
    assert!(bus.name().starts_with("chaos-bus"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_and_completed_events_reach_the_rules_queue_with_the_schema() {
    let types = ["ExperimentStarted", "ExperimentCompleted"];
    let records = write_lifecycles(&["pub-a", "pub-b"]).await;
    let routed = routed(&types).await;

    assert_eq!(failures(&routed.bus, &records).await, Vec::<String>::new());

    let messages = receive(&routed, 4).await;
    assert_eq!(messages.len(), 4, "{messages:#?}");
    assert_delivered(&messages, &records, &routed.bus, &types);
    let completed = messages
        .iter()
        .find(|m| m["detail-type"] == "ExperimentCompleted")
        .expect("a completed event");
    assert_eq!(completed["detail"]["event"]["outcome"], "RECOVERED");
    assert!(
        completed["detail"]["summary"]
            .as_str()
            .expect("summary")
            .starts_with("completed: recovered")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_reported_and_the_others_published() {
    let types = ["ExperimentStarted", "ExperimentCompleted"];
    let records = write_lifecycles(&["pub-p", "pub-q"]).await;
    let routed = routed(&types).await;
    let mut batch = records.clone();
    // A record whose payload is JSON but no event, in the middle of the batch.
    let mut poison = records[1].clone();
    poison["dynamodb"]["NewImage"]["Payload"] = json!({ "B": "bm90IGpzb24=" });
    poison["dynamodb"]["SequenceNumber"] = json!("900000000000000000001");
    poison["eventID"] = json!("poison");
    batch.insert(5, poison);
    // A removal is acknowledged and ignored.
    let mut removal = records[0].clone();
    removal["eventName"] = json!("REMOVE");
    removal["dynamodb"]["SequenceNumber"] = json!("900000000000000000002");
    batch.push(removal);

    assert_eq!(
        failures(&routed.bus, &batch).await,
        vec!["900000000000000000001".to_owned()]
    );
    let messages = receive(&routed, 4).await;
    assert_eq!(messages.len(), 4, "{messages:#?}");
    assert_delivered(&messages, &records, &routed.bus, &types);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_call_reports_every_record_of_it() {
    let records = write_lifecycles(&["pub-x"]).await;
    let bus = EventBus::new(aws::client!(aws_sdk_eventbridge), "no-such-bus");
    let mut expected: Vec<String> = records
        .iter()
        .map(|r| {
            r["dynamodb"]["SequenceNumber"]
                .as_str()
                .expect("seq")
                .to_owned()
        })
        .collect();
    expected.sort();
    assert_eq!(failures(&bus, &records).await, expected);
}

/// An EventBridge rule's pattern as the SAM template writes it.
fn template_rule_pattern(rule: &str) -> Value {
    let pattern = template::template()["Resources"][rule]["Properties"]["EventPattern"].clone();
    assert!(pattern.is_object(), "{rule} has no EventPattern");
    pattern
}

/// The template's notification rule, put on a bus as written, sends its topic exactly the
/// runs that ended badly (failed, stopped, or completed without recovering) and halts; not
/// the runs that recovered, dry runs, starts or lifted halts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_templates_notification_rule_passes_exactly_runs_that_ended_badly_and_halts() {
    let routed = routed_by(template_rule_pattern("RunsEndedBadlyRule")).await;
    let at = "2026-11-18T11:06:52.123Z";
    let cases = [
        (
            "ExperimentCompleted",
            json!({"outcome": "RECOVERED", "recovery_ms": 900, "at": at}),
            false,
        ),
        (
            "ExperimentCompleted",
            json!({"outcome": "NOT_RECOVERED", "recovery_ms": null, "at": at}),
            true,
        ),
        (
            "ExperimentCompleted",
            json!({"outcome": "DRY_RUN", "recovery_ms": null, "at": at}),
            false,
        ),
        (
            "ExperimentFailed",
            json!({"reason": {"code": "TASK_ERROR", "message": "x"}, "at": at}),
            true,
        ),
        (
            "ExperimentStopped",
            json!({"cause": "REQUESTED", "at": at}),
            true,
        ),
        ("ExperimentStarted", json!({"at": at}), false),
        (
            "PlatformHalted",
            json!({"reason": "incident 42", "at": at}),
            true,
        ),
        ("HaltLifted", json!({"at": at}), false),
    ];
    let client = aws::client!(aws_sdk_eventbridge);
    for (i, (event_type, payload, _)) in cases.iter().enumerate() {
        let detail = json!({
            "schema_version": SCHEMA_VERSION,
            "aggregate_id": format!("case-{i}"),
            "event_type": event_type,
            "event": payload,
        });
        let put = client
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(routed.bus.name())
                    .source(SOURCE)
                    .detail_type(*event_type)
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("put");
        assert_eq!(put.failed_entry_count, 0);
    }
    let expected: Vec<String> = cases
        .iter()
        .enumerate()
        .filter(|(_, (_, _, passes))| *passes)
        .map(|(i, _)| format!("case-{i}"))
        .collect();
    let messages = receive(&routed, expected.len()).await;
    let mut got: Vec<String> = messages
        .iter()
        .map(|m| {
            m["detail"]["aggregate_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    got.sort();
    assert_eq!(got, expected, "{messages:#?}");
}
