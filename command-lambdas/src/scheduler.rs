//! The embedded scheduler: starts scheduled experiments when their time comes, and runs the
//! platform's recurring schedules. `chaos serve` calls [`Scheduler::tick`] every second; on AWS,
//! EventBridge Scheduler does the same work (see `infrastructure/`).
//!
//! Duplicate-free by construction, across restarts and concurrent ticks: the experiment of an
//! occurrence has a name derived from the schedule and the occurrence's time
//! (`nightly-20261126T0230Z`), and every command carries a command id derived the same way, so
//! a tick repeated after a crash appends nothing.
//!
//! - An occurrence fires if the tick comes within [`Scheduler::grace`] of it (five minutes by
//!   default); one missed for longer (the server was down) is skipped, not run late.
//! - An occurrence inside a blackout window, or while the platform is halted, is skipped.
//! - A one-shot scheduled start whose time has come is started; if the start is refused (halt,
//!   blackout, caps), the experiment is cancelled with the reason, so it does not wait forever.

use crate::store::Repository;
use domain::Timestamp;
use domain::experiment::{ExperimentCommand, Status};
use domain::platform::{Concern, RecurringSchedule};
use domain::provenance::{CommandContext, Source};
use domain::spec::ExperimentId;
use serde::Serialize;

use crate::service::{ExperimentService, ServiceError, system_context};

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Fired {
    /// An experiment was started.
    Started {
        /// The experiment.
        experiment: String,
        /// The recurring schedule it comes from, if any.
        schedule: Option<String>,
    },
    /// An occurrence was skipped.
    Skipped {
        /// The schedule.
        schedule: String,
        /// The occurrence.
        occurrence: Timestamp,
        /// Why.
        reason: String,
    },
    /// A start was refused; the experiment was cancelled.
    Refused {
        /// The experiment.
        experiment: String,
        /// Why.
        reason: String,
    },
}

/// The embedded scheduler over one event store.
#[derive(Debug)]
pub struct Scheduler<R> {
    service: ExperimentService<R>,
    grace_secs: i64,
}

fn context(command_id: String, correlation: &str) -> Result<CommandContext, ServiceError> {
    system_context(command_id, correlation, "scheduler", Source::Schedule)
}

/// The experiment id of a schedule's occurrence: `<schedule>-<YYYYMMDDTHHMM>Z`.
pub fn occurrence_id(schedule: &str, occurrence: Timestamp) -> String {
    format!(
        "{schedule}-{}",
        occurrence.to_datetime().format("%Y%m%dT%H%MZ")
    )
}

impl<R: Repository> Scheduler<R> {
    /// A scheduler over `service`, with five minutes of grace.
    pub fn new(service: ExperimentService<R>) -> Self {
        Scheduler {
            service,
            grace_secs: 300,
        }
    }

    /// How late an occurrence may still fire, in seconds.
    pub fn grace(mut self, secs: i64) -> Self {
        self.grace_secs = secs;
        self
    }

    /// One pass at `now`. `scheduled` are the experiments the read models say are scheduled
    /// (a hint: each is checked against the log).
    pub async fn tick(
        &self,
        now: Timestamp,
        scheduled: &[String],
    ) -> Result<Vec<Fired>, ServiceError> {
        let mut fired = Vec::new();
        for id in scheduled {
            if let Some(f) = self.start_due(id, now).await? {
                fired.push(f);
            }
        }
        let platform = self
            .service
            .platform_of(&[Concern::Schedules, Concern::Blackouts, Concern::HaltSwitch])
            .await?
            .aggregate;
        for (id, schedule) in platform.schedules() {
            let Some(occurrence) = schedule.last_at_or_before(now, self.grace_secs) else {
                continue;
            };
            let skip = |reason: String| Fired::Skipped {
                schedule: id.to_string(),
                occurrence,
                reason,
            };
            if let Some(window) = platform.blackout_at(occurrence) {
                fired.push(skip(format!("in {window}")));
                continue;
            }
            if let Some((reason, _)) = platform.halted() {
                fired.push(skip(format!("platform halted: {reason}")));
                continue;
            }
            if let Some(f) = self.fire(id.as_str(), schedule, occurrence, now).await? {
                fired.push(f);
            }
        }
        Ok(fired)
    }

    /// Starts a one-shot scheduled experiment whose time has come.
    async fn start_due(&self, id: &str, now: Timestamp) -> Result<Option<Fired>, ServiceError> {
        let experiment = match self.service.load(id).await {
            Ok(loaded) => loaded.aggregate,
            Err(e) if matches!(e.code(), "NOT_FOUND" | "INVALID_INPUT") => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(start_at) = experiment.start_at() else {
            return Ok(None);
        };
        if experiment.status() != Status::Scheduled || start_at > now {
            return Ok(None);
        }
        let key = format!(
            "schedule:start:{}",
            start_at.to_datetime().timestamp_millis()
        );
        self.start_or_cancel(id, &key, None).await.map(Some)
    }

    async fn start_or_cancel(
        &self,
        id: &str,
        key: &str,
        schedule: Option<&str>,
    ) -> Result<Fired, ServiceError> {
        match self.service.start(id, &context(key.to_owned(), key)?).await {
            Ok(_) => Ok(Fired::Started {
                experiment: id.to_owned(),
                schedule: schedule.map(str::to_owned),
            }),
            Err(e) if e.code() == "REJECTED" => {
                let reason = format!("scheduled start refused: {e}");
                tracing::warn!(experiment = id, %reason, "scheduled start refused; cancelling");
                self.service
                    .cancel(id, &reason, &context(format!("{key}:cancel"), key)?)
                    .await?;
                Ok(Fired::Refused {
                    experiment: id.to_owned(),
                    reason,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Creates and starts the experiment of one occurrence (each step once).
    async fn fire(
        &self,
        schedule_id: &str,
        schedule: &RecurringSchedule,
        occurrence: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Fired>, ServiceError> {
        let id = occurrence_id(schedule_id, occurrence);
        let key = format!("schedule:{id}");
        let exists = match self.service.load(&id).await {
            Ok(loaded) => loaded
                .aggregate
                .spec()
                .is_some()
                .then(|| loaded.aggregate.status()),
            Err(e) if e.code() == "NOT_FOUND" => None,
            Err(e) => return Err(e),
        };
        match exists {
            // Created, not started yet (a tick cut short between the two): start it.
            Some(Status::Draft) => {}
            Some(_) => return Ok(None),
            None => {
                let experiment = ExperimentId::parse(id.as_str())?;
                self.service
                    .experiment(
                        &id,
                        ExperimentCommand::CreateExperiment {
                            id: experiment,
                            spec: schedule.spec.clone(),
                            at: now,
                        },
                        &context(format!("{key}:create"), &key)?,
                    )
                    .await?;
            }
        }
        self.start_or_cancel(&id, &format!("{key}:start"), Some(schedule_id))
            .await
            .map(Some)
    }
}
