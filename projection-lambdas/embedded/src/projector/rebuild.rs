//! The rebuild pass: every stream of the log as it was when the read models were cleared,
//! projected stream by stream, with the reading, the writing and the WAL checkpoints each on
//! its own thread.
//!
//! Why streams and not log order: in log order, a batch of a few thousand rows touches every
//! stream that was active meanwhile, and each of those pays four checkpoint reads and writes
//! and a load and store of its experiment record and run tracker, batch after batch. Read in
//! primary-key order (`aggregate_type, aggregate_id, sequence`), a stream arrives whole and
//! pays that once. Only rows up to `head`, the last rowid when the read models were cleared,
//! are read; what is appended meanwhile is left to an ordinary catch-up afterwards.
//!
//! Why three threads: the writer (the projector's own connection) is the bottleneck, since
//! SQLite admits one writer. The reader decodes and describes each record
//! (pure work, see [`LogRow`]) on its own read-only connection, a chunk ahead. Committing
//! leaves WAL pages to copy back into the database file, with an fsync: the checkpointer does
//! that behind the writer (the writer's own automatic checkpoints are off meanwhile), and a
//! last time before the pass returns, so the WAL is left as ordinary commits leave it.
//!
//! The activity feed keeps only the newest items, so most items of a whole log would be
//! written, then trimmed again a few chunks later: the pass keeps the newest in memory instead
//! ([`NewestItems`]) and writes them, with the feed's checkpoints, in its last transaction.
//!
//! What guarantees nothing is lost or applied twice is unchanged: every chunk is planned by
//! [`plan_decoded`] against the checkpoints and applied in one IMMEDIATE transaction with
//! them, exactly as a step applies a batch. The position stays at zero until every stream up
//! to `head` is done, so a rebuild killed part way is finished by any later catch-up (what
//! it had applied is skipped as duplicates), and a serving projector stepping meanwhile only
//! applies what the checkpoints have not seen. A rebuild that finds another one has cleared
//! the read models since it began stops and leaves the position to that one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::time::{Duration, Instant};

use domain::views::{Envelope, RawRecord};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior, params};

use super::{
    Activity, FEED, LogRow, NewestItems, ProjectionError, Projector, REBUILDS, StepReport,
    apply_plan, feed_value, position, set_position, with_checkpoints,
};
use projection_lambdas::plan::{Decoded, Plan, StreamKey, plan_decoded};

/// Least time between two of the checkpointer's checkpoints: each ends with an fsync, which a
/// checkpoint after every commit of a rebuild in small chunks would pay far too often.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);

/// Most activity items a rebuild keeps in memory (the newest of the pass, written when it is
/// over, see [`NewestItems`]); a feed that retains more is written and trimmed chunk by chunk.
const NEWEST_IN_MEMORY: usize = 100_000;

/// Where the reader is in the log's primary-key order: after this record.
#[derive(Debug)]
struct Cursor {
    aggregate_type: String,
    aggregate_id: String,
    /// -1 before the first record (stored sequences are at least 0).
    sequence: i64,
}

/// Records read and decoded by the reader, whole streams, with their audit log rows.
#[derive(Debug, Default)]
struct Chunk {
    streams: BTreeMap<StreamKey, Vec<Decoded<i64>>>,
    written: HashMap<i64, LogRow>,
    read: usize,
}

/// What the reader sends: a chunk, the end of the log (`None`), or why it stopped.
type Read = Result<Option<Chunk>, ProjectionError>;

/// A chunk once applied, sent back to the reader to be dropped there (see [`write()`]).
type Spent = (Plan<i64>, HashMap<i64, LogRow>);

