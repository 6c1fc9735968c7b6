//! Verifies stored events exactly as they sit in a store, byte for byte.
//!
//! Feed rows in storage order (streams may interleave; within a stream rows must come in the
//! order they were appended). For each stream the verifier checks, at every position:
//! the sequence continues without gaps from 1; payload and metadata are valid canonical JSON
//! (so no stored byte can change without changing the parsed value); `prev_hash` equals the
//! previous event's `hash` (the genesis hash for the first); and `hash` is the recomputed
//! chain hash. The first failing position of each stream is reported and the rest of that
//! stream is skipped, since everything after a break is unverifiable.
//!
//! Two paths, one answer. Every row first takes the fast path: the payload is checked to *be*
//! canonical text in one pass ([`is_canonical`]), the metadata is matched against the only
//! text canonical metadata can be (nine string members in a fixed order), and the event is
//! hashed from slices of the stored text, with no parsed values and no allocation. A row the
//! fast path does not accept is checked again by the reference path (`check_row`: parse,
//! re-serialize, compare), which alone decides the fault. So the fast path only has to never
//! accept what the reference refuses (and should accept what it accepts, or verification is
//! merely slower); the property tests here and in `domain/tests/canonical_fast.rs` hold it to
//! both.
//!
//! The verifier is single-threaded and does no I/O; a store may run several over disjoint sets
//! of streams and combine their reports with [`VerifyReport::merge`].

use std::collections::HashMap;

use serde_json::Value;

use super::books::{self, BookFacts};
use super::canonical::{is_canonical, string_end, write_value};
// Only the tests spell the genesis out; the verifier starts streams from its digest.
#[cfg(test)]
use super::chain::GENESIS_HASH;
use super::chain::{
    EventRecord, GENESIS_DIGEST, digest_from_hex, link_digest, write_canonical_event,
    write_event_rest, write_event_start,
};
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

/// One event as stored, owned (read from a store that lends no borrowed text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRow {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// Stored sequence number.
    pub sequence: i64,
    /// Event type.
    pub event_type: String,
    /// Event version.
    pub event_version: String,
    /// Stored payload text.
    pub payload: String,
    /// Stored metadata text.
    pub metadata: String,
}

impl OwnedRow {
    /// The row, borrowed.
    pub fn row(&self) -> StoredRow<'_> {
        StoredRow {
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            event_type: &self.event_type,
            event_version: &self.event_version,
            payload: &self.payload,
            metadata: &self.metadata,
        }
    }
}

/// Orders rows stream by stream, each in sequence order.
pub fn sort_streams(rows: &mut [OwnedRow]) {
    rows.sort_by(|a, b| {
        (&a.aggregate_type, &a.aggregate_id, a.sequence).cmp(&(
            &b.aggregate_type,
            &b.aggregate_id,
            b.sequence,
        ))
    });
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
    /// The stream breaks how books of a ledger open, close and continue one another.
    #[error("{0}")]
    Book(String),
    /// A column of the stored row is not UTF-8 text (its bytes were altered or damaged).
    #[error("the {0} column is not UTF-8 text")]
    NotText(String),
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
    /// The streams that open or close books of a ledger, with what they say.
    pub books: Vec<BookFacts>,
    /// Openings that name a stream this report did not read: a fault once the report covers
    /// the whole log ([`VerifyReport::of_whole_log`]).
    pub dangling: Vec<Fault>,
}

impl VerifyReport {
    /// Whether every stream verified.
    pub fn is_ok(&self) -> bool {
        self.faults.is_empty()
    }

    /// The report one verifier would give over all the rows of `parts`, which must each cover
    /// a disjoint set of streams (every row of a stream went to the same verifier) and come
    /// from [`ChainVerifier::finish_part`]: the links between books are checked here, once.
    pub fn merge(parts: impl IntoIterator<Item = VerifyReport>) -> VerifyReport {
        let mut merged = VerifyReport {
            events: 0,
            streams: 0,
            faults: Vec::new(),
            heads: Vec::new(),
            books: Vec::new(),
            dangling: Vec::new(),
        };
        for report in parts {
            merged.events += report.events;
            merged.streams += report.streams;
            merged.faults.extend(report.faults);
            merged.heads.extend(report.heads);
            merged.books.extend(report.books);
            merged.dangling.extend(report.dangling);
        }
        let broken: std::collections::HashSet<(String, String)> = merged
            .faults
            .iter()
            .map(|f| (f.aggregate_type.clone(), f.aggregate_id.clone()))
            .collect();
        let resolved = books::resolve(&merged.books, &merged.heads, |t, id| {
            broken.contains(&(t.to_owned(), id.to_owned()))
        });
        merged.fail(resolved.faults);
        merged.dangling.extend(resolved.dangling);
        merged.sort();
        merged
    }

