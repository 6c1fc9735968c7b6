//! The event publisher: the Lambda on the `Events` table's DynamoDB Stream that puts every
//! domain event on an EventBridge bus, for notifications and integrations.
//!
//! Each `INSERT` record is decoded ([`decode_record`], then [`Envelope::decode`]) and becomes
//! one EventBridge entry: source [`SOURCE`] (`chaos.platform`), detail type the event type
//! (`ExperimentCompleted`), and a detail in the versioned schema built by [`detail`] and
//! specified for consumers in `docs/EVENTS.md`. Entries are sent with `PutEvents` in calls of
//! at most [`MAX_ENTRIES`] entries and [`MAX_CALL_BYTES`] bytes.
//!
//! Delivery is **at least once**: a record whose entry failed (the call failed, or EventBridge
//! rejected that entry with an `ErrorCode`) is reported in `batch_item_failures`, and Lambda
//! then delivers it again together with the records after it in its shard, so events already
//! published are published again. DynamoDB Streams may also deliver a record twice. Consumers
//! must deduplicate by `detail.event_id`. Order is not guaranteed either (EventBridge does not
//! keep it): consumers that need it order by `detail.sequence` per `detail.aggregate_id`.
//!
//! Poison records (that do not decode) are reported too and never published. Nothing here
//! panics on a bad record, and this module never writes to the events table.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use domain::views::{DecodeError, Envelope};
use serde_json::{Value, json};

use crate::dynamo_stream::{StreamError, decode_record};
use crate::plan::FeedRecord;

/// The `source` of every entry.
pub const SOURCE: &str = "chaos.platform";

/// The version of the detail schema; bumped on any change that is not a pure addition.
pub const SCHEMA_VERSION: u32 = 1;

/// Entries per `PutEvents` call (the API's limit).
pub const MAX_ENTRIES: usize = 10;

/// Bytes per `PutEvents` call (the API's limit is 256 KiB, counted per entry as the UTF-8
/// lengths of source, detail type, detail and bus name plus 14 for the time).
pub const MAX_CALL_BYTES: usize = 256 * 1024;

