//! The live feed: every event appended to the log, to whoever subscribes (the GraphQL
//! subscriptions). Embedded, it is [`LogFeed`], in log order; on AWS it is
//! [`streams::StreamFeed`], over the events table's DynamoDB Stream.
//!
//! [`LogFeed`]: one task tails the `events` table by `rowid` (SQLite serializes writers, so `rowid` order
//! is commit order, whoever wrote: this server, its workflows, or a `chaos` command in another
//! process) every [`POLL`] and broadcasts each new record. A subscriber
//! ([`Feed::follow`]) first reads what it asked to see from the log, then follows the
//! broadcast, skipping what it already has; if it falls behind (the broadcast's buffer
//! overflows) it catches up from the log again. So each subscriber gets every record once, in
//! order, with no gap, however slow it is. A record that cannot be decoded is delivered
//! as such, with the reason, never dropped.

pub mod streams;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use domain::views::{Envelope, RawRecord};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use sqlx::{Row, SqlitePool};
use tokio::sync::broadcast;

use streams::StreamFeed;

/// How often the log is looked at for new records.
pub const POLL: Duration = Duration::from_millis(10);
/// Records buffered for subscribers before a slow one must catch up from the log.
pub const BUFFER: usize = 4_096;
/// Records read from the log at once.
const BATCH: i64 = 500;

/// Why the feed could not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The embedded log cannot be read.
    #[error("the log cannot be read: {0}")]
    Log(#[from] sqlx::Error),
    /// The events table or its stream cannot be read.
    #[error("the events table cannot be read: {0}")]
    Dynamo(String),
    /// A resume position this feed did not give out, or cannot honour.
    #[error("{0}")]
    Position(String),
    /// The subscriber fell this many records behind the live feed and cannot catch up.
    #[error("fell {0} records behind the live feed: subscribe again")]
    Lagged(u64),
}

impl FeedError {
    /// The stable code of the API error.
    pub fn code(&self) -> &'static str {
        match self {
            FeedError::Position(_) => "INVALID_INPUT",
            FeedError::Log(_) | FeedError::Dynamo(_) | FeedError::Lagged(_) => "UNAVAILABLE",
        }
    }
}

/// The live feed of either mode: cheap to clone.
#[derive(Debug, Clone)]
pub enum Feed {
    /// The embedded log, in log order.
    Log(LogFeed),
    /// The events table's stream (AWS).
    Streams(StreamFeed),
}

impl Feed {
    /// Stream `aggregate_type:aggregate_id` as stored so far, in order.
    pub async fn history(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<FeedItem>, FeedError> {
        match self {
            Feed::Log(log) => {
                let filter = Filter::Stream {
                    aggregate_type: aggregate_type.to_owned(),
                    aggregate_id: aggregate_id.to_owned(),
                };
                Ok(log.read_after(0, &filter, i64::MAX).await?)
            }
            Feed::Streams(feed) => feed.read_stream(aggregate_type, aggregate_id, 0).await,
        }
    }

    /// The events of one stream after `last` (an item this feed gave; none: from the start),
    /// then live: each once, in order, with no gap.
    pub fn follow_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        last: Option<&FeedItem>,
    ) -> BoxStream<'static, Result<FeedItem, FeedError>> {
        match self {
            Feed::Log(log) => {
                let filter = Filter::Stream {
                    aggregate_type: aggregate_type.to_owned(),
                    aggregate_id: aggregate_id.to_owned(),
                };
                let position = last.and_then(|item| item.position).unwrap_or(0);
                log.follow(position, filter)
                    .map(|item| item.map_err(FeedError::from))
                    .boxed()
            }
            Feed::Streams(feed) => feed
                .follow_stream(
                    aggregate_type.to_owned(),
                    aggregate_id.to_owned(),
                    last.map_or(0, |item| item.sequence),
                )
                .boxed(),
        }
    }

    /// Every event, live: after `after` (a position from an earlier item, "0" for the whole
    /// log), or from now. Resuming by position is the embedded log's: the events table has no
    /// global order.
    pub async fn activity(
        &self,
        after: Option<&str>,
    ) -> Result<BoxStream<'static, Result<FeedItem, FeedError>>, FeedError> {
        match self {
            Feed::Log(log) => {
                let position = match after {
                    Some(text) => {
                        text.parse::<i64>()
                            .ok()
                            .filter(|p| *p >= 0)
                            .ok_or_else(|| {
                                FeedError::Position(format!(
                                    "after {text:?} is not a position this API gave out"
                                ))
                            })?
                    }
                    None => log.end().await?,
                };
                Ok(log
                    .follow(position, Filter::All)
                    .map(|item| item.map_err(FeedError::from))
                    .boxed())
            }
            Feed::Streams(_) if after.is_some() => Err(FeedError::Position(
                "this server runs on AWS, whose event log has no global order to resume from: \
                 follow one experiment with experimentUpdates(afterSequence), or read what was \
                 missed from the audit log"
                    .to_owned(),
            )),
            Feed::Streams(feed) => Ok(feed.follow_all().boxed()),
        }
    }
}

/// One record of the log, decoded if it can be.
#[derive(Debug, Clone)]
pub struct FeedItem {
    /// Its position in the embedded log (`rowid`): the cursor to resume after. The events
    /// table on AWS has no global order, so none there.
    pub position: Option<i64>,
    /// `Experiment` or `Platform`.
    pub aggregate_type: String,
    /// The stream.
    pub aggregate_id: String,
    /// Its position in the stream.
    pub sequence: i64,
    /// The event type column.
    pub event_type: String,
    /// The decoded event, or why it cannot be decoded.
    pub decoded: Result<Arc<Envelope>, String>,
}

