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

mod access;
mod experiment;
mod fleet;
mod platform;
mod serve;
mod webhooks;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use command_lambdas::clock::{Clock, SystemClock, UuidV7, new_id};
use command_lambdas::service::ServiceError;
use demo_fleet::FleetError;
use domain::provenance::{Actor, CommandContext, ContextError, Role, Source};
use domain::spec::ExperimentSpecInput;
use embedded_read::notify::NotifyError;
use embedded_read::projector::{ProjectionError, Projector};
use embedded_read::queries;
use embedded_write::sqlite::{OpenError, OpenMode, open, repository};
use embedded_write::workflow::WorkflowError;
use embedded_write::{SqliteService, SqliteStore};
use projection_lambdas::reads::AuditFilter;
use serde::Serialize;
use serde_json::json;

use crate::audit::{AuditError, ExportArgs, ReplayArgs, SourceArgs, VerifyArgs};
use crate::fleet_args::FleetArgs;
use access::{ApiKeyCommand, UserCommand, api_keys, users};
use experiment::{ExperimentCommand, experiment};
use fleet::{FleetCommand, fleet_up};
use platform::{BlackoutCommand, PlatformCommand, ScheduleCommand, blackouts, platform, schedules};
use serve::{AwsArgs, IdentityArgs, serve, serve_aws, shutdown_signal};
use webhooks::{WebhooksCommand, webhooks};

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
enum ProjectionsCommand {
    /// Where the read models are in the log, and what is parked.
    Status,
    /// Drop every read model and project the whole log again.
    Rebuild,
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
    Lease(#[from] graphql_api::backend::embedded::lease::LeaseError),
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
    Build(#[from] graphql_api::backend::BuildError),
    /// No user of this name.
    #[error("no user {0}")]
    NoSuchUser(String),
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
            CliError::SpecJson { .. } | CliError::Spec { .. } | CliError::NoSuchUser(_) => 3,
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
        Command::Fleet(FleetCommand::Worker { id }) => {
            demo_fleet::worker::run(&id).await.map_err(CliError::Serve)
        }
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
    let stats = embedded_write::sqlite::stats(&pool).await?;
    pool.close().await;
    print_json(&json!({ "db": db.display().to_string(), "store": stats }))
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
