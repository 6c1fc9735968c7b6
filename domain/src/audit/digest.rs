//! Chain heads kept outside the system, and the check of a log against them.
//!
//! The chain proves a stream consistent with itself; it cannot show that the last events were
//! removed, that a whole stream was, or that a stream was rewritten with a fresh, valid chain.
//! A digest records, per stream, the last sequence and its hash at one moment. Later, a log
//! that only grew since then still holds, in every stream of the digest, an event at that
//! sequence with that hash (the chain carries it forward). Anything else is named:
//!
//! - a stream of the digest that the log no longer holds (first bad position: sequence 1);
//! - a stream shorter than the digest says (truncated; first bad position: the first missing
//!   sequence);
//! - a stream whose event at the digest's sequence has another hash (rewritten at or before
//!   that sequence; named at that sequence).
//!
//! A stream whose chain is already broken at or before the digest's sequence is reported by
//! the chain check and not again here. Streams the digest does not name are new since.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::chain::decode_digest;
use super::verify::{StreamHead, VerifyReport};

/// `format` of a digest document.
pub const FORMAT: &str = "chaos-audit-digest";
/// `version` of the digest document this build writes and reads.
pub const VERSION: u32 = 1;

/// A digest document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// When it was taken (RFC 3339; informative, not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<String>,
    /// Events in the log when it was taken.
    pub events: u64,
    /// Every stream's head, ordered by aggregate type then id.
    pub streams: Vec<DigestHead>,
}

/// One stream's head in a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestHead {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// Last sequence.
    pub sequence: u64,
    /// Hash of the event at that sequence (64 lowercase hex characters).
    pub hash: String,
}

/// A digest document that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not JSON of the digest's shape.
    #[error("not a digest: {0}")]
    Malformed(String),
    /// Another format or a version this build does not know.
    #[error("not a {FORMAT} version {VERSION} document (format {format:?}, version {version})")]
    Unsupported {
        /// Its `format`.
        format: String,
        /// Its `version`.
        version: u32,
    },
    /// A head that cannot be a chain head.
    #[error("stream {stream}: {problem}")]
    BadHead {
        /// `type/id`.
        stream: String,
        /// What is wrong.
        problem: String,
    },
}

impl Digest {
    /// The digest of a log whose verification gave `report` (meaningful when it is ok: only
    /// intact streams have heads).
    pub fn of(report: &VerifyReport, taken_at: Option<String>) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            taken_at,
            events: report.events,
            streams: report
                .heads
                .iter()
                .map(|h| DigestHead {
                    aggregate_type: h.aggregate_type.clone(),
                    aggregate_id: h.aggregate_id.clone(),
                    sequence: h.sequence,
                    hash: h.hash.clone(),
                })
                .collect(),
        }
    }

    /// Reads a digest document, refusing anything it could not check a log against.
    pub fn parse(text: &str) -> Result<Self, DigestError> {
        let digest: Digest =
            serde_json::from_str(text).map_err(|e| DigestError::Malformed(e.to_string()))?;
        if digest.format != FORMAT || digest.version != VERSION {
            return Err(DigestError::Unsupported {
                format: digest.format,
                version: digest.version,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for head in &digest.streams {
            let stream = format!("{}/{}", head.aggregate_type, head.aggregate_id);
            let bad = |problem: &str| DigestError::BadHead {
                stream: stream.clone(),
                problem: problem.to_owned(),
            };
            if head.sequence == 0 {
                return Err(bad("sequence 0 (streams start at 1)"));
            }
            if decode_digest(&head.hash).is_err() {
                return Err(bad("hash is not 64 lowercase hex characters"));
            }
            if !seen.insert((&head.aggregate_type, &head.aggregate_id)) {
                return Err(bad("named twice"));
            }
        }
        Ok(digest)
    }
}

/// How a log departs from a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestFaultKind {
    /// The stream is gone.
    #[error("stream missing: the digest recorded {digest_sequence} events")]
    MissingStream {
        /// Events the digest recorded.
        digest_sequence: u64,
    },
    /// The stream ends before the digest's head.
    #[error(
        "truncated: the log ends at sequence {log_sequence}, the digest recorded {digest_sequence}"
    )]
    Truncated {
        /// Last sequence in the log.
        log_sequence: u64,
        /// Last sequence the digest recorded.
        digest_sequence: u64,
    },
    /// The event at the digest's head hashes otherwise: history rewritten at or before it.
    #[error(
        "rewritten: the event at sequence {digest_sequence} hashes to {log_hash}, the digest recorded {digest_hash}"
    )]
    Rewritten {
        /// The digest's head sequence.
        digest_sequence: u64,
        /// Hash the digest recorded.
        digest_hash: String,
        /// Hash of the log's event there.
        log_hash: String,
    },
}

