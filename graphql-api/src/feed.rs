//! The live feed of the embedded mode: every event appended to the log, in log order, to
//! whoever subscribes (the GraphQL subscriptions).
//!
//! One task tails the `events` table by `rowid` (SQLite serializes writers, so `rowid` order
//! is commit order, whoever wrote: this server, its workflows, or a `chaos` command in another
//! process) every [`POLL`] and broadcasts each new record. A subscriber
//! ([`Feed::follow`]) first reads what it asked to see from the log, then follows the
//! broadcast, skipping what it already has; if it falls behind (the broadcast's buffer
//! overflows) it catches up from the log again. So each subscriber gets every record once, in
//! order, with no gap, however slow it is. A record that cannot be decoded is delivered
//! as such, with the reason, never dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use domain::views::{Envelope, RawRecord};
use futures::Stream;
use sqlx::{Row, SqlitePool};
use tokio::sync::broadcast;

/// How often the log is looked at for new records.
pub const POLL: Duration = Duration::from_millis(10);
/// Records buffered for subscribers before a slow one must catch up from the log.
pub const BUFFER: usize = 4_096;
/// Records read from the log at once.
const BATCH: i64 = 500;

/// One record of the log, decoded if it can be.
#[derive(Debug, Clone)]
pub struct FeedItem {
    /// Its position in the log (`rowid`): the cursor to resume after.
    pub position: i64,
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

/// The feed: cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
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
        position: row.try_get("rowid")?,
        aggregate_type: raw.aggregate_type.to_owned(),
        aggregate_id: raw.aggregate_id.to_owned(),
        sequence: raw.sequence,
        event_type: raw.event_type.to_owned(),
        decoded: Envelope::decode(raw)
            .map(Arc::new)
            .map_err(|e| e.to_string()),
    })
}

impl Feed {
    /// The feed over `pool`'s log, tailed from its current end by a task of its own (which
    /// ends when the last clone of the feed is dropped).
    pub async fn start(pool: SqlitePool) -> Result<Feed, sqlx::Error> {
        let (sender, _) = broadcast::channel(BUFFER);
        let feed = Feed { pool, sender };
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
                        for item in items {
                            position = item.position;
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
            feed: Feed,
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
                    s.last = item.position;
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
                    Ok(item) if item.position > s.last && s.filter.admits(&item) => {
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
