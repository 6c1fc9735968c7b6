//! The embedded engine of `chaos serve`: the workflow runner acting on the demo fleet (which
//! the binary starts, `demo-fleet`), and the loop that keeps the runner in step with the log.
//!
//! Every [`FOLLOW_EVERY`], the loop reads which experiments the read models say are running
//! and gives them to [`Workflows::reconcile`]; every second it ticks the [`Scheduler`] (due
//! scheduled starts, recurring schedules); which runs each one without an execution here
//! (started by the CLI, another client, or before a restart). It wakes an execution as soon
//! as its run has a stop pending, the platform is halted or a blackout window begins, and wakes all of them when a fleet's
//! membership or health changes, so stops take effect and recoveries are observed without
//! waiting for the next poll.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use command_lambdas::adapters::InProcessClaims;
use command_lambdas::clock::Clock;
use command_lambdas::scheduler::Scheduler;
use command_lambdas::tasks::Tasks;
use demo_fleet::LocalFleets;
use domain::experiment::Phase;
use domain::platform::Concern;
use embedded_read::queries;
use embedded_write::SqliteService;
use embedded_write::sqlite::SqliteRepository;
use embedded_write::workflow::{WorkflowError, Workflows};
use projection_lambdas::reads::ExperimentFilter;
use tokio::sync::watch;

/// The workflow runner of embedded mode.
pub type EmbeddedWorkflows = Workflows<SqliteRepository, LocalFleets, LocalFleets, LocalFleets>;

/// How often the runner is reconciled with the log.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// The scheduler ticks every this many rounds (every second).
const SCHEDULE_EVERY_TICKS: u64 = 4;

/// The runner over `service`, acting on `fleets`.
pub fn workflows(
    service: SqliteService,
    fleets: &LocalFleets,
    clock: Arc<dyn Clock>,
) -> Result<EmbeddedWorkflows, WorkflowError> {
    Workflows::new(
        Tasks::new(
            service,
            fleets.clone(),
            fleets.clone(),
            fleets.clone(),
            clock,
        )
        .with_claims(Arc::new(InProcessClaims::default())),
    )
}

/// The experiments the read models say are in `status`.
fn in_status(
    conn: &rusqlite::Connection,
    status: &str,
) -> Result<Vec<String>, embedded_read::projector::ProjectionError> {
    let filter = ExperimentFilter {
        status: Some(status.into()),
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
    clock: Arc<dyn Clock>,
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
    let conn = match embedded_read::projector::connect(&db) {
        Ok(conn) => Arc::new(Mutex::new(conn)),
        Err(e) => {
            tracing::error!(error = %e, "the workflow runner cannot read the read models; runs started elsewhere will not be picked up");
            return;
        }
    };
    let service = workflows.tasks().service().clone();
    let scheduler = Scheduler::new(service.clone());
    let mut stopping = false;
    let mut woken: HashSet<String> = HashSet::new();
    let mut ticks: u64 = 0;
    loop {
        let read = Arc::clone(&conn);
        let schedule_now = ticks.is_multiple_of(SCHEDULE_EVERY_TICKS);
        ticks += 1;
        let ids = tokio::task::spawn_blocking(move || {
            let conn = read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let running = in_status(&conn, "RUNNING")?;
            let scheduled = if schedule_now {
                Some(in_status(&conn, "SCHEDULED")?)
            } else {
                None
            };
            Ok::<_, embedded_read::projector::ProjectionError>((running, scheduled))
        })
        .await;
        match ids {
            Ok(Ok((running, scheduled))) => {
                if let Some(scheduled) = scheduled {
                    match scheduler.tick(clock.now(), &scheduled).await {
                        Ok(fired) => {
                            for f in fired {
                                tracing::info!(fired = ?f, "scheduler");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "the scheduler's tick failed"),
                    }
                }
                workflows.reconcile(&running).await;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the running experiments"),
            Err(e) => tracing::error!(error = %e, "reading the running experiments panicked"),
        }
        match service
            .platform_of(&[Concern::HaltSwitch, Concern::Blackouts])
            .await
        {
            Ok(platform) => {
                // A halt, or a blackout window beginning: every run stops now.
                let now_stopping = platform.aggregate.halted().is_some()
                    || platform.aggregate.blackout_at(clock.now()).is_some();
                if now_stopping && !stopping {
                    tracing::info!("halted or in a blackout window: waking every run to stop");
                    workflows.wake_all();
                }
                stopping = now_stopping;
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
