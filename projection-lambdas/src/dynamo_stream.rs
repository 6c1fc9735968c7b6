//! The AWS read side: the projection Lambda for the `Events` table's DynamoDB Stream
//! (`NEW_IMAGE`), and the read models it keeps in one DynamoDB table.
//!
//! DynamoDB Streams deliver **at least once** and order records **per item only**: dynamo-es
//! writes one item per event, so the events of one commit may arrive out of order, twice, or in
//! different invocations, and Lambda may run invocations concurrently or retry them. [`handle`]
//! therefore decodes each record into a [`FeedRecord`], lets [`plan`](crate::plan::plan)
//! drop duplicates, order each stream and hold back gaps and poison records, and applies each
//! stream's contiguous events **exactly once per read model**: per projection and stream a
//! checkpoint item holds the last applied sequence, and every write is one
//! `TransactWriteItems` that moves the checkpoints on with a condition (`Sequence = :expected`,
//! or `attribute_not_exists` at 0) and puts the read-model rows. A cancelled transaction means
//! another invocation got there first: the checkpoints are read again and only what is still
//! missing is applied. Every record not applied (gap, poison, blocked, write error) is
//! returned as a batch item failure, so Lambda delivers it again; nothing here panics on a
//! bad record.
//!
//! # The read-model table
//!
//! One table, partition key `Pk` (S), sort key `Sk` (S), created by [`create_views_table`]
//! (tests, local setups; the SAM template declares the same). Every row of a stream lives in
//! that stream's partition, `Pk = "{aggregate_type}#{aggregate_id}"`:
//!
//! | `Sk` | attributes |
//! |---|---|
//! | `checkpoint#{projection}` | `Sequence` (N): last sequence applied by that projection |
//! | `record` | `Record` (S, [`ExperimentRecord`] JSON), `Summary` (S, its [`ExperimentSummary`](domain::views::experiments::ExperimentSummary) JSON), `Name`, `Status`, `Target`, `Archived` (BOOL), `CreatedAt`, `UpdatedAt`, `Version` (N) |
//! | `tracker` | `State` (S, [`RunTracker`] JSON): the run in progress |
//! | `result` | `Result` (S, [`RunResult`] JSON), `Outcome`, `Day`, `RecoveryMs` (N, when recovered), `Feed = "result"`, `FeedKey` ([`result_feed_key`]) |
//! | `audit#{sequence:010}` | `Entry` (S, the whole [`AuditEntry`] JSON, metadata and chain hashes included), `EventType`, `Actor`, `At`, `Feed = "audit"`, `FeedKey` ([`audit_feed_key`]) |
//!
//! Two indexes, both projecting every attribute:
//!
//! | index | partition, sort | rows | order |
//! |---|---|---|---|
//! | [`BY_STATUS`] | `Status`, `CreatedAt` | `record` | the experiments in a status by creation time |
//! | [`BY_FEED`] | `Feed`, `FeedKey` | `audit#…`, `result` | the whole audit log (`Feed = "audit"`) in the order of the embedded audit log, `(recorded_at, aggregate_id, sequence)`; every finished run (`Feed = "result"`) by `(ended_at, experiment_id)` |
//!
//! The AWS housekeeping (`command_lambdas::housekeeping`) reads [`BY_STATUS`] for the
//! scheduled and running experiments; [`crate::dynamo_queries`] reads both for the API.
//! [`BY_FEED`] has one partition key value per feed, so every audit row (one per event) and
//! every result is written to one index partition: DynamoDB takes about 1,000 writes a second
//! per partition, far above this platform's event rate (runs last minutes, a run writes tens
//! of events). A feed that ever came near it would be split by day (`audit#2026-11-26`).
//!
//! The projections are [`PROJECTIONS`]; the activity feed and webhook outbox are not kept here.
//! This module never writes to the events table.

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem,
};
use domain::experiment::ExperimentEvent;
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::ExperimentRecord;
use domain::views::results::{RunResult, RunTracker};
use domain::views::{AnyEvent, Envelope};
use dynamo_tables::events;
use dynamo_tables::views::{
    AUDIT_FEED, AUDIT_PREFIX, BY_FEED, BY_STATUS, CHECKPOINT_PREFIX, CREATED_AT, FEED, FEED_KEY,
    PK, RECORD, RESULT, RESULT_FEED, SK, STATUS, TRACKER, audit_feed_key, audit_sort_key,
    checkpoint_sort_key, experiment_partition, result_feed_key, stream_partition,
};
use serde_dynamo::AttributeValue as ImageValue;

