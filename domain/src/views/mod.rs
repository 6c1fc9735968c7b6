//! Read-model reducers: pure folds of stored events into what people and scripts query.
//!
//! The read side (`projection-lambdas`) decodes stored records into [`Envelope`]s and feeds
//! them, stream by stream and in sequence order, to these reducers; it owns ordering,
//! idempotency and storage, these own meaning. Each reducer is deterministic, so rebuilding a
//! read model from the log gives exactly what incremental application gave.
//!
//! - [`experiments`]: one record per experiment (list row and detail with its timeline);
//! - [`results`]: one row per finished run (outcome, recovery time, health summary);
//! - [`analytics`]: success and failure rates, MTTR, recovery percentiles, availability,
//!   overall and per day, target and failure type, computed from the results;
//! - [`audit_log`]: one entry per event, with who, from where, and the chain hash;
//! - [`activity`]: the feed subscriptions deliver.

pub mod activity;
pub mod analytics;
pub mod audit_log;
pub mod experiments;
pub mod results;

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::experiment::{Experiment, ExperimentEvent};
use crate::platform::{PlatformBook, PlatformEvent};
use crate::provenance::EventMetadata;

/// An event of any aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnyEvent {
    /// An `Experiment` event.
    Experiment(ExperimentEvent),
    /// A `Platform` event.
    Platform(PlatformEvent),
}

/// One stored event, decoded, as every projection receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Aggregate type (`Experiment` or `Platform`).
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// Position in the stream, from 1.
    pub sequence: u64,
    /// The event.
    pub event: AnyEvent,
    /// Its stored metadata.
    pub metadata: EventMetadata,
}

/// A stored record that cannot be decoded (a poison record).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The aggregate type is not one this build knows.
    #[error("unknown aggregate type {0:?}")]
    UnknownAggregate(String),
    /// The payload does not decode as an event of that aggregate.
    #[error("payload of {event_type} v{event_version} does not decode: {reason}")]
    Payload {
        /// Stored event type.
        event_type: String,
        /// Stored version.
        event_version: String,
        /// Decoder message.
        reason: String,
    },
    /// The payload decodes, but as another type or version than its columns say.
    #[error("stored as {stored}, payload is {decoded}")]
    Mismatch {
        /// Columns.
        stored: String,
        /// Payload.
        decoded: String,
    },
    /// The metadata does not decode.
    #[error("metadata does not decode: {0}")]
    Metadata(String),
    /// The sequence is not a positive integer.
    #[error("sequence {0} is not a positive integer")]
    Sequence(i64),
}

/// The columns of a stored record, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Aggregate type.
    pub aggregate_type: &'a str,
    /// Stream id.
    pub aggregate_id: &'a str,
    /// Stored sequence.
    pub sequence: i64,
    /// Event type column.
    pub event_type: &'a str,
    /// Event version column.
    pub event_version: &'a str,
    /// Payload JSON text.
    pub payload: &'a str,
    /// Metadata JSON text.
    pub metadata: &'a str,
}

impl Envelope {
    /// Decodes a stored record, checking that its columns and payload agree.
    pub fn decode(raw: RawRecord<'_>) -> Result<Self, DecodeError> {
        use cqrs_es::DomainEvent;
        let sequence = u64::try_from(raw.sequence)
            .ok()
            .filter(|s| *s > 0)
            .ok_or(DecodeError::Sequence(raw.sequence))?;
        let payload_error = |e: serde_json::Error| DecodeError::Payload {
            event_type: raw.event_type.to_owned(),
            event_version: raw.event_version.to_owned(),
            reason: e.to_string(),
        };
        let (event, decoded) = match raw.aggregate_type {
            t if t == Experiment::TYPE => {
                let e: ExperimentEvent =
                    serde_json::from_str(raw.payload).map_err(payload_error)?;
                let decoded = (e.event_type(), e.event_version());
                (AnyEvent::Experiment(e), decoded)
            }
            t if t == PlatformBook::TYPE => {
                let e: PlatformEvent = serde_json::from_str(raw.payload).map_err(payload_error)?;
                let decoded = (e.event_type(), e.event_version());
                (AnyEvent::Platform(e), decoded)
            }
            other => return Err(DecodeError::UnknownAggregate(other.to_owned())),
        };
        if decoded.0 != raw.event_type || decoded.1 != raw.event_version {
            return Err(DecodeError::Mismatch {
                stored: format!("{} v{}", raw.event_type, raw.event_version),
                decoded: format!("{} v{}", decoded.0, decoded.1),
            });
        }
        let metadata: EventMetadata =
            serde_json::from_str(raw.metadata).map_err(|e| DecodeError::Metadata(e.to_string()))?;
        Ok(Self {
            aggregate_type: raw.aggregate_type.to_owned(),
            aggregate_id: raw.aggregate_id.to_owned(),
            sequence,
            event,
            metadata,
        })
    }

    /// The event's type name.
    pub fn event_type(&self) -> String {
        use cqrs_es::DomainEvent;
        match &self.event {
            AnyEvent::Experiment(e) => e.event_type(),
            AnyEvent::Platform(e) => e.event_type(),
        }
    }

    /// When the event happened (the command's time).
    pub fn at(&self) -> crate::Timestamp {
        match &self.event {
            AnyEvent::Experiment(e) => e.at(),
            AnyEvent::Platform(e) => e.at(),
        }
    }

    /// A one-line account of the event for people (timelines, audit log, activity feed).
    pub fn describe(&self) -> String {
        match &self.event {
            AnyEvent::Experiment(e) => describe_experiment(e),
            AnyEvent::Platform(e) => describe_platform(e),
        }
    }
}

fn percent(bp: u32) -> String {
    format!("{}.{:02}%", bp / 100, bp % 100)
}

