//! Connections to the read models, kept open between queries (opening one checks and
//! prepares the read-model schema, which costs more than most queries), the experiment
//! summaries already decoded, and the pages of the experiments list already read.
//!
//! A page is kept with the store file's `data_version` (SQLite's count of commits by other
//! connections, seen by one connection kept for that alone): any commit to the file, by this
//! process or another one (a `chaos` command), makes every kept page stale. A page read while a
//! commit lands is kept under the older version, so it is never served once that commit is
//! seen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use domain::views::experiments::ExperimentSummary;
use embedded_read::projector::{ProjectionError, connect};
use embedded_read::queries::SummaryCache;
use projection_lambdas::reads::{ExperimentFilter, Page};
use rusqlite::Connection;

/// Most idle connections kept.
const MAX_IDLE: usize = 8;
/// Most pages kept; when full, the pages start over.
pub const MAX_PAGES: usize = 256;

/// Pages of the experiments list, by query, with the store version they were read at.
type Pages = HashMap<String, (i64, Page<ExperimentSummary>)>;

/// The read models of one store file.
#[derive(Debug, Clone)]
pub struct ReadModels {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
    summaries: Arc<SummaryCache>,
    /// The connection that tells the store's version; opened on first use.
    watch: Arc<Mutex<Option<Connection>>>,
    pages: Arc<Mutex<Pages>>,
}

impl ReadModels {
    /// The read models in the store at `path`.
    pub fn new(path: &Path) -> Self {
        ReadModels {
            path: path.to_owned(),
            idle: Arc::new(Mutex::new(Vec::new())),
            summaries: Arc::new(SummaryCache::default()),
            watch: Arc::new(Mutex::new(None)),
            pages: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The store file's version: it changes whenever anything commits to the file.
    fn version(&self) -> Result<i64, ProjectionError> {
        let mut watch = self
            .watch
            .lock()
            .map_err(|_| ProjectionError::Thread(std::io::Error::other("a reader panicked")))?;
        if watch.is_none() {
            *watch = Some(connect(&self.path)?);
        }
        match watch.as_ref() {
            Some(conn) => Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?),
            None => Err(ProjectionError::Thread(std::io::Error::other(
                "no connection to watch the store with",
            ))),
        }
    }

    /// Experiments, newest first, `limit` after `cursor`: a page kept from an earlier read if
    /// nothing has been committed since, else read now (and kept).
    pub async fn experiments(
        &self,
        filter: ExperimentFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page<ExperimentSummary>, ProjectionError> {
        let models = self.clone();
        self.read(move |conn| {
            let key = format!("{filter:?}|{cursor:?}|{limit}");
            let version = models.version()?;
            if let Some((at, page)) = models.pages.lock().ok().and_then(|p| p.get(&key).cloned())
                && at == version
            {
                return Ok(page);
            }
            let page = embedded_read::queries::experiments_cached(
                conn,
                &filter,
                cursor.as_deref(),
                limit,
                Some(&models.summaries),
            )?;
            if let Ok(mut pages) = models.pages.lock() {
                if pages.len() >= MAX_PAGES {
                    pages.clear();
                }
                pages.insert(key, (version, page.clone()));
            }
            Ok(page)
        })
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A page no query gives: only the cache can answer it.
    fn fake(id: &str) -> Page<ExperimentSummary> {
        Page {
            items: Vec::new(),
            next: Some(format!("kept|{id}")),
        }
    }

    #[tokio::test]
    async fn a_kept_page_is_served_until_anything_commits_to_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("chaos.db");
        embedded_write::sqlite::open(&db, embedded_write::sqlite::OpenMode::CreateIfMissing)
            .await
            .expect("store")
            .close()
            .await;
        let reads = ReadModels::new(&db);
        let filter = ExperimentFilter::default();
        let read = reads
            .experiments(filter.clone(), None, 10)
            .await
            .expect("read");
        assert_eq!(
            read,
            Page {
                items: Vec::new(),
                next: None
            }
        );
        // What is kept is what is served, while nothing commits.
        {
            let mut pages = reads.pages.lock().expect("pages");
            let (_, page) = pages.values_mut().next().expect("the page was kept");
            *page = fake("a");
        }
        let again = reads
            .experiments(filter.clone(), None, 10)
            .await
            .expect("read");
        assert_eq!(again, fake("a"));
        // A commit by another connection (another process would do the same) makes it stale.
        let other = Connection::open(&db).expect("open");
        other
            .execute_batch("CREATE TABLE unrelated (x); INSERT INTO unrelated VALUES (1);")
            .expect("commit");
        let fresh = reads.experiments(filter, None, 10).await.expect("read");
        assert_eq!(
            fresh,
            Page {
                items: Vec::new(),
                next: None
            }
        );
    }
}
