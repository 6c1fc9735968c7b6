//! The live feed: every event appended to the log, to whoever subscribes (the GraphQL
//! subscriptions), each once, in order, with no gap, however slow the subscriber is.
//!
//! A [`Source`] of each mode says when something was appended and reads what the log holds:
//! embedded, `backend::embedded::feed` tails the store's `events` table (one order, by
//! `rowid`); on AWS, `backend::aws::feed` reads the events table's DynamoDB Stream, which
//! orders records per stream only and delivers them at least once. The broadcast only says
//! *when* to look; what is delivered, and in which order, is the log's.
//!
//! One catch-up state machine ([`Follow`]) serves every subscriber of either source: it
//! subscribes to the broadcast first, then reads what it asked to see from the log, then
//! follows the broadcast, skipping what it already delivered (by the stream's sequence, and by
//! the log's position where the log has one order). When a record arrives after a gap in its
//! stream, the missing records are read from the log before it; when the subscriber falls
//! behind the broadcast (its buffer overflows), it catches up from the log again, by position
//! where the log has one order, by stream when it follows one stream, and otherwise (every
//! stream on AWS) it ends with [`FeedError::Lagged`]. A record that cannot be decoded is
//! delivered as such, with the reason, never dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use domain::views::Envelope;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

/// Records buffered for subscribers before a slow one must catch up from the log.
pub const BUFFER: usize = 4_096;
/// Records read from the log at once when catching up by position.
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

/// One record of the log, decoded if it can be.
#[derive(Debug, Clone)]
pub struct FeedItem {
    /// Its position in a log with one order (the embedded log's `rowid`): the cursor to
    /// resume after. The events table on AWS has no global order, so none there.
    pub position: Option<i64>,
    /// `Experiment` or `Platform`.
    pub aggregate_type: String,
    /// The stream.
    pub aggregate_id: String,
    /// Its position in the stream (0 for a record that names no stream it can be read from).
    pub sequence: i64,
    /// The event type column.
    pub event_type: String,
    /// The decoded event, or why it cannot be decoded.
    pub decoded: Result<Arc<Envelope>, String>,
}

impl FeedItem {
    fn stream(&self) -> (String, String) {
        (self.aggregate_type.clone(), self.aggregate_id.clone())
    }
}

/// The log as each mode reads it.
#[async_trait]
pub trait Source: Send + Sync + std::fmt::Debug {
    /// Every record appended from now on, as it is seen (a receiver that falls more than
    /// [`BUFFER`] records behind is told it lagged).
    fn subscribe(&self) -> broadcast::Receiver<Arc<FeedItem>>;

    /// Every record of stream `aggregate_type:aggregate_id` after sequence `after`, in order,
    /// as the log holds it now.
    async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: i64,
    ) -> Result<Vec<FeedItem>, FeedError>;

    /// The log's position now, if the log has one order (embedded); `None` if its streams
    /// are ordered each in itself only (AWS).
    async fn end(&self) -> Result<Option<i64>, FeedError>;

    /// At most `limit` records after position `after`, in the log's order (asked only of a
    /// log with one order).
    async fn read_after(&self, after: i64, limit: i64) -> Result<Vec<FeedItem>, FeedError>;
}

/// The live feed: cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    source: Arc<dyn Source>,
}

impl Feed {
    /// The feed over `source`.
    pub fn new(source: impl Source + 'static) -> Self {
        Feed {
            source: Arc::new(source),
        }
    }