    /// This report as the verdict on a whole log: an opening that names a stream the log does
    /// not hold is a fault (a book was removed).
    pub fn of_whole_log(mut self) -> VerifyReport {
        let dangling = std::mem::take(&mut self.dangling);
        self.fail(dangling);
        self.sort();
        self
    }

    /// Records `faults` of streams that verified so far: their streams are no longer intact.
    /// A stream keeps its first fault only.
    fn fail(&mut self, faults: Vec<Fault>) {
        for fault in faults {
            let stream = (&fault.aggregate_type, &fault.aggregate_id);
            if self
                .faults
                .iter()
                .any(|f| (&f.aggregate_type, &f.aggregate_id) == stream)
            {
                continue;
            }
            self.heads
                .retain(|h| (&h.aggregate_type, &h.aggregate_id) != stream);
            self.faults.push(fault);
        }
    }

    fn sort(&mut self) {
        self.faults.sort_by(|a, b| {
            (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
        });
        self.heads.sort_by(|a, b| {
            (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
        });
        self.books.sort_by(|a, b| {
            (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
        });
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
struct Stream {
    aggregate_type: String,
    aggregate_id: String,
    state: StreamState,
    book: books::Facts,
}

#[derive(Debug)]
enum StreamState {
    Intact { next: u64, head: [u8; 32] },
    Broken,
}

/// Incremental verifier; see the module docs.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    /// Position in `streams` by the text every event of the stream starts with (see
    /// `write_event_start`): unambiguous, and written for the hash anyway, so looking a row's
    /// stream up costs no allocation.
    index: HashMap<Box<str>, usize>,
    streams: Vec<Stream>,
    faults: Vec<Fault>,
    events: u64,
    /// The canonical event being hashed, reused from row to row.
    event: String,
}

impl ChainVerifier {
    /// An empty verifier.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next stored row.
    pub fn push(&mut self, row: &StoredRow<'_>) {
        let index = self.stream_of(row);
        let stream = &mut self.streams[index];
        let StreamState::Intact { next, head } = &mut stream.state else {
            return;
        };
        let expected = *next;
        let checked = match check_row_fast(row, expected, head, &mut self.event) {
            Some(hash) => Ok(hash),
            None => check_row(row, expected, head),
        }
        .and_then(|hash| stream.book.observe(row, expected).map(|()| hash));
        match checked {
            Ok(hash) => {
                *next += 1;
                *head = hash;
            }
            Err(kind) => self.break_stream(index, expected, kind),
        }
    }

    /// Takes in a row whose `column` could not be read as text (its other columns read with
    /// the bad bytes replaced, so that its stream is known): the first fault of its stream,
    /// unless the stream broke earlier.
    pub fn push_not_text(&mut self, row: &StoredRow<'_>, column: &str) {
        let index = self.stream_of(row);
        if let StreamState::Intact { next, .. } = self.streams[index].state {
            self.break_stream(index, next, FaultKind::NotText(column.to_owned()));
        }
    }

    fn break_stream(&mut self, index: usize, sequence: u64, kind: FaultKind) {
        let stream = &mut self.streams[index];
        self.faults.push(Fault {
            aggregate_type: stream.aggregate_type.clone(),
            aggregate_id: stream.aggregate_id.clone(),
            sequence,
            kind,
        });
        stream.state = StreamState::Broken;
    }

    /// Counts the row and finds its stream (a new one from its first row); leaves the start of
    /// the row's canonical event in `self.event`.
    fn stream_of(&mut self, row: &StoredRow<'_>) -> usize {
        self.events += 1;
        self.event.clear();
        write_event_start(&mut self.event, row.aggregate_id, row.aggregate_type);
        match self.index.get(self.event.as_str()) {
            Some(&index) => index,
            None => {
                let index = self.streams.len();
                self.index.insert(self.event.as_str().into(), index);
                self.streams.push(Stream {
                    aggregate_type: row.aggregate_type.to_owned(),
                    aggregate_id: row.aggregate_id.to_owned(),
                    state: StreamState::Intact {
                        next: 1,
                        head: GENESIS_DIGEST,
                    },
                    book: books::Facts::default(),
                });
                index
            }
        }
    }

    /// Faults found so far (one per broken stream): a caller that knows where each row came
    /// from (a line of a file) compares it before and after a push to locate a new fault.
    pub fn fault_count(&self) -> usize {
        self.faults.len()
    }

    /// The report over every row pushed, the links between the books it read checked.
    pub fn finish(self) -> VerifyReport {
        VerifyReport::merge([self.finish_part()])
    }

    /// The report over every row pushed, when other verifiers read the other streams: to be
    /// merged with theirs ([`VerifyReport::merge`]), which checks the links between books.
    pub fn finish_part(self) -> VerifyReport {
        let streams = self.streams.len() as u64;
        let mut heads = Vec::with_capacity(self.streams.len());
        let mut books = Vec::new();
        for stream in self.streams {
            if let StreamState::Intact { next, head } = stream.state {
                books.extend(
                    stream
                        .book
                        .into_facts(&stream.aggregate_type, &stream.aggregate_id),
                );
                heads.push(StreamHead {
                    aggregate_type: stream.aggregate_type,
                    aggregate_id: stream.aggregate_id,
                    sequence: next - 1,
                    hash: hex::encode(head),
                });
            }
        }
        VerifyReport {
            events: self.events,
            streams,
            faults: self.faults,
            heads,
            books,
            dangling: Vec::new(),
        }
    }
}

/// The fast path: the row's hash if it verifies, `None` for anything else (even a row the
/// reference path would accept). `event` holds the output of `write_event_start` for the row.
fn check_row_fast(
    row: &StoredRow<'_>,
    expected: u64,
    prev: &[u8; 32],
    event: &mut String,
) -> Option<[u8; 32]> {
    if u64::try_from(row.sequence).ok() != Some(expected) || !is_canonical(row.payload) {
        return None;
    }
    let metadata = CanonicalMetadata::parse(row.metadata)?;
    if digest_from_hex(metadata.prev_hash.as_bytes())? != *prev {
        return None;
    }
    let stored = digest_from_hex(metadata.hash.as_bytes())?;
    write_event_rest(
        event,
        row.event_type,
        row.event_version,
        |out| metadata.write_hashed(out),
        row.payload,
        expected,
    );
    let computed = link_digest(prev, event.as_bytes());
    (computed == stored).then_some(computed)
}

/// The reference path: checks one row against the expected position and previous hash the
/// way the algorithm is written down (parse, re-serialize, compare); returns its hash.
fn check_row(row: &StoredRow<'_>, expected: u64, prev: &[u8; 32]) -> Result<[u8; 32], FaultKind> {
    if u64::try_from(row.sequence).ok() != Some(expected) {
        return Err(FaultKind::SequenceBreak {
            expected,
            found: row.sequence,
        });
    }

    let payload: Value = serde_json::from_str(row.payload)
        .map_err(|e| FaultKind::MalformedPayload(e.to_string()))?;
    let mut canonical_payload = String::with_capacity(row.payload.len());
    write_value(&mut canonical_payload, &payload)
        .map_err(|e| FaultKind::MalformedPayload(e.to_string()))?;
    if canonical_payload != row.payload {
        return Err(FaultKind::NonCanonicalPayload);
    }

    let metadata: EventMetadata = serde_json::from_str(row.metadata)
        .map_err(|e| FaultKind::MalformedMetadata(e.to_string()))?;
    if canonical_metadata(&metadata) != row.metadata {
        return Err(FaultKind::NonCanonicalMetadata);
    }

    let prev_hash = hex::encode(prev);
    if metadata.prev_hash != prev_hash {
        return Err(FaultKind::BrokenLink {
            expected: prev_hash,
            stored: metadata.prev_hash,
        });
    }

    let mut event = String::with_capacity(row.payload.len() + row.metadata.len() + 128);
    write_canonical_event(
        &mut event,
        &EventRecord {
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            sequence: expected,
            event_type: row.event_type,
            event_version: row.event_version,
            metadata: &metadata,
        },
        &canonical_payload,
    );
    let computed = link_digest(prev, event.as_bytes());
    if hex::encode(computed) != metadata.hash {
        return Err(FaultKind::HashMismatch {
            stored: metadata.hash,
            computed: hex::encode(computed),
        });
    }
    Ok(computed)
}

/// Stored metadata text known to be canonical, as slices of that text.
///
/// Canonical metadata has one shape: the members of [`EventMetadata`] in
/// [`canonical_metadata`]'s order (nine, and `command` after `actor_role` when the event
/// records one), each a canonical string literal, nothing else. A text of that shape parses
/// into `EventMetadata` (every field present, none unknown) and is what `canonical_metadata`
/// writes for it; any other text is not canonical metadata.
#[derive(Debug, Clone, Copy)]
struct CanonicalMetadata<'a> {
    text: &'a str,
    /// Offset of the `,"hash":` member.
    hash_member: usize,
    /// Offset of the `,"recorded_at":` member.
    recorded_at_member: usize,
    /// Body of the `prev_hash` literal (no escapes if it is a digest).
    prev_hash: &'a str,
    /// Body of the `hash` literal.
    hash: &'a str,
}

/// What precedes each member's value in canonical metadata, in order (`command` may be
/// absent).
const METADATA_MEMBERS: [&str; 10] = [
    "{\"actor\":",
    ",\"actor_role\":",
    ",\"command\":",
    ",\"command_id\":",
    ",\"correlation_id\":",
    ",\"event_id\":",
    ",\"hash\":",
    ",\"prev_hash\":",
    ",\"recorded_at\":",
    ",\"source\":",
];
const COMMAND: usize = 2;
const HASH: usize = 6;
const PREV_HASH: usize = 7;
const RECORDED_AT: usize = 8;

impl<'a> CanonicalMetadata<'a> {
    /// `Some` exactly when `text` parses as [`EventMetadata`] and equals
    /// [`canonical_metadata`] of it.
    fn parse(text: &'a str) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut pos = 0;
        let mut members = [0usize; 10];
        let mut bodies = [(0usize, 0usize); 10];
        for (i, prefix) in METADATA_MEMBERS.iter().enumerate() {
            if !bytes.get(pos..)?.starts_with(prefix.as_bytes()) {
                if i == COMMAND {
                    continue;
                }
                return None;
            }
            members[i] = pos;
            let (end, _) = string_end(bytes, pos + prefix.len())?;
            bodies[i] = (pos + prefix.len() + 1, end - 1);
            pos = end;
        }
        if bytes.get(pos..)? != b"}" {
            return None;
        }
        let body = |i: usize| text.get(bodies[i].0..bodies[i].1);
        Some(Self {
            text,
            hash_member: members[HASH],
            recorded_at_member: members[RECORDED_AT],
            prev_hash: body(PREV_HASH)?,
            hash: body(HASH)?,
        })
    }

    /// Appends the metadata object the chain hashes: this text without `hash` and `prev_hash`.
    fn write_hashed(&self, out: &mut String) {
        out.push_str(&self.text[..self.hash_member]);
        out.push_str(&self.text[self.recorded_at_member..]);
    }
}

/// The canonical text of stored metadata (every field, sorted; `command` only when there is
/// one).
pub fn canonical_metadata(m: &EventMetadata) -> String {
    use super::canonical::write_string;
    let mut out = String::with_capacity(400);
    let fields: [(&str, Option<&str>); 10] = [
        ("actor", Some(&m.actor)),
        ("actor_role", Some(&m.actor_role)),
        ("command", m.command.as_deref()),
        ("command_id", Some(&m.command_id)),
        ("correlation_id", Some(&m.correlation_id)),
        ("event_id", Some(&m.event_id)),
        ("hash", Some(&m.hash)),
        ("prev_hash", Some(&m.prev_hash)),
        ("recorded_at", Some(&m.recorded_at)),
        ("source", Some(&m.source)),
    ];
    out.push('{');
    for (name, value) in fields
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
    {
        if out.len() > 1 {
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
                    command: None,
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

    // The fast path against the reference path. A row the fast path accepts must be one the
    // reference accepts, with the same hash; and rows the reference accepts should take the
    // fast path, or verification is needlessly slow.

    use super::super::chain::{decode_digest, link_hash};
    use proptest::prelude::*;

    fn tricky_text() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or('?')),
            prop::sample::select(vec![
                '"',
                '\\',
                '/',
                '\u{7f}',
                'a',
                'é',
                '\u{ffff}',
                '\u{1f600}'
            ]),
            any::<char>(),
        ];
        prop_oneof![
            "[a-z0-9-]{0,12}",
            "[0-9a-f]{64}",
            prop::collection::vec(c, 0..8).prop_map(|cs| cs.into_iter().collect()),
        ]
    }

    fn metadata() -> impl Strategy<Value = EventMetadata> {
        (
            prop::collection::vec(tricky_text(), 9),
            prop::option::of(tricky_text()),
        )
            .prop_map(|(f, command)| EventMetadata {
                actor: f[0].clone(),
                actor_role: f[1].clone(),
                command,
                command_id: f[2].clone(),
                correlation_id: f[3].clone(),
                event_id: f[4].clone(),
                hash: f[5].clone(),
                prev_hash: f[6].clone(),
                recorded_at: f[7].clone(),
                source: f[8].clone(),
            })
    }

    fn payload() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-100i64..100).prop_map(Value::from),
            Just(json!(1.5)),
            tricky_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]{0,2}|\u{ff61}|\u{1f600}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Character-level edits, so the text stays a `&str`.
    fn edit(text: &str, edits: &[(usize, u8, char)]) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for &(at, op, c) in edits {
            let n = chars.len();
            match op % 5 {
                0 => chars.insert(at % (n + 1), c),
                1 if n > 0 => chars[at % n] = c,
                2 if n > 0 => {
                    chars.remove(at % n);
                }
                // The ends are where a lax parser stops looking.
                3 => chars.push(c),
                4 => chars.insert(0, c),
                _ => {}
            }
        }
        chars.into_iter().collect()
    }

    fn edits() -> impl Strategy<Value = Vec<(usize, u8, char)>> {
        let c = prop_oneof![
            prop::sample::select(vec![
                '{', '}', ',', ':', '"', '\\', ' ', 'u', '0', '1', 'a', 'A', 'f', 'n', '-', '.',
            ]),
            any::<char>(),
        ];
        prop::collection::vec((any::<usize>(), any::<u8>(), c), 0..3)
    }

    /// Texts of the same value that are not (or may not be) canonical.
    fn loosely(value: &impl serde::Serialize, how: u8) -> String {
        match how % 3 {
            0 => serde_json::to_string(value).unwrap_or_default(),
            1 => serde_json::to_string_pretty(value).unwrap_or_default(),
            _ => {
                // Members reversed (metadata and payload objects are small).
                let v = serde_json::to_value(value).unwrap_or_default();
                match v {
                    Value::Object(m) => {
                        let members: Vec<String> = m
                            .iter()
                            .rev()
                            .map(|(k, v)| format!("{}:{}", json!(k), v))
                            .collect();
                        format!("{{{}}}", members.join(","))
                    }
                    other => other.to_string(),
                }
            }
        }
    }

    fn fast_and_reference_agree(
        row: &StoredRow<'_>,
        expected: u64,
        prev: &[u8; 32],
    ) -> Result<Option<[u8; 32]>, TestCaseError> {
        let mut event = String::new();
        write_event_start(&mut event, row.aggregate_id, row.aggregate_type);
        let fast = check_row_fast(row, expected, prev, &mut event);
        let reference = check_row(row, expected, prev).ok();
        prop_assert_eq!(fast, reference, "row {:?}", row);
        Ok(fast)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn the_metadata_shape_is_exactly_canonical_metadata(
            m in metadata(),
            how in any::<u8>(),
            changes in edits(),
        ) {
            let canonical = canonical_metadata(&m);
            let parsed = CanonicalMetadata::parse(&canonical);
            prop_assert!(parsed.is_some(), "refused {:?}", canonical);
            if let Some(parsed) = parsed {
                // The hashed object is the canonical object of the other seven members.
                let mut hashed = String::new();
                parsed.write_hashed(&mut hashed);
                let mut seven = serde_json::to_value(&m).unwrap_or_default();
                if let Value::Object(members) = &mut seven {
                    members.remove("hash");
                    members.remove("prev_hash");
                }
                prop_assert_eq!(Some(hashed), to_canonical(&seven).ok());
            }
            for text in [loosely(&m, how), edit(&canonical, &changes)] {
                let reference = serde_json::from_str::<EventMetadata>(&text)
                    .is_ok_and(|m| canonical_metadata(&m) == text);
                prop_assert_eq!(CanonicalMetadata::parse(&text).is_some(), reference, "{:?}", text);
            }
        }

        #[test]
        fn the_fast_path_accepts_exactly_what_the_reference_accepts(
            id in tricky_text(),
            event_type in tricky_text(),
            m in metadata(),
            payloads in prop::collection::vec(payload(), 3),
            victim in 0usize..3,
            field in 0u8..6,
            how in any::<u8>(),
            changes in edits(),
        ) {
            // A sealed stream of three events, then one field of one row altered.
            let mut prev = GENESIS_HASH.to_owned();
            let mut rows = Vec::new();
            for (i, payload) in payloads.iter().enumerate() {
                let sequence = i as u64 + 1;
                let mut m = m.clone();
                m.prev_hash = prev.clone();
                let record = EventRecord {
                    aggregate_type: "Experiment",
                    aggregate_id: &id,
                    sequence,
                    event_type: &event_type,
                    event_version: "1",
                    metadata: &m,
                };
                // Payloads outside the canonical domain cannot be sealed; store them anyway.
                m.hash = seal(&record, payload, &prev).unwrap_or_default();
                prev = m.hash.clone();
                let payload_text =
                    to_canonical(payload).unwrap_or_else(|_| payload.to_string());
                rows.push((sequence as i64, event_type.clone(), payload_text, m));
            }
            let mut metadata_texts: Vec<String> =
                rows.iter().map(|r| canonical_metadata(&r.3)).collect();
            let metadata_text = &mut metadata_texts[victim];
            let (sequence, event_type_text, payload_text, m) = &mut rows[victim];
            match field {
                0 => *payload_text = edit(payload_text, &changes),
                1 => *payload_text = loosely(&payloads[victim], how),
                2 => *metadata_text = edit(metadata_text, &changes),
                3 => *metadata_text = loosely(m, how),
                4 => *event_type_text = edit(event_type_text, &changes),
                _ => *sequence += i64::from(how % 3) - 1,
            }
            if field < 2 && how % 2 == 0 {
                // The attacker's best try: a hash over the payload text as stored, so only
                // the canonical check stands between an altered text and acceptance.
                let mut event = String::new();
                write_canonical_event(
                    &mut event,
                    &EventRecord {
                        aggregate_type: "Experiment",
                        aggregate_id: &id,
                        sequence: victim as u64 + 1,
                        event_type: event_type_text,
                        event_version: "1",
                        metadata: m,
                    },
                    payload_text,
                );
                let prev = decode_digest(&m.prev_hash).unwrap_or_default();
                m.hash = link_hash(&prev, event.as_bytes());
                *metadata_text = canonical_metadata(m);
            }

            let mut head = GENESIS_DIGEST;
            for (i, (sequence, event_type, payload, _)) in rows.iter().enumerate() {
                let row = StoredRow {
                    aggregate_type: "Experiment",
                    aggregate_id: &id,
                    sequence: *sequence,
                    event_type,
                    event_version: "1",
                    payload,
                    metadata: &metadata_texts[i],
                };
                match fast_and_reference_agree(&row, i as u64 + 1, &head)? {
                    Some(hash) => head = hash,
                    None => break,
                }
            }
        }
    }

    #[test]
    fn metadata_with_anything_around_it_is_not_canonical() {
        let text =
            canonical_metadata(&serde_json::from_str(&stream("a", 1)[0].metadata).expect("json"));
        assert!(CanonicalMetadata::parse(&text).is_some());
        for bad in [
            format!("{text} "),
            format!(" {text}"),
            format!("{text}}}"),
            format!("{text}x"),
            text[..text.len() - 1].to_owned(),
            text.replacen(",\"source\"", ",\"source\":\"x\",\"source\"", 1),
        ] {
            assert!(CanonicalMetadata::parse(&bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn merged_reports_of_disjoint_streams_equal_one_report_over_all() {
        let mut rows = stream("a", 4);
        rows.extend(stream("b", 3));
        rows.extend(stream("c", 2));
        rows[5].payload = rows[5].payload.replacen(':', ": ", 1);
        let whole = verify(&rows);
        let (first, second): (Vec<Owned>, Vec<Owned>) = rows.into_iter().partition(|r| r.id != "b");
        let merged = VerifyReport::merge([verify(&second), verify(&first)]);
        assert_eq!(merged, whole);
        assert_eq!((whole.events, whole.streams, whole.faults.len()), (9, 3, 1));
    }
}
