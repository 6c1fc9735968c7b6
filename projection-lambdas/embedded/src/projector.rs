//! Embedded read models: SQLite tables beside the events, kept up to date by a catch-up reader.
//!
//! The [`Projector`] tails the `events` table in insertion order (`rowid`), from a durable
//! position, and applies each batch in one transaction that also advances, per projection and
//! stream, the last applied sequence. Killed at any point, it resumes from the last committed
//! position and applies nothing twice: a re-read record is at or below its checkpoint. Records
//! that cannot be applied yet (a poison record, or anything behind one in its stream) are
//! parked in `projection_parked`, visible and retried on every step, while other streams go on.
//!
//! [`Projector::rebuild`] clears the read models and projects the log again, stream by stream
//! rather than in log order, with decoding, writing and WAL checkpoints on three threads (see
//! `rebuild.rs`). Its transactions are planned and checkpointed like any batch, so it gives
//! exactly what incremental application gives, and the position moves only once every stream
//! is done, so a rebuild killed part way is finished by the next catch-up.
//!
//! Each event is described once for the audit log and the activity feed both, and activity
//! items older than what the feed's trim would keep are not written at all.
//!
//! Nothing here writes events; the `events` table is only read.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::Timestamp;
use domain::views::activity::ActivityItem;
use domain::views::experiments::ExperimentRecord;
use domain::views::results::RunTracker;
use domain::views::{AnyEvent, Envelope};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use projection_lambdas::plan::{FeedRecord, ItemFailure, Plan, StreamBatch, StreamKey, plan};

mod rebuild;

/// The projections kept in embedded mode, by checkpoint name.
pub const PROJECTIONS: [&str; 4] = ["experiments", "results", "audit_log", "activity"];

/// The projector connection's page cache, in KiB (negative: SQLite's unit for a size).
const PAGE_CACHE_KIB: i64 = -65_536;

/// Name of the catch-up reader's position.
const FEED: &str = "events";

/// Version of the read models' tables this build writes and reads (in `projection_feed`).
/// Version 2 keeps no copy of the log's metadata in the audit log; version 3 shows webhook
/// URLs without their path and query.
const READ_MODELS_VERSION: i64 = 3;

/// Name of the read models' version in `projection_feed`.
const VERSION: &str = "read_models";

/// Name of the count of rebuilds started (in `projection_feed`, never cleared): a rebuild
/// that sees it move knows another one has cleared the read models since it began.
const REBUILDS: &str = "rebuilds";

/// Rows a rebuild reads per chunk (one transaction) by default: fewer, larger transactions
/// rewrite the audit log's index pages into the WAL fewer times (10,000 rebuilt 100,000
/// events about 12 % faster than 5,000 here; 40,000 was slower again).
const REBUILD_CHUNK: usize = 10_000;

/// How often a serving projector looks for new events when it has nothing to do.
pub const IDLE_POLL: Duration = Duration::from_millis(10);

/// Activity items kept by default: the newest by event time (the audit log keeps everything).
pub const ACTIVITY_RETAINED: i64 = 10_000;

