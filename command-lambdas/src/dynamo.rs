//! The AWS event store: dynamo-es over the DynamoDB `Events` table, under the same
//! [`EventStore`](crate::store::EventStore) layer (metadata, hash chain, idempotency, bounded
//! retries) as the embedded store.
//!
//! The table is exactly what dynamo-es expects: partition key `AggregateTypeAndId`
//! (`"Experiment:<id>"`), sort key `AggregateIdSequence` (number, from 1), `Payload` and
//! `Metadata` as binary JSON (the canonical bytes the chain hashes), with Streams on
//! (`NEW_IMAGE`) for the projection Lambdas. Each commit is one `TransactWriteItems` whose puts
//! are conditioned on `attribute_not_exists`, so exactly one writer wins each sequence number.
//! dynamo-es loads a stream with one `Query` (no pagination past 1 MB); the bounded streams of
//! `domain::limits` keep every stream well under that.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use cqrs_es::Aggregate;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use domain::audit::{ChainVerifier, OwnedRow, VerifyReport, sort_streams};
use dynamo_tables::{events, views};

use crate::store::{EventStore, StreamHead};

/// The layer over dynamo-es.
pub type DynamoStore = EventStore<DynamoRepository>;

/// dynamo-es's repository over `table` (its snapshot table is never used: the 0.5 snapshot
/// stores apply events twice).
pub fn repository(client: Client, table: &str) -> DynamoRepository {
    DynamoRepository {
        inner: dynamo_es::DynamoEventRepository::new(client.clone())
            .with_tables(table, &format!("{table}-unused-snapshots")),
        client,
        table: table.to_owned(),
    }
}

/// dynamo-es's repository, and where a stream ends read with one small query.
pub struct DynamoRepository {
    inner: dynamo_es::DynamoEventRepository,
    client: Client,
    table: String,
}

impl std::fmt::Debug for DynamoRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoRepository")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl PersistedEventRepository for DynamoRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.inner.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.inner
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.inner.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, serde_json::Value, usize)>,
    ) -> Result<(), PersistenceError> {
        self.inner.persist::<A>(events, snapshot_update).await
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_all_events::<A>().await
    }
}

