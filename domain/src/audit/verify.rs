//! Verifies stored events exactly as they sit in a store, byte for byte.
//!
//! Feed rows in storage order (streams may interleave; within a stream rows must come in the
//! order they were appended). For each stream the verifier checks, at every position:
//! the sequence continues without gaps from 1; payload and metadata are valid canonical JSON
//! (so no stored byte can change without changing the parsed value); `prev_hash` equals the
//! previous event's `hash` (the genesis hash for the first); and `hash` is the recomputed
//! chain hash. The first failing position of each stream is reported and the rest of that
//! stream is skipped, since everything after a break is unverifiable.

use std::collections::HashMap;

use serde_json::Value;

use super::canonical::write_value;
use super::chain::{EventRecord, GENESIS_HASH, decode_digest, link_hash, write_canonical_event};
use crate::provenance::EventMetadata;

/// One event as stored: text columns exactly as read.
#[derive(Debug, Clone, Copy)]
pub struct StoredRow<'a> {
    /// Aggregate type.
    pub aggregate_type: &'a str,
    /// Stream id.
    pub aggregate_id: &'a str,
    /// Stored sequence number.
    pub sequence: i64,
    /// Event type.
    pub event_type: &'a str,
    /// Event version.
    pub event_version: &'a str,
    /// Stored payload text.
    pub payload: &'a str,
    /// Stored metadata text.
    pub metadata: &'a str,
}

/// What is wrong at a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultKind {
    /// The stored sequence is not the next one (an event was deleted, inserted or moved).
    #[error("expected sequence {expected}, found {found}")]
    SequenceBreak {
        /// Sequence that should come next.
        expected: u64,
        /// Sequence stored here.
        found: i64,
    },
    /// The payload is not JSON.
    #[error("payload is not valid JSON: {0}")]
    MalformedPayload(String),
    /// The payload is JSON but not in canonical form (bytes were altered).
    #[error("payload is not in canonical form")]
    NonCanonicalPayload,
    /// The metadata is not the expected JSON object.
    #[error("metadata is malformed: {0}")]
    MalformedMetadata(String),
    /// The metadata is JSON but not in canonical form (bytes were altered).
    #[error("metadata is not in canonical form")]
    NonCanonicalMetadata,
    /// `prev_hash` does not name the previous event's hash.
    #[error("prev_hash {stored} does not match the previous hash {expected}")]
    BrokenLink {
        /// Hash of the previous event (or the genesis hash).
        expected: String,
        /// Stored `prev_hash`.
        stored: String,
    },
    /// The stored hash is not the hash of the stored content.
    #[error("hash {stored} does not match the content, which hashes to {computed}")]
    HashMismatch {
        /// Stored `hash`.
        stored: String,
        /// Recomputed hash.
        computed: String,
    },
}

/// The first bad position of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Aggregate type of the stream.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// First sequence that does not verify.
    pub sequence: u64,
    /// Why.
    pub kind: FaultKind,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} at sequence {}: {}",
            self.aggregate_type, self.aggregate_id, self.sequence, self.kind
        )
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Rows examined.
    pub events: u64,
    /// Distinct streams seen.
    pub streams: u64,
    /// First fault of each broken stream, ordered by stream.
    pub faults: Vec<Fault>,
    /// Last hash and sequence of every intact stream, ordered by stream.
    pub heads: Vec<StreamHead>,
}

impl VerifyReport {
    /// Whether every stream verified.
    pub fn is_ok(&self) -> bool {
        self.faults.is_empty()
    }
}

/// The end of an intact stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHead {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// Last sequence.
    pub sequence: u64,
    /// Hash of the last event.
    pub hash: String,
}

#[derive(Debug)]
enum StreamState {
    Intact { next: u64, head: String },
    Broken,
}

/// Incremental verifier; see the module docs.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    streams: HashMap<(String, String), StreamState>,
    faults: Vec<Fault>,
    events: u64,
    scratch_payload: String,
    scratch_event: String,
}

impl ChainVerifier {
    /// An empty verifier.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next stored row.
    pub fn push(&mut self, row: &StoredRow<'_>) {
        self.events += 1;
        let key = (row.aggregate_type.to_owned(), row.aggregate_id.to_owned());
        let state = self
            .streams
            .entry(key)
            .or_insert_with(|| StreamState::Intact {
                next: 1,
                head: GENESIS_HASH.to_owned(),
            });
        let StreamState::Intact { next, head } = state else {
            return;
        };
        let expected = *next;
        match check_row(
            row,
            expected,
            head,
            &mut self.scratch_payload,
            &mut self.scratch_event,
        ) {
            Ok(hash) => {
                *next += 1;
                *head = hash;
            }
            Err(kind) => {
                self.faults.push(Fault {
                    aggregate_type: row.aggregate_type.to_owned(),
                    aggregate_id: row.aggregate_id.to_owned(),
                    sequence: expected,
                    kind,
                });
                *state = StreamState::Broken;
            }
        }
    }