    /// Stream `aggregate_type:aggregate_id` as stored so far, in order.
    pub async fn history(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<FeedItem>, FeedError> {
        self.source
            .read_stream(aggregate_type, aggregate_id, 0)
            .await
    }

    /// The events of one stream after `last` (an item this feed gave; none: from the start),
    /// then live: each once, in order, with no gap. Ends with an error only when the log
    /// cannot be read.
    pub fn follow_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        last: Option<&FeedItem>,
    ) -> BoxStream<'static, Result<FeedItem, FeedError>> {
        let stream = (aggregate_type.to_owned(), aggregate_id.to_owned());
        let mut follow = Follow::new(&self.source, Some(stream.clone()));
        follow
            .last
            .insert(stream.clone(), last.map_or(0, |item| item.sequence));
        follow.position = last.and_then(|item| item.position);
        follow.catch_up = Some(CatchUp::Stream(stream));
        follow.into_stream()
    }

    /// Every event, live: after `after` (a position from an earlier item, "0" for the whole
    /// log), or from now. Resuming by position needs a log with one order (embedded); on AWS,
    /// "now" is the stream reader's: an event recorded a moment before may still come.
    pub async fn activity(
        &self,
        after: Option<&str>,
    ) -> Result<BoxStream<'static, Result<FeedItem, FeedError>>, FeedError> {
        let mut follow = Follow::new(&self.source, None);
        let Some(end) = self.source.end().await? else {
            if after.is_some() {
                return Err(FeedError::Position(
                    "this server runs on AWS, whose event log has no global order to resume \
                     from: follow one experiment with experimentUpdates(afterSequence), or \
                     read what was missed from the audit log"
                        .to_owned(),
                ));
            }
            return Ok(follow.into_stream());
        };
        let position = match after {
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| {
                    FeedError::Position(format!(
                        "after {text:?} is not a position this API gave out"
                    ))
                })?,
            None => end,
        };
        follow.position = Some(position);
        follow.catch_up = Some(CatchUp::Log);
        Ok(follow.into_stream())
    }
}

/// What a subscriber reads from the log before it goes on with the broadcast.
#[derive(Debug, Clone)]
enum CatchUp {
    /// Everything after its position (a log with one order), a batch at a time.
    Log,
    /// One stream's records after the last of them it delivered.
    Stream((String, String)),
}

/// One subscriber's catch-up state machine.
struct Follow {
    source: Arc<dyn Source>,
    receiver: broadcast::Receiver<Arc<FeedItem>>,
    /// The one stream followed, or every stream.
    only: Option<(String, String)>,
    /// The last sequence delivered, per stream (see [`Follow::per_stream`]).
    last: HashMap<(String, String), i64>,
    /// The position of the last record delivered, in a log with one order.
    position: Option<i64>,
    /// Read, not yet delivered.
    backlog: VecDeque<FeedItem>,
    /// What to read from the log next.
    catch_up: Option<CatchUp>,
    ended: bool,
}

impl Follow {
    /// Subscribed before anything is read from the log: whatever is appended after that read
    /// is broadcast after this point, so nothing falls between the two.
    fn new(source: &Arc<dyn Source>, only: Option<(String, String)>) -> Self {
        Follow {
            source: Arc::clone(source),
            receiver: source.subscribe(),
            only,
            last: HashMap::new(),
            position: None,
            backlog: VecDeque::new(),
            catch_up: None,
            ended: false,
        }
    }