/// Which records a subscriber wants.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Every record.
    All,
    /// One stream's.
    Stream {
        /// `Experiment` or `Platform`.
        aggregate_type: String,
        /// The stream id.
        aggregate_id: String,
    },
}

impl Filter {
    fn admits(&self, item: &FeedItem) -> bool {
        match self {
            Filter::All => true,
            Filter::Stream {
                aggregate_type,
                aggregate_id,
            } => item.aggregate_type == *aggregate_type && item.aggregate_id == *aggregate_id,
        }
    }
}

/// The embedded log's feed: cheap to clone.
#[derive(Debug, Clone)]
pub struct LogFeed {
    pool: SqlitePool,
    sender: broadcast::Sender<Arc<FeedItem>>,
}

fn item(row: &sqlx::sqlite::SqliteRow) -> Result<FeedItem, sqlx::Error> {
    let raw = RawRecord {
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
    };
    Ok(FeedItem {
        position: Some(row.try_get("rowid")?),
        aggregate_type: raw.aggregate_type.to_owned(),
        aggregate_id: raw.aggregate_id.to_owned(),
        sequence: raw.sequence,
        event_type: raw.event_type.to_owned(),
        decoded: Envelope::decode(raw)
            .map(Arc::new)
            .map_err(|e| e.to_string()),
    })
}

impl LogFeed {
    /// The feed over `pool`'s log, tailed from its current end by a task of its own (which
    /// ends when the last clone of the feed is dropped).
    pub async fn start(pool: SqlitePool) -> Result<LogFeed, sqlx::Error> {
        let (sender, _) = broadcast::channel(BUFFER);
        let feed = LogFeed { pool, sender };
        let mut position = feed.end().await?;
        let pool = feed.pool.clone();
        let weak = feed.sender.downgrade();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(sender) = weak.upgrade() else { return };
                match tail_after(&pool, position, &Filter::All, BATCH).await {
                    Ok(items) => {
                        if let Some(last) = items.last() {
                            tracing::debug!(
                                records = items.len(),
                                after = position,
                                to = last.position,
                                subscribers = sender.receiver_count(),
                                "the live feed broadcasts"
                            );
                        }
                        for item in items {
                            position = item.position.unwrap_or(position);
                            // No subscriber is fine: they read the log when they come.
                            let _ = sender.send(Arc::new(item));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "the live feed cannot read the log"),
                }
            }
        });
        Ok(feed)
    }

    /// The log's current end (0 when empty).
    pub async fn end(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM events")
            .fetch_one(&self.pool)
            .await
    }

    /// The records `filter` admits, from the log, after `position`.
    pub async fn read_after(
        &self,
        position: i64,
        filter: &Filter,
        limit: i64,
    ) -> Result<Vec<FeedItem>, sqlx::Error> {
        tail_after(&self.pool, position, filter, limit).await
    }

    /// Every record `filter` admits after `position`, then live, each once and in order.
    /// The stream ends with an error only when the log cannot be read.
    pub fn follow(
        &self,
        position: i64,
        filter: Filter,
    ) -> impl Stream<Item = Result<FeedItem, sqlx::Error>> + Send + use<> {
        struct State {
            feed: LogFeed,
            receiver: broadcast::Receiver<Arc<FeedItem>>,
            last: i64,
            filter: Filter,
            backlog: VecDeque<FeedItem>,
            catching_up: bool,
            failed: bool,
        }
        // Subscribe before reading the log: whatever is committed after the read is broadcast
        // after this point, so nothing falls between the two.
        let state = State {
            feed: self.clone(),
            receiver: self.sender.subscribe(),
            last: position,
            filter,
            backlog: VecDeque::new(),
            catching_up: true,
            failed: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            if s.failed {
                return None;
            }
            loop {
                if let Some(item) = s.backlog.pop_front() {
                    s.last = item.position.unwrap_or(s.last);
                    return Some((Ok(item), s));
                }
                if s.catching_up {
                    match s.feed.read_after(s.last, &s.filter, BATCH).await {
                        Ok(items) if items.is_empty() => s.catching_up = false,
                        Ok(items) => s.backlog.extend(items),
                        Err(e) => {
                            s.failed = true;
                            return Some((Err(e), s));
                        }
                    }
                    continue;
                }
                match s.receiver.recv().await {
                    Ok(item)
                        if item.position.is_some_and(|p| p > s.last) && s.filter.admits(&item) =>
                    {
                        s.backlog.push_back(FeedItem::clone(&item));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => s.catching_up = true,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }
}

async fn tail_after(
    pool: &SqlitePool,
    position: i64,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<FeedItem>, sqlx::Error> {
    const COLUMNS: &str = "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, \
                           event_version, payload, metadata FROM events";
    let rows = match filter {
        Filter::All => {
            sqlx::query(&format!("{COLUMNS} WHERE rowid > ? ORDER BY rowid LIMIT ?"))
                .bind(position)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
        Filter::Stream {
            aggregate_type,
            aggregate_id,
        } => {
            sqlx::query(&format!(
                "{COLUMNS} WHERE aggregate_type = ? AND aggregate_id = ? AND rowid > ? \
                 ORDER BY rowid LIMIT ?"
            ))
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(position)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(item).collect()
}
