//! The embedded engine of `chaos serve`: the demo fleet, the workflow runner acting on it, and
//! the loop that keeps the runner in step with the log.
//!
//! Every [`FOLLOW_EVERY`], the loop reads which experiments the read models say are running
//! and gives them to [`Workflows::reconcile`], which runs each one without an execution here
//! (started by the CLI, another client, or before a restart). It wakes an execution as soon
//! as its run has a stop pending or the platform is halted, and wakes all of them when a fleet's
//! membership or health changes, so stops take effect and recoveries are observed without
//! waiting for the next poll.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use command_lambdas::SqliteService;
use command_lambdas::clock::Clock;
use command_lambdas::fleet::{Fleet, FleetConfig, FleetError, LocalFleets, WorkerCommand};
use command_lambdas::sqlite::SqliteRepository;
use command_lambdas::tasks::Tasks;
use command_lambdas::workflow::{WorkflowError, Workflows};
use domain::experiment::Phase;
use projection_lambdas::queries::{self, ExperimentFilter};
use tokio::sync::watch;

/// The workflow runner of embedded mode.
pub type EmbeddedWorkflows = Workflows<SqliteRepository, LocalFleets, LocalFleets, LocalFleets>;

/// How often the runner is reconciled with the log.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// The demo fleet `chaos serve` starts.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Do not start the demo fleet.
    #[arg(long)]
    pub no_fleet: bool,
    /// The demo fleet's name (the `group` experiments target).
    #[arg(long, env = "CHAOS_FLEET_NAME", default_value = "web")]
    pub fleet_name: String,
    /// Workers in the demo fleet.
    #[arg(long, env = "CHAOS_FLEET_SIZE", default_value_t = 3)]
    pub fleet_size: u32,
    /// Where the demo fleet's load balancer listens (port 0: any free port, logged).
    #[arg(long, env = "CHAOS_FLEET_ADDR", default_value = "127.0.0.1:0")]
    pub fleet_addr: SocketAddr,
    /// Milliseconds before a lost worker is replaced.
    #[arg(long, env = "CHAOS_FLEET_REPLACE_AFTER_MS", default_value_t = 1_000)]
    pub fleet_replace_after_ms: u64,
}

impl FleetArgs {
    /// The fleet's configuration; its workers are this executable's `fleet worker`.
    pub fn config(&self) -> Result<FleetConfig, FleetError> {
        let program = std::env::current_exe().map_err(|e| FleetError::Worker {
            id: "(any)".into(),
            reason: format!("cannot find this executable to run workers: {e}"),
        })?;
        let mut config = FleetConfig::new(
            self.fleet_name.clone(),
            self.fleet_size,
            WorkerCommand {
                program,
                args: vec!["fleet".into(), "worker".into()],
            },
        );
        config.balancer = self.fleet_addr;
        config.replace_after = Duration::from_millis(self.fleet_replace_after_ms);
        Ok(config)
    }

    /// Starts the fleet, unless disabled.
    pub async fn start(&self, clock: Arc<dyn Clock>) -> Result<LocalFleets, FleetError> {
        if self.no_fleet {
            return Ok(LocalFleets::default());
        }
        let fleet = Fleet::start(self.config()?, clock).await?;
        Ok(LocalFleets::new(vec![fleet]))
    }
}

/// The runner over `service`, acting on `fleets`.
pub fn workflows(
    service: SqliteService,
    fleets: &LocalFleets,
    clock: Arc<dyn Clock>,
) -> Result<EmbeddedWorkflows, WorkflowError> {
    Workflows::new(Tasks::new(
        service,
        fleets.clone(),
        fleets.clone(),
        fleets.clone(),
        clock,
    ))
}

/// The experiments the read models say are running.
fn running(
    conn: &rusqlite::Connection,
) -> Result<Vec<String>, projection_lambdas::embedded::ProjectionError> {
    let filter = ExperimentFilter {
        status: Some("RUNNING".into()),
        include_archived: true,
        ..ExperimentFilter::default()
    };
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = queries::experiments(conn, &filter, cursor.as_deref(), 500)?;
        ids.extend(page.items.into_iter().map(|e| e.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(ids),
        }
    }
}

/// Keeps `workflows` in step with the log until `shutdown` turns true.
pub async fn follow(
    workflows: EmbeddedWorkflows,
    fleets: LocalFleets,
    db: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    for fleet in fleets.fleets() {
        let mut changes = fleet.changes();
        let workflows = workflows.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                workflows.wake_all();
            }
        });
    }
    let conn = match connect(&db) {
        Ok(conn) => Arc::new(Mutex::new(conn)),
        Err(e) => {
            tracing::error!(error = %e, "the workflow runner cannot read the read models; runs started elsewhere will not be picked up");
            return;
        }
    };
    let mut halted = false;
    let mut woken: HashSet<String> = HashSet::new();
    loop {
        let read = Arc::clone(&conn);
        let ids = tokio::task::spawn_blocking(move || {
            let conn = read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            running(&conn)
        })
        .await;
        match ids {
            Ok(Ok(ids)) => {
                workflows.reconcile(&ids).await;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the running experiments"),
            Err(e) => tracing::error!(error = %e, "reading the running experiments panicked"),
        }
        let service = workflows.tasks().service();
        match service.platform().await {
            Ok(platform) => {
                let now_halted = platform.aggregate.halted().is_some();
                if now_halted && !halted {
                    tracing::info!("platform halted: waking every run to stop");
                    workflows.wake_all();
                }
                halted = now_halted;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the halt switch"),
        }
        let executing = workflows.running();
        woken.retain(|id| executing.contains(id));
        for id in executing {
            if woken.contains(&id) {
                continue;
            }
            if let Ok(loaded) = service.load(&id).await
                && loaded.aggregate.phase() == Some(Phase::RollingBack)
            {
                workflows.wake(&id);
                woken.insert(id);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

fn connect(
    db: &Path,
) -> Result<rusqlite::Connection, projection_lambdas::embedded::ProjectionError> {
    projection_lambdas::embedded::connect(db)
}
