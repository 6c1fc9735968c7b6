//! Planning a delivered batch: the ordering and idempotency rules of every projection feed.
//!
//! Feeds deliver at least once and, across streams, in any order (DynamoDB Streams order only
//! per item; a catch-up reader may re-read after a restart). Given the last applied sequence
//! of each stream, [`plan`] decides, purely:
//!
//! - records at or below the checkpoint are **duplicates** and are skipped;
//! - the rest of each stream is sorted by sequence and applied while it is **contiguous**
//!   (checkpoint + 1, + 2, ...);
//! - a **gap** (the next record is further ahead) stops the stream there: that record and the
//!   stream's later ones fail and are retried later, never skipped over;
//! - a **poison** record (undecodable) stops its stream the same way, while other streams
//!   proceed.
//!
//! [`plan`] decodes the records it applies; [`plan_decoded`] takes records decoded beforehand
//! (the embedded rebuild decodes on another thread than the one that writes) and decides the
//! same.

use std::collections::BTreeMap;

use domain::views::{DecodeError, Envelope, RawRecord};

/// A stored event as a feed delivered it, with the feed's own id for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRecord<Id> {
    /// The feed's id (SQLite rowid, DynamoDB Streams sequence number).
    pub id: Id,
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// Stored sequence.
    pub sequence: i64,
    /// Event type column.
    pub event_type: String,
    /// Event version column.
    pub event_version: String,
    /// Payload JSON text.
    pub payload: String,
    /// Metadata JSON text.
    pub metadata: String,
}

impl<Id> FeedRecord<Id> {
    /// The record's columns, borrowed.
    pub fn raw(&self) -> RawRecord<'_> {
        RawRecord {
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            event_type: &self.event_type,
            event_version: &self.event_version,
            payload: &self.payload,
            metadata: &self.metadata,
        }
    }

    /// Its stream.
    pub fn key(&self) -> StreamKey {
        StreamKey {
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
        }
    }
}

/// A stored event decoded ahead of planning, with the feed's own id for it (its stream is
/// the one [`plan_decoded`] finds it under).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<Id> {
    /// The feed's id.
    pub id: Id,
    /// Stored sequence.
    pub sequence: i64,
    /// [`Envelope::decode`] of the record.
    pub event: Result<Envelope, DecodeError>,
}

/// A record as the planner takes it, once sorted into its stream: [`FeedRecord`] is decoded
/// only if it is to be applied, [`Decoded`] was decoded before.
trait Delivery {
    type Id;
    fn sequence(&self) -> i64;
    fn into_id(self) -> Self::Id;
    fn decode(self) -> (Self::Id, Result<Envelope, DecodeError>);
}

impl<Id> Delivery for FeedRecord<Id> {
    type Id = Id;
    fn sequence(&self) -> i64 {
        self.sequence
    }
    fn into_id(self) -> Id {
        self.id
    }
    fn decode(self) -> (Id, Result<Envelope, DecodeError>) {
        let event = Envelope::decode(self.raw());
        (self.id, event)
    }
}

impl<Id> Delivery for Decoded<Id> {
    type Id = Id;
    fn sequence(&self) -> i64 {
        self.sequence
    }
    fn into_id(self) -> Id {
        self.id
    }
    fn decode(self) -> (Id, Result<Envelope, DecodeError>) {
        (self.id, self.event)
    }
}

/// Identifies a stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
}

/// Contiguous events of one stream, ready to apply after `after`.
#[derive(Debug, Clone)]
pub struct StreamBatch<Id> {
    /// The stream.
    pub key: StreamKey,
    /// The checkpoint the events follow.
    pub after: u64,
    /// Events `after + 1 ..`, in order, with their feed ids.
    pub events: Vec<(Id, Envelope)>,
}

