//! Connections to the read models, kept open between queries (opening one checks and
//! prepares the read-model schema, which costs more than most queries), and the experiment
//! summaries already decoded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use projection_lambdas::embedded::{ProjectionError, connect};
use projection_lambdas::queries::SummaryCache;
use rusqlite::Connection;

/// Most idle connections kept.
const MAX_IDLE: usize = 8;

/// The read models of one store file.
#[derive(Debug, Clone)]
pub struct ReadModels {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
    summaries: Arc<SummaryCache>,
}

impl ReadModels {
    /// The read models in the store at `path`.
    pub fn new(path: &Path) -> Self {
        ReadModels {
            path: path.to_owned(),
            idle: Arc::new(Mutex::new(Vec::new())),
            summaries: Arc::new(SummaryCache::default()),
        }
    }

    /// Experiment summaries already decoded (see [`SummaryCache`]).
    pub fn summaries(&self) -> Arc<SummaryCache> {
        Arc::clone(&self.summaries)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` on a connection, off the async runtime.
    pub async fn read<T, F>(&self, read: F) -> Result<T, ProjectionError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ProjectionError> + Send + 'static,
    {
        let models = self.clone();
        tokio::task::spawn_blocking(move || {
            let idle = models.idle.lock().ok().and_then(|mut idle| idle.pop());
            let conn = match idle {
                Some(conn) => conn,
                None => connect(&models.path)?,
            };
            let result = read(&conn);
            // A connection is reused only after a read that went well.
            if result.is_ok()
                && let Ok(mut idle) = models.idle.lock()
                && idle.len() < MAX_IDLE
            {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| ProjectionError::Thread(std::io::Error::other(e.to_string())))?
    }
}
