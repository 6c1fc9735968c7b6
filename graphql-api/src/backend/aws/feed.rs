//! The live feed's [`Source`] on AWS: the `Events` table's DynamoDB Stream, read by the API
//! server itself, with the table as the record of truth.
//!
//! One task reads every open shard of the stream (`GetRecords`, about five times a second
//! while it is quiet, at once while records come), follows new shards as the stream splits
//! them, and broadcasts each record's new image, decoded. The stream delivers at least once
//! and orders records per item only, so subscribers never trust it for completeness (see
//! [`crate::feed`]): what is missing is read from the table, a consistent `Query` of the
//! stream's partition. The table has no global order, so this source has no position.
//!
//! Why this feed (and not EventBridge or a poll of the table): the stream is already there
//! (the projection Lambda reads it), it is ordered per stream key, it keeps 24 hours, and it
//! needs no infrastructure made at run time. Its one limit is that at most two readers should
//! poll a shard; the projection's event source mapping is one, so one API task may be the
//! other. More tasks would take a Kinesis data stream for the table, with enhanced fan-out.

use dynamo_tables::events;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, ShardIteratorType};
use domain::views::{Envelope, RawRecord};
use tokio::sync::broadcast;

use crate::feed::{BUFFER, FeedError, FeedItem, Source};

/// How long the reader waits when the stream had nothing new.
pub const POLL: Duration = Duration::from_millis(200);
/// How often the stream is described again for new shards.
const DISCOVER_EVERY: Duration = Duration::from_secs(10);
/// Records asked for per `GetRecords`.
const RECORDS_PER_READ: i32 = 1_000;

fn api<E: std::error::Error>(e: E) -> FeedError {
    FeedError::Dynamo(DisplayErrorContext(e).to_string())
}

/// The feed over one events table and its stream: cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamSource {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    sender: broadcast::Sender<Arc<FeedItem>>,
}

impl StreamSource {
    /// The feed over `table`, whose stream is read from now on by a task of its own (which
    /// ends when the last clone of the feed is dropped).
    pub async fn start(
        dynamodb: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table: &str,
    ) -> Result<StreamSource, FeedError> {
        let arn = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(api)?
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| {
                FeedError::Dynamo(format!(
                    "table {table} has no stream: enable DynamoDB Streams (NEW_IMAGE) on it"
                ))
            })?;
        let (sender, _) = broadcast::channel(BUFFER);
        let mut reader = Reader {
            client: streams,
            arn,
            shards: HashMap::new(),
        };
        // The shards open now are read from their latest record: what came before is in the
        // table, where subscribers read it.
        reader.discover(ShardIteratorType::Latest).await?;
        let weak = sender.downgrade();
        tokio::spawn(async move { reader.run(weak).await });
        Ok(StreamSource {
            dynamodb,
            table: table.to_owned(),
            sender,
        })
    }

    /// The events of stream `aggregate_type:aggregate_id` after `after` (a sequence), from
    /// the table, in order.
    async fn query_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: i64,
    ) -> Result<Vec<FeedItem>, FeedError> {
        let mut pages = self
            .dynamodb
            .query()
            .table_name(&self.table)
            .key_condition_expression("#key = :key AND #sequence > :after")
            .expression_attribute_names("#key", events::PARTITION_KEY)
            .expression_attribute_names("#sequence", events::SORT_KEY)
            .expression_attribute_values(
                ":key",
                AttributeValue::S(events::partition(aggregate_type, aggregate_id)),
            )
            .expression_attribute_values(":after", AttributeValue::N(after.to_string()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item_of(&item.map_err(api)?));
        }
        Ok(items)
    }
}

#[async_trait]
impl Source for StreamSource {
    fn subscribe(&self) -> broadcast::Receiver<Arc<FeedItem>> {
        self.sender.subscribe()
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: i64,
    ) -> Result<Vec<FeedItem>, FeedError> {
        self.query_stream(aggregate_type, aggregate_id, after).await
    }

    async fn end(&self) -> Result<Option<i64>, FeedError> {
        Ok(None)
    }

    async fn read_after(&self, _after: i64, _limit: i64) -> Result<Vec<FeedItem>, FeedError> {
        Err(FeedError::Position(
            "the events table has no global order to read it by".to_owned(),
        ))
    }
}

/// An item of the events table as a feed item (decoded if it can be).
fn item_of(item: &HashMap<String, AttributeValue>) -> FeedItem {
    match command_lambdas::dynamo::decode_item(item) {
        Ok(row) => {
            let decoded = Envelope::decode(RawRecord {
                aggregate_type: &row.aggregate_type,
                aggregate_id: &row.aggregate_id,
                sequence: row.sequence,
                event_type: &row.event_type,
                event_version: &row.event_version,
                payload: &row.payload,
                metadata: &row.metadata,
            })
            .map(Arc::new)
            .map_err(|e| e.to_string());
            FeedItem {
                position: None,
                aggregate_type: row.aggregate_type,
                aggregate_id: row.aggregate_id,
                sequence: row.sequence,
                event_type: row.event_type,
                decoded,
            }
        }
        Err(e) => {
            let text = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            let key = text(events::PARTITION_KEY);
            let (aggregate_type, aggregate_id) = events::stream_of(&key).unwrap_or(("", &key));
            FeedItem {
                position: None,
                aggregate_type: aggregate_type.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                sequence: 0,
                event_type: text("EventType"),
                decoded: Err(e.to_string()),
            }
        }
    }
}

