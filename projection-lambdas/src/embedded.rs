//! Embedded read models: SQLite tables beside the events, kept up to date by a catch-up reader.
//!
//! The [`Projector`] tails the `events` table in insertion order (`rowid`), from a durable
//! position, and applies each batch in one transaction that also advances, per projection and
//! stream, the last applied sequence. Killed at any point, it resumes from the last committed
//! position and applies nothing twice: a re-read record is at or below its checkpoint. Records
//! that cannot be applied yet (a poison record, or anything behind one in its stream) are
//! parked in `projection_parked`, visible and retried on every step, while other streams go on.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::Timestamp;
use domain::views::activity::ActivityItem;
use domain::views::audit_log::AuditEntry;
use domain::views::experiments::ExperimentRecord;
use domain::views::results::RunTracker;
use domain::views::{AnyEvent, Envelope};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::plan::{FeedRecord, ItemFailure, StreamBatch, StreamKey, plan};

/// The projections kept in embedded mode, by checkpoint name.
pub const PROJECTIONS: [&str; 4] = ["experiments", "results", "audit_log", "activity"];

/// Name of the catch-up reader's position.
const FEED: &str = "events";

/// How often a serving projector looks for new events when it has nothing to do.
pub const IDLE_POLL: Duration = Duration::from_millis(10);

/// Activity items kept by default: the newest by event time (the audit log keeps everything).
pub const ACTIVITY_RETAINED: i64 = 10_000;

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
  entry          TEXT    NOT NULL,
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
    write_lane: Option<Arc<tokio::sync::Mutex<()>>>,
    batch: usize,
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
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
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
            write_lane,
            batch: 1_000,
            activity_retained: ACTIVITY_RETAINED,
        })
    }

    /// Sets how many activity items are kept (at least 1).
    pub fn with_activity_retained(mut self, items: i64) -> Self {
        self.activity_retained = items.max(1);
        self
    }

    /// Sets the most rows read per step.
    pub fn with_batch(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
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
        let read = records.len();
        let mut lookup_error = None;
        let planned = plan(records, |key| match min_checkpoint(&tx, key) {
            Ok(cp) => cp,
            Err(e) => {
                lookup_error.get_or_insert(e);
                u64::MAX
            }
        });
        if let Some(e) = lookup_error {
            return Err(e);
        }
        let mut applied = 0;
        for batch in &planned.batches {
            applied += batch.events.len();
            apply_stream(&tx, batch)?;
        }
        let failed: HashSet<i64> = planned.failures.iter().map(|f| f.id).collect();
        for failure in &planned.failures {
            park(&tx, failure)?;
        }
        for id in parked_ids.iter().filter(|id| !failed.contains(id)) {
            tx.execute("DELETE FROM projection_parked WHERE event_rowid = ?1", [id])?;
        }
        tx.execute(
            "INSERT INTO projection_feed (name, position) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            params![FEED, end],
        )?;
        prune_activity(&tx, self.activity_retained)?;
        tx.commit()?;
        if !planned.failures.is_empty() {
            tracing::warn!(
                parked = planned.failures.len(),
                "records parked; other streams go on"
            );
        }
        Ok(StepReport {
            read,
            applied,
            duplicates: planned.duplicates,
            parked: planned.failures.len(),
            position: end,
        })
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

    /// Clears every read model and checkpoint, then projects the whole log again.
    pub fn rebuild(&mut self) -> Result<StepReport, ProjectionError> {
        {
            let lane = self.write_lane.clone();
            let _guard = lane.as_ref().map(|l| l.blocking_lock());
            let tx = Transaction::new(&mut self.conn, TransactionBehavior::Immediate)?;
            tx.execute_batch(
                "DELETE FROM projection_checkpoints; DELETE FROM projection_feed; \
                 DELETE FROM projection_parked; DELETE FROM view_experiments; \
                 DELETE FROM view_run_trackers; DELETE FROM view_results; \
                 DELETE FROM view_audit_log; DELETE FROM view_activity;",
            )?;
            tx.commit()?;
        }
        self.catch_up()
    }
}

