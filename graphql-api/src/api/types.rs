//! The schema's object types: views of the read models and of command outcomes, in the words
//! the dashboard and scripts use. Enumerations keep the log's spelling (`RUNNING`,
//! `RECOVERED`), as strings, so a client reads the same names in the API, the CLI and the
//! audit log.

use async_graphql::{Enum, InputObject, Json, Object, SimpleObject};
use command_lambdas::command::Response;
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::{ExperimentRecord, ExperimentSummary};
use serde::Serialize;

/// A serde enum's name (`RUNNING`).
pub(crate) fn name_of<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An experiment as lists show it. Its fields are worked out when a query selects them: a
/// page of a list selects a few fields of many experiments.
#[derive(Debug, Clone)]
pub struct ExperimentNode(pub ExperimentSummary);

/// An experiment as lists show it.
#[Object(name = "Experiment")]
impl ExperimentNode {
    /// Its id (the event stream's).
    async fn id(&self) -> &str {
        &self.0.id
    }

    /// Its name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Target key (`fleet:web`, `asg:web-prod`).
    async fn target(&self) -> &str {
        &self.0.target
    }

    /// `LOCAL_FLEET` or `AUTO_SCALING_GROUP`.
    async fn target_kind(&self) -> String {
        name_of(&self.0.target_kind)
    }

    /// `TERMINATE` or `PAUSE`.
    async fn failure_type(&self) -> &str {
        &self.0.failure_type
    }

    /// Whether it only resolves its targets.
    async fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    /// `DRAFT`, `SCHEDULED`, `RUNNING`, `COMPLETED`, `FAILED`, `STOPPED`, `CANCELLED`.
    async fn status(&self) -> String {
        name_of(&self.0.status)
    }

    /// The phase of a running experiment.
    async fn phase(&self) -> Option<String> {
        self.0.phase.as_ref().map(name_of)
    }

    /// Whether it is archived.
    async fn archived(&self) -> bool {
        self.0.archived
    }

    /// `RECOVERED`, `NOT_RECOVERED` or `DRY_RUN`, once completed.
    async fn outcome(&self) -> Option<String> {
        self.0.outcome.as_ref().map(name_of)
    }

    /// Milliseconds from the injection to the recovery, when observed.
    async fn recovery_ms(&self) -> Option<u64> {
        self.0.recovery_ms
    }

    /// When it was created (RFC 3339).
    async fn created_at(&self) -> String {
        self.0.created_at.to_string()
    }

    /// Who created it.
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }

    /// Its planned start.
    async fn start_at(&self) -> Option<String> {
        self.0.start_at.map(|t| t.to_string())
    }

    /// Its start.
    async fn started_at(&self) -> Option<String> {
        self.0.started_at.map(|t| t.to_string())
    }

    /// Its end.
    async fn ended_at(&self) -> Option<String> {
        self.0.ended_at.map(|t| t.to_string())
    }

    /// When its last event happened.
    async fn updated_at(&self) -> String {
        self.0.updated_at.to_string()
    }

    /// Events in its stream.
    async fn version(&self) -> u64 {
        self.0.version
    }
}

impl From<ExperimentSummary> for ExperimentNode {
    fn from(summary: ExperimentSummary) -> Self {
        ExperimentNode(summary)
    }
}

/// One experiment in full: its row, why it ended as it did, and its timeline.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "ExperimentDetail")]
pub struct ExperimentDetailNode {
    /// The experiment.
    pub experiment: ExperimentNode,
    /// Why it failed (`CODE: message`), when it did.
    pub failure: Option<String>,
    /// Why a stop was requested or tripped, when one was.
    pub stop_reason: Option<String>,
    /// The spec it runs, as stored (JSON).
    pub spec: Option<Json<serde_json::Value>>,
    /// Every event of the experiment, in the log's order.
    pub timeline: Vec<AuditEntryNode>,
}

/// Why the experiment of `record` failed (`CODE: message`), when it did.
pub(crate) fn failure_of(record: &ExperimentRecord) -> Option<String> {
    record
        .failure
        .as_ref()
        .map(|f| format!("{}: {}", name_of(&f.code), f.message))
}