/// Why a record was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotApplied {
    /// The stream's next sequence has not been delivered yet.
    #[error("waiting for sequence {expected} (found {found})")]
    Gap {
        /// Next sequence the stream needs.
        expected: u64,
        /// This record's sequence.
        found: i64,
    },
    /// The record does not decode.
    #[error("poison record: {0}")]
    Poison(DecodeError),
    /// An earlier record of the same stream failed.
    #[error("blocked behind sequence {0} of the same stream")]
    Blocked(u64),
}

/// A record that was not applied and must be delivered again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure<Id> {
    /// The feed's id.
    pub id: Id,
    /// The stream.
    pub key: StreamKey,
    /// The record's sequence.
    pub sequence: i64,
    /// Why.
    pub reason: NotApplied,
}

/// What to do with a delivered batch.
#[derive(Debug, Clone)]
pub struct Plan<Id> {
    /// Per stream, the events to apply now.
    pub batches: Vec<StreamBatch<Id>>,
    /// Records skipped because they were already applied (or delivered twice).
    pub duplicates: usize,
    /// Records to deliver again, per stream in sequence order.
    pub failures: Vec<ItemFailure<Id>>,
}

/// Plans a delivered batch against each stream's checkpoint (see the module docs).
pub fn plan<Id: Clone>(
    records: Vec<FeedRecord<Id>>,
    checkpoint: impl FnMut(&StreamKey) -> u64,
) -> Plan<Id> {
    let mut by_stream: BTreeMap<StreamKey, Vec<FeedRecord<Id>>> = BTreeMap::new();
    for record in records {
        by_stream.entry(record.key()).or_default().push(record);
    }
    plan_streams(by_stream, checkpoint)
}

/// [`plan`] for records decoded beforehand and already sorted into their streams: the same
/// decisions, the same failures.
pub fn plan_decoded<Id>(
    streams: BTreeMap<StreamKey, Vec<Decoded<Id>>>,
    checkpoint: impl FnMut(&StreamKey) -> u64,
) -> Plan<Id> {
    plan_streams(streams, checkpoint)
}

fn plan_streams<D: Delivery>(
    by_stream: BTreeMap<StreamKey, Vec<D>>,
    mut checkpoint: impl FnMut(&StreamKey) -> u64,
) -> Plan<D::Id> {
    let mut out = Plan {
        batches: Vec::new(),
        duplicates: 0,
        failures: Vec::new(),
    };
    for (key, mut records) in by_stream {
        // Stable: of two deliveries of one sequence, the first delivered is kept.
        records.sort_by_key(|r| r.sequence());
        let after = checkpoint(&key);
        // Saturating: a checkpoint lookup that failed answers u64::MAX (everything is skipped).
        let mut next = after.saturating_add(1);
        let mut events = Vec::with_capacity(records.len());
        let mut blocked_at: Option<i64> = None;
        let mut last_failed: Option<i64> = None;
        for record in records {
            let seq = record.sequence();
            // A second delivery of a record that failed (the one that blocked the stream or
            // one blocked behind it): it is failed once.
            if last_failed == Some(seq) {
                out.duplicates += 1;
                continue;
            }
            let (id, reason) = match blocked_at {
                Some(at) => (
                    record.into_id(),
                    NotApplied::Blocked(u64::try_from(at).unwrap_or(0)),
                ),
                None if seq > 0 && u64::try_from(seq).is_ok_and(|s| s < next) => {
                    out.duplicates += 1;
                    continue;
                }
                None if seq > 0 && u64::try_from(seq).is_ok_and(|s| s > next) => (
                    record.into_id(),
                    NotApplied::Gap {
                        expected: next,
                        found: seq,
                    },
                ),
                None => match record.decode() {
                    (id, Ok(envelope)) => {
                        events.push((id, envelope));
                        next += 1;
                        continue;
                    }
                    (id, Err(e)) => (id, NotApplied::Poison(e)),
                },
            };
            blocked_at.get_or_insert(seq);
            last_failed = Some(seq);
            out.failures.push(ItemFailure {
                id,
                key: key.clone(),
                sequence: seq,
                reason,
            });
        }
        if !events.is_empty() {
            out.batches.push(StreamBatch { key, after, events });
        }
    }
    out
}