/// Clears every read model and checkpoint, then projects every stream up to the log's last
/// rowid at that moment, and moves the position there (see the module docs).
pub(super) fn run(projector: &mut Projector) -> Result<StepReport, ProjectionError> {
    let lane = projector.write_lane.clone();
    let (generation, head) = {
        let _guard = lane.as_ref().map(|l| l.blocking_lock());
        let tx = Transaction::new(&mut projector.conn, TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "DELETE FROM projection_checkpoints; DELETE FROM projection_parked; \
             DELETE FROM view_experiments; DELETE FROM view_run_trackers; \
             DELETE FROM view_results; DELETE FROM view_audit_log; DELETE FROM view_activity;",
        )?;
        tx.execute("DELETE FROM projection_feed WHERE name = ?1", [FEED])?;
        let generation: i64 = tx.query_row(
            "INSERT INTO projection_feed (name, position) VALUES (?1, 1) \
             ON CONFLICT (name) DO UPDATE SET position = position + 1 RETURNING position",
            [REBUILDS],
            |r| r.get(0),
        )?;
        let head: i64 = tx.query_row("SELECT coalesce(max(rowid), 0) FROM events", [], |r| {
            r.get(0)
        })?;
        tx.commit()?;
        (generation, head)
    };

    // The file SQLite opened (absolute), whatever became of the path it was opened by.
    let path = projector
        .conn
        .path()
        .map_or_else(|| projector.path.clone(), PathBuf::from);
    let path = path.as_path();
    let batch = projector.rebuild_chunk;
    let autocheckpoint: i64 =
        projector
            .conn
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?;
    let pass = (|| {
        projector
            .conn
            .pragma_update(None, "wal_autocheckpoint", 0)?;
        std::thread::scope(|scope| {
            let (chunks_out, chunks) = sync_channel(1);
            let (spent, spent_in) = channel();
            let (commits, committed) = channel();
            std::thread::Builder::new()
                .name("rebuild-reader".into())
                .spawn_scoped(scope, move || read(path, head, batch, chunks_out, spent_in))?;
            std::thread::Builder::new()
                .name("rebuild-checkpointer".into())
                .spawn_scoped(scope, move || checkpoint_behind(path, committed))?;
            // Returning drops `chunks`, `spent` and `commits`: the reader stops at its next
            // chunk, the checkpointer after a last checkpoint, and the scope waits for both.
            write(projector, generation, head, &chunks, &spent, &commits)
        })
    })();
    let restored = projector
        .conn
        .pragma_update(None, "wal_autocheckpoint", autocheckpoint);
    let pass = pass?;
    restored?;
    Ok(pass)
}

/// The writer: applies chunks as they come, each in one transaction, then writes the newest
/// activity items and moves the position.
fn write(
    projector: &mut Projector,
    generation: i64,
    head: i64,
    chunks: &Receiver<Read>,
    spent: &Sender<Spent>,
    commits: &Sender<()>,
) -> Result<StepReport, ProjectionError> {
    let lane = projector.write_lane.clone();
    let retained = projector.activity_retained;
    let mut newest = usize::try_from(retained)
        .ok()
        .filter(|n| *n <= NEWEST_IN_MEMORY)
        .map(NewestItems::new);
    let mut total = StepReport::default();
    loop {
        // A reader that vanished without saying it reached the end (it cannot, short of a
        // panic, which the scope passes on) leaves the position alone: a catch-up finishes.
        let Ok(received) = chunks.recv() else {
            return Ok(total);
        };
        let chunk = received?;
        let _guard = lane.as_ref().map(|l| l.blocking_lock());
        let tx = Transaction::new(&mut projector.conn, TransactionBehavior::Immediate)?;
        // Another rebuild cleared everything since: it owns the read models now, and this one
        // must not move the position (or activity checkpoints) for it.
        if feed_value(&tx, REBUILDS)? != Some(generation) {
            return Ok(total);
        }
        let Some(chunk) = chunk else {
            if let Some(newest) = newest {
                newest.write(&tx, retained)?;
            }
            let end = position(&tx)?.max(head);
            set_position(&tx, end)?;
            tx.commit()?;
            total.position = end;
            return Ok(total);
        };
        let read = chunk.read;
        let planned = with_checkpoints(&tx, |checkpoint| plan_decoded(chunk.streams, checkpoint))?;
        let activity = match newest.as_mut() {
            Some(newest) => Activity::Newest(newest),
            None => Activity::Feed(retained),
        };
        let report = apply_plan(&tx, &planned, &[], &chunk.written, activity)?;
        tx.commit()?;
        // Freed where it was allocated: glibc's malloc frees a block of another thread's arena
        // under that arena's lock, which the reader, allocating all the while, contends for.
        let _ = spent.send((planned, chunk.written));
        // The checkpointer may have stopped (it logged why); commits go on regardless.
        let _ = commits.send(());
        total.read += read;
        total.applied += report.applied;
        total.duplicates += report.duplicates;
        total.parked += report.parked;
    }
}

/// The reader: sends chunks of about `batch` records, whole streams, up to `head`, then the
/// end (or why it could not go on), and drops what the writer has done with. Stops early
/// when the writer has stopped listening.
fn read(path: &Path, head: i64, batch: usize, out: SyncSender<Read>, spent: Receiver<Spent>) {
    let reading = || -> Result<(), ProjectionError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mut after = Cursor {
            aggregate_type: String::new(),
            aggregate_id: String::new(),
            sequence: -1,
        };
        loop {
            while let Ok(chunk) = spent.try_recv() {
                drop(chunk);
            }
            let chunk = read_chunk(&conn, &mut after, head, batch)?;
            let done = chunk.read == 0;
            let message = if done { None } else { Some(chunk) };
            if out.send(Ok(message)).is_err() || done {
                return Ok(());
            }
        }
    };
    if let Err(e) = reading() {
        // The writer may be gone already; then nobody needs to know.
        let _ = out.send(Err(e));
    }
}

