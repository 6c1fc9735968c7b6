//! Why the `Experiment` aggregate refused a command.

use super::aggregate::Status;
use crate::spec::{SpecError, TargetId};

/// A refused command. Nothing is stored for a refused command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExperimentError {
    /// The experiment does not exist.
    #[error("experiment not found")]
    NotFound,
    /// `Create` for an id that is taken.
    #[error("an experiment with this id already exists")]
    AlreadyExists,
    /// The experiment is archived and accepts no further commands.
    #[error("experiment is archived")]
    Archived,
    /// The command does not fit the current status.
    #[error("cannot {action}: experiment is {status}")]
    InvalidState {
        /// What was attempted.
        action: &'static str,
        /// Current status.
        status: Status,
    },
    /// Start refused: the halt switch is on.
    #[error("platform is halted: {reason}")]
    PlatformHalted {
        /// Reason given when halting.
        reason: String,
    },
    /// Start refused: now falls in a blackout window.
    #[error("no experiment starts in {window}")]
    InBlackout {
        /// The window, in words.
        window: String,
    },
    /// Start refused: the spec exceeds a platform-wide cap.
    #[error("{what} {value} exceeds the platform limit of {limit}")]
    ExceedsPlatformCap {
        /// Which limit.
        what: &'static str,
        /// The spec's value.
        value: u32,
        /// The platform limit.
        limit: u32,
    },
    /// A workflow step arrived before targets were resolved.
    #[error("targets are not resolved yet")]
    TargetsNotResolved,
    /// Targets were already resolved.
    #[error("targets are already resolved")]
    TargetsAlreadyResolved,
    /// The resolved target list does not match the selection applied to the candidates.
    #[error("selection over {candidates} candidates must give {expected} targets, got {got}")]
    TargetCountMismatch {
        /// Candidates reported.
        candidates: u32,
        /// What the selection and caps give.
        expected: u32,
        /// Targets reported.
        got: u32,
    },
    /// A target appears twice.
    #[error("target {0} appears more than once")]
    DuplicateTarget(TargetId),
    /// Inject named a target that was not resolved.
    #[error("target {0} is not one of the resolved targets")]
    UnknownTarget(TargetId),
    /// Inject with no targets.
    #[error("at least one target must be injected")]
    NoTargetsToInject,
    /// A dry run must not mutate anything.
    #[error("this is a dry run: it resolves targets and mutates nothing")]
    DryRun,
    /// `FinishDryRun` on a real run.
    #[error("this is not a dry run")]
    NotDryRun,
    /// Baseline needs its samples first.
    #[error("baseline needs {needed} health samples, {recorded} recorded")]
    BaselineIncomplete {
        /// Required.
        needed: u32,
        /// Recorded so far.
        recorded: u32,
    },
    /// Inject before the baseline.
    #[error("baseline is not recorded yet")]
    BaselineNotRecorded,
    /// Baseline recorded twice.
    #[error("baseline is already recorded")]
    BaselineAlreadyRecorded,
    /// A second injection.
    #[error("failure is already injected")]
    AlreadyInjected,
    /// Recovery or completion before injection.
    #[error("failure is not injected yet")]
    NotInjected,
    /// Recovery observed twice.
    #[error("recovery is already observed")]
    AlreadyRecovered,
    /// Completion while still waiting for recovery.
    #[error("recovery not observed and the recovery timeout has {remaining_ms} ms to go")]
    RecoveryPending {
        /// Time left until the timeout.
        remaining_ms: u64,
    },
    /// A time earlier than the injection.
    #[error("time {at} is before the injection at {injected_at}")]
    ClockSkew {
        /// The command's time.
        at: String,
        /// Injection time.
        injected_at: String,
    },
    /// Health sample limit reached.
    #[error("health sample limit of {max} reached")]
    HealthSampleLimit {
        /// The limit.
        max: u32,
    },
    /// Impossible health figures.
    #[error("invalid health sample: {0}")]
    InvalidHealth(&'static str),
    /// A stop is pending: only rollback and stop are accepted.
    #[error("a stop is pending: roll back and stop the run")]
    StopPending,
    /// `MarkStopped` without a stop request or tripped condition.
    #[error("no stop was requested and no stop condition tripped")]
    StopNotRequested,
    /// A reversible failure was injected and has not been rolled back.
    #[error("the injected failure must be rolled back before the run ends")]
    RollbackRequired,
    /// Rollback recorded twice.
    #[error("rollback is already recorded")]
    AlreadyRolledBack,
    /// The condition is not among the experiment's stop conditions.
    #[error("stop condition is not part of this experiment's guardrails")]
    UnknownStopCondition,
    /// Schedule time not after the command time.
    #[error("start time {start_at} is not in the future")]
    ScheduleInPast {
        /// Requested start.
        start_at: String,
    },
    /// Too many reschedules.
    #[error("experiment was already scheduled {max} times")]
    TooManySchedules {
        /// The limit.
        max: u32,
    },
    /// Bad free text or id in the command.
    #[error(transparent)]
    InvalidInput(#[from] SpecError),
    /// The stream is at its event bound.
    #[error("experiment stream is full ({max} events)")]
    StreamFull {
        /// The bound.
        max: usize,
    },
}