fn health(h: &crate::experiment::HealthSnapshot) -> String {
    format!(
        "{}/{} healthy, p95 {} ms, errors {}",
        h.healthy,
        h.total,
        h.latency_p95_ms,
        percent(h.error_rate_bp)
    )
}

fn ids(targets: &[crate::spec::TargetId]) -> String {
    targets
        .iter()
        .map(crate::spec::TargetId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_experiment(e: &ExperimentEvent) -> String {
    use crate::experiment::{Outcome, StopCause};
    use ExperimentEvent as E;
    match e {
        E::ExperimentCreated { spec, .. } => format!(
            "created \"{}\" against {}{}",
            spec.name(),
            spec.target().key(),
            if spec.dry_run() { " (dry run)" } else { "" }
        ),
        E::ExperimentScheduled { start_at, .. } => format!("scheduled to start at {start_at}"),
        E::ExperimentCancelled { reason, .. } => format!("cancelled: {reason}"),
        E::ExperimentStarted { .. } => "started".to_owned(),
        E::TargetsResolved {
            candidates,
            targets,
            ..
        } => format!(
            "resolved {} of {candidates} matching instances: {}",
            targets.len(),
            ids(targets)
        ),
        E::BaselineRecorded { health: h, .. } => format!("baseline recorded: {}", health(h)),
        E::FailureInjected { targets, .. } => format!("failure injected into {}", ids(targets)),
        E::HealthChecked {
            sample, health: h, ..
        } => format!("health sample {sample}: {}", health(h)),
        E::RecoveryObserved { recovery_ms, .. } => format!("recovered after {recovery_ms} ms"),
        E::StopConditionTripped { detail, .. } => format!("stop condition tripped: {detail}"),
        E::StopRequested { reason, .. } => format!("stop requested: {reason}"),
        E::RunInterrupted { detail, .. } => format!("interrupted: {detail}"),
        E::RollbackPerformed { detail, .. } => format!("rolled back: {detail}"),
        E::ExperimentCompleted {
            outcome,
            recovery_ms,
            ..
        } => match (outcome, recovery_ms) {
            (Outcome::Recovered, Some(ms)) => format!("completed: recovered in {ms} ms"),
            (Outcome::Recovered, None) => "completed: recovered".to_owned(),
            (Outcome::NotRecovered, _) => {
                "completed: not recovered within the recovery timeout".to_owned()
            }
            (Outcome::DryRun, _) => "dry run completed: nothing was touched".to_owned(),
        },
        E::ExperimentFailed { reason, .. } => {
            let code = serde_json::to_value(reason.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!("failed ({code}): {}", reason.message)
        }
        E::ExperimentStopped { cause, .. } => match cause {
            StopCause::Requested => "stopped on request".to_owned(),
            StopCause::StopCondition => "stopped by a stop condition".to_owned(),
            StopCause::Interrupted => {
                "stopped: the platform interrupted the run, which is left out of recovery \
                 times and success rates"
                    .to_owned()
            }
        },
        E::ExperimentArchived { .. } => "archived".to_owned(),
    }
}

fn describe_platform(e: &PlatformEvent) -> String {
    match e {
        PlatformEvent::PlatformHalted { reason, .. } => format!("platform halted: {reason}"),
        PlatformEvent::HaltLifted { .. } => "halt lifted".to_owned(),
        PlatformEvent::ConfigUpdated { config, .. } => format!(
            "configuration: at most {} targets and {} s per run",
            config.max_targets_per_run, config.max_duration_secs
        ),
        PlatformEvent::WebhookAdded {
            id, url, events, ..
        } => {
            // The URL's path and query may be the receiver's secret: an administrator reads
            // them in the webhooks query, everyone else sees the host.
            let url = crate::spec::redacted_url(url);
            if events.is_empty() {
                format!("webhook {id} added: every event to {url}")
            } else {
                format!("webhook {id} added: {} to {url}", events.join(", "))
            }
        }
        PlatformEvent::WebhookRemoved { id, .. } => format!("webhook {id} removed"),
        PlatformEvent::WebhookSecretIssued {
            id, fingerprint, ..
        } => format!("webhook {id} signs with secret {fingerprint} from now on"),
        PlatformEvent::ScheduleAdded {
            id,
            cron,
            time_zone,
            spec,
            ..
        } => format!(
            "schedule {id} added: {:?} at {cron} ({time_zone})",
            spec.name()
        ),
        PlatformEvent::ScheduleRemoved { id, .. } => format!("schedule {id} removed"),
        PlatformEvent::BlackoutAdded { id, window, .. } => {
            match crate::schedule::Blackout::parse(window.clone()) {
                Ok(blackout) => format!("blackout window {id} added: {}", blackout.describe()),
                Err(_) => format!("blackout window {id} added"),
            }
        }
        PlatformEvent::BlackoutRemoved { id, .. } => format!("blackout window {id} removed"),
        PlatformEvent::ApiKeyCreated { id, name, role, .. } => {
            format!("api key {id} issued ({role}): {name}")
        }
        PlatformEvent::ApiKeyRevoked { id, .. } => format!("api key {id} revoked"),
        PlatformEvent::UserAdded { username, role, .. } => {
            format!("user {username} added ({role})")
        }
        PlatformEvent::UserRoleChanged { username, role, .. } => {
            format!("user {username} now acts as {role}")
        }
        PlatformEvent::UserRemoved { username, .. } => format!("user {username} removed"),
        PlatformEvent::BookOpened { previous, .. } => format!(
            "book opened, continuing {} after its event {}",
            previous.stream, previous.sequence
        ),
        PlatformEvent::BookClosed { next, .. } => format!("book closed, continued in {next}"),
    }
}
