//! The write side as `chaos serve` runs it in one process (embedded mode), beside the Lambdas
//! in `command-lambdas` so that no Lambda links SQLite or the workflow interpreter:
//!
//! - [`sqlite`]: the event store in one SQLite file (opened carefully, since the file is
//!   evidence), its repository for the event store layer, and whole-store verification;
//! - [`workflow`]: the workflow runner: one execution of the ASL workflow per running
//!   experiment, interpreted by the `asl` crate, resumed from the log after a restart.
//!
//! The event store layer, the application service and the workflow's tasks are
//! `command-lambdas`', shared with the Lambdas; this crate only puts them over SQLite and runs
//! the workflow here instead of in Step Functions.

pub mod sqlite;
pub mod workflow;

use command_lambdas::EventStore;
use command_lambdas::service::ExperimentService;

/// The embedded store: the event store layer over sqlite-es.
pub type SqliteStore = EventStore<sqlite::SqliteRepository>;

/// The application service over the embedded store.
pub type SqliteService = ExperimentService<sqlite::SqliteRepository>;
