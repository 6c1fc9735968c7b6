//! The embedded log as the live feed's [`Source`]: one task tails the `events` table by
//! `rowid` every [`POLL`] and broadcasts each new record. SQLite serializes writers, so
//! `rowid` order is commit order, whoever wrote: this server, its workflows, or a `chaos`
//! command in another process.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::views::{Envelope, RawRecord};
use sqlx::{Row, SqlitePool};
use tokio::sync::broadcast;

use crate::feed::{BUFFER, FeedError, FeedItem, Source};

/// How often the log is looked at for new records.
pub const POLL: Duration = Duration::from_millis(10);
/// Records read from the log at once by the tail.
const BATCH: i64 = 500;

const COLUMNS: &str = "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, \
                       event_version, payload, metadata FROM events";

/// The embedded log's feed: cheap to clone.
#[derive(Debug, Clone)]
pub struct LogSource {
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

impl LogSource {
    /// The feed over `pool`'s log, tailed from its current end by a task of its own (which
    /// ends when the last clone of the feed is dropped).
    pub async fn start(pool: SqlitePool) -> Result<LogSource, sqlx::Error> {
        let (sender, _) = broadcast::channel(BUFFER);
        let feed = LogSource { pool, sender };
        let mut position = feed.last_rowid().await?;
        let pool = feed.pool.clone();
        let weak = feed.sender.downgrade();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(sender) = weak.upgrade() else { return };
                match after(&pool, position, BATCH).await {
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
    async fn last_rowid(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM events")
            .fetch_one(&self.pool)
            .await
    }
}

/// At most `limit` records after `position`, in log order.
async fn after(pool: &SqlitePool, position: i64, limit: i64) -> Result<Vec<FeedItem>, sqlx::Error> {
    sqlx::query(&format!("{COLUMNS} WHERE rowid > ? ORDER BY rowid LIMIT ?"))
        .bind(position)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(item)
        .collect()
}

#[async_trait]
impl Source for LogSource {
    fn subscribe(&self) -> broadcast::Receiver<Arc<FeedItem>> {
        self.sender.subscribe()
    }

    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: i64,
    ) -> Result<Vec<FeedItem>, FeedError> {
        let rows = sqlx::query(&format!(
            "{COLUMNS} WHERE aggregate_type = ? AND aggregate_id = ? AND sequence > ? \
             ORDER BY sequence"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(item).collect::<Result<_, _>>()?)
    }

    async fn end(&self) -> Result<Option<i64>, FeedError> {
        Ok(Some(self.last_rowid().await?))
    }

    async fn read_after(&self, position: i64, limit: i64) -> Result<Vec<FeedItem>, FeedError> {
        Ok(after(&self.pool, position, limit).await?)
    }
}
