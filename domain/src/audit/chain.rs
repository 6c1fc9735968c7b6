//! The per-stream hash chain.
//!
//! For event `n` of a stream (sequence numbers start at 1):
//!
//! ```text
//! hash_n = SHA-256( bytes(prev_hash_n) || canonical_event_n )
//! prev_hash_1 = 32 zero bytes;  prev_hash_n = hash_(n-1)
//! ```
//!
//! `bytes(..)` is the raw 32-byte digest (metadata stores it as 64 lowercase hex characters),
//! and `canonical_event_n` is the canonical JSON (see [`super::canonical`]) of
//!
//! ```text
//! {"aggregate_id":..,"aggregate_type":..,"event_type":..,"event_version":..,
//!  "metadata":{"actor":..,"actor_role":..,"command_id":..,"correlation_id":..,
//!              "event_id":..,"recorded_at":..,"source":..},
//!  "payload":<the event payload>,"sequence":n}
//! ```
//!
//! `prev_hash` and `hash` are stored in the metadata but are not part of the hashed object.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::canonical::{CanonicalError, push_u64, write_string, write_value};
use crate::provenance::EventMetadata;

/// `prev_hash` of the first event of every stream.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// [`GENESIS_HASH`] as the digest it encodes.
pub const GENESIS_DIGEST: [u8; 32] = [0; 32];

/// One event with everything the chain covers.
#[derive(Debug, Clone, Copy)]
pub struct EventRecord<'a> {
    /// Aggregate type, e.g. `Experiment`.
    pub aggregate_type: &'a str,
    /// Stream id.
    pub aggregate_id: &'a str,
    /// Position in the stream, from 1.
    pub sequence: u64,
    /// Event type, e.g. `ExperimentStarted`.
    pub event_type: &'a str,
    /// Event schema version, e.g. `1`.
    pub event_version: &'a str,
    /// Metadata (its `prev_hash` and `hash` are ignored here).
    pub metadata: &'a EventMetadata,
}

/// Appends the canonical event text, with `payload` already in canonical form.
///
/// Taking the payload as canonical text lets the verifier hash the stored bytes it has just
/// checked, without serializing them again.
pub fn write_canonical_event(out: &mut String, record: &EventRecord<'_>, canonical_payload: &str) {
    let m = record.metadata;
    write_event_start(out, record.aggregate_id, record.aggregate_type);
    write_event_rest(
        out,
        record.event_type,
        record.event_version,
        |out| {
            out.push_str("{\"actor\":");
            write_string(out, &m.actor);
            out.push_str(",\"actor_role\":");
            write_string(out, &m.actor_role);
            if let Some(command) = &m.command {
                out.push_str(",\"command\":");
                write_string(out, command);
            }
            out.push_str(",\"command_id\":");
            write_string(out, &m.command_id);
            out.push_str(",\"correlation_id\":");
            write_string(out, &m.correlation_id);
            out.push_str(",\"event_id\":");
            write_string(out, &m.event_id);
            out.push_str(",\"recorded_at\":");
            write_string(out, &m.recorded_at);
            out.push_str(",\"source\":");
            write_string(out, &m.source);
            out.push('}');
        },
        canonical_payload,
        record.sequence,
    );
}

/// Appends the first members of the canonical event, which are the same for a whole stream:
/// `{"aggregate_id":..,"aggregate_type":..` (no closing brace).
///
/// Canonical string literals are self-delimiting, so this text also names the stream
/// unambiguously; the verifier uses it as its stream key.
pub(crate) fn write_event_start(out: &mut String, aggregate_id: &str, aggregate_type: &str) {
    out.push_str("{\"aggregate_id\":");
    write_string(out, aggregate_id);
    out.push_str(",\"aggregate_type\":");
    write_string(out, aggregate_type);
}

/// Appends the rest of the canonical event after [`write_event_start`]; `metadata` writes the
/// canonical metadata object without `prev_hash` and `hash`.
pub(crate) fn write_event_rest(
    out: &mut String,
    event_type: &str,
    event_version: &str,
    metadata: impl FnOnce(&mut String),
    canonical_payload: &str,
    sequence: u64,
) {
    out.push_str(",\"event_type\":");
    write_string(out, event_type);
    out.push_str(",\"event_version\":");
    write_string(out, event_version);
    out.push_str(",\"metadata\":");
    metadata(out);
    out.push_str(",\"payload\":");
    out.push_str(canonical_payload);
    out.push_str(",\"sequence\":");
    push_u64(out, sequence);
    out.push('}');
}

/// The canonical text of an event.
pub fn canonical_event(
    record: &EventRecord<'_>,
    payload: &Value,
) -> Result<String, CanonicalError> {
    let mut payload_text = String::with_capacity(256);
    write_value(&mut payload_text, payload)?;
    let mut out = String::with_capacity(payload_text.len() + 512);
    write_canonical_event(&mut out, record, &payload_text);
    Ok(out)
}

