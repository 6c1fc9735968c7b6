//! The event log's rows, read for checking its chain without trusting the running system:
//! the embedded store through a read-only connection of its own, a DynamoDB `Events` table
//! through `Scan`/`Query`. The API's `auditChain` query checks here ([`check_chain`]); the
//! auditors' `chaos audit` commands read through the same functions. The checks themselves are
//! `domain::audit`'s.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use domain::audit::{OwnedRow, StoredRow, VerifyReport, sort_streams};
use dynamo_tables::events;
use embedded_write::sqlite::{OpenError, stored_texts};

/// Why the log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The store could not be read.
    #[error("reading the event store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The table could not be read.
    #[error("reading the DynamoDB table failed: {0}")]
    Dynamo(String),
    /// A background task died.
    #[error("internal task failed: {0}")]
    Task(String),
}

const SELECT_ROWS: &str = "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata FROM events";

/// A read-only connection to a store already checked by [`embedded_write::sqlite::open`].
pub fn read_only(path: &Path) -> Result<rusqlite::Connection, rusqlite::Error> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// Calls `each` with every row of the store, in insertion order, from one snapshot, and the
/// name of its first column that is not UTF-8 text (read with the bad bytes replaced).
pub fn store_rows<E: From<rusqlite::Error>>(
    conn: &rusqlite::Connection,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
    mut each: impl FnMut(StoredRow<'_>, Option<&'static str>) -> Result<(), E>,
) -> Result<(), E> {
    let mut statement = conn.prepare(&format!("{SELECT_ROWS} {filter} ORDER BY rowid"))?;
    let mut rows = statement.query(params)?;
    while let Some(row) = rows.next()? {
        let ([t, id, event_type, version, payload, metadata], not_text) = stored_texts(row)?;
        let stored = StoredRow {
            aggregate_type: &t,
            aggregate_id: &id,
            sequence: row.get(2)?,
            event_type: &event_type,
            event_version: &version,
            payload: &payload,
            metadata: &metadata,
        };
        each(stored, not_text)?;
    }
    Ok(())
}

/// The DynamoDB client from the environment, as the Lambdas build it.
pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    let config = aws_config::load_from_env().await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// A DynamoDB error as a [`ChainError`], with its whole context.
pub fn dynamo_error<E: std::error::Error + 'static>(e: E) -> ChainError {
    ChainError::Dynamo(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

/// A dynamo-es item as a row.
fn dynamo_row(
    item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Result<OwnedRow, ChainError> {
    command_lambdas::dynamo::decode_item(item).map_err(|e| ChainError::Dynamo(e.to_string()))
}

/// Every stream of the table, sorted (the order streams are verified and exported in), and
/// how many events it holds: a scan of the keys alone, so memory holds one key per stream.
/// The events are then read stream by stream ([`dynamo_stream`]), one stream in memory at a
/// time.
pub async fn dynamo_streams(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut progress: impl FnMut(u64),
) -> Result<(BTreeSet<(String, String)>, u64), ChainError> {
    let mut streams = BTreeSet::new();
    let mut events = 0u64;
    let mut pages = client
        .scan()
        .table_name(table)
        .projection_expression("#key")
        .expression_attribute_names("#key", events::PARTITION_KEY)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.map_err(dynamo_error)?;
        let key = item
            .get(events::PARTITION_KEY)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| {
                ChainError::Dynamo(format!("an item has no {}", events::PARTITION_KEY))
            })?;
        let (aggregate_type, aggregate_id) = events::stream_of(key)
            .ok_or_else(|| ChainError::Dynamo(format!("item key {key:?} is not TYPE:ID")))?;
        if !streams.contains(&(aggregate_type.to_owned(), aggregate_id.to_owned())) {
            streams.insert((aggregate_type.to_owned(), aggregate_id.to_owned()));
        }
        events += 1;
        progress(events);
    }
    Ok((streams, events))
}

/// One stream of the table, in sequence order.
pub async fn dynamo_stream(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    aggregate_type: &str,
    id: &str,
) -> Result<Vec<OwnedRow>, ChainError> {
    let mut rows = Vec::new();
    let mut pages = client
        .query()
        .table_name(table)
        .key_condition_expression("#key = :k")
        .expression_attribute_names("#key", events::PARTITION_KEY)
        .expression_attribute_values(
            ":k",
            aws_sdk_dynamodb::types::AttributeValue::S(events::partition(aggregate_type, id)),
        )
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        rows.push(dynamo_row(&item.map_err(dynamo_error)?)?);
    }
    sort_streams(&mut rows);
    Ok(rows)
}

/// One chain check at a time per process: a check of the whole log reads every event, and a
/// second one at the same moment would only give the same answer later, at twice the cost.
static CHAIN_CHECKS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();

/// Verifies the chain and sequence of one stream (`(type, id)`) or, without one, of every
/// stream, with the checks `chaos audit verify` makes (the same `ChainVerifier`, fed rows in
/// the same order): for the API's `auditChain` query. Each backend reads its log its own way
/// ([`crate::backend::Backend::verify_chain`]); one check runs at a time.
pub async fn check_chain(
    backend: &dyn crate::backend::Backend,
    stream: Option<(String, String)>,
) -> Result<VerifyReport, ChainError> {
    let _one = CHAIN_CHECKS
        .get_or_init(|| tokio::sync::Semaphore::new(1))
        .acquire()
        .await
        .map_err(|e| ChainError::Task(e.to_string()))?;
    backend.verify_chain(stream).await
}
