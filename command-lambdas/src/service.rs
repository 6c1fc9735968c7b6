//! The application service: what the API, the CLI and the command Lambda call.
//!
//! It turns requests into domain commands: it parses untrusted input, stamps the time, looks
//! up the facts a decision needs (the platform's halt switch and caps) and runs the command
//! through the [`EventStore`]. It holds no state of its own.

use std::sync::Arc;

use crate::store::Repository;
use domain::Timestamp;
use domain::experiment::{Experiment, ExperimentCommand, ExperimentError, PlatformGate};
use domain::platform::{
    Concern, Platform, PlatformBook, PlatformCommand, PlatformConfig, PlatformError,
};
use domain::provenance::{Actor, CommandContext, Role, Source};
use domain::schedule::BlackoutWindow;
use domain::spec::{
    ApiKeyId, BlackoutId, ExperimentId, ExperimentSpec, ExperimentSpecInput, ScheduleId, SpecError,
    Username, WebhookId,
};

use crate::clock::Clock;
use crate::store::{CommandOutcome, EventStore, Loaded, StoreError};

/// The platform's state as its ledgers hold it now.
#[derive(Debug, Clone)]
pub struct PlatformState {
    /// The state of the concerns asked for (the others are at their defaults).
    pub aggregate: Platform,
    /// Each of those ledgers' current book and the events stored in it.
    pub books: Vec<Book>,
}

/// Where a ledger of the platform stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Book {
    /// The concern it keeps.
    pub concern: Concern,
    /// Its current book (a stream of type `Platform`).
    pub book: String,
    /// Events stored in that book.
    pub events: usize,
}

/// Why a request failed, with a stable code for every interface.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request itself is malformed.
    #[error(transparent)]
    InvalidInput(#[from] SpecError),
    /// The experiment command failed.
    #[error(transparent)]
    Experiment(#[from] StoreError<ExperimentError>),
    /// The platform command failed.
    #[error(transparent)]
    Platform(#[from] StoreError<PlatformError>),
}

impl ServiceError {
    /// Stable machine-readable code: `INVALID_INPUT`, `NOT_FOUND`, `REJECTED`, `CONFLICT`,
    /// `IDEMPOTENCY_KEY_REUSED`, `UNAVAILABLE` or `CORRUPT`.
    pub fn code(&self) -> &'static str {
        fn store_code<E: std::error::Error>(e: &StoreError<E>, not_found: bool) -> &'static str {
            match e {
                StoreError::Rejected(_) if not_found => "NOT_FOUND",
                StoreError::Rejected(_) | StoreError::StreamFull { .. } => "REJECTED",
                StoreError::Contention { .. } => "CONFLICT",
                StoreError::Storage(_) => "UNAVAILABLE",
                StoreError::Corrupt { .. } | StoreError::Encoding(_) => "CORRUPT",
                StoreError::KeyReused { .. } => "IDEMPOTENCY_KEY_REUSED",
            }
        }
        match self {
            ServiceError::InvalidInput(_) => "INVALID_INPUT",
            ServiceError::Experiment(e) => store_code(
                e,
                matches!(e, StoreError::Rejected(ExperimentError::NotFound)),
            ),
            ServiceError::Platform(StoreError::Rejected(PlatformError::InvalidInput(_))) => {
                "INVALID_INPUT"
            }
            ServiceError::Platform(e) => store_code(
                e,
                matches!(
                    e,
                    StoreError::Rejected(
                        PlatformError::Unknown { .. } | PlatformError::UnknownWebhook(_)
                    )
                ),
            ),
        }
    }

    /// Every problem of an input refused as invalid, each with its path (empty otherwise).
    pub fn problems(&self) -> &[domain::spec::Problem] {
        match self {
            ServiceError::InvalidInput(e)
            | ServiceError::Experiment(StoreError::Rejected(ExperimentError::InvalidInput(e)))
            | ServiceError::Platform(StoreError::Rejected(PlatformError::InvalidInput(e))) => {
                &e.problems
            }
            ServiceError::Experiment(_) | ServiceError::Platform(_) => &[],
        }
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            ServiceError::InvalidInput(_) => false,
            ServiceError::Experiment(e) => e.is_retryable(),
            ServiceError::Platform(e) => e.is_retryable(),
        }
    }
}

/// Experiment and platform operations over one event store.
pub struct ExperimentService<R> {
    store: Arc<EventStore<R>>,
    clock: Arc<dyn Clock>,
}

impl<R> std::fmt::Debug for ExperimentService<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExperimentService").finish_non_exhaustive()
    }
}

