//! The activity feed: what live subscriptions deliver, one item per event.

use serde::{Deserialize, Serialize};

use super::Envelope;
use crate::Timestamp;

/// One feed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityItem {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id (experiment id, or `platform`).
    pub aggregate_id: String,
    /// Position in the stream: subscribers order and deduplicate by it.
    pub sequence: u64,
    /// Event type.
    pub event_type: String,
    /// What happened, in words.
    pub summary: String,
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: String,
}

impl ActivityItem {
    /// The item for one event.
    pub fn from_envelope(e: &Envelope) -> Self {
        Self::described(e, e.describe())
    }

    /// The item for one event whose description (`e.describe()`) is already made: the same
    /// as [`Self::from_envelope`], without describing the event again.
    pub fn described(e: &Envelope, summary: String) -> Self {
        Self {
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            event_type: e.event_type(),
            summary,
            at: e.at(),
            actor: e.metadata.actor.clone(),
        }
    }
}