impl StreamHead for DynamoRepository {
    async fn last_sequence(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<usize, PersistenceError> {
        let newest = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#key = :key")
            .expression_attribute_names("#key", events::PARTITION_KEY)
            .expression_attribute_values(
                ":key",
                AttributeValue::S(events::partition(aggregate_type, aggregate_id)),
            )
            .projection_expression("#sequence")
            .expression_attribute_names("#sequence", events::SORT_KEY)
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                PersistenceError::ConnectionError(Box::new(DynamoError::Api(
                    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
                )))
            })?;
        Ok(newest
            .items()
            .first()
            .and_then(|item| item.get(events::SORT_KEY))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

/// Why a table operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    /// DynamoDB refused.
    #[error("DynamoDB: {0}")]
    Api(String),
    /// An item lacks an attribute or has the wrong type.
    #[error("item {key}: {problem}")]
    BadItem {
        /// Its key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

fn api<E: std::fmt::Display>(e: E) -> DynamoError {
    DynamoError::Api(e.to_string())
}

/// Creates the events table (used by tests and local setups; in AWS the SAM template does).
pub async fn create_events_table(client: &Client, table: &str) -> Result<(), DynamoError> {
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(api)
    };
    let attribute = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(api)
    };
    client
        .create_table()
        .table_name(table)
        .key_schema(key(events::PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(events::SORT_KEY, KeyType::Range)?)
        .attribute_definitions(attribute(events::PARTITION_KEY, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(events::SORT_KEY, ScalarAttributeType::N)?)
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(api)?,
        )
        .send()
        .await
        .map_err(|e| api(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    Ok(())
}

/// A dynamo-es item of the Events table as a stored row (`Payload` and `Metadata` string or
/// binary, as stored).
pub fn decode_item(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Result<OwnedRow, DynamoError> {
    let key = item
        .get(events::PARTITION_KEY)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    let bad = |problem: &str| DynamoError::BadItem {
        key: key.clone(),
        problem: problem.to_owned(),
    };
    let text = |name: &str| -> Result<String, DynamoError> {
        match item.get(name) {
            Some(AttributeValue::S(s)) => Ok(s.clone()),
            Some(AttributeValue::B(b)) => String::from_utf8(b.as_ref().to_vec())
                .map_err(|_| bad(&format!("{name} is not UTF-8"))),
            _ => Err(bad(&format!("{name} is missing"))),
        }
    };
    let (aggregate_type, aggregate_id) = events::stream_of(&key)
        .map(|(t, i)| (t.to_owned(), i.to_owned()))
        .ok_or_else(|| bad(&format!("{} is not TYPE:ID", events::PARTITION_KEY)))?;
    let sequence = item
        .get(events::SORT_KEY)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad(&format!("{} is not a number", events::SORT_KEY)))?;
    Ok(OwnedRow {
        aggregate_type,
        aggregate_id,
        sequence,
        event_type: text("EventType")?,
        event_version: text("EventVersion")?,
        payload: text("Payload")?,
        metadata: text("Metadata")?,
    })
}

/// Verifies every stream in the table: scans it whole (paginated), orders each stream by
/// sequence, and runs the same verifier as the embedded store over the stored bytes.
pub async fn verify_table(client: &Client, table: &str) -> Result<VerifyReport, DynamoError> {
    let mut rows = Vec::new();
    let mut pages = client
        .scan()
        .table_name(table)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| api(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        rows.push(decode_item(&item)?);
    }
    sort_streams(&mut rows);
    let mut verifier = ChainVerifier::new();
    for r in &rows {
        verifier.push(&r.row());
    }
    Ok(verifier.finish().of_whole_log())
}

/// One running experiment per target on AWS: claims kept in the read-model table (`Pk`/`Sk`;
/// never the Events table), one item per target, `Pk = "Claim#{target}"`, `Sk = "claim"`,
/// `Holder` the experiment. Every change is a conditional write, so of two runs claiming at
/// once exactly one wins, and a claim is taken over only from the holder the taker found stale.
#[derive(Debug, Clone)]
pub struct DynamoClaims {
    client: Client,
    table: String,
}

impl DynamoClaims {
    /// Claims kept in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoClaims {
            client,
            table: table.into(),
        }
    }

    fn key(target: &str) -> std::collections::HashMap<String, AttributeValue> {
        std::collections::HashMap::from([
            (
                views::PK.to_owned(),
                AttributeValue::S(views::claim_partition(target)),
            ),
            (views::SK.to_owned(), AttributeValue::S(views::CLAIM.into())),
        ])
    }

    async fn holder(&self, target: &str) -> Result<Option<String>, crate::adapters::AdapterError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(target)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::asg::sdk_error("dynamodb", e))?;
        Ok(out
            .item()
            .and_then(|i| i.get("Holder"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }
}

impl crate::adapters::TargetClaims for DynamoClaims {
    fn claim<'a>(
        &'a self,
        target: &'a str,
        experiment: &'a str,
        stale: Option<&'a str>,
    ) -> futures::future::BoxFuture<'a, Result<Option<String>, crate::adapters::AdapterError>> {
        Box::pin(async move {
            let mut item = Self::key(target);
            item.insert("Holder".into(), AttributeValue::S(experiment.to_owned()));
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .expression_attribute_names("#h", "Holder")
                .expression_attribute_values(":me", AttributeValue::S(experiment.to_owned()));
            put = match stale {
                Some(stale) => put
                    .condition_expression("attribute_not_exists(Pk) OR #h = :me OR #h = :stale")
                    .expression_attribute_values(":stale", AttributeValue::S(stale.to_owned())),
                None => put.condition_expression("attribute_not_exists(Pk) OR #h = :me"),
            };
            match put.send().await {
                Ok(_) => Ok(None),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    // Held by another: say by whom (it may have been released meanwhile; the
                    // caller then claims again).
                    Ok(Some(self.holder(target).await?.unwrap_or_default()))
                }
                Err(e) => Err(crate::asg::sdk_error("dynamodb", e)),
            }
        })
    }

    fn release<'a>(
        &'a self,
        target: &'a str,
        experiment: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::adapters::AdapterError>> {
        Box::pin(async move {
            match self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(target)))
                .condition_expression("#h = :me")
                .expression_attribute_names("#h", "Holder")
                .expression_attribute_values(":me", AttributeValue::S(experiment.to_owned()))
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(crate::asg::sdk_error("dynamodb", e)),
            }
        })
    }
}