/// A `prev_hash` that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 hex digest: {0:?}")]
pub struct BadDigest(pub String);

/// Decodes a 64-character lowercase hex digest.
pub fn decode_digest(hex_digest: &str) -> Result<[u8; 32], BadDigest> {
    digest_from_hex(hex_digest.as_bytes()).ok_or_else(|| BadDigest(hex_digest.to_owned()))
}

/// [`decode_digest`] without the error text: `None` unless exactly 64 of `0-9a-f`.
pub(crate) fn digest_from_hex(hex_digest: &[u8]) -> Option<[u8; 32]> {
    /// Value of each lowercase hex digit; 0xff for every other byte. A table, not a match:
    /// digests are random, so branching on digit-or-letter would mispredict half the time.
    const NIBBLE: [u8; 256] = {
        let mut table = [0xff; 256];
        let mut i = 0;
        while i < 16 {
            table[b"0123456789abcdef"[i] as usize] = i as u8;
            i += 1;
        }
        table
    };
    if hex_digest.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut invalid = 0;
    for (byte, pair) in out.iter_mut().zip(hex_digest.chunks_exact(2)) {
        let (high, low) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
        invalid |= high | low;
        *byte = (high << 4) | (low & 0xf);
    }
    (invalid & 0xf0 == 0).then_some(out)
}

/// `SHA-256(prev || canonical)` as lowercase hex.
pub fn link_hash(prev: &[u8; 32], canonical: &[u8]) -> String {
    hex::encode(link_digest(prev, canonical))
}

/// `SHA-256(prev || canonical)`.
pub fn link_digest(prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// The hash of `record` when it follows `prev_hash`; the caller stores both in the metadata.
pub fn seal(
    record: &EventRecord<'_>,
    payload: &Value,
    prev_hash: &str,
) -> Result<String, SealError> {
    let prev = decode_digest(prev_hash)?;
    let canonical = canonical_event(record, payload)?;
    Ok(link_hash(&prev, canonical.as_bytes()))
}

/// An event that cannot be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The payload holds a value outside the canonical domain.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    /// The previous hash is malformed.
    #[error(transparent)]
    Digest(#[from] BadDigest),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata() -> EventMetadata {
        EventMetadata {
            event_id: "019ac0de-0000-7000-8000-000000000001".into(),
            command_id: "cmd-1".into(),
            correlation_id: "corr-1".into(),
            actor: "alice".into(),
            actor_role: "OPERATOR".into(),
            command: None,
            source: "cli".into(),
            recorded_at: "2026-11-26T10:00:00.000Z".into(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn canonical_event_is_the_sorted_compact_object() {
        let m = metadata();
        let record = EventRecord {
            aggregate_type: "Experiment",
            aggregate_id: "e-1",
            sequence: 1,
            event_type: "ExperimentStarted",
            event_version: "1",
            metadata: &m,
        };
        let payload = json!({"ExperimentStarted": {"at": "2026-11-26T10:00:00.000Z"}});
        let text = canonical_event(&record, &payload).expect("canonical");
        // The same object built generically and canonicalized must give the same bytes.
        let generic = json!({
            "sequence": 1, "payload": payload, "event_version": "1", "event_type": "ExperimentStarted",
            "aggregate_type": "Experiment", "aggregate_id": "e-1",
            "metadata": {"source": "cli", "recorded_at": "2026-11-26T10:00:00.000Z",
                "event_id": "019ac0de-0000-7000-8000-000000000001", "correlation_id": "corr-1",
                "command_id": "cmd-1", "actor_role": "OPERATOR", "actor": "alice"}
        });
        assert_eq!(
            text,
            super::super::canonical::to_canonical(&generic).expect("canonical")
        );
    }

    #[test]
    fn sealing_links_to_the_previous_hash() {
        let payload = json!({"X": {}});
        let m = metadata();
        let record = |sequence| EventRecord {
            aggregate_type: "Experiment",
            aggregate_id: "e-1",
            sequence,
            event_type: "X",
            event_version: "1",
            metadata: &m,
        };
        let first = seal(&record(1), &payload, GENESIS_HASH).expect("seal");
        assert_eq!(first.len(), 64);
        let second = seal(&record(2), &payload, &first).expect("seal");
        assert_ne!(second, first);
        // Same content at another position hashes differently.
        assert_ne!(
            seal(&record(2), &payload, GENESIS_HASH).expect("seal"),
            first
        );
        assert!(seal(&record(2), &payload, "zz").is_err());
        assert_eq!(decode_digest(GENESIS_HASH), Ok(GENESIS_DIGEST));
        assert!(seal(&record(2), &payload, &first.to_uppercase()).is_err());
    }
}