use crate::plan::{FeedRecord, StreamBatch, StreamKey, plan};

/// The projections kept in DynamoDB, by checkpoint name.
pub const PROJECTIONS: [&str; 3] = ["experiments", "results", "audit_log"];

/// Events applied per transaction. A transaction holds at most 100 items and 4 MB: a chunk
/// writes at most 3 checkpoints, a record, a tracker and a result besides one audit entry
/// per event, and 50 entries of the largest events stay far below 4 MB.
pub const CHUNK_EVENTS: usize = 50;

/// Times a stream is re-read and retried after a cancelled transaction in one invocation.
const MAX_ATTEMPTS: usize = 5;

/// Why a record could not be decoded or a stream could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream record has no `dynamodb.SequenceNumber`.
    #[error("stream record {0} has no SequenceNumber")]
    NoSequenceNumber(String),
    /// An attribute of the new image is missing or has the wrong type.
    #[error("attribute {name}: {problem}")]
    Attribute {
        /// Attribute name.
        name: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// DynamoDB refused or could not be reached.
    #[error("DynamoDB: {0}")]
    Api(String),
    /// A stored read-model row does not decode, or a row does not encode.
    #[error("read model row {key}: {reason}")]
    Row {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Other invocations kept winning the stream's checkpoint.
    #[error("checkpoint of {0} kept moving; retried {MAX_ATTEMPTS} times")]
    Contended(String),
}

fn api<E: std::error::Error>(e: E) -> StreamError {
    StreamError::Api(DisplayErrorContext(e).to_string())
}

fn attribute(name: &'static str, problem: impl Into<String>) -> StreamError {
    StreamError::Attribute {
        name,
        problem: problem.into(),
    }
}

fn image_attr<'a>(
    image: &'a HashMap<String, ImageValue>,
    name: &'static str,
) -> Result<&'a ImageValue, StreamError> {
    image.get(name).ok_or_else(|| attribute(name, "missing"))
}

fn image_string(
    image: &HashMap<String, ImageValue>,
    name: &'static str,
) -> Result<String, StreamError> {
    match image_attr(image, name)? {
        ImageValue::S(s) => Ok(s.clone()),
        _ => Err(attribute(name, "not a string")),
    }
}

/// A JSON column: binary (as dynamo-es writes it) or, tolerated, a string.
fn image_text(
    image: &HashMap<String, ImageValue>,
    name: &'static str,
) -> Result<String, StreamError> {
    match image_attr(image, name)? {
        ImageValue::B(b) => {
            String::from_utf8(b.clone()).map_err(|_| attribute(name, "bytes are not UTF-8"))
        }
        ImageValue::S(s) => Ok(s.clone()),
        _ => Err(attribute(name, "not binary")),
    }
}

/// Decodes one Lambda DynamoDB stream record of the events table into a feed record whose id
/// is the record's `SequenceNumber`. An error makes it a poison record.
pub fn decode_record(record: &EventRecord) -> Result<FeedRecord<String>, StreamError> {
    let id = record
        .change
        .sequence_number
        .clone()
        .ok_or_else(|| StreamError::NoSequenceNumber(record.event_id.clone()))?;
    let image: &HashMap<String, ImageValue> = &record.change.new_image;
    let aggregate_type = image_string(image, "AggregateType")?;
    let aggregate_id = image_string(image, "AggregateId")?;
    let type_and_id = image_string(image, events::PARTITION_KEY)?;
    if type_and_id != events::partition(&aggregate_type, &aggregate_id) {
        return Err(attribute(
            events::PARTITION_KEY,
            format!("{type_and_id:?} disagrees with AggregateType and AggregateId"),
        ));
    }
    let sequence = match image_attr(image, events::SORT_KEY)? {
        ImageValue::N(n) => n
            .parse::<i64>()
            .map_err(|_| attribute(events::SORT_KEY, format!("{n:?} is not an integer")))?,
        _ => return Err(attribute(events::SORT_KEY, "not a number")),
    };
    Ok(FeedRecord {
        id,
        aggregate_type,
        aggregate_id,
        sequence,
        event_type: image_string(image, "EventType")?,
        event_version: image_string(image, "EventVersion")?,
        payload: image_text(image, "Payload")?,
        metadata: image_text(image, "Metadata")?,
    })
}

