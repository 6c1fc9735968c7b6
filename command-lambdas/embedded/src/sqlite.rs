//! The embedded event store: one SQLite file in WAL mode, in sqlite-es's schema.
//!
//! Opening is careful because the file is evidence: a missing file is created only when asked,
//! a file that is not SQLite or belongs to another application is refused without a single
//! byte written, and a newer schema than this build knows is refused rather than guessed at.
//!
//! Durability: WAL with `synchronous = NORMAL`. A commit is in the WAL (written through the
//! OS) before it is acknowledged, so an acknowledged command survives a crash of the process;
//! it may not survive a power loss of the machine (that would need `FULL`, an fsync per
//! commit, which costs 0.2-4 ms here).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use cqrs_es::Aggregate;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use domain::audit::{ChainVerifier, StoredRow, VerifyReport};

/// `PRAGMA application_id` of a chaos event store ("CHAS").
pub const APPLICATION_ID: i64 = 0x4348_4153;
/// Schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The schema: sqlite-es's `events` table, unchanged, so sqlite-es reads and writes it.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events
(
  aggregate_type text                          NOT NULL,
  aggregate_id   text                          NOT NULL,
  sequence       integer CHECK (sequence >= 0) NOT NULL,
  event_type     text                          NOT NULL,
  event_version  text                          NOT NULL,
  payload        text                          NOT NULL,
  metadata       text                          NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;
";

/// Whether a missing file may be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file and schema when missing (`chaos serve`).
    CreateIfMissing,
    /// The file must exist and be a chaos store (every read-only or scripting command): an
    /// empty file is refused, never made a store.
    MustExist,
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No file at the path.
    #[error("{0}: no such event store (create it with `chaos init --db {0}`)")]
    Missing(PathBuf),
    /// An empty file (or an SQLite database with nothing in it) where a store must exist.
    #[error(
        "{0}: an empty file, not a chaos event store (left untouched; `chaos init --db {0}` makes it one)"
    )]
    Empty(PathBuf),
    /// The path is a directory or otherwise not a regular file.
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
    /// The file is not an SQLite database.
    #[error("{0}: not an SQLite database (left untouched)")]
    NotSqlite(PathBuf),
    /// An SQLite database of some other application.
    #[error("{0}: an SQLite database that is not a chaos event store (left untouched)")]
    Foreign(PathBuf),
    /// Written by a newer version.
    #[error("{path}: schema version {found} is newer than this build supports ({SCHEMA_VERSION})")]
    TooNew {
        /// File.
        path: PathBuf,
        /// Its schema version.
        found: i64,
    },
    /// SQLite refused.
    #[error("{path}: {source}")]
    Sqlite {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

fn looks_like_sqlite(path: &Path) -> Result<bool, OpenError> {
    use std::io::Read;
    let io = |source| OpenError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]).map_err(io)? {
            0 => break,
            n => read += n,
        }
    }
    // An empty file is what SQLite itself creates first; treat it as a new database.
    Ok(read == 0 || (read == header.len() && &header == SQLITE_HEADER))
}

/// Opens (or creates) the event store at `path`.
pub async fn open(path: &Path, mode: OpenMode) -> Result<SqlitePool, OpenError> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return Err(OpenError::NotAFile(path.to_owned())),
        Ok(_) => {
            if !looks_like_sqlite(path)? {
                return Err(OpenError::NotSqlite(path.to_owned()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if mode == OpenMode::MustExist {
                return Err(OpenError::Missing(path.to_owned()));
            }
        }
        Err(source) => {
            return Err(OpenError::Io {
                path: path.to_owned(),
                source,
            });
        }
    }

    let sql = |source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let base = SqliteConnectOptions::from_str("sqlite://")
        .map_err(sql)?
        .filename(path)
        .busy_timeout(Duration::from_secs(10));

    // Look before touching: a plain connection sets no journal mode and writes nothing, so a
    // foreign database is left exactly as it was.
    let (app_id, version, tables) = {
        use sqlx::ConnectOptions;
        let mut conn = base
            .clone()
            .create_if_missing(mode == OpenMode::CreateIfMissing)
            .connect()
            .await
            .map_err(sql)?;
        let app_id: i64 = sqlx::query_scalar("PRAGMA application_id")
            .fetch_one(&mut conn)
            .await
            .map_err(sql)?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut conn)
            .await
            .map_err(sql)?;
        let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema")
            .fetch_one(&mut conn)
            .await
            .map_err(sql)?;
        sqlx::Connection::close(conn).await.map_err(sql)?;
        (app_id, version, tables)
    };
    let fresh = app_id == 0 && tables == 0;
    if fresh && mode == OpenMode::MustExist {
        return Err(OpenError::Empty(path.to_owned()));
    }
    if !fresh && app_id != APPLICATION_ID {
        return Err(OpenError::Foreign(path.to_owned()));
    }
    if version > SCHEMA_VERSION {
        return Err(OpenError::TooNew {
            path: path.to_owned(),
            found: version,
        });
    }

    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .connect_with(
            base.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal),
        )
        .await
        .map_err(sql)?;
    if fresh {
        let mut tx = pool.begin().await.map_err(sql)?;
        sqlx::raw_sql(SCHEMA).execute(&mut *tx).await.map_err(sql)?;
        sqlx::raw_sql(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .execute(&mut *tx)
        .await
        .map_err(sql)?;
        tx.commit().await.map_err(sql)?;
        tracing::info!(path = %path.display(), "created a new event store");
    }
    Ok(pool)
}