/// The first position of a stream that does not match the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestFault {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// First bad position (see the module docs).
    pub sequence: u64,
    /// What is wrong.
    pub kind: DigestFaultKind,
}

impl std::fmt::Display for DigestFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} at sequence {}: {}",
            self.aggregate_type, self.aggregate_id, self.sequence, self.kind
        )
    }
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestCheck {
    /// Streams of the digest checked (all of them).
    pub streams: u64,
    /// Streams of the digest whose chain is broken at or before the digest's head (reported
    /// by the chain check).
    pub broken: u64,
    /// Departures from the digest, ordered by stream.
    pub faults: Vec<DigestFault>,
}

/// Checks the log that `report` verified against `digest`. `stored_hash(type, id, sequence)`
/// gives the stored `hash` of an event of the log (`None` if there is none); it is asked only
/// about events before a stream's end whose chain verified, where the stored hash is the
/// computed one.
pub fn check(
    digest: &Digest,
    report: &VerifyReport,
    mut stored_hash: impl FnMut(&str, &str, u64) -> Option<String>,
) -> DigestCheck {
    let heads: HashMap<(&str, &str), &StreamHead> = report
        .heads
        .iter()
        .map(|h| ((h.aggregate_type.as_str(), h.aggregate_id.as_str()), h))
        .collect();
    let broken_at: HashMap<(&str, &str), u64> = report
        .faults
        .iter()
        .map(|f| {
            (
                (f.aggregate_type.as_str(), f.aggregate_id.as_str()),
                f.sequence,
            )
        })
        .collect();
    let mut result = DigestCheck {
        streams: digest.streams.len() as u64,
        ..DigestCheck::default()
    };
    for expected in &digest.streams {
        let key = (
            expected.aggregate_type.as_str(),
            expected.aggregate_id.as_str(),
        );
        let n = expected.sequence;
        let fault = |sequence, kind| DigestFault {
            aggregate_type: expected.aggregate_type.clone(),
            aggregate_id: expected.aggregate_id.clone(),
            sequence,
            kind,
        };
        // The log's hash at `n`, when its chain is intact through `n`.
        let found = match (heads.get(&key), broken_at.get(&key)) {
            (_, Some(&broken)) if broken <= n => {
                result.broken += 1;
                continue;
            }
            // Broken after `n`: everything before the break verified.
            (_, Some(&broken)) => Some((broken - 1, stored_hash(key.0, key.1, n))),
            (Some(head), None) if head.sequence == n => Some((n, Some(head.hash.clone()))),
            (Some(head), None) if head.sequence > n => {
                Some((head.sequence, stored_hash(key.0, key.1, n)))
            }
            (Some(head), None) => {
                result.faults.push(fault(
                    head.sequence + 1,
                    DigestFaultKind::Truncated {
                        log_sequence: head.sequence,
                        digest_sequence: n,
                    },
                ));
                None
            }
            (None, None) => {
                result.faults.push(fault(
                    1,
                    DigestFaultKind::MissingStream { digest_sequence: n },
                ));
                None
            }
        };
        if let Some((last, hash)) = found {
            match hash {
                Some(hash) if hash == expected.hash => {}
                Some(hash) => result.faults.push(fault(
                    n,
                    DigestFaultKind::Rewritten {
                        digest_sequence: n,
                        digest_hash: expected.hash.clone(),
                        log_hash: hash,
                    },
                )),
                None => result.faults.push(fault(
                    last + 1,
                    DigestFaultKind::Truncated {
                        log_sequence: last,
                        digest_sequence: n,
                    },
                )),
            }
        }
    }
    result.faults.sort_by(|a, b| {
        (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::{Fault, FaultKind};

    fn head(id: &str, sequence: u64, hash: char) -> StreamHead {
        StreamHead {
            aggregate_type: "Experiment".into(),
            aggregate_id: id.into(),
            sequence,
            hash: hash.to_string().repeat(64),
        }
    }

    fn report(heads: Vec<StreamHead>, faults: Vec<Fault>) -> VerifyReport {
        VerifyReport {
            events: 0,
            streams: (heads.len() + faults.len()) as u64,
            faults,
            heads,
            books: Vec::new(),
            dangling: Vec::new(),
        }
    }

    #[test]
    fn a_log_that_only_grew_matches_and_every_departure_is_named() {
        let then = report(
            vec![
                head("a", 3, 'a'),
                head("b", 5, 'b'),
                head("c", 2, 'c'),
                head("d", 4, 'd'),
                head("e", 4, 'e'),
            ],
            vec![],
        );
        let digest = Digest::parse(
            &serde_json::to_string(&Digest::of(&then, Some("2026-11-26T00:00:00.000Z".into())))
                .expect("json"),
        )
        .expect("parses");
        // a grew (its event 3 still hashes to aaa..), b was cut to 4, c is gone, d was
        // rewritten with a fresh chain of the same length, e is broken at 2 (chain check).
        let now = report(
            vec![
                head("a", 9, 'z'),
                head("b", 4, 'b'),
                head("d", 4, 'f'),
                head("new", 1, '1'),
            ],
            vec![Fault {
                aggregate_type: "Experiment".into(),
                aggregate_id: "e".into(),
                sequence: 2,
                kind: FaultKind::NonCanonicalPayload,
            }],
        );
        let result = check(&digest, &now, |_, id, n| {
            (id == "a" && n == 3).then(|| "a".repeat(64))
        });
        assert_eq!((result.streams, result.broken), (5, 1));
        let named: Vec<(&str, u64, String)> = result
            .faults
            .iter()
            .map(|f| (f.aggregate_id.as_str(), f.sequence, f.kind.to_string()))
            .collect();
        assert_eq!(
            named,
            [
                (
                    "b",
                    5,
                    "truncated: the log ends at sequence 4, the digest recorded 5".to_owned()
                ),
                (
                    "c",
                    1,
                    "stream missing: the digest recorded 2 events".to_owned()
                ),
                (
                    "d",
                    4,
                    format!(
                        "rewritten: the event at sequence 4 hashes to {}, the digest recorded {}",
                        "f".repeat(64),
                        "d".repeat(64)
                    )
                ),
            ]
        );
    }

    #[test]
    fn a_rewritten_history_that_grew_past_the_head_is_found() {
        let digest = Digest::of(&report(vec![head("a", 3, 'a')], vec![]), None);
        let now = report(vec![head("a", 6, 'b')], vec![]);
        let result = check(&digest, &now, |_, _, n| (n == 3).then(|| "c".repeat(64)));
        assert_eq!(result.faults.len(), 1);
        assert_eq!(result.faults[0].sequence, 3);
    }

    #[test]
    fn unusable_digests_are_refused() {
        let good = serde_json::to_value(Digest::of(&report(vec![head("a", 3, 'a')], vec![]), None))
            .expect("json");
        assert!(Digest::parse(&good.to_string()).is_ok());
        let mut other = good.clone();
        other["version"] = 2.into();
        assert!(matches!(
            Digest::parse(&other.to_string()),
            Err(DigestError::Unsupported { .. })
        ));
        let mut bad_hash = good.clone();
        bad_hash["streams"][0]["hash"] = "A".repeat(64).into();
        assert!(matches!(
            Digest::parse(&bad_hash.to_string()),
            Err(DigestError::BadHead { .. })
        ));
        let mut twice = good.clone();
        let first = twice["streams"][0].clone();
        twice["streams"].as_array_mut().expect("array").push(first);
        assert!(Digest::parse(&twice.to_string()).is_err());
        assert!(Digest::parse("{}").is_err());
    }
}