const INSERT_ITEM: &str = "INSERT INTO view_activity (aggregate_type, aggregate_id, sequence, at, item) \
     VALUES (?1, ?2, ?3, ?4, ?5)";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS projection_checkpoints (
  projection     TEXT    NOT NULL,
  aggregate_type TEXT    NOT NULL,
  aggregate_id   TEXT    NOT NULL,
  sequence       INTEGER NOT NULL,
  PRIMARY KEY (projection, aggregate_type, aggregate_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projection_feed (
  name     TEXT    PRIMARY KEY,
  position INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS projection_parked (
  event_rowid     INTEGER PRIMARY KEY,
  aggregate_type  TEXT    NOT NULL,
  aggregate_id    TEXT    NOT NULL,
  sequence        INTEGER NOT NULL,
  reason          TEXT    NOT NULL,
  attempts        INTEGER NOT NULL,
  first_failed_at TEXT    NOT NULL,
  last_failed_at  TEXT    NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS view_experiments (
  id           TEXT    PRIMARY KEY,
  name         TEXT    NOT NULL,
  target       TEXT    NOT NULL,
  failure_type TEXT    NOT NULL,
  dry_run      INTEGER NOT NULL,
  status       TEXT    NOT NULL,
  archived     INTEGER NOT NULL,
  outcome      TEXT,
  recovery_ms  INTEGER,
  created_at   TEXT    NOT NULL,
  updated_at   TEXT    NOT NULL,
  version      INTEGER NOT NULL,
  record       TEXT    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS view_experiments_by_created ON view_experiments (created_at, id);
CREATE INDEX IF NOT EXISTS view_experiments_by_status ON view_experiments (status, created_at, id);
CREATE INDEX IF NOT EXISTS view_experiments_by_target ON view_experiments (target, created_at, id);
CREATE TABLE IF NOT EXISTS view_run_trackers (
  experiment_id TEXT PRIMARY KEY,
  state         TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS view_results (
  experiment_id TEXT    PRIMARY KEY,
  target        TEXT    NOT NULL,
  failure_type  TEXT    NOT NULL,
  outcome       TEXT    NOT NULL,
  recovery_ms   INTEGER,
  ended_at      TEXT    NOT NULL,
  day           TEXT    NOT NULL,
  result        TEXT    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS view_results_by_end ON view_results (ended_at, experiment_id);
CREATE TABLE IF NOT EXISTS view_audit_log (
  aggregate_type TEXT    NOT NULL,
  aggregate_id   TEXT    NOT NULL,
  sequence       INTEGER NOT NULL,
  event_type     TEXT    NOT NULL,
  actor          TEXT    NOT NULL,
  recorded_at    TEXT    NOT NULL,
  at             TEXT    NOT NULL,
  action         TEXT    NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS view_audit_log_by_actor ON view_audit_log (actor, recorded_at);
CREATE INDEX IF NOT EXISTS view_audit_log_by_time ON view_audit_log (recorded_at);
CREATE TABLE IF NOT EXISTS view_activity (
  aggregate_type TEXT    NOT NULL,
  aggregate_id   TEXT    NOT NULL,
  sequence       INTEGER NOT NULL,
  at             TEXT    NOT NULL,
  item           TEXT    NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS view_activity_by_time ON view_activity (at, aggregate_type, aggregate_id, sequence);
";

/// Why projecting failed (as a whole; per-record problems are parked, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// A page cursor that no query produced.
    #[error("invalid cursor {0:?}: pass the `next` value of the previous page")]
    BadCursor(String),
    /// SQLite refused.
    #[error("read model store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A read model row does not decode (written by another version?).
    #[error("read model row does not decode: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A time in a read model row does not parse (written by another version?).
    #[error("read model row holds {0:?} where a time belongs")]
    BadTime(String),
    /// The read models were made by a later version of this program.
    #[error(
        "the read models are of version {found}, made by a later release; this one reads version {supported}: run that release, or a newer one"
    )]
    NewerReadModels {
        /// Version found.
        found: i64,
        /// Version this build reads.
        supported: i64,
    },
    /// A rebuild could not start one of its threads.
    #[error("could not start a rebuild thread: {0}")]
    Thread(#[from] std::io::Error),
    /// A projection's checkpoint is behind the batch (a projection added without a rebuild).
    #[error(
        "projection {projection} is at sequence {at} of {stream}, batch starts at {starts}: rebuild the read models"
    )]
    Behind {
        /// Projection.
        projection: &'static str,
        /// Stream.
        stream: String,
        /// Its checkpoint.
        at: u64,
        /// First sequence of the batch.
        starts: u64,
    },
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Rows read from the event table (new and parked).
    pub read: usize,
    /// Events applied.
    pub applied: usize,
    /// Records skipped as already applied.
    pub duplicates: usize,
    /// Records parked (not applicable yet).
    pub parked: usize,
    /// Feed position after the step (last rowid read).
    pub position: i64,
}

/// The catch-up reader and writer of every embedded read model.
pub struct Projector {
    conn: Connection,
    path: PathBuf,
    write_lane: Option<Arc<tokio::sync::Mutex<()>>>,
    batch: usize,
    rebuild_chunk: usize,
    activity_retained: i64,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

fn now() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_millis(millis).to_string()
}

/// Opens a connection to the store file for read models (creating their tables).
pub fn connect(path: &Path) -> Result<Connection, ProjectionError> {
    let mut conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Room for a whole batch's pages (the default 2 MB spills a rebuild's 5,000-event chunks
    // to the WAL before they commit), held only while the process runs.
    conn.pragma_update(None, "cache_size", PAGE_CACHE_KIB)?;
    // Every statement of a step stays prepared, audit inserts of each group size included.
    conn.set_prepared_statement_cache_capacity(64);
    if read_models_version(&conn)? != Some(READ_MODELS_VERSION) {
        upgrade(&mut conn)?;
    }
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// The version of the read models in the store, if it has any (those of the first version
/// do not say: they are version 1).
fn read_models_version(conn: &Connection) -> Result<Option<i64>, ProjectionError> {
    let made: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'projection_feed')",
        [],
        |r| r.get(0),
    )?;
    if !made {
        return Ok(None);
    }
    Ok(Some(feed_value(conn, VERSION)?.unwrap_or(1)))
}

/// Makes the read models of this version: in a new store, the tables; in a store whose read
/// models an earlier version made, they are dropped first, and the position goes back to the
/// start, so the next catch-up projects the whole log again (read models are derived: nothing
/// is lost). Read models of a later version are left alone and refused.
fn upgrade(conn: &mut Connection) -> Result<(), ProjectionError> {
    let tx = Transaction::new(conn, TransactionBehavior::Immediate)?;
    // Looked at again under the write lock: another process may have upgraded meanwhile.
    match read_models_version(&tx)? {
        Some(found) if found > READ_MODELS_VERSION => {
            return Err(ProjectionError::NewerReadModels {
                found,
                supported: READ_MODELS_VERSION,
            });
        }
        Some(READ_MODELS_VERSION) => return Ok(()),
        Some(found) => {
            tracing::warn!(
                found,
                version = READ_MODELS_VERSION,
                "read models of an earlier version: dropped, to be projected again from the log"
            );
            tx.execute_batch(
                "DROP TABLE IF EXISTS projection_checkpoints; DROP TABLE IF EXISTS projection_parked; \
                 DROP TABLE IF EXISTS view_experiments; DROP TABLE IF EXISTS view_run_trackers; \
                 DROP TABLE IF EXISTS view_results; DROP TABLE IF EXISTS view_audit_log; \
                 DROP TABLE IF EXISTS view_activity;",
            )?;
            tx.execute("DELETE FROM projection_feed WHERE name = ?1", [FEED])?;
            // As a rebuild does: one running meanwhile must not move the position for these.
            tx.execute(
                "INSERT INTO projection_feed (name, position) VALUES (?1, 1) \
                 ON CONFLICT (name) DO UPDATE SET position = position + 1",
                [REBUILDS],
            )?;
        }
        None => {}
    }
    tx.execute_batch(SCHEMA)?;
    tx.execute(
        "INSERT INTO projection_feed (name, position) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        params![VERSION, READ_MODELS_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}

impl Projector {
    /// A projector over the event store at `path` (already created by the write side).
    ///
    /// `write_lane` is the write side's commit queue when both run in one process: holding it
    /// for each short transaction keeps commands and projections from waiting on SQLite's
    /// busy handler.
    pub fn open(
        path: &Path,
        write_lane: Option<Arc<tokio::sync::Mutex<()>>>,
    ) -> Result<Self, ProjectionError> {
        Ok(Self {
            conn: connect(path)?,
            path: path.to_owned(),
            write_lane,
            batch: 1_000,
            rebuild_chunk: REBUILD_CHUNK,
            activity_retained: ACTIVITY_RETAINED,
        })
    }

    /// Sets how many activity items are kept (at least 1).
    pub fn with_activity_retained(mut self, items: i64) -> Self {
        self.activity_retained = items.max(1);
        self
    }

    /// Sets the most rows read per step, and per chunk of a rebuild (about: a chunk ends with
    /// a whole stream).
    pub fn with_batch(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
        self.rebuild_chunk = self.batch;
        self
    }

    /// The read connection (for queries in tests and tools).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The feed position: the last event rowid read.
    pub fn position(&self) -> Result<i64, ProjectionError> {
        position(&self.conn)
    }

    /// Reads and applies one batch: parked records first, then new rows.
    pub fn step(&mut self) -> Result<StepReport, ProjectionError> {
        // A look without the write lock first, so that idle polls never hold up writers.
        let start = position(&self.conn)?;
        if !has_work(&self.conn, start)? {
            return Ok(StepReport {
                position: start,
                ..StepReport::default()
            });
        }

        let lane = self.write_lane.clone();
        let _guard = lane.as_ref().map(|l| l.blocking_lock());
        let tx = Transaction::new(&mut self.conn, TransactionBehavior::Immediate)?;
        // Read under the write lock: rows read before another projector or a rebuild moved the
        // position and checkpoints, committed after, would set a position past rows that the
        // rebuild has not projected yet.
        let start = position(&tx)?;
        let mut records = read_parked(&tx)?;
        let parked_ids: Vec<i64> = records.iter().map(|r| r.id).collect();
        let new = read_after(&tx, start, self.batch)?;
        let end = new.last().map_or(start, |r| r.id);
        records.extend(new);
        if records.is_empty() {
            return Ok(StepReport {
                position: start,
                ..StepReport::default()
            });
        }
        let mut report = apply_records(&tx, records, &parked_ids, self.activity_retained)?;
        set_position(&tx, end)?;
        tx.commit()?;
        report.position = end;
        Ok(report)
    }

    /// Steps until no new row is left; returns the totals.
    pub fn catch_up(&mut self) -> Result<StepReport, ProjectionError> {
        let mut total = StepReport::default();
        loop {
            let before = position(&self.conn)?;
            let step = self.step()?;
            total.read += step.read;
            total.applied += step.applied;
            total.duplicates += step.duplicates;
            total.parked = step.parked;
            total.position = step.position;
            // Parked rows are re-read every step; only new rows mean more work, and a step
            // whose new rows were all parked may still have rows behind it.
            if step.position == before {
                return Ok(total);
            }
        }
    }

    /// Keeps the read models current until `stop` is set: steps while there is work, and
    /// sleeps `idle_poll` when there is none. Polling the table (rather than being told by the
    /// writer) also picks up events appended by other processes, such as the CLI. A failed step
    /// is logged and retried after `idle_poll`; it never ends the loop.
    pub fn run(
        &mut self,
        stop: &std::sync::atomic::AtomicBool,
        idle_poll: Duration,
        mut on_step: impl FnMut(&StepReport),
    ) {
        use std::sync::atomic::Ordering;
        while !stop.load(Ordering::Relaxed) {
            let before = position(&self.conn).ok();
            match self.step() {
                Ok(report) => {
                    on_step(&report);
                    // Idle only when no new row was read: parked rows are re-read every step,
                    // and a step whose new rows were all parked still has more behind it.
                    if before == Some(report.position) {
                        std::thread::sleep(idle_poll);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "projection step failed; retrying");
                    std::thread::sleep(idle_poll);
                }
            }
        }
    }

    /// Clears every read model and checkpoint, then projects the whole log again: the log as
    /// it was when they were cleared stream by stream (see `rebuild.rs`), then what was
    /// appended meanwhile by an ordinary catch-up.
    pub fn rebuild(&mut self) -> Result<StepReport, ProjectionError> {
        let pass = rebuild::run(self)?;
        let rest = self.catch_up()?;
        Ok(StepReport {
            read: pass.read + rest.read,
            applied: pass.applied + rest.applied,
            duplicates: pass.duplicates + rest.duplicates,
            // A catch-up re-reads every parked record, so it counts them all.
            parked: rest.parked,
            position: rest.position,
        })
    }
}

fn feed_value(conn: &Connection, name: &str) -> Result<Option<i64>, ProjectionError> {
    Ok(conn
        .prepare_cached("SELECT position FROM projection_feed WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

fn position(conn: &Connection) -> Result<i64, ProjectionError> {
    Ok(feed_value(conn, FEED)?.unwrap_or(0))
}

fn set_position(tx: &Transaction<'_>, position: i64) -> Result<(), ProjectionError> {
    tx.prepare_cached(
        "INSERT INTO projection_feed (name, position) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    )?
    .execute(params![FEED, position])?;
    Ok(())
}

fn has_work(conn: &Connection, after: i64) -> Result<bool, ProjectionError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM events WHERE rowid > ?1) \
         OR EXISTS (SELECT 1 FROM projection_parked)",
        [after],
        |r| r.get(0),
    )?)
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<FeedRecord<i64>> {
    Ok(FeedRecord {
        id: row.get(0)?,
        aggregate_type: row.get(1)?,
        aggregate_id: row.get(2)?,
        sequence: row.get(3)?,
        event_type: row.get(4)?,
        event_version: row.get(5)?,
        payload: row.get(6)?,
        metadata: row.get(7)?,
    })
}

fn read_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<FeedRecord<i64>>, ProjectionError> {
    let mut statement = conn.prepare_cached(
        "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
         FROM events WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![after, limit], row_to_record)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn read_parked(conn: &Connection) -> Result<Vec<FeedRecord<i64>>, ProjectionError> {
    let mut statement = conn.prepare_cached(
        "SELECT e.rowid, e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload, e.metadata \
         FROM projection_parked p JOIN events e ON e.rowid = p.event_rowid ORDER BY p.event_rowid",
    )?;
    let rows = statement.query_map([], row_to_record)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn checkpoint(
    tx: &Transaction<'_>,
    projection: &str,
    key: &StreamKey,
) -> Result<u64, ProjectionError> {
    let seq: Option<i64> = tx
        .prepare_cached(
            "SELECT sequence FROM projection_checkpoints \
             WHERE projection = ?1 AND aggregate_type = ?2 AND aggregate_id = ?3",
        )?
        .query_row(
            params![projection, key.aggregate_type, key.aggregate_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

fn min_checkpoint(tx: &Transaction<'_>, key: &StreamKey) -> Result<u64, ProjectionError> {
    let mut min = u64::MAX;
    for projection in PROJECTIONS {
        min = min.min(checkpoint(tx, projection, key)?);
    }
    Ok(min)
}

fn set_checkpoint(
    tx: &Transaction<'_>,
    projection: &str,
    key: &StreamKey,
    sequence: u64,
) -> Result<(), ProjectionError> {
    tx.prepare_cached(
        "INSERT INTO projection_checkpoints (projection, aggregate_type, aggregate_id, sequence) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET sequence = excluded.sequence",
    )?
    .execute(params![
        projection,
        key.aggregate_type,
        key.aggregate_id,
        i64::try_from(sequence).unwrap_or(i64::MAX)
    ])?;
    Ok(())
}

/// Runs `planner` against the stored checkpoints (each stream's lowest over the
/// projections), failing with the first checkpoint lookup that failed.
fn with_checkpoints<P>(
    tx: &Transaction<'_>,
    planner: impl FnOnce(&mut dyn FnMut(&StreamKey) -> u64) -> P,
) -> Result<P, ProjectionError> {
    let mut lookup_error = None;
    let planned = planner(&mut |key| match min_checkpoint(tx, key) {
        Ok(cp) => cp,
        Err(e) => {
            lookup_error.get_or_insert(e);
            // Skips everything of the stream: the plan is thrown away anyway.
            u64::MAX
        }
    });
    match lookup_error {
        Some(e) => Err(e),
        None => Ok(planned),
    }
}

/// Plans `records` against the checkpoints, then applies the plan (see [`apply_plan`]).
fn apply_records(
    tx: &Transaction<'_>,
    records: Vec<FeedRecord<i64>>,
    parked_ids: &[i64],
    activity_retained: i64,
) -> Result<StepReport, ProjectionError> {
    let read = records.len();
    let planned = with_checkpoints(tx, |checkpoint| plan(records, checkpoint))?;
    let mut report = apply_plan(
        tx,
        &planned,
        parked_ids,
        &HashMap::new(),
        Activity::Feed(activity_retained),
    )?;
    report.read = read;
    Ok(report)
}

/// Where the activity items of a transaction go.
#[derive(Debug)]
enum Activity<'a> {
    /// Into the feed, which is then trimmed to this many items.
    Feed(i64),
    /// Into a rebuild's selection of the newest items, written when its pass is over; the
    /// activity checkpoints move then, not in this transaction.
    Newest(&'a mut NewestItems),
}

/// Applies what `planned` says can be applied, parks what cannot be applied yet, releases the
/// `parked` rows that applied, and trims the activity feed (or hands its items to a rebuild,
/// see [`Activity`]). `written` holds events' audit log rows made ahead of time, by rowid
/// (what is missing is made here).
fn apply_plan(
    tx: &Transaction<'_>,
    planned: &Plan<i64>,
    parked_ids: &[i64],
    written: &HashMap<i64, LogRow>,
    mut activity: Activity<'_>,
) -> Result<StepReport, ProjectionError> {
    let floor = match activity {
        Activity::Feed(retained) => activity_floor(tx, retained)?,
        Activity::Newest(_) => None,
    };
    let mut applied = 0;
    for batch in &planned.batches {
        applied += batch.events.len();
        let newest = match &mut activity {
            Activity::Feed(_) => None,
            Activity::Newest(newest) => Some(&mut **newest),
        };
        apply_stream(tx, batch, floor.as_ref(), newest, written)?;
    }
    let failed: HashSet<i64> = planned.failures.iter().map(|f| f.id).collect();
    for failure in &planned.failures {
        park(tx, failure)?;
    }
    for id in parked_ids.iter().filter(|id| !failed.contains(id)) {
        tx.prepare_cached("DELETE FROM projection_parked WHERE event_rowid = ?1")?
            .execute([id])?;
    }
    if let Activity::Feed(retained) = activity {
        prune_activity(tx, retained)?;
    }
    if !planned.failures.is_empty() {
        tracing::warn!(
            parked = planned.failures.len(),
            "records parked; other streams go on"
        );
    }
    Ok(StepReport {
        read: 0,
        applied,
        duplicates: planned.duplicates,
        parked: planned.failures.len(),
        position: 0,
    })
}

fn park(tx: &Transaction<'_>, failure: &ItemFailure<i64>) -> Result<(), ProjectionError> {
    let at = now();
    tx.prepare_cached(
        "INSERT INTO projection_parked \
         (event_rowid, aggregate_type, aggregate_id, sequence, reason, attempts, first_failed_at, last_failed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6) \
         ON CONFLICT (event_rowid) DO UPDATE SET reason = excluded.reason, \
         attempts = attempts + 1, last_failed_at = excluded.last_failed_at",
    )?
    .execute(params![
        failure.id,
        failure.key.aggregate_type,
        failure.key.aggregate_id,
        failure.sequence,
        failure.reason.to_string(),
        at
    ])?;
    Ok(())
}

/// Where an activity item sorts: by event time, then stream and sequence (as the feed is
/// trimmed and indexed; `at` as stored, compared as SQLite compares text: byte by byte).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ActivityKey {
    at: String,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
}

impl ActivityKey {
    fn get(&self) -> (&str, &str, &str, i64) {
        (
            &self.at,
            &self.aggregate_type,
            &self.aggregate_id,
            self.sequence,
        )
    }
}

/// The oldest item the activity feed can still keep, when it holds `retained` items or more:
/// after the trim at the end of the transaction, the feed is the newest `retained` of what it
/// held and what was added, so an item older than the `retained`-th newest held now is
/// deleted again. Not writing it (and not serializing it) leaves the same feed.
fn activity_floor(
    tx: &Transaction<'_>,
    retained: i64,
) -> Result<Option<ActivityKey>, ProjectionError> {
    Ok(tx
        .prepare_cached(
            "SELECT at, aggregate_type, aggregate_id, sequence FROM view_activity \
             ORDER BY at DESC, aggregate_type DESC, aggregate_id DESC, sequence DESC \
             LIMIT 1 OFFSET ?1",
        )?
        .query_row([retained.saturating_sub(1)], |r| {
            Ok(ActivityKey {
                at: r.get(0)?,
                aggregate_type: r.get(1)?,
                aggregate_id: r.get(2)?,
                sequence: r.get(3)?,
            })
        })
        .optional()?)
}

/// A rebuild pass's newest activity items, at most `capacity`, with the events each stream
/// offered. Written and trimmed chunk after chunk, most items of a rebuild would be deleted
/// again a few chunks later; kept here, only the newest are written, once, by [`Self::write`].
#[derive(Debug)]
struct NewestItems {
    capacity: usize,
    /// The items (key and stored text), oldest on top.
    items: BinaryHeap<Reverse<(ActivityKey, String)>>,
    /// Per stream, the first and last sequence whose items were offered.
    offered: Vec<(StreamKey, u64, u64)>,
}

impl NewestItems {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            items: BinaryHeap::new(),
            offered: Vec::new(),
        }
    }

    /// Whether an item with this key would be kept (so it is worth making).
    fn takes(&self, key: (&str, &str, &str, i64)) -> bool {
        self.items.len() < self.capacity
            || self
                .items
                .peek()
                .is_some_and(|Reverse((oldest, _))| key > oldest.get())
    }

    fn offer(&mut self, key: ActivityKey, item: String) {
        if self.items.len() >= self.capacity {
            self.items.pop();
        }
        self.items.push(Reverse((key, item)));
    }

    fn offered(&mut self, stream: &StreamKey, first: u64, last: u64) {
        self.offered.push((stream.clone(), first, last));
    }

    /// Puts the items in the feed and moves the streams' activity checkpoints, as one batch of
    /// all the events offered would: what another projector applied meanwhile (its items are in
    /// the feed already, its checkpoint further on) is skipped, and the feed is trimmed. An
    /// item of the newest `capacity` offered is in the newest `retained` of everything applied
    /// or it would not be: an item left out had `capacity` newer ones offered.
    fn write(self, tx: &Transaction<'_>, retained: i64) -> Result<(), ProjectionError> {
        let floor = activity_floor(tx, retained)?;
        let mut items: Vec<(ActivityKey, String)> =
            self.items.into_iter().map(|Reverse(item)| item).collect();
        items.sort_by(|(a, _), (b, _)| {
            (&a.aggregate_type, &a.aggregate_id, a.sequence).cmp(&(
                &b.aggregate_type,
                &b.aggregate_id,
                b.sequence,
            ))
        });
        let mut insert = tx.prepare_cached(INSERT_ITEM)?;
        for (stream, first, last) in &self.offered {
            let at = checkpoint(tx, "activity", stream)?;
            if at >= *last {
                continue;
            }
            if at + 1 < *first {
                return Err(ProjectionError::Behind {
                    projection: "activity",
                    stream: format!("{}/{}", stream.aggregate_type, stream.aggregate_id),
                    at,
                    starts: *first,
                });
            }
            let from = items.partition_point(|(key, _)| {
                (key.aggregate_type.as_str(), key.aggregate_id.as_str())
                    < (stream.aggregate_type.as_str(), stream.aggregate_id.as_str())
            });
            let after = i64::try_from(at).unwrap_or(i64::MAX);
            for (key, item) in items[from..].iter().take_while(|(key, _)| {
                key.aggregate_type == stream.aggregate_type
                    && key.aggregate_id == stream.aggregate_id
            }) {
                if key.sequence > after && floor.as_ref().is_none_or(|floor| key >= floor) {
                    insert.execute(params![
                        key.aggregate_type,
                        key.aggregate_id,
                        key.sequence,
                        key.at,
                        item,
                    ])?;
                }
            }
            set_checkpoint(tx, "activity", stream, *last)?;
        }
        prune_activity(tx, retained)
    }
}

/// Keeps the newest `retained` items by (event time, stream, sequence). That order does not
/// depend on how the log was batched, and trimming to the newest N after every batch keeps the
/// newest N of everything seen, so a rebuild keeps exactly the same items. (With `retained`
/// items or fewer, the subquery finds no row, and nothing compares below no row.)
fn prune_activity(tx: &Transaction<'_>, retained: i64) -> Result<(), ProjectionError> {
    tx.prepare_cached(
        "DELETE FROM view_activity WHERE (at, aggregate_type, aggregate_id, sequence) <= \
         (SELECT at, aggregate_type, aggregate_id, sequence FROM view_activity \
          ORDER BY at DESC, aggregate_type DESC, aggregate_id DESC, sequence DESC \
          LIMIT 1 OFFSET ?1)",
    )?
    .execute([retained])?;
    Ok(())
}

fn text<T: serde::Serialize>(value: &T) -> Result<String, ProjectionError> {
    Ok(serde_json::to_string(value)?)
}

/// The serde name of an enum value (`RUNNING`, `RECOVERED`), as stored in indexed columns.
fn serde_name<T: serde::Serialize>(value: &T) -> Result<String, ProjectionError> {
    Ok(match serde_json::to_value(value)? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

/// Applies one stream's contiguous events to every projection still behind them.
///
/// `activity_floor` is the oldest activity item that can still be kept (see
/// [`activity_floor`]): items older than it are not written, as the trim would delete them.
/// With `newest`, activity items go there instead (see [`Activity::Newest`]). `written` holds
/// audit log rows made ahead of time (see [`apply_plan`]).
fn apply_stream(
    tx: &Transaction<'_>,
    batch: &StreamBatch<i64>,
    activity_floor: Option<&ActivityKey>,
    mut newest: Option<&mut NewestItems>,
    written: &HashMap<i64, LogRow>,
) -> Result<(), ProjectionError> {
    let key = &batch.key;
    // Per projection, the events it has not applied yet (they must follow its checkpoint).
    let mut pending: [&[(i64, Envelope)]; 4] = [&[]; 4];
    for (i, projection) in PROJECTIONS.into_iter().enumerate() {
        let at = checkpoint(tx, projection, key)?;
        let from = batch.events.partition_point(|(_, e)| e.sequence <= at);
        let rest = &batch.events[from..];
        if let Some((_, first)) = rest.first()
            && first.sequence != at + 1
        {
            return Err(ProjectionError::Behind {
                projection,
                stream: format!("{}/{}", key.aggregate_type, key.aggregate_id),
                at,
                starts: first.sequence,
            });
        }
        pending[i] = rest;
    }
    let [experiments, results, audit_log, activity] = pending;
    project_experiments(tx, key, experiments)?;
    project_results(tx, key, results)?;
    project_log(
        tx,
        audit_log,
        activity,
        activity_floor,
        newest.as_deref_mut(),
        written,
    )?;
    for (projection, events) in PROJECTIONS.into_iter().zip(pending) {
        let (Some((_, first)), Some((_, last))) = (events.first(), events.last()) else {
            continue;
        };
        match &mut newest {
            Some(newest) if projection == "activity" => {
                newest.offered(key, first.sequence, last.sequence);
            }
            _ => set_checkpoint(tx, projection, key, last.sequence)?,
        }
    }
    Ok(())
}

fn experiment_events(
    pending: &[(i64, Envelope)],
) -> impl Iterator<Item = (&Envelope, &domain::experiment::ExperimentEvent)> {
    pending.iter().filter_map(|(_, e)| match &e.event {
        AnyEvent::Experiment(ev) => Some((e, ev)),
        AnyEvent::Platform(_) => None,
    })
}

fn project_experiments(
    tx: &Transaction<'_>,
    key: &StreamKey,
    pending: &[(i64, Envelope)],
) -> Result<(), ProjectionError> {
    let mut events = experiment_events(pending).peekable();
    if events.peek().is_none() {
        return Ok(());
    }
    let stored: Option<String> = tx
        .prepare_cached("SELECT record FROM view_experiments WHERE id = ?1")?
        .query_row([&key.aggregate_id], |r| r.get(0))
        .optional()?;
    let mut record: Option<ExperimentRecord> =
        stored.map(|s| serde_json::from_str(&s)).transpose()?;
    for (envelope, event) in events {
        record = Some(ExperimentRecord::apply(record, envelope, event));
    }
    let Some(record) = record else {
        return Ok(());
    };
    let Some(summary) = record.summary() else {
        return Ok(());
    };
    tx.prepare_cached(
        "INSERT INTO view_experiments (id, name, target, failure_type, dry_run, status, archived, outcome, \
         recovery_ms, created_at, updated_at, version, record) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, status = excluded.status, \
         archived = excluded.archived, outcome = excluded.outcome, recovery_ms = excluded.recovery_ms, \
         updated_at = excluded.updated_at, version = excluded.version, record = excluded.record",
    )?
    .execute(params![
        summary.id,
        summary.name,
        summary.target,
        summary.failure_type,
        summary.dry_run,
        serde_name(&summary.status)?,
        summary.archived,
        summary.outcome.as_ref().map(serde_name).transpose()?,
        summary.recovery_ms.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
        summary.created_at.to_string(),
        summary.updated_at.to_string(),
        i64::try_from(summary.version).unwrap_or(i64::MAX),
        text(&record)?,
    ])?;
    Ok(())
}

fn project_results(
    tx: &Transaction<'_>,
    key: &StreamKey,
    pending: &[(i64, Envelope)],
) -> Result<(), ProjectionError> {
    let mut events = experiment_events(pending).peekable();
    if events.peek().is_none() {
        return Ok(());
    }
    let stored: Option<String> = tx
        .prepare_cached("SELECT state FROM view_run_trackers WHERE experiment_id = ?1")?
        .query_row([&key.aggregate_id], |r| r.get(0))
        .optional()?;
    let mut tracker: RunTracker = stored
        .map(|s| serde_json::from_str(&s))
        .transpose()?
        .unwrap_or_default();
    for (_, event) in events {
        if let Some(result) = tracker.apply(&key.aggregate_id, event) {
            tx.prepare_cached(
                "INSERT INTO view_results (experiment_id, target, failure_type, outcome, recovery_ms, ended_at, day, result) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                result.experiment_id,
                result.target,
                result.failure_type,
                serde_name(&result.outcome)?,
                result.recovery_ms.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
                result.ended_at.to_string(),
                result.day,
                text(&result)?,
            ])?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO view_run_trackers (experiment_id, state) VALUES (?1, ?2) \
         ON CONFLICT (experiment_id) DO UPDATE SET state = excluded.state",
    )?
    .execute(params![key.aggregate_id, text(&tracker)?])?;
    Ok(())
}

/// Audit log rows written by one statement (a stream's rows go in groups of this many).
const AUDIT_ROWS_PER_INSERT: usize = 16;

/// The statement inserting `rows` audit log rows.
fn insert_audit_rows(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO view_audit_log (aggregate_type, aggregate_id, sequence, event_type, actor, recorded_at, at, action) VALUES ",
    );
    for row in 0..rows {
        let n = row * 8;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6,
            n + 7,
            n + 8
        ));
    }
    sql
}

/// What the audit log and the activity feed store of one event that takes describing: its
/// type and description, and its time as both store it. A pure function of the event, so it
/// may be made ahead of time, on another thread (the rebuild's reader does).
#[derive(Debug)]
struct LogRow {
    event_type: String,
    action: String,
    at: String,
}

impl LogRow {
    fn of(envelope: &Envelope) -> Self {
        Self {
            event_type: envelope.event_type(),
            action: envelope.describe(),
            at: envelope.at().to_string(),
        }
    }
}

/// The audit log and the activity feed, in one pass over the stream's events: the audit log
/// gets `audit_log` (the events after its checkpoint), the feed `activity` (after its own),
/// normally the same events, so each is described once for both. An event's rows are taken
/// from `written` when there, made here otherwise.
fn project_log(
    tx: &Transaction<'_>,
    audit_log: &[(i64, Envelope)],
    activity: &[(i64, Envelope)],
    activity_floor: Option<&ActivityKey>,
    mut newest: Option<&mut NewestItems>,
    written: &HashMap<i64, LogRow>,
) -> Result<(), ProjectionError> {
    let mut entries: Vec<(&Envelope, i64, &str, &str, &str)> = Vec::with_capacity(audit_log.len());
    let mut made_rows = Vec::new();
    let mut insert_item = tx.prepare_cached(INSERT_ITEM)?;
    let audit_from = audit_log.first().map_or(u64::MAX, |(_, e)| e.sequence);
    let activity_from = activity.first().map_or(u64::MAX, |(_, e)| e.sequence);
    // The longer of the two lists holds the other's events (both end at the batch's end).
    let events = if audit_log.len() >= activity.len() {
        audit_log
    } else {
        activity
    };
    if events.iter().any(|(rowid, _)| !written.contains_key(rowid)) {
        made_rows = events.iter().map(|(_, e)| LogRow::of(e)).collect();
    }
    for (i, (rowid, e)) in events.iter().enumerate() {
        let row = match written.get(rowid) {
            Some(row) => row,
            None => &made_rows[i],
        };
        let sequence = i64::try_from(e.sequence).unwrap_or(i64::MAX);
        let key = (
            row.at.as_str(),
            e.aggregate_type.as_str(),
            e.aggregate_id.as_str(),
            sequence,
        );
        if e.sequence >= activity_from {
            match newest.as_deref_mut() {
                Some(newest) if newest.takes(key) => {
                    let item = text(&ActivityItem::described(e, row.action.clone()))?;
                    let key = ActivityKey {
                        at: row.at.clone(),
                        aggregate_type: e.aggregate_type.clone(),
                        aggregate_id: e.aggregate_id.clone(),
                        sequence,
                    };
                    newest.offer(key, item);
                }
                Some(_) => {}
                None if activity_floor.is_none_or(|floor| key >= floor.get()) => {
                    let item = ActivityItem::described(e, row.action.clone());
                    insert_item.execute(params![
                        e.aggregate_type,
                        e.aggregate_id,
                        sequence,
                        row.at,
                        text(&item)?,
                    ])?;
                }
                None => {}
            }
        }
        if e.sequence >= audit_from {
            entries.push((e, sequence, &row.event_type, &row.at, &row.action));
        }
    }
    for group in entries.chunks(AUDIT_ROWS_PER_INSERT) {
        let mut insert = tx.prepare_cached(&insert_audit_rows(group.len()))?;
        for (i, (e, sequence, event_type, at, action)) in group.iter().enumerate() {
            let n = i * 8;
            insert.raw_bind_parameter(n + 1, &e.aggregate_type)?;
            insert.raw_bind_parameter(n + 2, &e.aggregate_id)?;
            insert.raw_bind_parameter(n + 3, sequence)?;
            insert.raw_bind_parameter(n + 4, event_type)?;
            insert.raw_bind_parameter(n + 5, &e.metadata.actor)?;
            insert.raw_bind_parameter(n + 6, &e.metadata.recorded_at)?;
            insert.raw_bind_parameter(n + 7, at)?;
            insert.raw_bind_parameter(n + 8, action)?;
        }
        insert.raw_execute()?;
    }
    Ok(())
}
