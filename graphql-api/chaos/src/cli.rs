//! The `chaos` command line: the composition root of the embedded mode.
//!
//! Output is JSON on stdout (for scripts) except for `audit verify`, which prints a readable
//! report unless `--json` is given. Errors go to stderr as `error: ...`.
//!
//! Exit codes (stable, for scripts and CI):
//! - 0: success;
//! - 1: could not run (I/O, store or table unavailable or unreadable, server failure);
//! - 2: usage error (bad flags or arguments, unreadable input file, a file that is not a
//!   digest);
//! - 3: the request was refused (invalid spec or id, a command the experiment's state does not
//!   allow, no such experiment or stream);
//! - 4: the log does not verify: a stream whose chain or sequence is broken, or a line of an
//!   export file that is not an export record (`audit verify`; `audit digest` and
//!   `audit replay` refuse a log broken where they need it);
//! - 5: `audit verify --digest`: the log verifies but departs from the digest (a stream
//!   truncated, missing, or rewritten since);
//! - 6: `audit verify`: the log verifies but the audit log read model disagrees with it.
//!
//! When `audit verify` finds several kinds of problem, the lowest of 4, 5 and 6 is the exit
//! code; the report lists them all.

use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use command_lambdas::clock::{Clock, SystemClock, UuidV7, new_id};
use command_lambdas::service::ServiceError;
use command_lambdas::sqlite::{OpenError, OpenMode, open, repository};
use command_lambdas::{SqliteService, SqliteStore};
use domain::Timestamp;
use domain::platform::{Concern, PlatformConfig};
use domain::provenance::{Actor, CommandContext, ContextError, Role, Source};
use domain::schedule::BlackoutWindow;
use domain::spec::ExperimentSpecInput;
use projection_lambdas::embedded::{IDLE_POLL, ProjectionError, Projector};
use projection_lambdas::notify::{DeliveryPolicy, NotifyError, Outbox, Sender, deliveries};
use projection_lambdas::queries::{self, AuditFilter, ExperimentFilter};
use serde::Serialize;
use serde_json::json;

use command_lambdas::fleet::FleetError;
use command_lambdas::workflow::WorkflowError;

use crate::audit::{AuditError, ExportArgs, ReplayArgs, SourceArgs, VerifyArgs};
use graphql_api::engine;

use crate::fleet_args::FleetArgs;
use graphql_api::http::{AppState, router};
use graphql_api::identity::first_admin::FirstAdmin;
use graphql_api::lease::Lease;
use graphql_api::webhook_secret::{IssueError, IssuedSecret};

/// Chaos engineering platform: run experiments, measure recovery, verify the audit log.
#[derive(Debug, Parser)]
#[command(name = "chaos", version)]
pub struct Cli {
    /// The event store (an SQLite file).
    #[arg(long, global = true, env = "CHAOS_DB", default_value = "chaos.db")]
    db: PathBuf,
    #[command(flatten)]
    provenance: ProvenanceArgs,
    #[command(subcommand)]
    command: Command,
}

/// Who is acting, for the audit log.
#[derive(Debug, Args)]
struct ProvenanceArgs {
    /// Actor recorded on every event this command appends (default: $USER).
    #[arg(long, global = true, env = "CHAOS_ACTOR")]
    actor: Option<String>,
    /// Idempotency key: repeating a command with the same id appends nothing the second time.
    #[arg(long, global = true)]
    command_id: Option<String>,
    /// Correlation id recorded with the events (default: the command id).
    #[arg(long, global = true)]
    correlation_id: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the event store if it does not exist (safe to repeat).
    Init,
    /// Run the platform in embedded mode (creates the store if it does not exist).
    Serve {
        /// Address to listen on (use port 0 for any free port).
        #[arg(long, env = "CHAOS_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Stop, as on SIGTERM, when standard input closes: a supervisor holding a pipe to it
        /// ends the server by going away, however it goes (killed by SIGKILL too).
        #[arg(long)]
        stop_when_stdin_closes: bool,
        /// Take the store over from the `chaos serve` that runs its workflow and demo fleet
        /// (which stops within two seconds) instead of refusing to start. Embedded mode only.
        #[arg(long)]
        take_over: bool,
        /// Let webhooks reach non-public addresses (loopback, private networks, link-local such
        /// as the cloud metadata service): off by default, so that a webhook cannot be used to
        /// reach what only this server can reach.
        #[arg(long, env = "CHAOS_ALLOW_PRIVATE_WEBHOOK_TARGETS")]
        allow_private_webhook_targets: bool,
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        identity: IdentityArgs,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// The local demo fleet: worker processes behind a load balancer.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Create, run and inspect experiments.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// The halt switch and platform-wide limits.
    #[command(subcommand)]
    Platform(PlatformCommand),
    /// Check the event log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Finished runs, one row each (outcome, recovery time, health summary).
    Results,
    /// Success and failure rates, MTTR, recovery percentiles, availability.
    Analytics,
    /// The read models: their state, and rebuilding them from the log.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Webhook subscriptions and their deliveries.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// API keys for scripts and pipelines (the GraphQL API's credentials).
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Users of the embedded identity provider (who sign in to the API and the dashboard).
    #[command(subcommand)]
    User(UserCommand),
    /// Recurring schedules: an experiment at every time a cron expression names.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Blackout windows: nothing starts in them, and running experiments are stopped.
    #[command(subcommand)]
    Blackout(BlackoutCommand),
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Run an experiment of SPEC at every time CRON names in the time zone.
    Add {
        /// Schedule id (the runs are named `<id>-<YYYYMMDDTHHMM>Z`, in UTC).
        #[arg(long)]
        id: String,
        /// Five fields: minute hour day-of-month month day-of-week (e.g. "30 10 * * MON-FRI").
        #[arg(long)]
        cron: String,
        /// IANA time zone the times are in (e.g. Europe/Berlin).
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Spec file of each run, or `-` for standard input.
        #[arg(long)]
        spec: PathBuf,
    },
    /// Remove a schedule (runs it started are not touched).
    Remove {
        /// Schedule id.
        id: String,
    },
    /// The schedules, with each one's next run.
    List,
}

#[derive(Debug, Subcommand)]
enum BlackoutCommand {
    /// Add a window: daily (--daily 22:00-06:00 --tz Europe/Berlin [--days FRI,SAT]) or once
    /// (--from T --to T, RFC 3339).
    Add {
        /// Window id.
        #[arg(long)]
        id: String,
        /// Daily wall-clock span START-END (END before START ends the next morning).
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
        daily: Option<String>,
        /// Time zone of a daily window.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Days of a daily window (MON..SUN, comma-separated; default every day).
        #[arg(long, value_delimiter = ',')]
        days: Vec<String>,
        /// Start of a one-off window.
        #[arg(long, requires = "to")]
        from: Option<Timestamp>,
        /// End of a one-off window.
        #[arg(long, requires = "from")]
        to: Option<Timestamp>,
    },
    /// Remove a window.
    Remove {
        /// Window id.
        id: String,
    },
    /// The windows, and whether now falls in one.
    List,
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Run a demo fleet on its own, in the foreground, printing its record as JSON lines.
    Up {
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// One worker of a fleet (started by the fleet's supervisor).
    #[command(hide = true)]
    Worker {
        /// The worker's id.
        #[arg(long)]
        id: String,
    },
}

/// Who may call `chaos serve`, and how often: the credentials it accepts besides API keys
/// and its own users' tokens, and the rate limit.
#[derive(Debug, Clone, Args)]
struct IdentityArgs {
    /// Requests per second each caller may send on average (twice that in a burst); 0: no
    /// limit.
    #[arg(long, env = "CHAOS_RATE_LIMIT", default_value_t = graphql_api::limits::DEFAULT_PER_SECOND)]
    rate_limit: u32,
    /// Life of an access token of the embedded identity provider, in seconds.
    #[arg(long, env = "CHAOS_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    access_token_ttl_secs: u64,
    /// Also accept tokens of this Cognito user pool (its id, e.g. eu-west-1_AbCdEf123).
    #[arg(
        long,
        env = "CHAOS_COGNITO_USER_POOL_ID",
        requires = "cognito_client_id"
    )]
    cognito_user_pool_id: Option<String>,
    /// The Cognito app client whose tokens are accepted.
    #[arg(
        long,
        env = "CHAOS_COGNITO_CLIENT_ID",
        requires = "cognito_user_pool_id"
    )]
    cognito_client_id: Option<String>,
    /// The user pool's region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    cognito_region: String,
    /// Where the user pool's keys are served (default: its issuer's /.well-known/jwks.json).
    #[arg(long, env = "CHAOS_COGNITO_JWKS_URL")]
    cognito_jwks_url: Option<String>,
    /// Where the dashboard sends people's Cognito sign-in (default:
    /// https://cognito-idp.<region>.amazonaws.com/); it is allowed in the dashboard's
    /// Content-Security-Policy.
    #[arg(long, env = "CHAOS_COGNITO_SIGN_IN_ENDPOINT")]
    cognito_sign_in_endpoint: Option<String>,
}

