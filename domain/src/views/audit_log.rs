//! The audit log read model: one entry per event, saying who did what, when, from where,
//! and where it sits in the hash chain. An experiment's entries, in order, are its timeline.

use serde::{Deserialize, Serialize};

use super::Envelope;
use crate::Timestamp;
use crate::provenance::EventMetadata;

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// Position in the stream.
    pub sequence: u64,
    /// Event type (the action taken or observed).
    pub event_type: String,
    /// What happened, in words.
    pub action: String,
    /// Actor id.
    pub actor: String,
    /// Actor role.
    pub actor_role: String,
    /// Interface.
    pub source: String,
    /// When it happened (the command's time).
    pub at: Timestamp,
    /// When the store recorded it.
    pub recorded_at: String,
    /// Idempotency key of the command.
    pub command_id: String,
    /// Correlation id.
    pub correlation_id: String,
    /// Event id.
    pub event_id: String,
    /// Previous chain hash.
    pub prev_hash: String,
    /// Chain hash.
    pub hash: String,
}

impl AuditEntry {
    /// The entry for one event.
    pub fn from_envelope(e: &Envelope) -> Self {
        Self::described(e, e.describe())
    }

    /// The entry for one event whose description (`e.describe()`) is already made: the same
    /// as [`Self::from_envelope`], without describing the event again.
    pub fn described(e: &Envelope, action: String) -> Self {
        Self::of_parts(
            AuditedEvent {
                aggregate_type: e.aggregate_type.clone(),
                aggregate_id: e.aggregate_id.clone(),
                sequence: e.sequence,
                event_type: e.event_type(),
                action,
                at: e.at(),
            },
            e.metadata.clone(),
        )
    }

    /// The entry for an event from what a read model keeps of it and the metadata the log
    /// holds: the same as [`Self::from_envelope`] when `event` is what the envelope says.
    pub fn of_parts(event: AuditedEvent, m: EventMetadata) -> Self {
        Self {
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            action: event.action,
            actor: m.actor,
            actor_role: m.actor_role,
            source: m.source,
            at: event.at,
            recorded_at: m.recorded_at,
            command_id: m.command_id,
            correlation_id: m.correlation_id,
            event_id: m.event_id,
            prev_hash: m.prev_hash,
            hash: m.hash,
        }
    }
}

/// What an audit entry says of its event beyond the event's metadata: where it is, its type,
/// what it did in words ([`Envelope::describe`]) and when ([`Envelope::at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedEvent {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// Position in the stream.
    pub sequence: u64,
    /// Event type.
    pub event_type: String,
    /// What happened, in words.
    pub action: String,
    /// When it happened.
    pub at: Timestamp,
}