/// Creates the read-model table (`Pk` S / `Sk` S, on demand, with the [`BY_STATUS`] and
/// [`BY_FEED`] indexes). Tests and local setups use it; in AWS the SAM template declares the
/// same table.
pub async fn create_views_table(client: &Client, table: &str) -> Result<(), StreamError> {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(api)
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(api)
    };
    client
        .create_table()
        .table_name(table)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .attribute_definitions(attribute(PK)?)
        .attribute_definitions(attribute(SK)?)
        .attribute_definitions(attribute(STATUS)?)
        .attribute_definitions(attribute(CREATED_AT)?)
        .attribute_definitions(attribute(FEED)?)
        .attribute_definitions(attribute(FEED_KEY)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(BY_STATUS)
                .key_schema(key(STATUS, KeyType::Hash)?)
                .key_schema(key(CREATED_AT, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(api)?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(BY_FEED)
                .key_schema(key(FEED, KeyType::Hash)?)
                .key_schema(key(FEED_KEY, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(api)?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(api)?;
    Ok(())
}

/// The partition of a stream's rows.
fn partition(key: &StreamKey) -> String {
    stream_partition(&key.aggregate_type, &key.aggregate_id)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A serde enum's name (`"COMPLETED"`), for filterable attributes.
pub(crate) fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn to_json<T: serde::Serialize>(key: &str, value: &T) -> Result<String, StreamError> {
    serde_json::to_string(value).map_err(|e| StreamError::Row {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// Per projection (in [`PROJECTIONS`] order), the last applied sequence of one stream.
pub type Checkpoints = [u64; PROJECTIONS.len()];

/// The read models in DynamoDB (see the module docs for the layout).
#[derive(Debug, Clone)]
pub struct ViewStore {
    client: Client,
    table: String,
}

impl ViewStore {
    /// The store over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StreamError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(api)?
            .item)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        pk: &str,
        sk: &str,
        attr: &str,
    ) -> Result<Option<T>, StreamError> {
        let row_error = |reason: String| StreamError::Row {
            key: format!("{pk}/{sk}"),
            reason,
        };
        let Some(item) = self.get(pk, sk).await? else {
            return Ok(None);
        };
        let text = item
            .get(attr)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| row_error(format!("{attr} is missing")))?;
        serde_json::from_str(text)
            .map(Some)
            .map_err(|e| row_error(e.to_string()))
    }

    /// The stream's checkpoints (0 where a projection has applied nothing), read consistently.
    pub async fn checkpoints(&self, key: &StreamKey) -> Result<Checkpoints, StreamError> {
        let mut out = [0; PROJECTIONS.len()];
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(partition(key)))
            .expression_attribute_values(":prefix", s(CHECKPOINT_PREFIX))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(api)?;
            let sk = item.get(SK).and_then(|v| v.as_s().ok());
            let Some(i) = PROJECTIONS
                .iter()
                .position(|p| sk.is_some_and(|sk| sk.strip_prefix(CHECKPOINT_PREFIX) == Some(p)))
            else {
                continue;
            };
            out[i] = item
                .get("Sequence")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StreamError::Row {
                    key: format!("{}/{}", partition(key), PROJECTIONS[i]),
                    reason: "Sequence is not a number".into(),
                })?;
        }
        Ok(out)
    }

    /// An experiment's record.
    pub async fn experiment(&self, id: &str) -> Result<Option<ExperimentRecord>, StreamError> {
        self.get_json(&experiment_partition(id), RECORD, "Record")
            .await
    }

    /// An experiment's run result, once the run finished.
    pub async fn result(&self, id: &str) -> Result<Option<RunResult>, StreamError> {
        self.get_json(&experiment_partition(id), RESULT, "Result")
            .await
    }

    async fn tracker(&self, id: &str) -> Result<Option<RunTracker>, StreamError> {
        self.get_json(&experiment_partition(id), TRACKER, "State")
            .await
    }

    /// A stream's audit log entries, in sequence order.
    pub async fn audit_entries(&self, key: &StreamKey) -> Result<Vec<AuditEntry>, StreamError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(partition(key)))
            .expression_attribute_values(":prefix", s(AUDIT_PREFIX))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(api)?;
            let text = item.get("Entry").and_then(|v| v.as_s().ok());
            let entry = text
                .and_then(|t| serde_json::from_str(t).ok())
                .ok_or_else(|| StreamError::Row {
                    key: partition(key),
                    reason: "an audit entry does not decode".into(),
                })?;
            out.push(entry);
        }
        Ok(out)
    }

    fn put(&self, item: HashMap<String, AttributeValue>) -> Result<Put, StreamError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(api)
    }

    /// Sends one transaction; `Ok(false)` when it was cancelled (a checkpoint moved).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StreamError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(_)) => Ok(false),
                _ => Err(api(e)),
            },
        }
    }
}