    /// The report over every row pushed.
    pub fn finish(self) -> VerifyReport {
        let mut faults = self.faults;
        faults.sort_by(|a, b| {
            (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
        });
        let streams = self.streams.len() as u64;
        let mut heads: Vec<StreamHead> = self
            .streams
            .into_iter()
            .filter_map(|((aggregate_type, aggregate_id), state)| match state {
                StreamState::Intact { next, head } => Some(StreamHead {
                    aggregate_type,
                    aggregate_id,
                    sequence: next - 1,
                    hash: head,
                }),
                StreamState::Broken => None,
            })
            .collect();
        heads.sort_by(|a, b| {
            (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
        });
        VerifyReport {
            events: self.events,
            streams,
            faults,
            heads,
        }
    }
}

/// Checks one row against the expected position and previous hash; returns its hash.
fn check_row(
    row: &StoredRow<'_>,
    expected: u64,
    prev_hash: &str,
    payload_buf: &mut String,
    event_buf: &mut String,
) -> Result<String, FaultKind> {
    if u64::try_from(row.sequence).ok() != Some(expected) {
        return Err(FaultKind::SequenceBreak {
            expected,
            found: row.sequence,
        });
    }

    let payload: Value = serde_json::from_str(row.payload)
        .map_err(|e| FaultKind::MalformedPayload(e.to_string()))?;
    payload_buf.clear();
    write_value(payload_buf, &payload).map_err(|e| FaultKind::MalformedPayload(e.to_string()))?;
    if payload_buf != row.payload {
        return Err(FaultKind::NonCanonicalPayload);
    }

    let metadata: EventMetadata = serde_json::from_str(row.metadata)
        .map_err(|e| FaultKind::MalformedMetadata(e.to_string()))?;
    if canonical_metadata(&metadata) != row.metadata {
        return Err(FaultKind::NonCanonicalMetadata);
    }

    if metadata.prev_hash != prev_hash {
        return Err(FaultKind::BrokenLink {
            expected: prev_hash.to_owned(),
            stored: metadata.prev_hash,
        });
    }
    let prev = decode_digest(prev_hash).map_err(|e| FaultKind::MalformedMetadata(e.to_string()))?;

    event_buf.clear();
    write_canonical_event(
        event_buf,
        &EventRecord {
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            sequence: expected,
            event_type: row.event_type,
            event_version: row.event_version,
            metadata: &metadata,
        },
        payload_buf,
    );
    let computed = link_hash(&prev, event_buf.as_bytes());
    if computed != metadata.hash {
        return Err(FaultKind::HashMismatch {
            stored: metadata.hash,
            computed,
        });
    }
    Ok(computed)
}

/// The canonical text of stored metadata (all nine fields, sorted).
pub fn canonical_metadata(m: &EventMetadata) -> String {
    use super::canonical::write_string;
    let mut out = String::with_capacity(512);
    let fields: [(&str, &str); 9] = [
        ("actor", &m.actor),
        ("actor_role", &m.actor_role),
        ("command_id", &m.command_id),
        ("correlation_id", &m.correlation_id),
        ("event_id", &m.event_id),
        ("hash", &m.hash),
        ("prev_hash", &m.prev_hash),
        ("recorded_at", &m.recorded_at),
        ("source", &m.source),
    ];
    out.push('{');
    for (i, (name, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(&mut out, name);
        out.push(':');
        write_string(&mut out, value);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::canonical::to_canonical;
    use crate::audit::chain::seal;
    use serde_json::json;

    struct Owned {
        id: String,
        sequence: i64,
        payload: String,
        metadata: String,
    }

    fn stream(id: &str, n: usize) -> Vec<Owned> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let payload = json!({"HealthChecked": {"sample": seq, "note": "ok \"quoted\""}});
                let mut m = EventMetadata {
                    event_id: format!("ev-{seq}"),
                    command_id: format!("cmd-{seq}"),
                    correlation_id: "corr".into(),
                    actor: "workflow".into(),
                    actor_role: "OPERATOR".into(),
                    source: "workflow".into(),
                    recorded_at: "2026-11-26T10:00:00.000Z".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                let record = EventRecord {
                    aggregate_type: "Experiment",
                    aggregate_id: id,
                    sequence: seq as u64,
                    event_type: "HealthChecked",
                    event_version: "1",
                    metadata: &m,
                };
                m.hash = seal(&record, &payload, &prev).expect("seal");
                prev = m.hash.clone();
                Owned {
                    id: id.to_owned(),
                    sequence: seq as i64,
                    payload: to_canonical(&payload).expect("canonical"),
                    metadata: serde_json::to_string(&serde_json::to_value(&m).expect("value"))
                        .expect("json"),
                }
            })
            .collect()
    }

    fn verify(rows: &[Owned]) -> VerifyReport {
        let mut v = ChainVerifier::new();
        for r in rows {
            v.push(&StoredRow {
                aggregate_type: "Experiment",
                aggregate_id: &r.id,
                sequence: r.sequence,
                event_type: "HealthChecked",
                event_version: "1",
                payload: &r.payload,
                metadata: &r.metadata,
            });
        }
        v.finish()
    }

    fn first_fault(rows: &[Owned]) -> (u64, FaultKind) {
        let report = verify(rows);
        assert_eq!(report.faults.len(), 1, "{report:?}");
        let f = report.faults[0].clone();
        (f.sequence, f.kind)
    }

    #[test]
    fn an_untouched_log_verifies_and_reports_heads() {
        let mut rows = stream("a", 5);
        rows.extend(stream("b", 3));
        let report = verify(&rows);
        assert!(report.is_ok(), "{report:?}");
        assert_eq!((report.events, report.streams), (8, 2));
        assert_eq!(report.heads[0].sequence, 5);
        assert_eq!(report.heads[1].sequence, 3);
    }

    #[test]
    fn stored_metadata_text_is_what_canonical_metadata_writes() {
        let rows = stream("a", 1);
        let m: EventMetadata = serde_json::from_str(&rows[0].metadata).expect("json");
        assert_eq!(canonical_metadata(&m), rows[0].metadata);
    }

    #[test]
    fn an_altered_payload_byte_is_found_at_its_position() {
        let mut rows = stream("a", 5);
        rows[2].payload = rows[2].payload.replacen("ok", "ko", 1);
        assert!(matches!(
            first_fault(&rows),
            (3, FaultKind::HashMismatch { .. })
        ));
    }

    #[test]
    fn added_whitespace_is_a_fault_even_though_the_value_is_equal() {
        let mut rows = stream("a", 5);
        rows[1].payload = rows[1].payload.replacen(':', ": ", 1);
        assert_eq!(first_fault(&rows), (2, FaultKind::NonCanonicalPayload));
    }

    #[test]
    fn an_altered_metadata_byte_is_found() {
        let mut rows = stream("a", 5);
        rows[3].metadata = rows[3].metadata.replacen("workflow", "workflaw", 1);
        assert!(matches!(
            first_fault(&rows),
            (4, FaultKind::HashMismatch { .. })
        ));
    }

    #[test]
    fn a_deleted_event_is_a_sequence_break() {
        let mut rows = stream("a", 5);
        rows.remove(1);
        assert_eq!(
            first_fault(&rows),
            (
                2,
                FaultKind::SequenceBreak {
                    expected: 2,
                    found: 3
                }
            )
        );
    }

    #[test]
    fn swapped_events_are_found_at_the_first_of_them() {
        let mut rows = stream("a", 5);
        rows.swap(1, 2);
        assert_eq!(first_fault(&rows).0, 2);
        // Renumbering the swapped rows to hide the break still fails on the chain.
        let mut rows = stream("a", 5);
        rows.swap(1, 2);
        rows[1].sequence = 2;
        rows[2].sequence = 3;
        assert!(matches!(
            first_fault(&rows),
            (2, FaultKind::BrokenLink { .. })
        ));
    }

    #[test]
    fn a_recomputed_hash_still_breaks_the_next_link() {
        // An attacker who edits event 2 and fixes its own hash is caught at event 3.
        let mut rows = stream("a", 4);
        let mut m: EventMetadata = serde_json::from_str(&rows[1].metadata).expect("json");
        let payload = json!({"HealthChecked": {"sample": 2, "note": "forged"}});
        m.hash = seal(
            &EventRecord {
                aggregate_type: "Experiment",
                aggregate_id: "a",
                sequence: 2,
                event_type: "HealthChecked",
                event_version: "1",
                metadata: &m,
            },
            &payload,
            &m.prev_hash.clone(),
        )
        .expect("seal");
        rows[1].payload = to_canonical(&payload).expect("canonical");
        rows[1].metadata = canonical_metadata(&m);
        assert!(matches!(
            first_fault(&rows),
            (3, FaultKind::BrokenLink { .. })
        ));
    }

    #[test]
    fn garbage_is_reported_not_panicked_on() {
        let mut rows = stream("a", 3);
        rows[0].payload = "{not json".into();
        assert!(matches!(
            first_fault(&rows),
            (1, FaultKind::MalformedPayload(_))
        ));
        let mut rows = stream("a", 3);
        rows[2].metadata = "[]".into();
        assert!(matches!(
            first_fault(&rows),
            (3, FaultKind::MalformedMetadata(_))
        ));
    }
}