/// A stream image's attribute as the table's.
fn attribute(value: &StreamValue) -> Option<AttributeValue> {
    Some(match value {
        StreamValue::S(s) => AttributeValue::S(s.clone()),
        StreamValue::N(n) => AttributeValue::N(n.clone()),
        StreamValue::B(b) => {
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b.as_ref().to_vec()))
        }
        _ => return None,
    })
}

/// One shard being read.
#[derive(Debug)]
struct Shard {
    /// Where to read next; `None` once the shard is closed and read to its end.
    iterator: Option<String>,
    /// The last record read, to resume after when an iterator expires.
    last: Option<String>,
}

/// The task that reads the stream.
struct Reader {
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    shards: HashMap<String, Shard>,
}

impl Reader {
    /// Learns the stream's shards; those not known yet start at `start` (shards the stream
    /// made after this feed began are read from their first record).
    async fn discover(&mut self, start: ShardIteratorType) -> Result<(), FeedError> {
        let mut after: Option<String> = None;
        loop {
            let description = self
                .client
                .describe_stream()
                .stream_arn(&self.arn)
                .set_exclusive_start_shard_id(after.clone())
                .send()
                .await
                .map_err(api)?
                .stream_description;
            let Some(description) = description else {
                return Ok(());
            };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if self.shards.contains_key(id) {
                    continue;
                }
                let closed = shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some();
                // At the start, a closed shard holds only what the table already has.
                let iterator = if closed && start == ShardIteratorType::Latest {
                    None
                } else {
                    self.iterator(id, start.clone(), None).await?
                };
                self.shards.insert(
                    id.to_owned(),
                    Shard {
                        iterator,
                        last: None,
                    },
                );
            }
            after = description.last_evaluated_shard_id().map(str::to_owned);
            if after.is_none() {
                return Ok(());
            }
        }
    }

    async fn iterator(
        &self,
        shard: &str,
        kind: ShardIteratorType,
        after: Option<&str>,
    ) -> Result<Option<String>, FeedError> {
        Ok(self
            .client
            .get_shard_iterator()
            .stream_arn(&self.arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(after.map(str::to_owned))
            .send()
            .await
            .map_err(api)?
            .shard_iterator)
    }

    /// Reads every shard until no subscriber's feed is left.
    async fn run(mut self, sender: broadcast::WeakSender<Arc<FeedItem>>) {
        let mut discovered = Instant::now();
        loop {
            let Some(sender) = sender.upgrade() else {
                return;
            };
            let mut read_any = false;
            let mut closed_any = false;
            let ids: Vec<String> = self
                .shards
                .iter()
                .filter(|(_, s)| s.iterator.is_some())
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                match self.read_shard(&id, &sender).await {
                    Ok((read, closed)) => {
                        read_any |= read;
                        closed_any |= closed;
                    }
                    Err(e) => {
                        tracing::warn!(shard = %id, error = %e, "the live feed cannot read the stream")
                    }
                }
            }
            drop(sender);
            if closed_any || discovered.elapsed() >= DISCOVER_EVERY {
                discovered = Instant::now();
                if let Err(e) = self.discover(ShardIteratorType::TrimHorizon).await {
                    tracing::warn!(error = %e, "the live feed cannot describe the stream");
                }
            }
            if !read_any {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Reads one batch of shard `id`; says whether it had records and whether it has ended.
    async fn read_shard(
        &mut self,
        id: &str,
        sender: &broadcast::Sender<Arc<FeedItem>>,
    ) -> Result<(bool, bool), FeedError> {
        let Some(iterator) = self.shards.get(id).and_then(|s| s.iterator.clone()) else {
            return Ok((false, false));
        };
        let read = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(RECORDS_PER_READ)
            .send()
            .await;
        let output = match read {
            Ok(output) => output,
            Err(e) => {
                let last = self.shards.get(id).and_then(|s| s.last.clone());
                let again = match e.as_service_error() {
                    Some(GetRecordsError::ExpiredIteratorException(_)) => match &last {
                        Some(last) => Some((ShardIteratorType::AfterSequenceNumber, Some(last))),
                        None => Some((ShardIteratorType::Latest, None)),
                    },
                    Some(GetRecordsError::TrimmedDataAccessException(_)) => {
                        Some((ShardIteratorType::TrimHorizon, None))
                    }
                    _ => None,
                };
                let Some((kind, after)) = again else {
                    return Err(api(e));
                };
                let iterator = self.iterator(id, kind, after.map(String::as_str)).await?;
                if let Some(shard) = self.shards.get_mut(id) {
                    shard.iterator = iterator;
                }
                return Ok((false, false));
            }
        };
        let next = output.next_shard_iterator.clone();
        let records = output.records();
        for record in records {
            let Some(change) = record.dynamodb() else {
                continue;
            };
            if let Some(shard) = self.shards.get_mut(id) {
                shard.last = change.sequence_number().map(str::to_owned);
            }
            let Some(image) = change.new_image() else {
                continue;
            };
            let image: HashMap<String, AttributeValue> = image
                .iter()
                .filter_map(|(k, v)| attribute(v).map(|v| (k.clone(), v)))
                .collect();
            // Nobody listening is fine: subscribers read the table when they come.
            let _ = sender.send(Arc::new(item_of(&image)));
        }
        let closed = next.is_none();
        if let Some(shard) = self.shards.get_mut(id) {
            shard.iterator = next;
        }
        Ok((!records.is_empty(), closed))
    }
}