/// `chaos serve --aws`: the API of a platform deployed on AWS.
#[derive(Debug, Clone, Args)]
struct AwsArgs {
    /// Serve the API of the platform on AWS instead of the store file: commands through
    /// dynamo-es into the events table and the workflow in Step Functions, reads from the
    /// read-model table, live updates from the events table's stream. Credentials and region
    /// come from the standard AWS environment. No demo fleet, projector or workflow runs here
    /// (the Lambdas do that), and no one signs in here: people use the Cognito user pool
    /// (`--cognito-user-pool-id`), scripts API keys.
    #[arg(long)]
    aws: bool,
    /// The dynamo-es events table (with its stream, NEW_IMAGE).
    #[arg(long, env = "EVENTS_TABLE")]
    events_table: Option<String>,
    /// The read-model table the projection Lambda keeps.
    #[arg(long, env = "VIEWS_TABLE")]
    views_table: Option<String>,
    /// The experiment workflow's state machine.
    #[arg(long, env = "STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
}

impl AwsArgs {
    fn resources(&self) -> Result<graphql_api::http::AwsResources, CliError> {
        let need = |value: &Option<String>, flag: &str, env: &str| {
            value.clone().ok_or_else(|| {
                CliError::Usage(format!(
                    "--aws needs {flag} (or {env}): the name of the {}",
                    match flag {
                        "--events-table" => "events table",
                        "--views-table" => "read-model table",
                        _ => "experiment workflow's state machine (its ARN)",
                    }
                ))
            })
        };
        Ok(graphql_api::http::AwsResources {
            events_table: need(&self.events_table, "--events-table", "EVENTS_TABLE")?,
            views_table: need(&self.views_table, "--views-table", "VIEWS_TABLE")?,
            state_machine_arn: need(
                &self.state_machine_arn,
                "--state-machine-arn",
                "STATE_MACHINE_ARN",
            )?,
        })
    }
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; reads their password from standard input (asked for on a terminal).
    Add {
        /// Their name; they act as `user:<name>`.
        name: String,
        /// ADMIN, OPERATOR or VIEWER.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Set a user's password (read from standard input) and end their sessions.
    Passwd {
        /// Their name.
        name: String,
    },
    /// Give a user another role (from their next request on).
    Role {
        /// Their name.
        name: String,
        /// ADMIN, OPERATOR or VIEWER.
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Remove a user and end their sessions.
    Remove {
        /// Their name.
        name: String,
    },
    /// The users and their roles.
    List,
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Issue a key; prints its secret, which is not shown again.
    Create {
        /// What it is for (e.g. "deploy pipeline gate").
        #[arg(long)]
        name: String,
        /// ADMIN, OPERATOR or VIEWER.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Key id (default: a new UUIDv7); its holder acts as `key:<id>`.
        #[arg(long)]
        id: Option<String>,
    },
    /// The keys in force (never their secrets).
    List,
    /// Revoke a key: it authenticates nothing from the next request on.
    Revoke {
        /// Key id.
        id: String,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    serde_json::from_value(serde_json::Value::String(text.to_ascii_uppercase()))
        .map_err(|_| format!("{text:?} is not ADMIN, OPERATOR or VIEWER"))
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Subscribe a URL to events (POSTed as JSON, retried until delivered or given up).
    Add {
        /// Subscription id.
        #[arg(long)]
        id: String,
        /// Receiver URL (http or https, no credentials).
        #[arg(long)]
        url: String,
        /// Event type to deliver (repeat for several; none: every event).
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// Allow a receiver at a non-public address (loopback, private network, link-local).
        /// The server delivers to it only if started with `--allow-private-webhook-targets`.
        #[arg(long)]
        allow_private_target: bool,
    },
    /// Remove a subscription.
    Remove {
        /// Subscription id.
        id: String,
    },
    /// Draw a new signing secret for a subscription (printed once; the old one signs nothing
    /// from now on).
    RotateSecret {
        /// Subscription id.
        id: String,
    },
    /// The current subscriptions.
    List,
    /// Recent deliveries, newest first.
    Deliveries {
        /// Only PENDING, DELIVERED or FAILED.
        #[arg(long)]
        status: Option<String>,
        /// Most deliveries printed.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Where the read models are in the log, and what is parked.
    Status,
    /// Drop every read model and project the whole log again.
    Rebuild,
}

#[derive(Debug, Subcommand)]
enum ExperimentCommand {
    /// Create an experiment from a JSON spec; prints the outcome with the new id.
    Create {
        /// Spec file, or `-` for standard input.
        #[arg(long)]
        spec: PathBuf,
        /// Id of the new experiment (default: a new UUIDv7).
        #[arg(long)]
        id: Option<String>,
    },
    /// Start an experiment now.
    Start {
        /// Experiment id.
        id: String,
    },
    /// Schedule an experiment to start later.
    Schedule {
        /// Experiment id.
        id: String,
        /// Start time, RFC 3339 (e.g. 2026-12-01T09:00:00Z).
        #[arg(long)]
        at: Timestamp,
    },
    /// Ask a running experiment to stop.
    Stop {
        /// Experiment id.
        id: String,
        /// Why.
        #[arg(long, default_value = "stop requested from the command line")]
        reason: String,
    },
    /// Cancel an experiment that has not started.
    Cancel {
        /// Experiment id.
        id: String,
        /// Why.
        #[arg(long, default_value = "cancelled from the command line")]
        reason: String,
    },
    /// Archive an experiment that is not running.
    Archive {
        /// Experiment id.
        id: String,
    },
    /// Print an experiment's state and timeline as JSON.
    Show {
        /// Experiment id.
        id: String,
    },
    /// List experiments, newest first, from the read models.
    List {
        /// Only this status (DRAFT, SCHEDULED, RUNNING, COMPLETED, FAILED, STOPPED, CANCELLED).
        #[arg(long)]
        status: Option<String>,
        /// Only this target (e.g. fleet:web, asg:web-prod).
        #[arg(long)]
        target: Option<String>,
        /// Only names containing this text.
        #[arg(long)]
        search: Option<String>,
        /// Include archived experiments.
        #[arg(long)]
        archived: bool,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Cursor from the previous page's `next`.
        #[arg(long)]
        cursor: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum PlatformCommand {
    /// Print the halt switch and configuration.
    Show,
    /// Turn the halt switch on: no experiment starts until it is lifted.
    Halt {
        /// Why (recorded in the log).
        #[arg(long)]
        reason: String,
    },
    /// Lift the halt switch.
    Unhalt,
    /// Replace the platform-wide limits.
    Config {
        /// Most targets any one run may hit.
        #[arg(long)]
        max_targets_per_run: u32,
        /// Longest run allowed, in seconds.
        #[arg(long)]
        max_duration_secs: u32,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify every stream's hash chain and sequence (and, on the embedded store, the audit
    /// log read model against the log); names the first bad position of each stream.
    Verify(VerifyArgs),
    /// Copy the log, byte-exact, to a JSON Lines file (and a CSV summary).
    Export(ExportArgs),
    /// Verify the log, then print its chain heads as JSON, to keep outside the system.
    Digest {
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Print an experiment's state at an instant, folded from its events.
    Replay(ReplayArgs),
    /// Print audit log entries (who did what, when, from where), oldest first.
    Log {
        /// Only entries by this actor.
        #[arg(long = "by", value_name = "ACTOR")]
        by: Option<String>,
        /// Only this experiment (or `platform`).
        #[arg(long)]
        experiment: Option<String>,
        /// Most entries printed.
        #[arg(long, default_value_t = 1_000)]
        limit: usize,
    },
}

/// Why a `chaos` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A request failed.
    #[error("{0}")]
    Service(#[from] ServiceError),
    /// Bad provenance flags.
    #[error("{0}")]
    Context(#[from] ContextError),
    /// An input file could not be read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The spec is not JSON.
    #[error("invalid spec {path}: {source}")]
    SpecJson {
        /// The file.
        path: String,
        /// Cause.
        source: serde_json::Error,
    },
    /// The spec is JSON, with problems of shape or value: each on its own line, with its path.
    #[error("invalid spec {path}:{problems}")]
    Spec {
        /// The file.
        path: String,
        /// Every problem, a line each.
        problems: String,
    },
    /// The store could not be read.
    #[error("reading the event store failed: {0}")]
    Read(#[from] sqlx::Error),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    /// An audit command failed, or found the log wanting.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The read models could not be brought up to date or read.
    #[error("read models: {0}")]
    Projection(#[from] ProjectionError),
    /// Webhook notifications failed.
    #[error("webhooks: {0}")]
    Notify(#[from] NotifyError),
    /// A webhook's new secret was not drawn, or not put in force.
    #[error("webhook secret: {0} (issue one with `chaos webhooks rotate-secret`)")]
    SecretNotIssued(String),
    /// A background task died.
    #[error("internal task failed: {0}")]
    Task(String),
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Output(#[from] serde_json::Error),
    /// Standard output could not be written.
    #[error("cannot write output: {0}")]
    Write(std::io::Error),
    /// The demo fleet could not start.
    #[error("demo fleet: {0}")]
    Fleet(#[from] FleetError),
    /// Options that do not go together, or one missing.
    #[error("{0}")]
    Usage(String),
    /// Another server holds the store's lease.
    #[error(transparent)]
    Lease(#[from] graphql_api::lease::LeaseError),
    /// Another server took the store's lease over: this one stopped.
    #[error(
        "another chaos serve took this store over (--take-over): this one stopped its workflow and demo fleet"
    )]
    LeaseLost,
    /// The workflow runner could not be built.
    #[error("{0}")]
    Workflow(#[from] WorkflowError),
    /// The server's state could not be put together.
    #[error("{0}")]
    Build(#[from] graphql_api::http::BuildError),
    /// No user of this name.
    #[error("no user {0}")]
    NoSuchUser(String),
    /// No webhook of this id.
    #[error("no webhook {0}")]
    NoSuchWebhook(String),
    /// The identity provider failed or refused.
    #[error("{0}")]
    Identity(#[from] graphql_api::identity::local::AuthError),
    /// The Cognito configuration is unusable.
    #[error("{0}")]
    Cognito(#[from] graphql_api::identity::cognito::CognitoError),
}

impl CliError {
    /// The process exit code for this error (see the module docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Service(e) => match e.code() {
                "INVALID_INPUT" | "NOT_FOUND" | "REJECTED" | "IDEMPOTENCY_KEY_REUSED" => 3,
                _ => 1,
            },
            CliError::Context(_) | CliError::Input { .. } | CliError::Usage(_) => 2,
            CliError::SpecJson { .. }
            | CliError::Spec { .. }
            | CliError::NoSuchUser(_)
            | CliError::NoSuchWebhook(_) => 3,
            CliError::Identity(graphql_api::identity::local::AuthError::Password(
                graphql_api::identity::password::PasswordError::Weak(_),
            )) => 3,
            CliError::Audit(e) => e.exit_code(),
            CliError::Open(_)
            | CliError::Read(_)
            | CliError::Projection(_)
            | CliError::Notify(_)
            | CliError::SecretNotIssued(_)
            | CliError::Task(_)
            | CliError::Bind { .. }
            | CliError::Serve(_)
            | CliError::Output(_)
            | CliError::Write(_)
            | CliError::Fleet(_)
            | CliError::Lease(_)
            | CliError::LeaseLost
            | CliError::Workflow(_)
            | CliError::Identity(_)
            | CliError::Build(_)
            | CliError::Cognito(_) => 1,
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(matches!(
        cli.command,
        Command::Serve { .. } | Command::Fleet(FleetCommand::Up { .. })
    ));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_tracing(serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::env::var("CHAOS_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A subscriber set by an embedding test harness is fine.
    drop(result);
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let Cli {
        db,
        provenance,
        command,
    } = cli;
    match command {
        Command::Init => init(&db).await,
        Command::Serve {
            addr,
            stop_when_stdin_closes,
            allow_private_webhook_targets,
            identity,
            aws,
            ..
        } if aws.aws => {
            let stopped = shutdown_signal(stop_when_stdin_closes)?;
            let limits = graphql_api::limits::Limits::new(identity.rate_limit)
                .with_private_webhook_targets(allow_private_webhook_targets);
            serve_aws(addr, &aws, &identity, limits, stopped).await
        }
        Command::Serve {
            addr,
            stop_when_stdin_closes,
            take_over,
            allow_private_webhook_targets,
            fleet,
            identity,
            ..
        } => {
            let stopped = shutdown_signal(stop_when_stdin_closes)?;
            let limits = graphql_api::limits::Limits::new(identity.rate_limit)
                .with_private_webhook_targets(allow_private_webhook_targets);
            serve(&db, addr, take_over, &fleet, &identity, limits, stopped).await
        }
        Command::Fleet(FleetCommand::Worker { id }) => command_lambdas::fleet::worker::run(&id)
            .await
            .map_err(CliError::Serve),
        Command::Fleet(FleetCommand::Up { fleet }) => fleet_up(&fleet).await,
        Command::Experiment(cmd) => experiment(&db, &provenance, cmd).await,
        Command::Platform(cmd) => platform(&db, &provenance, cmd).await,
        Command::Audit(AuditCommand::Verify(args)) => Ok(crate::audit::verify(&db, args).await?),
        Command::Audit(AuditCommand::Export(args)) => Ok(crate::audit::export(&db, args).await?),
        Command::Audit(AuditCommand::Digest { source }) => {
            Ok(crate::audit::print_digest(&db, &source, SystemClock.now()).await?)
        }
        Command::Audit(AuditCommand::Replay(args)) => Ok(crate::audit::replay(&db, args).await?),
        Command::Audit(AuditCommand::Log {
            by,
            experiment,
            limit,
        }) => {
            let filter = AuditFilter {
                actor: by,
                aggregate_id: experiment,
                ..AuditFilter::default()
            };
            let entries = read_models(&db, move |conn| {
                queries::audit_log(conn, &filter, None, limit)
            })
            .await?;
            print_json(&entries)
        }
        Command::Results => print_json(&read_models(&db, queries::results).await?),
        Command::Analytics => print_json(&read_models(&db, queries::run_analytics).await?),
        Command::Projections(ProjectionsCommand::Status) => {
            print_json(&read_models(&db, queries::status).await?)
        }
        Command::Projections(ProjectionsCommand::Rebuild) => rebuild(&db).await,
        Command::Webhooks(cmd) => webhooks(&db, &provenance, cmd).await,
        Command::Apikey(cmd) => api_keys(&db, &provenance, cmd).await,
        Command::User(cmd) => users(&db, &provenance, cmd).await,
        Command::Schedule(cmd) => schedules(&db, &provenance, cmd).await,
        Command::Blackout(cmd) => blackouts(&db, &provenance, cmd).await,
    }
}

fn service_over(pool: sqlx::SqlitePool) -> SqliteService {
    let clock = Arc::new(SystemClock);
    let store = SqliteStore::new(repository(pool), clock.clone(), Arc::new(UuidV7));
    SqliteService::new(Arc::new(store), clock)
}

fn context(p: &ProvenanceArgs) -> Result<CommandContext, ContextError> {
    let actor = p
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "cli".to_owned());
    let command_id = p.command_id.clone().unwrap_or_else(new_id);
    let correlation_id = p
        .correlation_id
        .clone()
        .unwrap_or_else(|| command_id.clone());
    // Whoever can write the store file has every right over it: the CLI acts as ADMIN.
    CommandContext::new(
        command_id,
        correlation_id,
        Actor {
            id: actor,
            role: Role::Admin,
        },
        Source::Cli,
    )
}

fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    out(&serde_json::to_string_pretty(value)?)
}

/// Writes a line to standard output. A reader that has gone (a pipe closed early, as by
/// `| head -1` or `| grep -q`) is not an error: the rest is simply not wanted.
fn out(line: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Write(e)),
        _ => Ok(()),
    }
}

fn read_spec(path: &Path) -> Result<ExperimentSpecInput, CliError> {
    let shown = path.display().to_string();
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|source| CliError::Input {
        path: shown.clone(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| CliError::SpecJson {
            path: shown.clone(),
            source,
        })?;
    ExperimentSpecInput::from_json(&value).map_err(|e| CliError::Spec {
        path: shown,
        problems: e
            .problems
            .iter()
            .map(|p| format!("\n  {}: {}", p.field, p.message))
            .collect(),
    })
}

async fn init(db: &Path) -> Result<(), CliError> {
    let pool = open(db, OpenMode::CreateIfMissing).await?;
    let stats = command_lambdas::sqlite::stats(&pool).await?;
    pool.close().await;
    print_json(&json!({ "db": db.display().to_string(), "store": stats }))
}

async fn fleet_up(args: &FleetArgs) -> Result<(), CliError> {
    let fleets = args.start(Arc::new(SystemClock)).await?;
    for fleet in fleets.fleets() {
        eprintln!(
            "chaos: demo fleet {}: {} workers behind http://{}",
            fleet.name(),
            args.fleet_size,
            fleet.balancer()
        );
    }
    let mut printed = 0;
    let mut changes: Vec<_> = fleets.fleets().iter().map(|f| (f, f.changes())).collect();
    let stopped = shutdown_signal(false)?;
    tokio::pin!(stopped);
    loop {
        for (fleet, _) in &changes {
            let events = fleet.status().events;
            for event in events.iter().skip(printed) {
                out(&serde_json::to_string(event)?)?;
            }
            printed = events.len();
        }
        let Some((_, first)) = changes.first_mut() else {
            return Ok(());
        };
        tokio::select! {
            () = &mut stopped => break,
            changed = first.changed() => if changed.is_err() { break },
        }
    }
    for fleet in fleets.fleets() {
        fleet.stop();
    }
    Ok(())
}

async fn serve(
    db: &Path,
    addr: SocketAddr,
    take_over: bool,
    fleet: &FleetArgs,
    identity: &IdentityArgs,
    limits: graphql_api::limits::Limits,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let pool = open(db, OpenMode::CreateIfMissing).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(CliError::Serve)?;
    // Only the holder of the store's lease runs its workflow and fleet: none is started
    // before it is held.
    let lease = Arc::new(Lease::acquire(pool.clone(), local, take_over).await?);
    // Renewed until the server stops; lost to another server, it stops the server.
    let lost = Arc::new(AtomicBool::new(false));
    let stopped = {
        let (lost, lease) = (Arc::clone(&lost), Arc::clone(&lease));
        async move {
            tokio::select! {
                () = stopped => {}
                () = lease.keep() => {
                    tracing::error!("another chaos serve took over this store: stopping");
                    lost.store(true, Ordering::Relaxed);
                }
            }
        }
    };
    let clock: Arc<SystemClock> = Arc::new(SystemClock);
    let fleets = fleet.start(clock.clone()).await?;
    for fleet in fleets.fleets() {
        eprintln!(
            "chaos: demo fleet {}: {} workers behind http://{}",
            fleet.name(),
            fleet.status().desired,
            fleet.balancer()
        );
    }
    let mut auth = identity.authenticator(Some((pool.clone(), db))).await?;
    owner_only(db)?;
    // A store no one can sign in to yet: a one-time code makes its first administrator.
    let first_admin_code = if service_over(pool.clone())
        .platform_of(&[Concern::Users])
        .await?
        .aggregate
        .users()
        .is_empty()
    {
        let (first_admin, code) = FirstAdmin::draw().map_err(|e| CliError::Task(e.to_string()))?;
        auth.first_admin = Some(Arc::new(first_admin));
        Some(code)
    } else {
        None
    };
    let allow_private_targets = limits.private_webhook_targets;
    let (state, workflows) = AppState::embedded(
        db,
        pool.clone(),
        fleets.clone(),
        auth,
        clock.clone(),
        limits,
    )
    .await?;
    tracing::info!(db = %db.display(), "event store open");

    // The read models and the webhook outbox follow the log on their own threads (SQLite work
    // is blocking); deliveries are sent by a task, so a slow receiver holds up nothing else.
    let stop = Arc::new(AtomicBool::new(false));
    let mut projector = Projector::open(db, None)?;
    let mut outbox = Outbox::open(db)?;
    let sender = Sender::new(
        db,
        DeliveryPolicy {
            allow_private_targets,
            ..DeliveryPolicy::default()
        },
    )?;
    let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(work)
            .map_err(|e| CliError::Task(e.to_string()))
    };
    let threads = [
        spawn("projector", {
            let stop = Arc::clone(&stop);
            Box::new(move || projector.run(&stop, IDLE_POLL, |_| {}))
        })?,
        spawn("webhook-outbox", {
            let stop = Arc::clone(&stop);
            Box::new(move || outbox.run(&stop, IDLE_POLL))
        })?,
    ];
    let (stop_sending, sending_stopped) = tokio::sync::oneshot::channel::<()>();
    let sending = tokio::spawn(async move {
        sender
            .run(std::time::Duration::from_millis(200), async {
                let _ = sending_stopped.await;
            })
            .await;
    });

    // Experiments run here, whoever started them; runs left running are resumed.
    let (stop_following, following_stopped) = tokio::sync::watch::channel(false);
    let following = tokio::spawn(engine::follow(
        workflows,
        fleets.clone(),
        db.to_owned(),
        clock,
        following_stopped,
    ));

    // Scripts and tests read this line to find the port when binding port 0.
    eprintln!("chaos: listening on http://{local}");
    if let Some(code) = first_admin_code {
        eprintln!(
            "chaos: no one can sign in yet. Create the first administrator at\n\
             chaos:   http://{local}/#first-admin={code}\n\
             chaos: (the code works once, while this server runs; or: chaos user add NAME --role ADMIN)"
        );
    }
    graphql_api::serve::serve(listener, router(state), stopped).await;
    let _ = stop_following.send(true);
    if following.await.is_err() {
        tracing::error!("the workflow runner's loop panicked");
    }
    for fleet in fleets.fleets() {
        fleet.stop();
    }
    stop.store(true, Ordering::Relaxed);
    let _ = stop_sending.send(());
    if sending.await.is_err() {
        tracing::error!("webhook sender panicked");
    }
    for thread in threads {
        if thread.join().is_err() {
            tracing::error!("a background thread panicked");
        }
    }
    if lost.load(Ordering::Relaxed) {
        pool.close().await;
        return Err(CliError::LeaseLost);
    }
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "cannot give up the store's lease: it runs out by itself");
    }
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `chaos serve --aws`: the API over the platform deployed on AWS.
async fn serve_aws(
    addr: SocketAddr,
    aws: &AwsArgs,
    identity: &IdentityArgs,
    limits: graphql_api::limits::Limits,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let resources = aws.resources()?;
    let auth = identity.authenticator(None).await?;
    if auth.cognito.is_none() {
        tracing::warn!("no Cognito user pool is trusted: only API keys authenticate");
    }
    let metrics = command_lambdas::lambda::metrics().map_err(|e| CliError::Usage(e.to_string()))?;
    let config = aws_config::load_from_env().await;
    let state = AppState::aws(&config, &resources, metrics, auth, limits).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(CliError::Serve)?;
    tracing::info!(
        events = %resources.events_table,
        views = %resources.views_table,
        "serving the platform on AWS"
    );
    eprintln!("chaos: listening on http://{local}");
    graphql_api::serve::serve(listener, router(state), stopped).await;
    tracing::info!("stopped");
    Ok(())
}

/// A future that ends at SIGINT or SIGTERM, or (`stdin`) once standard input closes. The
/// handlers are installed when this is called, not when the future is first polled, so a
/// signal that arrives while the server is still starting stops it gracefully rather than
/// killing it.
fn shutdown_signal(stdin: bool) -> Result<impl Future<Output = ()> + Send + 'static, CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    let closed = if stdin { Some(stdin_closed()?) } else { None };
    Ok(async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let closed = async move {
            match closed {
                Some(closed) => {
                    let _ = closed.await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt.take()) => {},
            () = wait(terminate.take()) => {},
            () = closed => tracing::info!("standard input closed: stopping"),
        }
    })
}

/// Ends once standard input reaches its end or fails. It is read on a thread of its own, which
/// the process does not wait for when it ends for another reason (a blocking task of the
/// runtime would hold up its shutdown).
fn stdin_closed() -> Result<tokio::sync::oneshot::Receiver<()>, CliError> {
    let (closed, on_close) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("stdin-watch".to_owned())
        .spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            let _ = closed.send(());
        })
        .map_err(|e| CliError::Task(format!("cannot watch standard input: {e}")))?;
    Ok(on_close)
}

async fn experiment(db: &Path, p: &ProvenanceArgs, cmd: ExperimentCommand) -> Result<(), CliError> {
    let ctx = context(p)?;
    if let ExperimentCommand::Create { spec, id } = cmd {
        // Read input before opening the store, so a bad file never touches it.
        let spec = read_spec(&spec)?;
        let service = service_over(open(db, OpenMode::MustExist).await?);
        // Retried with the same --command-id, a create finds the experiment it made.
        let id = match (id, &p.command_id) {
            (Some(id), _) => id,
            (None, Some(key)) => command_lambdas::service::experiment_id_for(&ctx.actor().id, key),
            (None, None) => new_id(),
        };
        return print_json(&service.create(&id, spec, &ctx).await?);
    }
    let service = service_over(open(db, OpenMode::MustExist).await?);
    let outcome = match cmd {
        ExperimentCommand::Create { .. } => return Ok(()),
        ExperimentCommand::Start { id } => service.start(&id, &ctx).await?,
        ExperimentCommand::Schedule { id, at } => service.schedule(&id, at, &ctx).await?,
        ExperimentCommand::Stop { id, reason } => service.stop(&id, &reason, &ctx).await?,
        ExperimentCommand::Cancel { id, reason } => service.cancel(&id, &reason, &ctx).await?,
        ExperimentCommand::Archive { id } => service.archive(&id, &ctx).await?,
        ExperimentCommand::Show { id } => return show(&service, &id).await,
        ExperimentCommand::List {
            status,
            target,
            search,
            archived,
            limit,
            cursor,
        } => {
            let filter = ExperimentFilter {
                status: status.map(|s| s.to_ascii_uppercase()),
                target,
                search,
                include_archived: archived,
                ..ExperimentFilter::default()
            };
            let page = read_models(db, move |conn| {
                queries::experiments(conn, &filter, cursor.as_deref(), limit)
            })
            .await?;
            return print_json(&json!({ "items": page.items, "next": page.next }));
        }
    };
    print_json(&outcome)
}

async fn api_keys(db: &Path, p: &ProvenanceArgs, cmd: ApiKeyCommand) -> Result<(), CliError> {
    let ctx = context(p)?;
    let service = service_over(open(db, OpenMode::MustExist).await?);
    match cmd {
        ApiKeyCommand::Create { name, role, id } => {
            let id = id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let issued = command_lambdas::api_keys::issue(&service, &id, &name, role, &ctx)
                .await
                .map_err(|e| match e {
                    command_lambdas::api_keys::KeyError::Service(e) => CliError::from(e),
                    other => CliError::Task(other.to_string()),
                })?;
            print_json(&serde_json::json!({
                "id": issued.id,
                "actor": command_lambdas::api_keys::actor_id(&issued.id),
                "role": role.as_str(),
                "secret": issued.secret,
                "note": "the secret is shown this once; send it as `Authorization: Bearer <secret>`",
            }))
        }
        ApiKeyCommand::List => {
            let platform = service.platform().await?;
            let keys: Vec<serde_json::Value> = platform
                .aggregate
                .api_keys()
                .iter()
                .map(|(id, key)| {
                    serde_json::json!({
                        "id": id.as_str(),
                        "name": key.name,
                        "role": key.role.as_str(),
                        "createdAt": key.created_at.to_string(),
                    })
                })
                .collect();
            print_json(&keys)
        }
        ApiKeyCommand::Revoke { id } => print_json(&service.revoke_api_key(&id, &ctx).await?),
    }
}

/// Makes the store readable by its owner only: it holds password hashes and the token
/// signing key (and the write-ahead log files, copies of its pages).
fn owner_only(db: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let path = PathBuf::from(path);
        match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CliError::Input {
                    path: path.display().to_string(),
                    source: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

impl IdentityArgs {
    /// The verifiers to trust: the embedded identity provider over `store` (its pool and
    /// path; none on AWS), and the Cognito user pool if one is named.
    async fn authenticator(
        &self,
        store: Option<(sqlx::SqlitePool, &Path)>,
    ) -> Result<graphql_api::identity::Authenticator, CliError> {
        use graphql_api::identity::cognito::{Cognito, CognitoConfig};
        use graphql_api::identity::local::{LocalIssuer, TokenPolicy, key_file};
        let policy = TokenPolicy {
            access_ttl: std::time::Duration::from_secs(self.access_token_ttl_secs.max(1)),
            ..TokenPolicy::default()
        };
        let local = match store {
            Some((pool, db)) => Some(LocalIssuer::open(pool, &key_file(db), policy).await?),
            None => None,
        };
        let cognito = match (&self.cognito_user_pool_id, &self.cognito_client_id) {
            (Some(user_pool_id), Some(client_id)) => {
                let cognito = Cognito::new(&CognitoConfig {
                    user_pool_id: user_pool_id.clone(),
                    region: self.cognito_region.clone(),
                    client_id: client_id.clone(),
                    jwks_url: self.cognito_jwks_url.clone(),
                    sign_in_endpoint: self.cognito_sign_in_endpoint.clone(),
                })?;
                tracing::info!(issuer = cognito.issuer(), "accepting Cognito tokens");
                Some(Arc::new(cognito))
            }
            _ => None,
        };
        Ok(graphql_api::identity::Authenticator {
            local,
            cognito,
            first_admin: None,
        })
    }
}

/// A password from standard input: asked for without echo on a terminal, else the first line.
fn read_password(name: &str) -> Result<String, CliError> {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let input = |source| CliError::Input {
        path: "standard input".to_owned(),
        source,
    };
    let mut line = String::new();
    if stdin.is_terminal() {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        eprint!("password for {name}: ");
        let saved = tcgetattr(&stdin).map_err(|e| input(e.into()))?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| input(e.into()))?;
        let read = stdin.lock().read_line(&mut line);
        let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
        read.map_err(input)?;
        restored.map_err(|e| input(e.into()))?;
    } else {
        stdin.lock().read_line(&mut line).map_err(input)?;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_owned())
}

async fn users(db: &Path, p: &ProvenanceArgs, cmd: UserCommand) -> Result<(), CliError> {
    use graphql_api::identity::local::{LocalIssuer, TokenPolicy, key_file};
    use graphql_api::identity::password;
    let ctx = context(p)?;
    let pool = open(db, OpenMode::MustExist).await?;
    let service = service_over(pool.clone());
    let issuer = LocalIssuer::open(pool, &key_file(db), TokenPolicy::default()).await?;
    owner_only(db)?;
    let weak = |e| CliError::Identity(graphql_api::identity::local::AuthError::Password(e));
    match cmd {
        UserCommand::Add { name, role } => {
            let secret = read_password(&name)?;
            password::check_policy(&secret).map_err(weak)?;
            let outcome = service.add_user(&name, role, &ctx).await?;
            issuer.set_password(&name, &secret).await?;
            print_json(&json!({
                "user": name,
                "actor": graphql_api::identity::user_actor(&name),
                "role": role.as_str(),
                "recorded": outcome,
            }))
        }
        UserCommand::Passwd { name } => {
            if service.platform().await?.aggregate.user(&name).is_none() {
                return Err(CliError::NoSuchUser(name));
            }
            let secret = read_password(&name)?;
            issuer.set_password(&name, &secret).await?;
            print_json(&json!({ "user": name, "password": "changed", "sessions": "ended" }))
        }
        UserCommand::Role { name, role } => {
            print_json(&service.change_user_role(&name, role, &ctx).await?)
        }
        UserCommand::Remove { name } => {
            let outcome = service.remove_user(&name, &ctx).await?;
            issuer.forget(&name).await?;
            print_json(&outcome)
        }
        UserCommand::List => {
            let platform = service.platform().await?;
            let users: Vec<serde_json::Value> = platform
                .aggregate
                .users()
                .iter()
                .map(|(name, user)| {
                    json!({
                        "user": name.as_str(),
                        "actor": graphql_api::identity::user_actor(name.as_str()),
                        "role": user.role.as_str(),
                        "addedAt": user.added_at.to_string(),
                    })
                })
                .collect();
            print_json(&users)
        }
    }
}

/// Issues webhook `id` a new secret as a command of its own (each draws a new secret, so it is
/// never the retry of another), in the action of `ctx`.
async fn issue_secret(
    service: &SqliteService,
    db: &Path,
    id: &str,
    ctx: &CommandContext,
) -> Result<IssuedSecret, CliError> {
    let ctx = ctx.follow_up(new_id())?;
    graphql_api::webhook_secret::issue(service, db, id, &ctx)
        .await
        .map_err(|e| match e {
            IssueError::Refused(e) => CliError::from(e),
            e => CliError::SecretNotIssued(e.to_string()),
        })
}

async fn webhooks(db: &Path, p: &ProvenanceArgs, cmd: WebhooksCommand) -> Result<(), CliError> {
    let ctx = context(p)?;
    let service = service_over(open(db, OpenMode::MustExist).await?);
    match cmd {
        WebhooksCommand::Add {
            id,
            url,
            events,
            allow_private_target,
        } => {
            let recorded = service
                .add_webhook(&id, &url, events, allow_private_target, &ctx)
                .await?;
            let issued = issue_secret(&service, db, &id, &ctx).await?;
            print_json(&json!({
                "recorded": recorded,
                "webhook_id": id,
                "secret": issued.secret,
                "fingerprint": issued.fingerprint,
            }))
        }
        WebhooksCommand::RotateSecret { id } => {
            let platform = service.platform_of(&[Concern::Webhooks]).await?.aggregate;
            if !platform.webhooks().keys().any(|w| w.as_str() == id) {
                return Err(CliError::NoSuchWebhook(id));
            }
            let issued = issue_secret(&service, db, &id, &ctx).await?;
            print_json(&json!({
                "webhook_id": id,
                "secret": issued.secret,
                "fingerprint": issued.fingerprint,
            }))
        }
        WebhooksCommand::Remove { id } => print_json(&service.remove_webhook(&id, &ctx).await?),
        WebhooksCommand::List => {
            let platform = service.platform().await?;
            print_json(platform.aggregate.webhooks())
        }
        WebhooksCommand::Deliveries { status, limit } => {
            let path = db.to_owned();
            let status = status.map(|s| s.to_ascii_uppercase());
            let list = tokio::task::spawn_blocking(move || {
                // Enqueue what the log holds first, so the list is current.
                Outbox::open(&path)?.catch_up()?;
                deliveries(&path, status.as_deref(), limit)
            })
            .await
            .map_err(|e| CliError::Task(e.to_string()))??;
            print_json(&list)
        }
    }
}

async fn schedules(db: &Path, p: &ProvenanceArgs, cmd: ScheduleCommand) -> Result<(), CliError> {
    let ctx = context(p)?;
    let service = service_over(open(db, OpenMode::MustExist).await?);
    match cmd {
        ScheduleCommand::Add { id, cron, tz, spec } => {
            let spec = read_spec(&spec)?;
            print_json(&service.add_schedule(&id, &cron, &tz, spec, &ctx).await?)
        }
        ScheduleCommand::Remove { id } => print_json(&service.remove_schedule(&id, &ctx).await?),
        ScheduleCommand::List => {
            let platform = service.platform().await?.aggregate;
            let now = SystemClock.now();
            let list: Vec<serde_json::Value> = platform
                .schedules()
                .iter()
                .map(|(id, s)| {
                    let next = s.next_after(now);
                    json!({
                        "id": id,
                        "cron": s.cron,
                        "time_zone": s.time_zone,
                        "name": s.spec.name(),
                        "target": s.spec.target().key(),
                        "next_run": next,
                        "next_run_in_blackout": next.and_then(|n| platform.blackout_at(n)),
                    })
                })
                .collect();
            print_json(&list)
        }
    }
}

async fn blackouts(db: &Path, p: &ProvenanceArgs, cmd: BlackoutCommand) -> Result<(), CliError> {
    let ctx = context(p)?;
    let service = service_over(open(db, OpenMode::MustExist).await?);
    match cmd {
        BlackoutCommand::Add {
            id,
            daily,
            tz,
            days,
            from,
            to,
        } => {
            let window = match (daily, from, to) {
                (Some(span), _, _) => {
                    let (start, end) = span.split_once('-').ok_or_else(|| {
                        CliError::Service(ServiceError::InvalidInput(domain::spec::SpecError {
                            problems: vec![domain::spec::Problem {
                                field: "daily".into(),
                                message: format!("{span:?} is not START-END, like 22:00-06:00"),
                            }],
                        }))
                    })?;
                    BlackoutWindow::Daily {
                        time_zone: tz,
                        start: start.to_owned(),
                        end: end.to_owned(),
                        days,
                    }
                }
                (None, Some(from), Some(to)) => BlackoutWindow::Once { from, to },
                _ => unreachable_window()?,
            };
            print_json(&service.add_blackout(&id, window, &ctx).await?)
        }
        BlackoutCommand::Remove { id } => print_json(&service.remove_blackout(&id, &ctx).await?),
        BlackoutCommand::List => {
            let platform = service.platform().await?.aggregate;
            print_json(&json!({
                "windows": platform.blackouts(),
                "now_in": platform.blackout_at(SystemClock.now()),
            }))
        }
    }
}

/// clap requires `--daily` or both `--from` and `--to`; this says so if that ever slips.
fn unreachable_window() -> Result<BlackoutWindow, CliError> {
    Err(CliError::Service(ServiceError::InvalidInput(
        domain::spec::SpecError {
            problems: vec![domain::spec::Problem {
                field: "window".into(),
                message: "give --daily START-END, or --from and --to".into(),
            }],
        },
    )))
}

/// Brings the read models up to date with the log, then runs `query` on them.
///
/// A running server keeps them current too; both may project at once, safely (each batch is
/// one transaction that applies only what its checkpoints have not seen).
async fn read_models<T: Send + 'static>(
    db: &Path,
    query: impl FnOnce(&rusqlite::Connection) -> Result<T, ProjectionError> + Send + 'static,
) -> Result<T, CliError> {
    open(db, OpenMode::MustExist).await?.close().await;
    let path = db.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut projector = Projector::open(&path, None)?;
        projector.catch_up()?;
        query(projector.connection())
    })
    .await
    .map_err(|e| CliError::Task(e.to_string()))?
    .map_err(CliError::from)
}

async fn rebuild(db: &Path) -> Result<(), CliError> {
    open(db, OpenMode::MustExist).await?.close().await;
    let path = db.to_owned();
    let started = Instant::now();
    let report = tokio::task::spawn_blocking(move || Projector::open(&path, None)?.rebuild())
        .await
        .map_err(|e| CliError::Task(e.to_string()))??;
    print_json(&json!({
        "applied": report.applied,
        "parked": report.parked,
        "position": report.position,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

async fn show(service: &SqliteService, id: &str) -> Result<(), CliError> {
    let loaded = service.load(id).await?;
    let experiment = &loaded.aggregate;
    let timeline: Vec<serde_json::Value> = loaded
        .events
        .iter()
        .map(|e| {
            json!({
                "sequence": e.sequence,
                "type": e.event.type_name(),
                "at": e.event.at(),
                "recorded_at": e.metadata.recorded_at,
                "actor": e.metadata.actor,
                "actor_role": e.metadata.actor_role,
                "source": e.metadata.source,
                "command_id": e.metadata.command_id,
                "hash": e.metadata.hash,
                "event": e.event,
            })
        })
        .collect();
    print_json(&json!({
        "id": experiment.id(),
        "status": experiment.status(),
        "phase": experiment.phase(),
        "archived": experiment.is_archived(),
        "spec": experiment.spec(),
        "targets": experiment.targets(),
        "outcome": experiment.outcome(),
        "stop_cause": experiment.stop_cause(),
        "recovery_ms": experiment.recovery_ms(),
        "started_at": experiment.started_at(),
        "ended_at": experiment.ended_at(),
        "version": loaded.version,
        "head": loaded.head,
        "timeline": timeline,
    }))
}

async fn platform(db: &Path, p: &ProvenanceArgs, cmd: PlatformCommand) -> Result<(), CliError> {
    let ctx = context(p)?;
    let service = service_over(open(db, OpenMode::MustExist).await?);
    let outcome = match cmd {
        PlatformCommand::Show => {
            let state = service.platform().await?;
            let halted = state.aggregate.halted();
            return print_json(&json!({
                "halted": halted.is_some(),
                "halt_reason": halted.map(|h| h.0),
                "halted_at": halted.map(|h| h.1),
                "config": state.aggregate.config(),
                "ledgers": state.books,
            }));
        }
        PlatformCommand::Halt { reason } => service.halt(&reason, &ctx).await?,
        PlatformCommand::Unhalt => service.lift_halt(&ctx).await?,
        PlatformCommand::Config {
            max_targets_per_run,
            max_duration_secs,
        } => {
            let config = PlatformConfig {
                max_targets_per_run,
                max_duration_secs,
            };
            service.update_config(config, &ctx).await?
        }
    };
    print_json(&outcome)
}