/// Read-model state of one stream, as loaded before applying.
struct Loaded {
    checkpoints: Checkpoints,
    record: Option<ExperimentRecord>,
    tracker: Option<RunTracker>,
}

async fn load(store: &ViewStore, key: &StreamKey) -> Result<Loaded, StreamError> {
    let checkpoints = store.checkpoints(key).await?;
    let experiment = key.aggregate_type == "Experiment";
    Ok(Loaded {
        checkpoints,
        record: if experiment {
            store.experiment(&key.aggregate_id).await?
        } else {
            None
        },
        tracker: if experiment {
            store.tracker(&key.aggregate_id).await?
        } else {
            None
        },
    })
}

fn experiment_events(events: &[(String, Envelope)]) -> Vec<(&Envelope, &ExperimentEvent)> {
    events
        .iter()
        .filter_map(|(_, e)| match &e.event {
            AnyEvent::Experiment(ev) => Some((e, ev)),
            AnyEvent::Platform(_) => None,
        })
        .collect()
}

/// The rows one chunk writes, with the checkpoint moves guarding them.
fn chunk_items(
    store: &ViewStore,
    key: &StreamKey,
    chunk: &[(String, Envelope)],
    state: &mut Loaded,
) -> Result<Vec<TransactWriteItem>, StreamError> {
    let pk = partition(key);
    let mut items = Vec::new();
    let put = |item: HashMap<String, AttributeValue>| -> Result<TransactWriteItem, StreamError> {
        Ok(TransactWriteItem::builder().put(store.put(item)?).build())
    };
    let row = |sk: String| HashMap::from([(PK.to_owned(), s(&pk)), (SK.to_owned(), s(sk))]);
    // Per projection, the chunk's events after its own checkpoint.
    let pending: Vec<&[(String, Envelope)]> = state
        .checkpoints
        .iter()
        .map(|at| &chunk[chunk.partition_point(|(_, e)| e.sequence <= *at)..])
        .collect();

    // experiments
    let events = experiment_events(pending[0]);
    if !events.is_empty() {
        let mut record = state.record.take();
        for (envelope, event) in events {
            record = Some(ExperimentRecord::apply(record, envelope, event));
        }
        if let Some(summary) = record.as_ref().and_then(ExperimentRecord::summary) {
            let mut item = row(RECORD.into());
            item.insert("Record".into(), s(to_json(&pk, &record)?));
            item.insert("Summary".into(), s(to_json(&pk, &summary)?));
            item.insert("Name".into(), s(summary.name));
            item.insert(STATUS.into(), s(serde_name(&summary.status)));
            item.insert("Target".into(), s(summary.target));
            item.insert("Archived".into(), AttributeValue::Bool(summary.archived));
            item.insert(CREATED_AT.into(), s(summary.created_at.to_string()));
            item.insert("UpdatedAt".into(), s(summary.updated_at.to_string()));
            item.insert("Version".into(), n(summary.version));
            items.push(put(item)?);
        }
        state.record = record;
    }

    // results
    let events = experiment_events(pending[1]);
    if !events.is_empty() {
        let mut tracker = state.tracker.take().unwrap_or_default();
        for (_, event) in events {
            if let Some(result) = tracker.apply(&key.aggregate_id, event) {
                let mut item = row(RESULT.into());
                item.insert("Result".into(), s(to_json(&pk, &result)?));
                item.insert("Outcome".into(), s(serde_name(&result.outcome)));
                item.insert("Day".into(), s(&result.day));
                if let Some(ms) = result.recovery_ms {
                    item.insert("RecoveryMs".into(), n(ms));
                }
                item.insert(FEED.into(), s(RESULT_FEED));
                item.insert(
                    FEED_KEY.into(),
                    s(result_feed_key(
                        &result.ended_at.to_string(),
                        &result.experiment_id,
                    )),
                );
                items.push(put(item)?);
            }
        }
        let mut item = row(TRACKER.into());
        item.insert("State".into(), s(to_json(&pk, &tracker)?));
        items.push(put(item)?);
        state.tracker = Some(tracker);
    }

    // audit log
    for (_, envelope) in pending[2] {
        let entry = AuditEntry::from_envelope(envelope);
        let mut item = row(audit_sort_key(entry.sequence));
        item.insert("Entry".into(), s(to_json(&pk, &entry)?));
        item.insert("EventType".into(), s(&entry.event_type));
        item.insert("Actor".into(), s(&entry.actor));
        item.insert("At".into(), s(entry.at.to_string()));
        item.insert(FEED.into(), s(AUDIT_FEED));
        item.insert(
            FEED_KEY.into(),
            s(audit_feed_key(
                &entry.recorded_at,
                &entry.aggregate_id,
                entry.sequence,
            )),
        );
        items.push(put(item)?);
    }

    // The checkpoint moves that make this transaction apply at most once.
    for (i, projection) in PROJECTIONS.into_iter().enumerate() {
        let Some((_, last)) = pending[i].last() else {
            continue;
        };
        let expected = state.checkpoints[i];
        let mut item = row(checkpoint_sort_key(projection));
        item.insert("Sequence".into(), n(last.sequence));
        let mut builder = Put::builder().table_name(&store.table).set_item(Some(item));
        builder = if expected == 0 {
            builder.condition_expression("attribute_not_exists(Pk)")
        } else {
            builder
                .condition_expression("#seq = :expected")
                .expression_attribute_names("#seq", "Sequence")
                .expression_attribute_values(":expected", n(expected))
        };
        items.push(
            TransactWriteItem::builder()
                .put(builder.build().map_err(api)?)
                .build(),
        );
        state.checkpoints[i] = last.sequence;
    }
    Ok(items)
}

