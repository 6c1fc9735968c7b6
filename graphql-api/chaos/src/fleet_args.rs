//! The demo fleet's options, as `chaos serve` and `chaos fleet up` take them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use command_lambdas::clock::Clock;
use demo_fleet::{Fleet, FleetConfig, FleetError, LocalFleets, WorkerCommand};

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