fn position(conn: &Connection) -> Result<i64, ProjectionError> {
    Ok(conn
        .query_row(
            "SELECT position FROM projection_feed WHERE name = ?1",
            [FEED],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
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

/// Keeps the newest `retained` items by (event time, stream, sequence). That order does not
/// depend on how the log was batched, and trimming to the newest N after every batch keeps the
/// newest N of everything seen, so a rebuild keeps exactly the same items.
fn prune_activity(tx: &Transaction<'_>, retained: i64) -> Result<(), ProjectionError> {
    let count: i64 = tx.query_row("SELECT count(*) FROM view_activity", [], |r| r.get(0))?;
    if count <= retained {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM view_activity WHERE (at, aggregate_type, aggregate_id, sequence) <= \
         (SELECT at, aggregate_type, aggregate_id, sequence FROM view_activity \
          ORDER BY at DESC, aggregate_type DESC, aggregate_id DESC, sequence DESC \
          LIMIT 1 OFFSET ?1)",
        [retained],
    )?;
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
fn apply_stream(tx: &Transaction<'_>, batch: &StreamBatch<i64>) -> Result<(), ProjectionError> {
    let key = &batch.key;
    for projection in PROJECTIONS {
        let at = checkpoint(tx, projection, key)?;
        let pending: Vec<&Envelope> = batch
            .events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.sequence > at)
            .collect();
        let Some(first) = pending.first() else {
            continue;
        };
        if first.sequence != at + 1 {
            return Err(ProjectionError::Behind {
                projection,
                stream: format!("{}/{}", key.aggregate_type, key.aggregate_id),
                at,
                starts: first.sequence,
            });
        }
        match projection {
            "experiments" => project_experiments(tx, key, &pending)?,
            "results" => project_results(tx, key, &pending)?,
            "audit_log" => project_audit_log(tx, &pending)?,
            _ => project_activity(tx, &pending)?,
        }
        let last = pending.last().map_or(at, |e| e.sequence);
        set_checkpoint(tx, projection, key, last)?;
    }
    Ok(())
}

fn experiment_events<'a>(
    pending: &'a [&'a Envelope],
) -> impl Iterator<Item = (&'a Envelope, &'a domain::experiment::ExperimentEvent)> {
    pending.iter().filter_map(|e| match &e.event {
        AnyEvent::Experiment(ev) => Some((*e, ev)),
        AnyEvent::Platform(_) => None,
    })
}

fn project_experiments(
    tx: &Transaction<'_>,
    key: &StreamKey,
    pending: &[&Envelope],
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
    pending: &[&Envelope],
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

fn project_audit_log(tx: &Transaction<'_>, pending: &[&Envelope]) -> Result<(), ProjectionError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO view_audit_log (aggregate_type, aggregate_id, sequence, event_type, actor, recorded_at, entry) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for envelope in pending {
        let entry = AuditEntry::from_envelope(envelope);
        insert.execute(params![
            entry.aggregate_type,
            entry.aggregate_id,
            i64::try_from(entry.sequence).unwrap_or(i64::MAX),
            entry.event_type,
            entry.actor,
            entry.recorded_at,
            text(&entry)?,
        ])?;
    }
    Ok(())
}

fn project_activity(tx: &Transaction<'_>, pending: &[&Envelope]) -> Result<(), ProjectionError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO view_activity (aggregate_type, aggregate_id, sequence, at, item) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for envelope in pending {
        let item = ActivityItem::from_envelope(envelope);
        insert.execute(params![
            item.aggregate_type,
            item.aggregate_id,
            i64::try_from(item.sequence).unwrap_or(i64::MAX),
            item.at.to_string(),
            text(&item)?,
        ])?;
    }
    Ok(())
}