/// Applies one stream's contiguous events; on error, returns the ids not applied.
async fn apply_stream(
    store: &ViewStore,
    batch: StreamBatch<String>,
) -> Result<(), (StreamError, Vec<String>)> {
    let key = batch.key;
    let unapplied = |events: &[(String, Envelope)]| -> Vec<String> {
        events.iter().map(|(id, _)| id.clone()).collect()
    };
    let mut events = batch.events;
    let mut attempts = 0;
    let mut state = load(store, &key)
        .await
        .map_err(|e| (e, unapplied(&events)))?;
    loop {
        // Drop what every projection has applied already (here or in another invocation).
        let floor = state.checkpoints.iter().copied().min().unwrap_or(0);
        events.retain(|(_, e)| e.sequence > floor);
        let Some((_, first)) = events.first() else {
            return Ok(());
        };
        if first.sequence != floor + 1 {
            // Only possible if the checkpoints went backwards (a read model was reset):
            // wait for a redelivery rather than apply out of order.
            let error = StreamError::Row {
                key: partition(&key),
                reason: format!("checkpoint {floor} but next event {}", first.sequence),
            };
            return Err((error, unapplied(&events)));
        }
        let take = events.len().min(CHUNK_EVENTS);
        let items = chunk_items(store, &key, &events[..take], &mut state)
            .map_err(|e| (e, unapplied(&events)))?;
        let applied = if items.is_empty() {
            true
        } else {
            store
                .transact(items)
                .await
                .map_err(|e| (e, unapplied(&events)))?
        };
        if applied {
            events.drain(..take);
            continue;
        }
        // Another invocation moved a checkpoint: read everything again.
        attempts += 1;
        if attempts >= MAX_ATTEMPTS {
            return Err((StreamError::Contended(partition(&key)), unapplied(&events)));
        }
        tracing::info!(stream = %partition(&key), "checkpoint moved; re-reading");
        state = load(store, &key)
            .await
            .map_err(|e| (e, unapplied(&events)))?;
    }
}