/// The sqlite-es repository over an opened pool, with one write lane per process.
pub fn repository(pool: SqlitePool) -> SqliteRepository {
    SqliteRepository {
        inner: sqlite_es::SqliteEventRepository::new(pool.clone()),
        pool,
        write_lane: tokio::sync::Mutex::new(()),
    }
}

/// sqlite-es's repository with commits from this process taken one at a time.
///
/// SQLite admits one writer at a time; a second one waits in SQLite's busy handler, which
/// sleeps in steps of 1 ms and more. Queueing commits here instead keeps every commit at its
/// real cost (tens of microseconds). Other processes still meet the busy timeout, and
/// conflicting sequence numbers still fail the commit, whoever wrote first.
pub struct SqliteRepository {
    inner: sqlite_es::SqliteEventRepository,
    pool: SqlitePool,
    write_lane: tokio::sync::Mutex<()>,
}

impl command_lambdas::store::StreamHead for SqliteRepository {
    async fn last_sequence(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<usize, PersistenceError> {
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE aggregate_type = ? AND aggregate_id = ?",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| PersistenceError::UnknownError(Box::new(e)))?;
        Ok(usize::try_from(last).unwrap_or(0))
    }
}

impl std::fmt::Debug for SqliteRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRepository").finish_non_exhaustive()
    }
}

impl PersistedEventRepository for SqliteRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.inner.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.inner
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.inner.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let _lane = self.write_lane.lock().await;
        self.inner.persist::<A>(events, snapshot_update).await
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_all_events::<A>().await
    }
}

/// Counts of what the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Stored events.
    pub events: i64,
    /// Distinct streams.
    pub streams: i64,
}

/// Events and streams in the store.
pub async fn stats(pool: &SqlitePool) -> Result<StoreStats, sqlx::Error> {
    let row = sqlx::query(
        "SELECT count(*) AS events, \
         (SELECT count(*) FROM (SELECT 1 FROM events GROUP BY aggregate_type, aggregate_id)) AS streams \
         FROM events",
    )
    .fetch_one(pool)
    .await?;
    Ok(StoreStats {
        events: row.try_get("events")?,
        streams: row.try_get("streams")?,
    })
}

/// Verifies every stream's chain and sequence, reading rows as stored, in insertion order.
///
/// Blocking: call it from a blocking thread. It reads through its own read-only connection
/// (rusqlite: several times faster than an async driver for one long scan) and sees a
/// consistent snapshot even while commands are being appended. `progress` is called every
/// `every` rows read with the count so far.
///
/// Reading and checking overlap: this thread steps SQLite and copies rows into batches, and
/// verifier threads (one per spare core, at least one) check them. Each stream is pinned to
/// one verifier by a hash of its name, so its rows still arrive in order; the verifiers'
/// reports cover disjoint streams and merge into the one report a single verifier would give.
pub fn verify_file(
    path: &Path,
    every: u64,
    progress: impl FnMut(u64),
) -> Result<VerifyReport, rusqlite::Error> {
    let verifiers = std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, MAX_VERIFIER_THREADS);
    verify_file_with(path, verifiers, every, progress)
}