/// Up to `limit` records after `after` in primary-key order among rows up to `head`, then the
/// rest of the last stream read, so that a stream is never split between two chunks (a chunk
/// plans like a batch holding the whole stream, failures included). Moves `after` on.
fn read_chunk(
    conn: &Connection,
    after: &mut Cursor,
    head: i64,
    limit: usize,
) -> Result<Chunk, ProjectionError> {
    let mut chunk = Chunk::default();
    let mut next = conn.prepare_cached(
        "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
         FROM events WHERE (aggregate_type, aggregate_id, sequence) > (?1, ?2, ?3) AND rowid <= ?4 \
         ORDER BY aggregate_type, aggregate_id, sequence LIMIT ?5",
    )?;
    let max = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = next.query(params![
        after.aggregate_type,
        after.aggregate_id,
        after.sequence,
        head,
        max
    ])?;
    let mut stream: Option<(StreamKey, Vec<Decoded<i64>>)> = None;
    while let Some(row) = rows.next()? {
        prepare(row, &mut stream, &mut chunk)?;
    }
    if chunk.read >= limit
        && let Some((key, records)) = &stream
        && let Some(last) = records.last()
    {
        let (aggregate_type, aggregate_id, sequence) = (
            key.aggregate_type.clone(),
            key.aggregate_id.clone(),
            last.sequence,
        );
        let mut rest = conn.prepare_cached(
            "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
             FROM events WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND sequence > ?3 AND rowid <= ?4 \
             ORDER BY sequence",
        )?;
        let mut rows = rest.query(params![aggregate_type, aggregate_id, sequence, head])?;
        while let Some(row) = rows.next()? {
            prepare(row, &mut stream, &mut chunk)?;
        }
    }
    if let Some((key, records)) = stream {
        if let Some(last) = records.last() {
            after.aggregate_type.clone_from(&key.aggregate_type);
            after.aggregate_id.clone_from(&key.aggregate_id);
            after.sequence = last.sequence;
        }
        chunk.streams.insert(key, records);
    }
    Ok(chunk)
}

/// Decodes one row into `stream` (the stream being read; a row of another one files it into
/// the chunk first) and, when it decodes, makes its audit log rows.
fn prepare(
    row: &rusqlite::Row<'_>,
    stream: &mut Option<(StreamKey, Vec<Decoded<i64>>)>,
    chunk: &mut Chunk,
) -> Result<(), ProjectionError> {
    let id: i64 = row.get(0)?;
    let raw = RawRecord {
        aggregate_type: text_at(row, 1)?,
        aggregate_id: text_at(row, 2)?,
        sequence: row.get(3)?,
        event_type: text_at(row, 4)?,
        event_version: text_at(row, 5)?,
        payload: text_at(row, 6)?,
        metadata: text_at(row, 7)?,
    };
    let same = stream.as_ref().is_some_and(|(key, _)| {
        key.aggregate_type == raw.aggregate_type && key.aggregate_id == raw.aggregate_id
    });
    if !same {
        let key = StreamKey {
            aggregate_type: raw.aggregate_type.to_owned(),
            aggregate_id: raw.aggregate_id.to_owned(),
        };
        if let Some((key, records)) = stream.replace((key, Vec::new())) {
            chunk.streams.insert(key, records);
        }
    }
    let event = Envelope::decode(raw);
    if let Ok(envelope) = &event {
        chunk.written.insert(id, LogRow::of(envelope));
    }
    if let Some((_, records)) = stream {
        records.push(Decoded {
            id,
            sequence: raw.sequence,
            event,
        });
    }
    chunk.read += 1;
    Ok(())
}

/// A text column, borrowed from the row (no copy of payloads that are decoded at once).
fn text_at<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(column)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The checkpointer: while commits come, copies the WAL back into the database file at most
/// every [`CHECKPOINT_INTERVAL`] (PASSIVE: it never blocks a reader or a writer), and once
/// more when the writer is done. A checkpoint that fails is logged and left to the next one,
/// or to SQLite's automatic checkpoints.
fn checkpoint_behind(path: &Path, committed: Receiver<()>) {
    let conn = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "rebuild checkpointer could not open the store");
            return;
        }
    };
    let checkpoint = || {
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!(error = %e, "rebuild checkpoint failed");
        }
    };
    let mut last = Instant::now();
    'commits: while committed.recv().is_ok() {
        // Commits made until the interval is over are all copied by one checkpoint.
        while let Some(left) = (last + CHECKPOINT_INTERVAL).checked_duration_since(Instant::now()) {
            match committed.recv_timeout(left) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break 'commits,
            }
        }
        checkpoint();
        last = Instant::now();
    }
    checkpoint();
}
