//! `chaos fleet`: the demo fleet on its own, and one worker of it.

use std::sync::Arc;

use clap::Subcommand;
use command_lambdas::clock::SystemClock;

use super::serve::shutdown_signal;
use super::{CliError, out};
use crate::fleet_args::FleetArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum FleetCommand {
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

pub(crate) async fn fleet_up(args: &FleetArgs) -> Result<(), CliError> {
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