/// Why a record was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The stream record does not decode into a stored event.
    #[error("stream record: {0}")]
    Record(#[from] StreamError),
    /// The stored event does not decode.
    #[error("stored event: {0}")]
    Event(#[from] DecodeError),
    /// The stored payload is not JSON (cannot happen after a successful decode).
    #[error("payload JSON: {0}")]
    Payload(String),
    /// The entry alone is larger than one `PutEvents` call may be.
    #[error("entry of {0} bytes exceeds the PutEvents limit")]
    TooLarge(usize),
    /// The `PutEvents` call failed as a whole.
    #[error("PutEvents: {0}")]
    Api(String),
    /// EventBridge rejected this entry.
    #[error("entry rejected: {code}: {message}")]
    Rejected {
        /// EventBridge's `ErrorCode`.
        code: String,
        /// EventBridge's `ErrorMessage`.
        message: String,
    },
}

/// The bus events are put on: a client and the bus name.
#[derive(Debug, Clone)]
pub struct EventBus {
    client: Client,
    name: String,
}

impl EventBus {
    /// The bus `name` (a name or an ARN), reached with `client`.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    /// The bus name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The detail of one event, schema version [`SCHEMA_VERSION`] (see `docs/EVENTS.md`).
///
/// `event` is the stored payload's body: the object inside its one-key wrapper
/// (`{"ExperimentCompleted": {...}}` gives `{...}`), exactly as stored.
pub fn detail(record: &FeedRecord<String>, envelope: &Envelope) -> Result<Value, PublishError> {
    let payload: Value =
        serde_json::from_str(&record.payload).map_err(|e| PublishError::Payload(e.to_string()))?;
    let event_type = envelope.event_type();
    let body = match payload {
        Value::Object(mut map) if map.len() == 1 && map.contains_key(&event_type) => {
            map.remove(&event_type).unwrap_or(Value::Null)
        }
        other => other,
    };
    let m = &envelope.metadata;
    Ok(json!({
        "schema_version": SCHEMA_VERSION,
        "aggregate_type": envelope.aggregate_type,
        "aggregate_id": envelope.aggregate_id,
        "sequence": envelope.sequence,
        "event_type": event_type,
        "event_version": record.event_version,
        "event_id": m.event_id,
        "command_id": m.command_id,
        "correlation_id": m.correlation_id,
        "actor": m.actor,
        "actor_role": m.actor_role,
        "source": m.source,
        "recorded_at": m.recorded_at,
        "at": envelope.at().to_string(),
        "summary": envelope.describe(),
        "hash": m.hash,
        "event": body,
    }))
}

/// One entry ready to send, with the record it came from and its size as EventBridge counts it.
#[derive(Debug)]
struct Pending {
    id: String,
    entry: PutEventsRequestEntry,
    size: usize,
}

fn entry(bus: &EventBus, record: &EventRecord) -> Result<Pending, PublishError> {
    let feed = decode_record(record)?;
    let envelope = Envelope::decode(feed.raw())?;
    let detail = detail(&feed, &envelope)?.to_string();
    let detail_type = envelope.event_type();
    let size = SOURCE.len() + detail_type.len() + detail.len() + bus.name.len() + 14;
    if size > MAX_CALL_BYTES {
        return Err(PublishError::TooLarge(size));
    }
    let entry = PutEventsRequestEntry::builder()
        .source(SOURCE)
        .detail_type(detail_type)
        .detail(detail)
        .event_bus_name(&bus.name)
        .time(DateTime::from_millis(
            envelope.at().to_datetime().timestamp_millis(),
        ))
        .build();
    Ok(Pending {
        id: feed.id,
        entry,
        size,
    })
}

/// Cuts entries into calls of at most [`MAX_ENTRIES`] entries and [`MAX_CALL_BYTES`] bytes,
/// keeping their order.
fn calls(pending: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut out: Vec<Vec<Pending>> = Vec::new();
    let mut bytes = 0;
    for p in pending {
        match out.last_mut() {
            Some(call) if call.len() < MAX_ENTRIES && bytes + p.size <= MAX_CALL_BYTES => {
                bytes += p.size;
                call.push(p);
            }
            _ => {
                bytes = p.size;
                out.push(vec![p]);
            }
        }
    }
    out
}

/// Sends one call; returns, per entry that was not accepted, its record id and why.
async fn send(bus: &EventBus, call: Vec<Pending>) -> Vec<(String, PublishError)> {
    let (ids, entries): (Vec<String>, Vec<PutEventsRequestEntry>) =
        call.into_iter().map(|p| (p.id, p.entry)).unzip();
    let output = match bus
        .client
        .put_events()
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(output) => output,
        Err(e) => {
            let reason = DisplayErrorContext(e).to_string();
            return ids
                .into_iter()
                .map(|id| (id, PublishError::Api(reason.clone())))
                .collect();
        }
    };
    rejected(ids, &output)
}

/// The entries of a call that EventBridge did not accept, by record id: result entries are
/// in request order, one without an event id or with an `ErrorCode` failed, and a missing
/// result entry counts as failed.
fn rejected(ids: Vec<String>, output: &PutEventsOutput) -> Vec<(String, PublishError)> {
    if output.failed_entry_count == 0 && output.entries().len() == ids.len() {
        return Vec::new();
    }
    ids.into_iter()
        .enumerate()
        .filter_map(|(i, id)| match output.entries().get(i) {
            Some(r) if r.event_id().is_some() && r.error_code().is_none() => None,
            Some(r) => Some((
                id,
                PublishError::Rejected {
                    code: r.error_code().unwrap_or("Unknown").to_owned(),
                    message: r.error_message().unwrap_or_default().to_owned(),
                },
            )),
            None => Some((
                id,
                PublishError::Rejected {
                    code: "MissingResult".to_owned(),
                    message: "PutEvents returned fewer results than entries".to_owned(),
                },
            )),
        })
        .collect()
}

/// The id Lambda needs to retry a record: its `SequenceNumber`, or its event id without one.
fn failure_id(record: &EventRecord) -> String {
    record
        .change
        .sequence_number
        .clone()
        .unwrap_or_else(|| record.event_id.clone())
}

fn response(ids: Vec<String>) -> DynamoDbEventResponse {
    // The response types are `#[non_exhaustive]`: they can only be built from `Default`.
    let mut seen = std::collections::HashSet::new();
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = ids
        .into_iter()
        .filter(|id| seen.insert(id.clone()))
        .map(|id| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(id);
            failure
        })
        .collect();
    response
}

