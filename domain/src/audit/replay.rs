//! A stream's state at an instant, from its stored events alone.
//!
//! The events of the stream recorded at or before the instant (the longest such prefix, in
//! sequence order) are folded through the same reducers as the read models and the write
//! side: an experiment through [`ExperimentRecord::apply`] (the aggregate's own `apply`, plus
//! what the detail view keeps), the platform through [`Platform`]'s `apply`. Events after the
//! first one recorded later than the instant are not applied, even if a clock step back made
//! one of them look earlier: a state is only ever a prefix of the log.

use serde::Serialize;

use super::verify::StoredRow;
use crate::Timestamp;
use crate::platform::Platform;
use crate::provenance::EventMetadata;
use crate::views::experiments::ExperimentRecord;
use crate::views::{AnyEvent, DecodeError, Envelope, RawRecord};

/// A folded state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replayed {
    /// An experiment's record (its aggregate state and what the detail view keeps).
    Experiment(Box<ExperimentRecord>),
    /// The platform's state.
    Platform(Box<Platform>),
}

/// The outcome of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Events applied.
    pub applied: u64,
    /// `recorded_at` of the last event applied.
    pub last_recorded_at: Option<String>,
    /// Sequence and `recorded_at` of the first event not applied, if any.
    pub next: Option<(u64, String)>,
    /// The state (`None` when no event was applied: the stream did not exist yet).
    pub state: Option<Replayed>,
}

/// An event that cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Its metadata or `recorded_at` cannot be read.
    #[error("sequence {sequence}: recorded_at cannot be read: {problem}")]
    RecordedAt {
        /// Its sequence.
        sequence: i64,
        /// Why.
        problem: String,
    },
    /// It does not decode as an event of its stream.
    #[error("sequence {sequence}: {error}")]
    Decode {
        /// Its sequence.
        sequence: i64,
        /// Why.
        error: DecodeError,
    },
}

/// Folds the rows of one stream (in sequence order) recorded at or before `at`.
pub fn replay<'a>(
    rows: impl IntoIterator<Item = StoredRow<'a>>,
    at: Timestamp,
) -> Result<Replay, ReplayError> {
    let mut replay = Replay {
        applied: 0,
        last_recorded_at: None,
        next: None,
        state: None,
    };
    for row in rows {
        let metadata: EventMetadata =
            serde_json::from_str(row.metadata).map_err(|e| ReplayError::RecordedAt {
                sequence: row.sequence,
                problem: e.to_string(),
            })?;
        let recorded: Timestamp =
            metadata
                .recorded_at
                .parse()
                .map_err(
                    |e: crate::time::TimestampParseError| ReplayError::RecordedAt {
                        sequence: row.sequence,
                        problem: e.to_string(),
                    },
                )?;
        if recorded > at {
            replay.next = Some((
                u64::try_from(row.sequence).unwrap_or(0),
                metadata.recorded_at,
            ));
            break;
        }
        let envelope = Envelope::decode(RawRecord {
            aggregate_type: row.aggregate_type,
            aggregate_id: row.aggregate_id,
            sequence: row.sequence,
            event_type: row.event_type,
            event_version: row.event_version,
            payload: row.payload,
            metadata: row.metadata,
        })
        .map_err(|error| ReplayError::Decode {
            sequence: row.sequence,
            error,
        })?;
        replay.state = Some(match (replay.state.take(), &envelope.event) {
            (Some(Replayed::Experiment(record)), AnyEvent::Experiment(event)) => {
                Replayed::Experiment(Box::new(ExperimentRecord::apply(
                    Some(*record),
                    &envelope,
                    event,
                )))
            }
            (None, AnyEvent::Experiment(event)) => {
                Replayed::Experiment(Box::new(ExperimentRecord::apply(None, &envelope, event)))
            }
            (Some(Replayed::Platform(mut platform)), AnyEvent::Platform(event)) => {
                platform.apply(event.clone());
                Replayed::Platform(platform)
            }
            (None, AnyEvent::Platform(event)) => {
                let mut platform = Box::<Platform>::default();
                platform.apply(event.clone());
                Replayed::Platform(platform)
            }
            (Some(_), _) => {
                return Err(ReplayError::Decode {
                    sequence: row.sequence,
                    error: DecodeError::Mismatch {
                        stored: row.aggregate_type.to_owned(),
                        decoded: "an event of another aggregate type than the stream's".into(),
                    },
                });
            }
        });
        replay.applied += 1;
        replay.last_recorded_at = Some(metadata.recorded_at);
    }
    Ok(replay)
}