    fn into_stream(self) -> BoxStream<'static, Result<FeedItem, FeedError>> {
        futures::stream::unfold(self, |mut follow| async move {
            let next = follow.next().await?;
            Some((next, follow))
        })
        .boxed()
    }

    fn admits(&self, item: &FeedItem) -> bool {
        self.only
            .as_ref()
            .is_none_or(|(aggregate_type, aggregate_id)| {
                item.aggregate_type == *aggregate_type && item.aggregate_id == *aggregate_id
            })
    }

    /// Whether the last sequence of each stream is kept: not for every stream of a log with
    /// one order, where the position alone says what was delivered (and a subscriber from the
    /// start of a long log would otherwise keep a sequence for every stream in it).
    fn per_stream(&self) -> bool {
        self.only.is_some() || self.position.is_none()
    }

    fn delivered(&self, item: &FeedItem) -> bool {
        if let (Some(position), Some(at)) = (self.position, item.position)
            && at <= position
        {
            return true;
        }
        self.last_of(item).is_some_and(|last| item.sequence <= last)
    }

    /// The last sequence delivered of `item`'s stream, where one is kept.
    fn last_of(&self, item: &FeedItem) -> Option<i64> {
        if !self.per_stream() {
            return None;
        }
        self.last.get(&item.stream()).copied()
    }

    /// The next record, or why the feed ends; `None` when the source is gone.
    async fn next(&mut self) -> Option<Result<FeedItem, FeedError>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(item) = self.backlog.pop_front() {
                if self.delivered(&item) {
                    continue;
                }
                if self.per_stream() {
                    self.last.insert(item.stream(), item.sequence);
                }
                self.position = item.position.or(self.position);
                return Some(Ok(item));
            }
            if let Some(catch_up) = self.catch_up.take() {
                let read = match &catch_up {
                    CatchUp::Log => {
                        let after = self.position.unwrap_or(0);
                        let read = self.source.read_after(after, BATCH).await;
                        if matches!(&read, Ok(items) if !items.is_empty()) {
                            self.catch_up = Some(CatchUp::Log);
                        }
                        read
                    }
                    CatchUp::Stream((aggregate_type, aggregate_id)) => {
                        let after = self
                            .last
                            .get(&(aggregate_type.clone(), aggregate_id.clone()));
                        let after = after.copied().unwrap_or(0);
                        self.source
                            .read_stream(aggregate_type, aggregate_id, after)
                            .await
                    }
                };
                match read {
                    Ok(items) => {
                        let admitted: Vec<FeedItem> =
                            items.into_iter().filter(|i| self.admits(i)).collect();
                        self.backlog.extend(admitted);
                    }
                    Err(e) => {
                        self.ended = true;
                        return Some(Err(e));
                    }
                }
                continue;
            }
            let item = match self.receiver.recv().await {
                Ok(item) => item,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    if let Some(stream) = &self.only {
                        self.catch_up = Some(CatchUp::Stream(stream.clone()));
                    } else if self.position.is_some() {
                        self.catch_up = Some(CatchUp::Log);
                    } else {
                        self.ended = true;
                        return Some(Err(FeedError::Lagged(missed)));
                    }
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if !self.admits(&item) || self.delivered(&item) {
                continue;
            }
            if item.decoded.is_err() && item.sequence == 0 {
                // A record that names no stream: delivered as it is, with its reason.
                return Some(Ok(FeedItem::clone(&item)));
            }
            match self.last_of(&item) {
                Some(last) if item.sequence > last + 1 => {
                    // Something in between has not come (yet): the log has it.
                    self.catch_up = Some(CatchUp::Stream(item.stream()));
                }
                _ => self.backlog.push_back(FeedItem::clone(&item)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The state machine against an in-memory log whose broadcast the test controls, so that
    //! what the real sources do only sometimes (a duplicate, a record out of order, a gap, a
    //! subscriber that falls behind) happens every time. The sources themselves are tested
    //! end to end (`chaos/tests/subscriptions.rs` embedded, `chaos/tests/aws_api.rs` against
    //! moto).

    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// A log: records kept in order of appending; `ordered` says whether it has one order
    /// (positions) or streams ordered each in itself only.
    #[derive(Debug)]
    struct Memory {
        ordered: bool,
        records: Mutex<Vec<FeedItem>>,
        sender: broadcast::Sender<Arc<FeedItem>>,
    }

    impl Memory {
        fn new(ordered: bool, buffer: usize) -> Arc<Memory> {
            Arc::new(Memory {
                ordered,
                records: Mutex::new(Vec::new()),
                sender: broadcast::channel(buffer).0,
            })
        }

        /// Appends the next record of `stream` to the log (not broadcast).
        fn append(&self, stream: &str) -> FeedItem {
            let mut records = self.records.lock().expect("records");
            let sequence = records.iter().filter(|r| r.aggregate_id == stream).count() as i64 + 1;
            let item = FeedItem {
                position: self.ordered.then_some(records.len() as i64 + 1),
                aggregate_type: "Experiment".to_owned(),
                aggregate_id: stream.to_owned(),
                sequence,
                event_type: "Test".to_owned(),
                decoded: Err("not an event".to_owned()),
            };
            records.push(item.clone());
            item
        }

        fn broadcast(&self, item: &FeedItem) {
            let _ = self.sender.send(Arc::new(item.clone()));
        }
    }

    #[async_trait]
    impl Source for Arc<Memory> {
        fn subscribe(&self) -> broadcast::Receiver<Arc<FeedItem>> {
            self.sender.subscribe()
        }

        async fn read_stream(
            &self,
            aggregate_type: &str,
            aggregate_id: &str,
            after: i64,
        ) -> Result<Vec<FeedItem>, FeedError> {
            let records = self.records.lock().expect("records");
            Ok(records
                .iter()
                .filter(|r| {
                    r.aggregate_type == aggregate_type
                        && r.aggregate_id == aggregate_id
                        && r.sequence > after
                })
                .cloned()
                .collect())
        }

        async fn end(&self) -> Result<Option<i64>, FeedError> {
            let records = self.records.lock().expect("records");
            Ok(self.ordered.then_some(records.len() as i64))
        }

        async fn read_after(&self, after: i64, limit: i64) -> Result<Vec<FeedItem>, FeedError> {
            let records = self.records.lock().expect("records");
            Ok(records
                .iter()
                .filter(|r| r.position.is_some_and(|p| p > after))
                .take(limit as usize)
                .cloned()
                .collect())
        }
    }

    fn ids(items: &[FeedItem]) -> Vec<(String, i64)> {
        items
            .iter()
            .map(|i| (i.aggregate_id.clone(), i.sequence))
            .collect()
    }

    async fn take(
        stream: &mut BoxStream<'static, Result<FeedItem, FeedError>>,
        n: usize,
    ) -> Vec<FeedItem> {
        let mut items = Vec::new();
        for _ in 0..n {
            let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("an item comes")
                .expect("the feed goes on")
                .expect("an item, not an error");
            items.push(next);
        }
        items
    }

    async fn nothing_more(stream: &mut BoxStream<'static, Result<FeedItem, FeedError>>) {
        let next = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
        assert!(next.is_err(), "nothing more is delivered: {next:?}");
    }

    #[tokio::test]
    async fn one_stream_is_delivered_once_in_order_whatever_the_broadcast_does() {
        let log = Memory::new(false, 64);
        let feed = Feed::new(Arc::clone(&log));
        let first = log.append("a");
        let mut follow = feed.follow_stream("Experiment", "a", Some(&first));
        let (second, third, fourth) = (log.append("a"), log.append("a"), log.append("a"));
        // At least once, out of order, with a gap: 3 before 2, 2 twice, 4 never broadcast.
        log.broadcast(&log.append("b"));
        log.broadcast(&third);
        log.broadcast(&second);
        log.broadcast(&second);
        log.broadcast(&first);
        let got = take(&mut follow, 3).await;
        assert_eq!(
            ids(&got),
            [("a".into(), 2), ("a".into(), 3), ("a".into(), 4)]
        );
        log.broadcast(&fourth);
        nothing_more(&mut follow).await;
        let fifth = log.append("a");
        log.broadcast(&fifth);
        assert_eq!(ids(&take(&mut follow, 1).await), [("a".into(), 5)]);
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_catches_up_from_a_log_with_one_order() {
        let log = Memory::new(true, 4);
        let feed = Feed::new(Arc::clone(&log));
        log.append("a");
        let mut activity = feed.activity(Some("0")).await.expect("activity");
        // Ten records broadcast while it reads nothing: the buffer of four overflows.
        for n in 0..10 {
            let item = log.append(if n % 2 == 0 { "a" } else { "b" });
            log.broadcast(&item);
        }
        let got = take(&mut activity, 11).await;
        let positions: Vec<_> = got.iter().map(|i| i.position).collect();
        assert_eq!(positions, (1..=11).map(Some).collect::<Vec<_>>());
        nothing_more(&mut activity).await;
    }

    #[tokio::test]
    async fn every_stream_without_one_order_ends_with_lagged_once_behind() {
        let log = Memory::new(false, 4);
        let feed = Feed::new(Arc::clone(&log));
        let refused = feed
            .activity(Some("0"))
            .await
            .err()
            .expect("no position to resume");
        assert_eq!(refused.code(), "INVALID_INPUT");
        let mut activity = feed.activity(None).await.expect("activity");
        for _ in 0..10 {
            log.broadcast(&log.append("a"));
        }
        let mut got = Vec::new();
        let error = loop {
            match activity.next().await.expect("an item or the error") {
                Ok(item) => got.push(item),
                Err(e) => break e,
            }
        };
        assert!(matches!(error, FeedError::Lagged(_)), "{error}");
        assert!(
            got.is_empty(),
            "the oldest records were lost to the overflow: {got:?}"
        );
        assert!(
            activity.next().await.is_none(),
            "the feed ends after the error"
        );
    }

    #[tokio::test]
    async fn every_stream_without_one_order_fills_a_gap_from_the_stream() {
        let log = Memory::new(false, 64);
        let feed = Feed::new(Arc::clone(&log));
        let mut activity = feed.activity(None).await.expect("activity");
        let (a1, a2, a3, b1) = (
            log.append("a"),
            log.append("a"),
            log.append("a"),
            log.append("b"),
        );
        log.broadcast(&a1);
        log.broadcast(&b1);
        log.broadcast(&a3);
        log.broadcast(&a2);
        let got = take(&mut activity, 4).await;
        assert_eq!(
            ids(&got),
            [
                ("a".into(), 1),
                ("b".into(), 1),
                ("a".into(), 2),
                ("a".into(), 3)
            ]
        );
        nothing_more(&mut activity).await;
    }
}