/// The id Lambda needs to retry a record: its `SequenceNumber`, or its event id when it has
/// none (Lambda then retries from the batch start, which is all that is safe).
fn failure_id(record: &EventRecord) -> String {
    record
        .change
        .sequence_number
        .clone()
        .unwrap_or_else(|| record.event_id.clone())
}

/// The records to deliver again, each once, in the order found.
#[derive(Debug, Default)]
struct Failed {
    ids: Vec<String>,
    seen: std::collections::HashSet<String>,
}

impl Failed {
    fn add(&mut self, id: String) {
        if self.seen.insert(id.clone()) {
            self.ids.push(id);
        }
    }

    // The response types are `#[non_exhaustive]`: they can only be built from `Default`.
    fn response(self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = self
            .ids
            .into_iter()
            .map(|id| {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(id);
                failure
            })
            .collect();
        response
    }
}

/// Projects one stream batch delivered by Lambda and reports every record not applied.
///
/// `REMOVE` records are acknowledged and ignored: the log is append-only, a removal is not an
/// event. Records of one stream that fail are retried by Lambda together with the stream's
/// later records; other streams go on.
pub async fn handle(store: &ViewStore, event: Event) -> DynamoDbEventResponse {
    let mut failed = Failed::default();
    let mut records = Vec::new();
    for record in &event.records {
        if record.event_name == "REMOVE" {
            continue;
        }
        match decode_record(record) {
            Ok(r) => records.push(r),
            Err(e) => {
                tracing::warn!(error = %e, event_id = %record.event_id, "poison stream record");
                failed.add(failure_id(record));
            }
        }
    }

    let mut by_stream: BTreeMap<StreamKey, Vec<FeedRecord<String>>> = BTreeMap::new();
    for record in records {
        by_stream.entry(record.key()).or_default().push(record);
    }
    let mut floors: HashMap<StreamKey, u64> = HashMap::new();
    let mut ready = Vec::new();
    for (key, records) in by_stream {
        match store.checkpoints(&key).await {
            Ok(c) => {
                floors.insert(key, c.iter().copied().min().unwrap_or(0));
                ready.extend(records);
            }
            Err(e) => {
                tracing::warn!(error = %e, stream = %partition(&key), "checkpoints unreadable");
                for r in records {
                    failed.add(r.id);
                }
            }
        }
    }

    let planned = plan(ready, |key| floors.get(key).copied().unwrap_or(u64::MAX));
    for failure in planned.failures {
        tracing::info!(
            stream = %partition(&failure.key),
            sequence = failure.sequence,
            reason = %failure.reason,
            "record held back"
        );
        failed.add(failure.id);
    }
    for batch in planned.batches {
        let stream = partition(&batch.key);
        if let Err((e, ids)) = apply_stream(store, batch).await {
            tracing::warn!(error = %e, %stream, "stream not applied");
            for id in ids {
                failed.add(id);
            }
        }
    }
    failed.response()
}