/// [`verify_file`] with a given number of verifier threads (at least one).
fn verify_file_with(
    path: &Path,
    verifiers: usize,
    every: u64,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, rusqlite::Error> {
    let verifiers = verifiers.max(1);
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mut statement = conn.prepare(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
         FROM events ORDER BY rowid",
    )?;

    std::thread::scope(|scope| {
        let mut lanes = Vec::with_capacity(verifiers);
        let mut threads = Vec::with_capacity(verifiers);
        for _ in 0..verifiers {
            let (lane, batches) = std::sync::mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
            lanes.push(lane);
            threads.push(scope.spawn(move || {
                let mut verifier = ChainVerifier::new();
                for batch in batches {
                    for (row, not_text) in batch.rows() {
                        match not_text {
                            None => verifier.push(&row),
                            Some(column) => verifier.push_not_text(&row, column),
                        }
                    }
                }
                verifier.finish_part()
            }));
        }
        let read = read_rows(&mut statement, &lanes, every, &mut progress);
        // Closing the lanes ends the verifiers' loops.
        drop(lanes);
        let reports: Vec<VerifyReport> = threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        read?;
        Ok(VerifyReport::merge(reports).of_whole_log())
    })
}

/// At most this many verifier threads; beyond it, the single reading thread is the limit.
const MAX_VERIFIER_THREADS: usize = 4;
/// Rows per batch: enough that handing a batch over costs nothing per row.
const BATCH_ROWS: usize = 512;
/// Batches queued per verifier before the reader waits, which bounds memory.
const BATCHES_IN_FLIGHT: usize = 4;

/// Steps through every row and sends it, in a batch, to the verifier of its stream.
fn read_rows(
    statement: &mut rusqlite::Statement<'_>,
    lanes: &[std::sync::mpsc::SyncSender<Batch>],
    every: u64,
    progress: &mut impl FnMut(u64),
) -> Result<(), rusqlite::Error> {
    let mut batches: Vec<Batch> = lanes.iter().map(|_| Batch::default()).collect();
    let mut rows = statement.query([])?;
    let mut seen: u64 = 0;
    while let Some(row) = rows.next()? {
        let (texts, not_text) = stored_texts(row)?;
        let lane = if lanes.len() > 1 {
            use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
            let hash =
                BuildHasherDefault::<DefaultHasher>::default().hash_one((&*texts[0], &*texts[1]));
            (hash % lanes.len() as u64) as usize
        } else {
            0
        };
        let batch = &mut batches[lane];
        batch.push(texts.each_ref().map(|t| &**t), row.get(2)?, not_text);
        if batch.rows.len() == BATCH_ROWS && lanes[lane].send(std::mem::take(batch)).is_err() {
            // That verifier is gone, which only a panic does; joining it re-raises the panic.
            return Ok(());
        }
        seen += 1;
        if every > 0 && seen.is_multiple_of(every) {
            progress(seen);
        }
    }
    for (lane, batch) in lanes.iter().zip(batches) {
        if !batch.rows.is_empty() && lane.send(batch).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The text columns of an `events` row selected as `aggregate_type, aggregate_id, sequence,
/// event_type, event_version, payload, metadata`: aggregate type, aggregate id, event type,
/// event version, payload and metadata, with the name of the first that is not UTF-8 text.
/// Such a column (bytes damaged or altered in the file) is read with its bad bytes replaced,
/// so that the row's stream is still known and the row is reported, not the whole read
/// abandoned.
pub fn stored_texts<'r>(
    row: &'r rusqlite::Row<'_>,
) -> Result<([Cow<'r, str>; 6], Option<&'static str>), rusqlite::Error> {
    const COLUMNS: [(usize, &str); 6] = [
        (0, "aggregate_type"),
        (1, "aggregate_id"),
        (3, "event_type"),
        (4, "event_version"),
        (5, "payload"),
        (6, "metadata"),
    ];
    let mut not_text = None;
    let mut read = |(i, name): (usize, &'static str)| -> Result<Cow<'r, str>, rusqlite::Error> {
        use rusqlite::types::ValueRef;
        let bytes = match row.get_ref(i)? {
            ValueRef::Text(bytes) => bytes,
            _ => {
                not_text.get_or_insert(name);
                return Ok(Cow::Borrowed(""));
            }
        };
        let text = String::from_utf8_lossy(bytes);
        if matches!(text, Cow::Owned(_)) {
            not_text.get_or_insert(name);
        }
        Ok(text)
    };
    let texts = [
        read(COLUMNS[0])?,
        read(COLUMNS[1])?,
        read(COLUMNS[2])?,
        read(COLUMNS[3])?,
        read(COLUMNS[4])?,
        read(COLUMNS[5])?,
    ];
    Ok((texts, not_text))
}

/// Rows copied out of SQLite so that another thread can verify them: the text columns of all
/// rows back to back in one string (one allocation per batch, not seven per row).
#[derive(Debug, Default)]
struct Batch {
    text: String,
    rows: Vec<BatchRow>,
}

#[derive(Debug)]
struct BatchRow {
    /// Where each text column ends in `Batch::text`: aggregate type, aggregate id, event
    /// type, event version, payload, metadata (each starts where the previous one ends).
    ends: [usize; 6],
    sequence: i64,
    /// The first column that is not UTF-8 text, if one is not.
    not_text: Option<&'static str>,
}

impl Batch {
    fn push(&mut self, columns: [&str; 6], sequence: i64, not_text: Option<&'static str>) {
        if self.text.is_empty() {
            self.text.reserve(BATCH_ROWS * 640);
            self.rows.reserve(BATCH_ROWS);
        }
        let ends = columns.map(|column| {
            self.text.push_str(column);
            self.text.len()
        });
        self.rows.push(BatchRow {
            ends,
            sequence,
            not_text,
        });
    }

    fn rows(&self) -> impl Iterator<Item = (StoredRow<'_>, Option<&'static str>)> {
        let mut start = 0;
        self.rows.iter().map(move |row| {
            let [t, i, e, v, p, m] = row.ends.map(|end| {
                let column = &self.text[start..end];
                start = end;
                column
            });
            let stored = StoredRow {
                aggregate_type: t,
                aggregate_id: i,
                sequence: row.sequence,
                event_type: e,
                event_version: v,
                payload: p,
                metadata: m,
            };
            (stored, row.not_text)
        })
    }
}

#[cfg(test)]
mod verify_tests {
    use super::*;
    use domain::audit::verify::canonical_metadata;
    use domain::audit::{EventRecord, GENESIS_HASH, seal};
    use domain::provenance::EventMetadata;
    use serde_json::json;

    /// A store of `streams` interleaved streams of `events` each, two of them tampered with.
    fn tampered_store(dir: &Path, streams: usize, events: usize) -> PathBuf {
        let path = dir.join("verify.db");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(SCHEMA).expect("schema");
        let mut heads = vec![GENESIS_HASH.to_owned(); streams];
        for sequence in 1..=events {
            for (s, prev) in heads.iter_mut().enumerate() {
                let id = format!("stream-{s}");
                let payload = json!({"HealthChecked": {"sample": sequence, "stream": s}});
                let mut m = EventMetadata {
                    event_id: format!("ev-{s}-{sequence}"),
                    command_id: format!("cmd-{s}-{sequence}"),
                    correlation_id: "corr".into(),
                    actor: "tester".into(),
                    actor_role: "OPERATOR".into(),
                    command: None,
                    source: "cli".into(),
                    recorded_at: "2026-11-26T10:00:00.000Z".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                let record = EventRecord {
                    aggregate_type: "Experiment",
                    aggregate_id: &id,
                    sequence: sequence as u64,
                    event_type: "HealthChecked",
                    event_version: "1",
                    metadata: &m,
                };
                m.hash = seal(&record, &payload, prev).expect("seal");
                prev.clone_from(&m.hash);
                let mut payload = payload.to_string();
                if s == 2 && sequence == 5 {
                    payload = payload.replacen(':', ": ", 1);
                }
                if s == 4 && sequence == 10 {
                    continue;
                }
                conn.execute(
                    "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    rusqlite::params![
                        "Experiment",
                        id,
                        sequence as i64,
                        "HealthChecked",
                        "1",
                        payload,
                        canonical_metadata(&m)
                    ],
                )
                .expect("insert");
            }
        }
        path
    }

    /// The report of one verifier fed every row in rowid order, no threads involved.
    fn reference_report(path: &Path) -> VerifyReport {
        let conn = rusqlite::Connection::open(path).expect("open");
        let mut statement = conn
            .prepare(
                "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, \
                 payload, metadata FROM events ORDER BY rowid",
            )
            .expect("prepare");
        let mut rows = statement.query([]).expect("query");
        let mut verifier = ChainVerifier::new();
        while let Some(row) = rows.next().expect("row") {
            let text = |i| row.get::<_, String>(i).expect("text");
            verifier.push(&StoredRow {
                aggregate_type: &text(0),
                aggregate_id: &text(1),
                sequence: row.get(2).expect("sequence"),
                event_type: &text(3),
                event_version: &text(4),
                payload: &text(5),
                metadata: &text(6),
            });
        }
        verifier.finish().of_whole_log()
    }

    #[test]
    fn any_number_of_verifier_threads_gives_the_single_verifier_report() {
        let dir = tempfile::tempdir().expect("dir");
        // 7 x 200 rows: several batches per verifier, and a partial last one.
        let path = tampered_store(dir.path(), 7, 200);
        let expected = reference_report(&path);
        assert_eq!((expected.events, expected.streams), (7 * 200 - 1, 7));
        let faulty: Vec<_> = expected
            .faults
            .iter()
            .map(|f| (f.aggregate_id.as_str(), f.sequence))
            .collect();
        assert_eq!(faulty, [("stream-2", 5), ("stream-4", 10)]);
        for verifiers in 1..=4 {
            let mut calls = Vec::new();
            let report =
                verify_file_with(&path, verifiers, 100, |n| calls.push(n)).expect("verify");
            assert_eq!(report, expected, "{verifiers} verifier threads");
            assert_eq!(calls, (1..=13).map(|k| k * 100).collect::<Vec<u64>>());
        }
    }

    #[test]
    fn an_empty_store_verifies() {
        let dir = tempfile::tempdir().expect("dir");
        let path = tampered_store(dir.path(), 0, 0);
        let report = verify_file(&path, 1, |_| {}).expect("verify");
        assert!(report.is_ok());
        assert_eq!((report.events, report.streams), (0, 0));
    }
}