impl ExperimentDetailNode {
    pub(crate) fn new(record: ExperimentRecord, timeline: Vec<AuditEntry>) -> Option<Self> {
        let summary = record.summary()?;
        Some(ExperimentDetailNode {
            experiment: summary.into(),
            failure: failure_of(&record),
            stop_reason: record.stop_reason.clone(),
            spec: record
                .state
                .spec()
                .and_then(|s| serde_json::to_value(s).ok())
                .map(Json),
            timeline: timeline.into_iter().map(AuditEntryNode::from).collect(),
        })
    }
}

/// One event as the audit log shows it: what happened, who did it, through what, and where
/// it sits in its stream's hash chain.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "AuditEntry")]
pub struct AuditEntryNode {
    /// `Experiment` or `Platform`.
    pub aggregate_type: String,
    /// The stream.
    pub aggregate_id: String,
    /// Its position in the stream.
    pub sequence: u64,
    /// The event type.
    pub event_type: String,
    /// What happened, in words.
    pub action: String,
    /// Who.
    pub actor: String,
    /// With which role.
    pub actor_role: String,
    /// Through which interface.
    pub source: String,
    /// When it happened.
    pub at: String,
    /// When the store recorded it.
    pub recorded_at: String,
    /// The command's idempotency key.
    pub command_id: String,
    /// The correlation id.
    pub correlation_id: String,
    /// The event's id.
    pub event_id: String,
    /// The previous link of the chain.
    pub prev_hash: String,
    /// This link.
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryNode {
    fn from(e: AuditEntry) -> Self {
        AuditEntryNode {
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            sequence: e.sequence,
            event_type: e.event_type,
            action: e.action,
            actor: e.actor,
            actor_role: e.actor_role,
            source: e.source,
            at: e.at.to_string(),
            recorded_at: e.recorded_at,
            command_id: e.command_id,
            correlation_id: e.correlation_id,
            event_id: e.event_id,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// A page of experiments.
#[derive(Debug, Clone, SimpleObject)]
pub struct ExperimentPage {
    /// Newest first.
    pub items: Vec<ExperimentNode>,
    /// Pass as `after` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// One finished run: how it ended and what its health did.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "RunResult")]
pub struct RunResultNode {
    /// The experiment.
    pub experiment_id: String,
    /// Its name.
    pub name: String,
    /// Target key.
    pub target: String,
    /// `TERMINATE` or `PAUSE`.
    pub failure_type: String,
    /// `RECOVERED`, `NOT_RECOVERED`, `DRY_RUN`, `FAILED`, `STOPPED` or `INTERRUPTED` (the
    /// platform lost the run while its failure was in effect: left out of the rates and MTTR).
    pub outcome: String,
    /// Milliseconds from the injection to the recovery, when it recovered.
    pub recovery_ms: Option<u64>,
    /// Its start (RFC 3339).
    pub started_at: String,
    /// Its end (RFC 3339).
    pub ended_at: String,
    /// End minus start, in milliseconds.
    pub duration_ms: u64,
    /// Instances the selector matched.
    pub candidates: u32,
    /// Instances the failure was injected into.
    pub targets_hit: Vec<String>,
    /// For a dry run, the instances it resolved: those a real run would have hit then (empty
    /// for any other run).
    pub would_hit: Vec<String>,
    /// Health samples taken.
    pub samples: u32,
    /// The lowest healthy count seen.
    pub min_healthy: Option<u32>,
    /// The highest error rate seen, in basis points.
    pub max_error_rate_bp: Option<u32>,
    /// The highest p95 latency seen, in milliseconds.
    pub max_latency_p95_ms: Option<u32>,
    /// The mean share of healthy instances over the samples, in basis points.
    pub availability_bp: Option<u32>,
}

impl From<domain::views::results::RunResult> for RunResultNode {
    fn from(r: domain::views::results::RunResult) -> Self {
        RunResultNode {
            outcome: name_of(&r.outcome),
            started_at: r.started_at.to_string(),
            ended_at: r.ended_at.to_string(),
            experiment_id: r.experiment_id,
            name: r.name,
            target: r.target,
            failure_type: r.failure_type,
            recovery_ms: r.recovery_ms,
            duration_ms: r.duration_ms,
            candidates: r.candidates,
            targets_hit: r.targets_hit,
            would_hit: r.would_hit,
            samples: r.samples,
            min_healthy: r.min_healthy,
            max_error_rate_bp: r.max_error_rate_bp,
            max_latency_p95_ms: r.max_latency_p95_ms,
            availability_bp: r.availability_bp,
        }
    }
}

/// A page of finished runs.
#[derive(Debug, Clone, SimpleObject)]
pub struct RunResultPage {
    /// Oldest end first.
    pub items: Vec<RunResultNode>,
    /// Pass as `after` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Which experiments to list (every field optional; combined with AND).
#[derive(Debug, Clone, Default, InputObject)]
pub struct ExperimentFilterInput {
    /// `RUNNING`, `COMPLETED`, ...
    pub status: Option<String>,
    /// Part of the target key, any case (`web` finds `fleet:web`).
    pub target: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<String>,
    /// Created before (RFC 3339).
    pub created_to: Option<String>,
    /// Part of the name, any case.
    pub search: Option<String>,
    /// Archived experiments too.
    #[graphql(default)]
    pub include_archived: bool,
}

/// The order of the audit log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
pub enum AuditOrder {
    /// The latest entry first, as an activity log reads.
    #[default]
    NewestFirst,
    /// In recording order, as a replay or an export reads.
    OldestFirst,
}

/// Which audit entries to list (every field optional; combined with AND).
#[derive(Debug, Clone, Default, InputObject)]
pub struct AuditFilterInput {
    /// Who acted, or part of it in any case (`sam` finds `user:sam`): `user:<name>` (a
    /// person), `key:<key id>` (an API key), `cognito:<name>`, `workflow`, `scheduler`, or the
    /// name a CLI user acted under.
    pub actor: Option<String>,
    /// The stream: an experiment id, or `platform`.
    pub experiment_id: Option<String>,
    /// Recorded at or after (RFC 3339).
    pub from: Option<String>,
    /// Recorded before (RFC 3339).
    pub to: Option<String>,
}

/// A webhook added, with the secret its deliveries are signed with: shown this once.
#[derive(Debug, Clone, SimpleObject)]
pub struct WebhookAdded {
    /// What the command recorded.
    #[graphql(flatten)]
    pub result: CommandResult,
    /// The webhook's id and signing secret.
    #[graphql(flatten)]
    pub signing: WebhookSecret,
}

/// A webhook's signing secret, shown once: when it is drawn.
#[derive(Debug, Clone, SimpleObject)]
pub struct WebhookSecret {
    /// The webhook's id.
    pub webhook_id: String,
    /// The secret its deliveries are signed with (`X-Chaos-Signature: t=<unix seconds>,v1=<hex
    /// HMAC-SHA256 of "<t>.<body>">`, see docs/WEBHOOKS.md). None on AWS, whose deliveries are
    /// not sent yet.
    pub secret: Option<String>,
    /// The name the audit log knows this secret by (`WebhookSecretIssued`): 16 hex digits
    /// derived from it, which do not reveal it (docs/WEBHOOKS.md says how). None with `secret`.
    pub fingerprint: Option<String>,
}

/// What a command recorded, and what became of the runs it touched.
#[derive(Debug, Clone, SimpleObject)]
pub struct CommandResult {
    /// The stream written to.
    pub aggregate_id: String,
    /// Its version after the command.
    pub version: u64,
    /// The types of the events recorded.
    pub events: Vec<String>,
    /// True when the same command (the same `commandId`) had been carried out already.
    pub deduplicated: bool,
    /// The workflow execution a start runs.
    pub execution: Option<String>,
    /// Runs a stop or halt ended before answering.
    pub stopped: Vec<String>,
    /// Runs a stop or halt leaves to their workflow, which stops them as their step ends.
    pub stopping: Vec<String>,
}

impl CommandResult {
    pub(crate) fn from_response(response: Response) -> Option<Self> {
        let outcome = response.outcome?;
        Some(CommandResult {
            aggregate_id: outcome.aggregate_id,
            version: outcome.version as u64,
            events: outcome.events,
            deduplicated: outcome.deduplicated,
            execution: response.execution,
            stopped: response.stopped,
            stopping: response.stopping,
        })
    }
}

/// An API key just issued: the only time its secret is shown.
#[derive(Debug, Clone, SimpleObject)]
pub struct IssuedApiKey {
    /// Its id; its holder acts as `key:<id>`.
    pub id: String,
    /// The secret, for `Authorization: Bearer <secret>`. Not shown again.
    pub secret: String,
    /// The role its holder acts with.
    pub role: String,
}

/// An API key in force (never its secret).
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "ApiKey")]
pub struct ApiKeyNode {
    /// Its id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The role its holder acts with.
    pub role: String,
    /// When it was issued.
    pub created_at: String,
}

/// Who the caller is.
#[derive(Debug, Clone, SimpleObject)]
pub struct Me {
    /// The actor id commands are recorded with.
    pub id: String,
    /// `ADMIN`, `OPERATOR` or `VIEWER`.
    pub role: String,
}

/// How people sign in to this server.
#[derive(Debug, Clone, SimpleObject)]
pub struct SignInOptions {
    /// `PASSWORD` (this server's own accounts, through `login`), `COGNITO` (the user pool in
    /// `cognito`, through Cognito's `InitiateAuth`), or `NONE` (only API keys authenticate).
    pub method: String,
    /// The Cognito user pool whose tokens are accepted, if one is.
    pub cognito: Option<CognitoSignInNode>,
    /// Whether this server has no user yet and waits for its first administrator, made with
    /// `setUpFirstAdmin` and the one-time code it printed in its console when it started.
    pub first_admin: bool,
}

/// A Cognito user pool as a browser signs in to it (nothing here is secret).
#[derive(Debug, Clone, SimpleObject)]
pub struct CognitoSignInNode {
    /// The Cognito API endpoint to send `InitiateAuth` to.
    pub endpoint: String,
    /// The pool's region.
    pub region: String,
    /// The pool.
    pub user_pool_id: String,
    /// The app client (it has no secret).
    pub client_id: String,
}

/// Whether the platform is fit to run experiments.
#[derive(Debug, Clone, SimpleObject)]
pub struct PlatformHealth {
    /// Whether the halt switch is on, and why.
    pub halted: bool,
    /// The halt's reason.
    pub halt_reason: Option<String>,
    /// Events the read models have not applied yet. Null on AWS, where it is the projection's
    /// `IteratorAge` metric in CloudWatch.
    pub projection_behind: Option<i64>,
    /// Records the read models parked (poison records and what waits behind them). Null on
    /// AWS, where they go to the projection's failure queue.
    pub projection_parked: Option<u64>,
    /// How full each bounded part of the platform's state is (webhooks, schedules, blackout
    /// windows, API keys, users). The ledgers that hold them have no bound.
    pub capacity: Vec<CapacityNode>,
    /// What needs an administrator's attention, in words: every capacity past 80 % of its
    /// limit, long before the limit refuses anything. Empty when all is well.
    pub warnings: Vec<String>,
}

/// How full one bounded part of the platform's state is.
#[derive(Debug, Clone, SimpleObject)]
pub struct CapacityNode {
    /// What is counted (`users`).
    pub what: String,
    /// How many are in force.
    pub used: u64,
    /// How many may be at once.
    pub limit: u64,
    /// Past 80 % of the limit.
    pub near: bool,
}

impl From<&domain::platform::Capacity> for CapacityNode {
    fn from(c: &domain::platform::Capacity) -> Self {
        CapacityNode {
            what: c.what.to_owned(),
            used: c.used as u64,
            limit: c.limit as u64,
            near: c.is_near(),
        }
    }
}

/// A signed-in session of the embedded identity provider.
#[derive(Debug, Clone, SimpleObject)]
pub struct Session {
    /// The bearer token for requests (`Authorization: Bearer <accessToken>`); short-lived.
    pub access_token: String,
    /// When it expires (RFC 3339).
    pub access_token_expires_at: String,
    /// The one-use token that gets the next pair (`refreshSession`); using it twice ends the
    /// session.
    pub refresh_token: String,
    /// When it expires unused (RFC 3339).
    pub refresh_token_expires_at: String,
    /// Who is signed in.
    pub user: Me,
}

/// The platform's configuration and halt switch.
#[derive(Debug, Clone, SimpleObject)]
pub struct PlatformConfigNode {
    /// Most targets any one run may hit.
    pub max_targets_per_run: u32,
    /// Longest run allowed, in seconds.
    pub max_duration_secs: u32,
    /// Whether the halt switch is on.
    pub halted: bool,
    /// Why, when on.
    pub halt_reason: Option<String>,
    /// Since when (RFC 3339), when on.
    pub halted_at: Option<String>,
}

/// A webhook subscription.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "Webhook")]
pub struct WebhookNode {
    /// Its id.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types delivered; empty for every event.
    pub events: Vec<String>,
}

/// A saved experiment spec to start experiments from.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "Template")]
pub struct TemplateNode {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The spec (JSON, as `createExperiment` takes it).
    pub spec: Json<serde_json::Value>,
    /// Who saved it last.
    pub saved_by: String,
    /// When (RFC 3339).
    pub saved_at: String,
}

impl From<crate::settings::Template> for TemplateNode {
    fn from(t: crate::settings::Template) -> Self {
        TemplateNode {
            id: t.id,
            name: t.name,
            spec: Json(serde_json::to_value(&t.spec).unwrap_or_default()),
            saved_by: t.saved_by,
            saved_at: t.saved_at,
        }
    }
}

/// A user's preferences.
#[derive(Debug, Clone, SimpleObject, InputObject)]
#[graphql(input_name = "PreferencesInput")]
pub struct Preferences {
    /// Outcomes the dashboard tells this user of while it is open (its notices, fed by
    /// `platformActivity.announces`): COMPLETED, FAILED, NOT_RECOVERED, STOPPED, HALTED.
    pub notify_on: Vec<String>,
    /// IANA time zone times are shown in.
    pub time_zone: String,
    /// Rows per page in lists (10 to 200).
    pub page_size: u32,
}

impl From<crate::settings::Preferences> for Preferences {
    fn from(p: crate::settings::Preferences) -> Self {
        Preferences {
            notify_on: p.notify_on,
            time_zone: p.time_zone,
            page_size: p.page_size,
        }
    }
}

impl From<Preferences> for crate::settings::Preferences {
    fn from(p: Preferences) -> Self {
        crate::settings::Preferences {
            notify_on: p.notify_on,
            time_zone: p.time_zone,
            page_size: p.page_size,
        }
    }
}

/// What a run would hit if it resolved its targets now.
#[derive(Debug, Clone, SimpleObject)]
pub struct TargetPreview {
    /// The experiment id the choice is made for: create the experiment with this id to hit
    /// exactly these targets (if the group has not changed by then).
    pub experiment_id: String,
    /// The target group (`fleet:web`, `asg:web-prod`).
    pub target: String,
    /// Its members in service.
    pub candidates: Vec<String>,
    /// The ones the run would hit.
    pub would_hit: Vec<String>,
}

/// Whether the audit log's hash chains hold, as checked when asked: every stream's sequence
/// runs from 1 without a gap, its payload and metadata are stored in canonical form, and each
/// event's `prevHash` and `hash` link it to the one before (the checks of `chaos audit
/// verify`, written down in `docs/AUDIT.md`).
#[derive(Debug, Clone, SimpleObject)]
pub struct AuditChainStatus {
    /// True when no stream checked has a fault.
    pub intact: bool,
    /// Streams checked.
    pub streams: u64,
    /// Events checked.
    pub events: u64,
    /// When the check ended (RFC 3339).
    pub checked_at: String,
    /// The first bad position of each broken stream, by stream (empty when intact).
    pub faults: Vec<AuditChainFault>,
}

/// The first position of a stream that does not verify: nothing after it in that stream can
/// be trusted.
#[derive(Debug, Clone, SimpleObject)]
pub struct AuditChainFault {
    /// `Experiment` or `Platform`.
    pub stream_type: String,
    /// The stream: an experiment id, or `platform`.
    pub stream_id: String,
    /// The first sequence that does not verify.
    pub sequence: u64,
    /// What is wrong there, in words (`expected sequence 4, found 5`, `payload is not in
    /// canonical form`, ...).
    pub problem: String,
}

impl AuditChainStatus {
    /// The status a verification report gives, checked at `checked_at`.
    pub fn new(report: domain::audit::VerifyReport, checked_at: String) -> Self {
        AuditChainStatus {
            intact: report.is_ok(),
            streams: report.streams,
            events: report.events,
            checked_at,
            faults: report
                .faults
                .into_iter()
                .map(|f| AuditChainFault {
                    problem: f.kind.to_string(),
                    stream_type: f.aggregate_type,
                    stream_id: f.aggregate_id,
                    sequence: f.sequence,
                })
                .collect(),
        }
    }
}