impl<R> Clone for ExperimentService<R> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
        }
    }
}

impl<R: Repository> ExperimentService<R> {
    /// A service over `store`, reading time from `clock`.
    pub fn new(store: Arc<EventStore<R>>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The underlying store.
    pub fn store(&self) -> &EventStore<R> {
        &self.store
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Creates an experiment from an untrusted spec under the id chosen by the caller.
    pub async fn create(
        &self,
        id: &str,
        spec: ExperimentSpecInput,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let id = ExperimentId::parse_new(id)?;
        let spec = ExperimentSpec::parse(spec)?;
        let command = ExperimentCommand::CreateExperiment {
            id: id.clone(),
            spec,
            at: self.now(),
        };
        self.experiment(id.as_str(), command, context).await
    }

    /// Starts an experiment, checking the halt switch, blackout windows and the platform caps
    /// first.
    pub async fn start(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let platform = self
            .platform_of(&[Concern::HaltSwitch, Concern::Limits, Concern::Blackouts])
            .await?
            .aggregate;
        let config = platform.config();
        let gate = PlatformGate {
            halted: platform.halted().map(|(reason, _)| reason.to_owned()),
            max_targets_per_run: config.max_targets_per_run,
            max_duration_secs: config.max_duration_secs,
            blackout: platform.blackout_at(self.now()),
        };
        let command = ExperimentCommand::StartExperiment {
            gate,
            at: self.now(),
        };
        self.experiment(id, command, context).await
    }

    /// Schedules (or reschedules) an experiment to start at `start_at`.
    pub async fn schedule(
        &self,
        id: &str,
        start_at: Timestamp,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = ExperimentCommand::ScheduleExperiment {
            start_at,
            at: self.now(),
        };
        self.experiment(id, command, context).await
    }

    /// Asks a running experiment to stop.
    pub async fn stop(
        &self,
        id: &str,
        reason: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = ExperimentCommand::RequestStop {
            reason: reason.to_owned(),
            at: self.now(),
        };
        self.experiment(id, command, context).await
    }

    /// Cancels an experiment that has not started.
    pub async fn cancel(
        &self,
        id: &str,
        reason: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = ExperimentCommand::CancelExperiment {
            reason: reason.to_owned(),
            at: self.now(),
        };
        self.experiment(id, command, context).await
    }

    /// Archives an experiment that is not running.
    pub async fn archive(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = ExperimentCommand::ArchiveExperiment { at: self.now() };
        self.experiment(id, command, context).await
    }

    /// Runs any experiment command (the workflow's entry point).
    pub async fn experiment(
        &self,
        id: &str,
        command: ExperimentCommand,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let id = ExperimentId::parse(id)?;
        let outcome = self
            .store
            .execute::<Experiment>(id.as_str(), command, context)
            .await?;
        Ok(outcome)
    }

    /// Loads one existing experiment with its history.
    pub async fn load(&self, id: &str) -> Result<Loaded<Experiment>, ServiceError> {
        let id = ExperimentId::parse(id)?;
        let loaded = self.store.load::<Experiment>(id.as_str()).await?;
        if loaded.version == 0 {
            return Err(StoreError::Rejected(ExperimentError::NotFound).into());
        }
        Ok(loaded)
    }

    /// The platform's state: every concern's ledger, caught up.
    pub async fn platform(&self) -> Result<PlatformState, ServiceError> {
        self.platform_of(&Concern::ALL).await
    }

    /// The state of `concerns`, each from its ledger, caught up (one small read each when
    /// nothing changed).
    pub async fn platform_of(&self, concerns: &[Concern]) -> Result<PlatformState, ServiceError> {
        let mut state = PlatformState {
            aggregate: Platform::default(),
            books: Vec::with_capacity(concerns.len()),
        };
        for &concern in concerns {
            let ledger = self.store.ledger::<PlatformBook>(concern.ledger()).await?;
            state.aggregate.adopt(concern, ledger.aggregate.state());
            state.books.push(Book {
                concern,
                book: ledger.book,
                events: ledger.version,
            });
        }
        Ok(state)
    }

    /// Turns the halt switch on.
    pub async fn halt(
        &self,
        reason: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::HaltAll {
            reason: reason.to_owned(),
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Lifts the halt switch.
    pub async fn lift_halt(
        &self,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::LiftHalt { at: self.now() };
        self.platform_command(command, context).await
    }

    /// Issues an API key whose secret has the SHA-256 `secret_sha256` (see
    /// [`crate::api_keys`]); its holder acts as `key:<id>` with `role`.
    pub async fn issue_api_key(
        &self,
        id: &str,
        name: &str,
        role: Role,
        secret_sha256: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::CreateApiKey {
            id: ApiKeyId::parse(id)?,
            name: name.to_owned(),
            role,
            secret_sha256: secret_sha256.to_owned(),
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Revokes an API key.
    pub async fn revoke_api_key(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::RevokeApiKey {
            id: ApiKeyId::parse(id)?,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Runs `command` in the ledger of its concern.
    async fn platform_command(
        &self,
        command: PlatformCommand,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let ledger = command.concern().ledger();
        Ok(self
            .store
            .execute_in_ledger::<PlatformBook>(ledger, command, context)
            .await?)
    }

    /// Adds a user of the embedded identity provider, acting as `user:<name>` with `role`.
    pub async fn add_user(
        &self,
        username: &str,
        role: Role,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::AddUser {
            username: Username::parse(username)?,
            role,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Gives a user another role.
    pub async fn change_user_role(
        &self,
        username: &str,
        role: Role,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::ChangeUserRole {
            username: Username::parse(username)?,
            role,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Removes a user.
    pub async fn remove_user(
        &self,
        username: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::RemoveUser {
            username: Username::parse(username)?,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Subscribes a webhook to events (`events` empty: every event). Its URL must reach a
    /// public address unless the deployment allows private targets (`allow_private`).
    pub async fn add_webhook(
        &self,
        id: &str,
        url: &str,
        events: Vec<String>,
        allow_private: bool,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::AddWebhook {
            id: WebhookId::parse(id)?,
            url: url.to_owned(),
            allow_private,
            events,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Removes a webhook subscription.
    pub async fn remove_webhook(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::RemoveWebhook {
            id: WebhookId::parse(id)?,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Records that webhook `id` signs with the secret of `fingerprint` from now on (see
    /// [`domain::platform::webhook_secret_fingerprint`]); the caller keeps the secret.
    pub async fn issue_webhook_secret(
        &self,
        id: &str,
        fingerprint: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::IssueWebhookSecret {
            id: WebhookId::parse(id)?,
            fingerprint: fingerprint.to_owned(),
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Adds a recurring schedule: an experiment of `spec` at every time `cron` names in
    /// `time_zone`.
    pub async fn add_schedule(
        &self,
        id: &str,
        cron: &str,
        time_zone: &str,
        spec: ExperimentSpecInput,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::AddSchedule {
            id: ScheduleId::parse(id)?,
            cron: cron.to_owned(),
            time_zone: time_zone.to_owned(),
            spec: ExperimentSpec::parse(spec)?,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Removes a recurring schedule.
    pub async fn remove_schedule(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::RemoveSchedule {
            id: ScheduleId::parse(id)?,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Adds a blackout window: nothing starts in it, and running experiments are stopped.
    pub async fn add_blackout(
        &self,
        id: &str,
        window: BlackoutWindow,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::AddBlackout {
            id: BlackoutId::parse(id)?,
            window,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Removes a blackout window.
    pub async fn remove_blackout(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::RemoveBlackout {
            id: BlackoutId::parse(id)?,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }

    /// Replaces the platform configuration.
    pub async fn update_config(
        &self,
        config: PlatformConfig,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ServiceError> {
        let command = PlatformCommand::UpdateConfig {
            config,
            at: self.now(),
        };
        self.platform_command(command, context).await
    }
}

/// The id of the experiment a create sent without one makes, when it carries the idempotency
/// key `command_id` from `actor`: derived from both, so the create retried with the same key
/// lands on the same experiment and is answered with its first outcome, not made again. A
/// UUID (version 8: the first 16 bytes of the SHA-256 of the actor and the key).
pub fn experiment_id_for(actor: &str, command_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("create experiment\n{actor}\n{command_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The context of a command the platform issues itself (the workflow, the scheduler): acting
/// as `actor`, an operator, from `source`.
pub(crate) fn system_context(
    command_id: String,
    correlation_id: &str,
    actor: &str,
    source: Source,
) -> Result<CommandContext, ServiceError> {
    CommandContext::new(
        command_id,
        correlation_id,
        Actor {
            id: actor.to_owned(),
            role: Role::Operator,
        },
        source,
    )
    .map_err(|e| {
        ServiceError::InvalidInput(SpecError {
            problems: vec![domain::spec::Problem {
                field: "context".into(),
                message: e.to_string(),
            }],
        })
    })
}
