//! `chaos experiment`: create, run and inspect experiments.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use command_lambdas::clock::new_id;
use domain::Timestamp;
use embedded_read::queries;
use embedded_write::SqliteService;
use embedded_write::sqlite::{OpenMode, open};
use projection_lambdas::reads::ExperimentFilter;
use serde_json::json;

use super::{CliError, ProvenanceArgs, context, print_json, read_models, read_spec, service_over};

#[derive(Debug, Subcommand)]
pub(crate) enum ExperimentCommand {
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

pub(crate) async fn experiment(
    db: &Path,
    p: &ProvenanceArgs,
    cmd: ExperimentCommand,
) -> Result<(), CliError> {
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