/// Publishes every `INSERT` record of one stream batch and reports each record not published
/// (poison, rejected, or in a failed call) as a batch item failure. Other records (`MODIFY`,
/// `REMOVE`) are acknowledged and ignored: the log is append-only.
pub async fn publish(bus: &EventBus, event: Event) -> DynamoDbEventResponse {
    let mut failed = Vec::new();
    let mut pending = Vec::new();
    for record in &event.records {
        if record.event_name != "INSERT" {
            continue;
        }
        match entry(bus, record) {
            Ok(p) => pending.push(p),
            Err(e) => {
                tracing::warn!(error = %e, event_id = %record.event_id, "record not published");
                failed.push(failure_id(record));
            }
        }
    }
    for call in calls(pending) {
        for (id, e) in send(bus, call).await {
            tracing::warn!(error = %e, record = %id, "entry not published");
            failed.push(id);
        }
    }
    response(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(size: usize) -> Pending {
        Pending {
            id: size.to_string(),
            entry: PutEventsRequestEntry::builder().build(),
            size,
        }
    }

    fn shape(calls: &[Vec<Pending>]) -> Vec<usize> {
        calls.iter().map(Vec::len).collect()
    }

    #[test]
    fn calls_hold_at_most_ten_entries_in_order() {
        let out = calls((1..=23).map(pending).collect());
        assert_eq!(shape(&out), vec![10, 10, 3]);
        let ids: Vec<String> = out.iter().flatten().map(|p| p.id.clone()).collect();
        let expected: Vec<String> = (1..=23).map(|i: usize| i.to_string()).collect();
        assert_eq!(ids, expected);
        assert!(calls(Vec::new()).is_empty());
    }

    #[test]
    fn rejected_entries_are_found_by_position() {
        use aws_sdk_eventbridge::types::PutEventsResultEntry;
        let ok = |id: &str| PutEventsResultEntry::builder().event_id(id).build();
        let ids = || vec!["s1".to_owned(), "s2".to_owned(), "s3".to_owned()];
        let all_ok = PutEventsOutput::builder()
            .failed_entry_count(0)
            .entries(ok("e1"))
            .entries(ok("e2"))
            .entries(ok("e3"))
            .build();
        assert!(rejected(ids(), &all_ok).is_empty());

        let one_failed = PutEventsOutput::builder()
            .failed_entry_count(1)
            .entries(ok("e1"))
            .entries(
                PutEventsResultEntry::builder()
                    .error_code("ThrottlingException")
                    .error_message("slow down")
                    .build(),
            )
            .entries(ok("e3"))
            .build();
        let out = rejected(ids(), &one_failed);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "s2");
        assert_eq!(
            out[0].1.to_string(),
            "entry rejected: ThrottlingException: slow down"
        );

        let short = PutEventsOutput::builder()
            .failed_entry_count(0)
            .entries(ok("e1"))
            .build();
        let ids_short: Vec<String> = rejected(ids(), &short).into_iter().map(|r| r.0).collect();
        assert_eq!(ids_short, vec!["s2".to_owned(), "s3".to_owned()]);
    }

    #[test]
    fn calls_stay_under_the_byte_limit() {
        let big = MAX_CALL_BYTES / 3 + 1;
        let out = calls(vec![pending(big), pending(big), pending(big), pending(10)]);
        assert_eq!(shape(&out), vec![2, 2]);
    }
}
