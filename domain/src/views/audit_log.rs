//! The audit log read model: one entry per event, saying who did what, when, from where,
//! and where it sits in the hash chain. An experiment's entries, in order, are its timeline.

use serde::{Deserialize, Serialize};

use super::Envelope;
use crate::Timestamp;

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
        let m = &e.metadata;
        Self {
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            event_type: e.event_type(),
            action: e.describe(),
            actor: m.actor.clone(),
            actor_role: m.actor_role.clone(),
            source: m.source.clone(),
            at: e.at(),
            recorded_at: m.recorded_at.clone(),
            command_id: m.command_id.clone(),
            correlation_id: m.correlation_id.clone(),
            event_id: m.event_id.clone(),
            prev_hash: m.prev_hash.clone(),
            hash: m.hash.clone(),
        }
    }
}
