//! `chaos audit ...`: what an auditor runs against the log without trusting the running system.
//!
//! - `verify`: every stream's chain and sequence over the embedded store, a DynamoDB `Events`
//!   table or an export file; optionally against an earlier digest; and, on the embedded
//!   store, the audit-log read model against the log.
//! - `export`: the log as JSON Lines, byte-exact (`domain::audit::export`), and a CSV summary.
//! - `digest`: the chain heads of a verified log, for keeping elsewhere.
//! - `replay`: one stream's state at an instant, folded from its events.
//!
//! The API's `auditChain` query checks the chain here too ([`check_chain`]), of the store or
//! table the server runs on.
//!
//! Everything here only reads: the store through its own read-only connection, the table
//! through `Scan`/`Query`, files as given. The checks themselves are `domain::audit`'s; this
//! module reads rows, spreads the work over threads and reports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use command_lambdas::sqlite::{OpenError, OpenMode, open, stored_texts, verify_file};
use domain::Timestamp;
use domain::audit::digest::{self, Digest, DigestCheck, DigestError};
use domain::audit::export;
use domain::audit::replay::{self, ReplayError, Replayed};
use domain::audit::{
    ChainVerifier, Fault, FaultKind, OwnedRow, StoredRow, VerifyReport, sort_streams,
};
use domain::provenance::EventMetadata;
use domain::views::audit_log::AuditEntry;
use domain::views::{Envelope, RawRecord};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Where the log is read from (default: the embedded store given by `--db`).
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Read a DynamoDB `Events` table instead (endpoint, region and credentials from the
    /// usual AWS environment: AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ...).
    #[arg(long, value_name = "NAME", conflicts_with = "file")]
    pub dynamo_table: Option<String>,
    /// Read an export file (`chaos audit export`) instead.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// A log to read.
#[derive(Debug, Clone)]
enum Source {
    Store(PathBuf),
    Dynamo(String),
    File(PathBuf),
}

impl Source {
    fn of(db: &Path, args: &SourceArgs) -> Self {
        match (&args.dynamo_table, &args.file) {
            (Some(table), _) => Source::Dynamo(table.clone()),
            (None, Some(file)) => Source::File(file.clone()),
            (None, None) => Source::Store(db.to_owned()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Store(path) => format!("store {}", path.display()),
            Source::Dynamo(table) => format!("DynamoDB table {table}"),
            Source::File(path) => format!("export {}", path.display()),
        }
    }
}

/// Why an audit command failed, or what it found.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The store could not be read.
    #[error("reading the event store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The table could not be read.
    #[error("reading the DynamoDB table failed: {0}")]
    Dynamo(String),
    /// An input file could not be read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The digest file is not a usable digest.
    #[error("{path}: {source}")]
    BadDigest {
        /// The file.
        path: String,
        /// Cause.
        source: DigestError,
    },
    /// An output file could not be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Standard output could not be written.
    #[error("cannot write output: {0}")]
    Write(std::io::Error),
    /// JSON output could not be made.
    #[error("cannot write output: {0}")]
    Json(#[from] serde_json::Error),
    /// A background task died.
    #[error("internal task failed: {0}")]
    Task(String),
    /// No stream has that id.
    #[error("no such stream: {0}")]
    NoSuchStream(String),
    /// An event cannot be replayed.
    #[error("cannot replay: {0}")]
    Replay(#[from] ReplayError),
    /// A stream does not verify where a command needs it to (digest, replay).
    #[error("the event log does not verify: {0}")]
    Unverified(String),
    /// Verification found broken chains or unreadable export lines (reported on stdout).
    #[error("the event log does not verify: {0} fault(s)")]
    Tampered(usize),
    /// The log verifies but departs from the digest (reported on stdout).
    #[error("the event log does not match the digest: {0} stream(s) differ")]
    DigestMismatch(usize),
    /// The log verifies but the audit-log read model disagrees with it (reported on stdout).
    #[error("the audit log read model disagrees with the log in {0} stream(s)")]
    ProjectionMismatch(usize),
}

impl AuditError {
    /// The process exit code (see `cli`'s module docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            AuditError::Input { .. } | AuditError::BadDigest { .. } => 2,
            AuditError::NoSuchStream(_) => 3,
            AuditError::Tampered(_) | AuditError::Unverified(_) => 4,
            AuditError::DigestMismatch(_) => 5,
            AuditError::ProjectionMismatch(_) => 6,
            AuditError::Open(_)
            | AuditError::Sqlite(_)
            | AuditError::Dynamo(_)
            | AuditError::Output { .. }
            | AuditError::Write(_)
            | AuditError::Json(_)
            | AuditError::Task(_)
            | AuditError::Replay(_) => 1,
        }
    }
}

fn task(e: tokio::task::JoinError) -> AuditError {
    AuditError::Task(e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Reading rows

const SELECT_ROWS: &str = "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata FROM events";

/// A read-only connection to a store already checked by [`open`].
fn read_only(path: &Path) -> Result<rusqlite::Connection, AuditError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// Calls `each` with every row of the store, in insertion order, from one snapshot, and the
/// name of its first column that is not UTF-8 text (read with the bad bytes replaced).
fn store_rows(
    conn: &rusqlite::Connection,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
    mut each: impl FnMut(StoredRow<'_>, Option<&'static str>) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    let mut statement = conn.prepare(&format!("{SELECT_ROWS} {filter} ORDER BY rowid"))?;
    let mut rows = statement.query(params)?;
    while let Some(row) = rows.next()? {
        let ([t, id, event_type, version, payload, metadata], not_text) = stored_texts(row)?;
        let stored = StoredRow {
            aggregate_type: &t,
            aggregate_id: &id,
            sequence: row.get(2)?,
            event_type: &event_type,
            event_version: &version,
            payload: &payload,
            metadata: &metadata,
        };
        each(stored, not_text)?;
    }
    Ok(())
}

/// The DynamoDB client from the environment, as the Lambdas build it.
async fn dynamodb() -> aws_sdk_dynamodb::Client {
    let config = aws_config::load_from_env().await;
    aws_sdk_dynamodb::Client::new(&config)
}

fn dynamo_error<E: std::error::Error + 'static>(e: E) -> AuditError {
    AuditError::Dynamo(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

/// A dynamo-es item as a row.
fn dynamo_row(
    item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Result<OwnedRow, AuditError> {
    command_lambdas::dynamo::decode_item(item).map_err(|e| AuditError::Dynamo(e.to_string()))
}

/// Every stream of the table, sorted (the order streams are verified and exported in), and
/// how many events it holds: a scan of the keys alone, so memory holds one key per stream.
/// The events are then read stream by stream ([`dynamo_stream`]), one stream in memory at a
/// time.
async fn dynamo_streams(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    progress: &mut Progress,
) -> Result<(BTreeSet<(String, String)>, u64), AuditError> {
    let mut streams = BTreeSet::new();
    let mut events = 0u64;
    let mut pages = client
        .scan()
        .table_name(table)
        .projection_expression("AggregateTypeAndId")
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.map_err(dynamo_error)?;
        let key = item
            .get("AggregateTypeAndId")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| AuditError::Dynamo("an item has no AggregateTypeAndId".into()))?;
        let (aggregate_type, aggregate_id) = key
            .split_once(':')
            .ok_or_else(|| AuditError::Dynamo(format!("item key {key:?} is not TYPE:ID")))?;
        if !streams.contains(&(aggregate_type.to_owned(), aggregate_id.to_owned())) {
            streams.insert((aggregate_type.to_owned(), aggregate_id.to_owned()));
        }
        events += 1;
        progress.update(events);
    }
    Ok((streams, events))
}

/// One stream of the table, in sequence order.
async fn dynamo_stream(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    aggregate_type: &str,
    id: &str,
) -> Result<Vec<OwnedRow>, AuditError> {
    let mut rows = Vec::new();
    let mut pages = client
        .query()
        .table_name(table)
        .key_condition_expression("AggregateTypeAndId = :k")
        .expression_attribute_values(
            ":k",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{aggregate_type}:{id}")),
        )
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        rows.push(dynamo_row(&item.map_err(dynamo_error)?)?);
    }
    sort_streams(&mut rows);
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Progress

/// A progress line on standard error, drawn only when it is a terminal, at most ten times a
/// second.
#[derive(Debug)]
struct Progress {
    enabled: bool,
    label: &'static str,
    unit: &'static str,
    total: u64,
    last: Option<Instant>,
}

impl Progress {
    fn new(label: &'static str, unit: &'static str, total: u64, wanted: bool) -> Self {
        Self {
            enabled: wanted && std::io::stderr().is_terminal(),
            label,
            unit,
            total,
            last: None,
        }
    }

    fn update(&mut self, done: u64) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        const WIDTH: u64 = 30;
        if self.total == 0 {
            eprint!("\r{} {done} {}", self.label, self.unit);
            return;
        }
        let done = done.min(self.total);
        let filled = (done * WIDTH / self.total) as usize;
        eprint!(
            "\r{} [{}{}] {:>3}% {done}/{} {}",
            self.label,
            "#".repeat(filled),
            ".".repeat(WIDTH as usize - filled),
            done * 100 / self.total,
            self.total,
            self.unit,
        );
    }

    fn finish(&mut self) {
        if self.enabled && self.last.is_some() {
            // Clear the line so that what follows starts clean.
            eprint!("\r\x1b[2K");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Verifying an export file

/// What verifying an export file found beyond the chain report.
#[derive(Debug, Default)]
struct FileFindings {
    /// Line of each stream's fault, by `(type, id)`.
    fault_lines: HashMap<(String, String), u64>,
    /// Lines that are not export records: `(line, problem)`.
    bad_lines: Vec<(u64, String)>,
    /// Stored hashes at the positions asked for: `(type, id, sequence) -> hash`.
    hashes: HashMap<(String, String, u64), String>,
}

/// Lines of a file for one verifier, undecoded: their bytes back to back in one buffer.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Where each line ends in `bytes` (each starts where the previous one ends), and its
    /// line number.
    lines: Vec<(usize, u64)>,
}

/// Lines per batch handed to a verifier thread.
const BATCH_ROWS: usize = 1024;
/// Batches queued per verifier before the reader waits, which bounds memory.
const BATCHES_IN_FLIGHT: usize = 4;
/// Bytes read from the file at a time.
const READ_CHUNK: usize = 4 << 20;

/// What one verifier thread found.
#[derive(Debug, Default)]
struct LaneFindings {
    fault_lines: HashMap<(String, String), u64>,
    bad_lines: Vec<(u64, String)>,
    hashes: HashMap<(String, String, u64), String>,
}

/// Verifies an export file: a reader splits the file into lines and sends each, undecoded,
/// to the verifier thread of its stream (pinned by a hash of the stream, so a stream's rows
/// stay in order); verifiers decode and check. Their reports cover disjoint streams and merge
/// into the report of one verifier. `wanted` names positions whose stored hash to remember
/// (for a digest check).
fn verify_export(
    path: &Path,
    verifiers: usize,
    wanted: &HashMap<(String, String), u64>,
    progress: &mut Progress,
) -> Result<(VerifyReport, FileFindings), AuditError> {
    let input = |source| AuditError::Input {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(input)?;
    let verifiers = verifiers.max(1);
    // Batches go back to the reader once checked, so their buffers are allocated (and their
    // pages faulted in) once per run, not once per batch.
    let (recycle, recycled) = std::sync::mpsc::channel::<Batch>();
    std::thread::scope(|scope| {
        let mut lanes = Vec::with_capacity(verifiers);
        let mut threads = Vec::with_capacity(verifiers);
        for _ in 0..verifiers {
            let (lane, batches) = std::sync::mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
            lanes.push(lane);
            let recycle = recycle.clone();
            threads.push(scope.spawn(move || verify_lane(batches, &recycle, wanted)));
        }
        drop(recycle);
        let mut findings = FileFindings::default();
        let read = read_lines(&mut file, &lanes, &recycled, &mut findings, progress).map_err(input);
        drop(lanes);
        let mut reports = Vec::with_capacity(verifiers);
        for thread in threads {
            let (report, lane) = thread
                .join()
                .map_err(|_| AuditError::Task("a verifier thread panicked".into()))?;
            reports.push(report);
            findings.fault_lines.extend(lane.fault_lines);
            findings.bad_lines.extend(lane.bad_lines);
            findings.hashes.extend(lane.hashes);
        }
        read?;
        findings.bad_lines.sort();
        Ok((VerifyReport::merge(reports).of_whole_log(), findings))
    })
}

/// One verifier thread: decodes the lines of its streams and checks them in order.
fn verify_lane(
    batches: std::sync::mpsc::Receiver<Batch>,
    recycle: &std::sync::mpsc::Sender<Batch>,
    wanted: &HashMap<(String, String), u64>,
) -> (VerifyReport, LaneFindings) {
    let mut verifier = ChainVerifier::new();
    let mut found = LaneFindings::default();
    let mut text = String::new();
    for batch in batches {
        let mut start = 0;
        for &(end, line) in &batch.lines {
            let bytes = &batch.bytes[start..end];
            start = end;
            text.clear();
            let decoded = std::str::from_utf8(bytes)
                .map_err(|e| format!("not UTF-8: {e}"))
                .and_then(|line| export::decode_line(line, &mut text).map_err(|e| e.to_string()));
            let row = match decoded {
                Ok(decoded) => export::row_at(&text, &decoded),
                Err(problem) => {
                    found.bad_lines.push((line, problem));
                    continue;
                }
            };
            let Some(row) = row else { continue };
            if !wanted.is_empty() {
                remember_hash(&row, wanted, &mut found.hashes);
            }
            let before = verifier.fault_count();
            verifier.push(&row);
            if verifier.fault_count() > before {
                found.fault_lines.insert(
                    (row.aggregate_type.to_owned(), row.aggregate_id.to_owned()),
                    line,
                );
            }
        }
        let mut batch = batch;
        batch.bytes.clear();
        batch.lines.clear();
        // The reader may be done already; then the buffer is simply freed.
        let _ = recycle.send(batch);
    }
    (verifier.finish_part(), found)
}

/// Reads the file in chunks, splits it into lines and sends each to its stream's verifier.
/// The stream of a line in the exact export form is read from its first two members without
/// decoding; any other line is decoded here to find it (and reported if it cannot be).
fn read_lines(
    file: &mut std::fs::File,
    lanes: &[std::sync::mpsc::SyncSender<Batch>],
    recycled: &std::sync::mpsc::Receiver<Batch>,
    findings: &mut FileFindings,
    progress: &mut Progress,
) -> Result<(), std::io::Error> {
    let mut batches: Vec<Batch> = lanes.iter().map(|_| Batch::default()).collect();
    let mut scratch = String::new();
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut line_number: u64 = 0;
    let mut bytes_read: u64 = 0;
    let mut at_end = false;
    while !at_end {
        // Top up the buffer to one chunk beyond what is left of the previous one.
        let kept = buffer.len();
        buffer.resize(kept + READ_CHUNK, 0);
        let n = read_full(file, &mut buffer[kept..])?;
        buffer.truncate(kept + n);
        bytes_read += n as u64;
        at_end = n == 0;
        let mut start = 0;
        loop {
            let end = match export::next_newline(&buffer, start) {
                Some(end) => end,
                // Every line of an export ends with a line feed: a last line without one is
                // a file cut short, or one that is not the export.
                None if at_end && start < buffer.len() => {
                    line_number += 1;
                    findings.bad_lines.push((line_number, CUT_SHORT.to_owned()));
                    start = buffer.len();
                    break;
                }
                None => break,
            };
            line_number += 1;
            let line = &buffer[start..end];
            start = (end + 1).min(buffer.len());
            let lane = match export::stream_of(line) {
                Some((aggregate_type, aggregate_id)) => {
                    lane_of(aggregate_type, aggregate_id, lanes.len())
                }
                None => {
                    scratch.clear();
                    let decoded = std::str::from_utf8(line)
                        .map_err(|e| format!("not UTF-8: {e}"))
                        .and_then(|line| {
                            export::decode_line(line, &mut scratch).map_err(|e| e.to_string())
                        });
                    match decoded.map(|d| export::row_at(&scratch, &d)) {
                        Ok(Some(row)) => lane_of(
                            row.aggregate_type.as_bytes(),
                            row.aggregate_id.as_bytes(),
                            lanes.len(),
                        ),
                        Ok(None) => continue,
                        Err(problem) => {
                            findings.bad_lines.push((line_number, problem));
                            continue;
                        }
                    }
                }
            };
            let batch = &mut batches[lane];
            if batch.bytes.capacity() == 0 {
                match recycled.try_recv() {
                    Ok(used) => *batch = used,
                    Err(_) => {
                        // One allocation per batch, not a doubling series of them.
                        batch.bytes.reserve(BATCH_ROWS * (line.len() + 64));
                        batch.lines.reserve(BATCH_ROWS);
                    }
                }
            }
            batch.bytes.extend_from_slice(line);
            batch.lines.push((batch.bytes.len(), line_number));
            if batch.lines.len() == BATCH_ROWS && lanes[lane].send(std::mem::take(batch)).is_err() {
                // That verifier is gone, which only a panic does; joining it reports it.
                return Ok(());
            }
        }
        buffer.drain(..start.min(buffer.len()));
        progress.update(bytes_read);
    }
    for (lane, batch) in lanes.iter().zip(batches) {
        if !batch.lines.is_empty() && lane.send(batch).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn read_full(file: &mut std::fs::File, buffer: &mut [u8]) -> Result<usize, std::io::Error> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The verifier of a stream: by a hash of its decoded type and id (as bytes), so that the
/// same stream goes to the same verifier whatever form its lines are in.
fn lane_of(aggregate_type: &[u8], aggregate_id: &[u8], lanes: usize) -> usize {
    if lanes < 2 {
        return 0;
    }
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash =
        BuildHasherDefault::<DefaultHasher>::default().hash_one((aggregate_type, aggregate_id));
    (hash % lanes as u64) as usize
}

/// Keeps the stored `hash` of `row` if a digest asks about its position.
fn remember_hash(
    row: &StoredRow<'_>,
    wanted: &HashMap<(String, String), u64>,
    hashes: &mut HashMap<(String, String, u64), String>,
) {
    let key = (row.aggregate_type.to_owned(), row.aggregate_id.to_owned());
    let Some(&sequence) = wanted.get(&key) else {
        return;
    };
    if u64::try_from(row.sequence).ok() != Some(sequence) {
        return;
    }
    if let Ok(m) = serde_json::from_str::<EventMetadata>(row.metadata) {
        hashes.insert((key.0, key.1, sequence), m.hash);
    }
}

// ---------------------------------------------------------------------------------------------
// The audit-log read model against the log

/// The first disagreement of one stream's audit log entries with its events.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProjectionFault {
    aggregate_type: String,
    aggregate_id: String,
    sequence: u64,
    problem: String,
}

/// What comparing the audit log read model with the log found.
#[derive(Debug, Default)]
struct ProjectionCheck {
    /// Entries compared with their events.
    entries: u64,
    faults: Vec<ProjectionFault>,
}

/// Compares the embedded audit log read model with the log, in one read snapshot: every event
/// the projection has applied (at or below its checkpoint for the stream) has exactly one
/// entry, which says what the event says (type, actor, times, description); no entry exists
/// for an event not applied or not in the log. `None` when the store has no read models.
fn check_projection(path: &Path) -> Result<Option<ProjectionCheck>, AuditError> {
    let conn = read_only(path)?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' \
         AND name IN ('view_audit_log', 'projection_checkpoints')",
        [],
        |r| r.get(0),
    )?;
    if tables < 2 {
        return Ok(None);
    }
    conn.execute_batch("BEGIN")?;
    let mut check = ProjectionCheck::default();
    let mut first: HashMap<(String, String), ProjectionFault> = HashMap::new();
    let mut note = |t: &str, id: &str, sequence: u64, problem: String| {
        let fault = ProjectionFault {
            aggregate_type: t.to_owned(),
            aggregate_id: id.to_owned(),
            sequence,
            problem,
        };
        first
            .entry((t.to_owned(), id.to_owned()))
            .and_modify(|f| {
                if sequence < f.sequence {
                    *f = fault.clone();
                }
            })
            .or_insert(fault);
    };
    {
        let mut statement = conn.prepare(
            "SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, \
             e.payload, e.metadata, a.event_type, a.actor, a.recorded_at, a.at, a.action, c.sequence \
             FROM events e \
             LEFT JOIN view_audit_log a ON a.aggregate_type = e.aggregate_type \
               AND a.aggregate_id = e.aggregate_id AND a.sequence = e.sequence \
             LEFT JOIN projection_checkpoints c ON c.projection = 'audit_log' \
               AND c.aggregate_type = e.aggregate_type AND c.aggregate_id = e.aggregate_id",
        )?;
        let mut rows = statement.query([])?;
        while let Some(r) = rows.next()? {
            let raw = RawRecord {
                aggregate_type: r.get_ref(0)?.as_str().unwrap_or_default(),
                aggregate_id: r.get_ref(1)?.as_str().unwrap_or_default(),
                sequence: r.get(2)?,
                event_type: r.get_ref(3)?.as_str().unwrap_or_default(),
                event_version: r.get_ref(4)?.as_str().unwrap_or_default(),
                payload: r.get_ref(5)?.as_str().unwrap_or_default(),
                metadata: r.get_ref(6)?.as_str().unwrap_or_default(),
            };
            let sequence = u64::try_from(raw.sequence).unwrap_or(0);
            let entry: Option<[String; 5]> = match r.get::<_, Option<String>>(7)? {
                Some(event_type) => {
                    Some([event_type, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?])
                }
                None => None,
            };
            let checkpoint: Option<i64> = r.get(12)?;
            let applied = checkpoint.is_some_and(|c| raw.sequence <= c);
            let (t, id) = (raw.aggregate_type, raw.aggregate_id);
            match (applied, entry) {
                (false, None) => {}
                (true, None) => note(
                    t,
                    id,
                    sequence,
                    format!(
                        "no audit log entry, though the projection has applied the stream up to sequence {}",
                        checkpoint.unwrap_or_default()
                    ),
                ),
                (false, Some(_)) => note(
                    t,
                    id,
                    sequence,
                    "an audit log entry for an event the projection has not applied".into(),
                ),
                (true, Some(entry)) => {
                    check.entries += 1;
                    if let Some(problem) = entry_disagreement(raw, &entry) {
                        note(t, id, sequence, problem);
                    }
                }
            }
        }
        let mut orphans = conn.prepare(
            "SELECT a.aggregate_type, a.aggregate_id, a.sequence FROM view_audit_log a \
             WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.aggregate_type = a.aggregate_type \
               AND e.aggregate_id = a.aggregate_id AND e.sequence = a.sequence)",
        )?;
        let mut rows = orphans.query([])?;
        while let Some(r) = rows.next()? {
            let (t, id, sequence): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            note(
                &t,
                &id,
                u64::try_from(sequence).unwrap_or(0),
                "an audit log entry for an event the log does not hold".into(),
            );
        }
    }
    conn.execute_batch("COMMIT")?;
    check.faults = first.into_values().collect();
    check.faults.sort_by(|a, b| {
        (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
    });
    Ok(Some(check))
}

/// Compares the audit log in the read-model table (AWS) with the log, one stream at a time:
/// every event the projection has applied (at or below the stream's `checkpoint#audit_log`)
/// has exactly the entry the event makes, and no entry exists for an event not applied or not
/// in the log. The table is read while the projection may be writing to it: an event applied
/// between reading the log and reading its stream's rows is reported as an entry for an event
/// the log does not hold, so run it again before concluding.
struct DynamoAuditCheck<'a> {
    client: &'a aws_sdk_dynamodb::Client,
    views: &'a str,
    check: ProjectionCheck,
    first: HashMap<(String, String), ProjectionFault>,
}

impl<'a> DynamoAuditCheck<'a> {
    fn new(client: &'a aws_sdk_dynamodb::Client, views: &'a str) -> Self {
        DynamoAuditCheck {
            client,
            views,
            check: ProjectionCheck::default(),
            first: HashMap::new(),
        }
    }

    fn note(&mut self, t: &str, id: &str, sequence: u64, problem: String) {
        let fault = ProjectionFault {
            aggregate_type: t.to_owned(),
            aggregate_id: id.to_owned(),
            sequence,
            problem,
        };
        self.first
            .entry((t.to_owned(), id.to_owned()))
            .and_modify(|f| {
                if sequence < f.sequence {
                    *f = fault.clone();
                }
            })
            .or_insert(fault);
    }

    /// Checks stream `t:id`, whose events are `rows`, against its partition of the table.
    async fn stream(&mut self, t: &str, id: &str, rows: &[OwnedRow]) -> Result<(), AuditError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let bad = |what: String| AuditError::Dynamo(format!("read-model row of {t}:{id}: {what}"));
        let mut pages = self
            .client
            .query()
            .table_name(self.views)
            .key_condition_expression("Pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("{t}#{id}")))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut checkpoint = 0u64;
        let mut entries: BTreeMap<u64, AuditEntry> = BTreeMap::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(dynamo_error)?;
            let sk = item
                .get("Sk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if sk == "checkpoint#audit_log" {
                checkpoint = item
                    .get("Sequence")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| bad(format!("{sk} has no Sequence")))?;
            } else if let Some(sequence) = sk.strip_prefix("audit#") {
                let sequence: u64 = sequence
                    .parse()
                    .map_err(|_| bad(format!("{sk} is not audit#SEQUENCE")))?;
                let entry = item
                    .get("Entry")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| bad(format!("{sk} has no Entry")))?;
                let entry = serde_json::from_str(entry)
                    .map_err(|e| bad(format!("{sk}'s Entry does not decode: {e}")))?;
                entries.insert(sequence, entry);
            }
        }
        for row in rows {
            let sequence = u64::try_from(row.sequence).unwrap_or(0);
            match (sequence <= checkpoint, entries.remove(&sequence)) {
                (false, None) => {}
                (true, None) => self.note(
                    t,
                    id,
                    sequence,
                    format!(
                        "no audit log entry, though the projection has applied the stream up to sequence {checkpoint}"
                    ),
                ),
                (false, Some(_)) => self.note(
                    t,
                    id,
                    sequence,
                    "an audit log entry for an event the projection has not applied".into(),
                ),
                (true, Some(entry)) => {
                    self.check.entries += 1;
                    let raw = row.row();
                    let entry = [
                        entry.event_type,
                        entry.actor,
                        entry.recorded_at,
                        entry.at.to_string(),
                        entry.action,
                    ];
                    let record = RawRecord {
                        aggregate_type: raw.aggregate_type,
                        aggregate_id: raw.aggregate_id,
                        sequence: raw.sequence,
                        event_type: raw.event_type,
                        event_version: raw.event_version,
                        payload: raw.payload,
                        metadata: raw.metadata,
                    };
                    if let Some(problem) = entry_disagreement(record, &entry) {
                        self.note(t, id, sequence, problem);
                    }
                }
            }
        }
        for sequence in entries.into_keys() {
            self.note(
                t,
                id,
                sequence,
                "an audit log entry for an event the log does not hold".into(),
            );
        }
        Ok(())
    }

    /// Entries of streams the log does not hold at all: the audit feed's keys (the `ByFeed`
    /// index), against the log's `streams`.
    async fn orphans(&mut self, streams: &BTreeSet<(String, String)>) -> Result<(), AuditError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        use projection_lambdas::dynamo_stream::{AUDIT_FEED, BY_FEED};
        let mut pages = self
            .client
            .query()
            .table_name(self.views)
            .index_name(BY_FEED)
            .key_condition_expression("Feed = :feed")
            .expression_attribute_values(":feed", AttributeValue::S(AUDIT_FEED.to_owned()))
            .projection_expression("Pk, Sk")
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(dynamo_error)?;
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let (Some(pk), Some(sk)) = (text("Pk"), text("Sk")) else {
                continue;
            };
            let Some((t, id)) = pk.split_once('#') else {
                continue;
            };
            if !streams.contains(&(t.to_owned(), id.to_owned())) {
                let sequence = sk
                    .strip_prefix("audit#")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                self.note(
                    t,
                    id,
                    sequence,
                    "an audit log entry for an event the log does not hold".into(),
                );
            }
        }
        Ok(())
    }

    fn finish(mut self) -> ProjectionCheck {
        self.check.faults = self.first.into_values().collect();
        self.check.faults.sort_by(|a, b| {
            (&a.aggregate_type, &a.aggregate_id).cmp(&(&b.aggregate_type, &b.aggregate_id))
        });
        self.check
    }
}

/// Which read model `verify` compares with the log, if any.
#[derive(Debug, Clone, Copy)]
struct Projection<'a> {
    /// The read-model table, for a DynamoDB log (the embedded one is in the store file).
    views_table: Option<&'a str>,
}

/// What an entry `[event_type, actor, recorded_at, at, action]` gets wrong about its event.
fn entry_disagreement(raw: RawRecord<'_>, entry: &[String; 5]) -> Option<String> {
    let expected = match Envelope::decode(raw) {
        Ok(envelope) => AuditEntry::from_envelope(&envelope),
        Err(e) => {
            return Some(format!(
                "the event does not decode ({e}) yet has an audit log entry"
            ));
        }
    };
    let fields = [
        ("event type", &expected.event_type),
        ("actor", &expected.actor),
        ("recorded_at", &expected.recorded_at),
        ("at", &expected.at.to_string()),
        ("action", &expected.action),
    ];
    fields
        .iter()
        .zip(entry)
        .find(|((_, log), entry)| *log != *entry)
        .map(|((name, log), entry)| {
            format!("the audit log entry's {name} is {entry:?}, the log says {log:?}")
        })
}

// ---------------------------------------------------------------------------------------------
// verify

/// Options of `chaos audit verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Also check the log against a digest taken earlier (`chaos audit digest`).
    #[arg(long, value_name = "FILE")]
    digest: Option<PathBuf>,
    /// Skip comparing the audit log read model with the log.
    #[arg(long)]
    no_projection: bool,
    /// With `--dynamo-table`: the read-model table whose audit log is compared with the log
    /// (the projection Lambda's `VIEWS_TABLE`).
    #[arg(long, value_name = "NAME", requires = "dynamo_table")]
    views_table: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Everything `verify` found.
#[derive(Debug)]
struct Verification {
    source: Source,
    report: VerifyReport,
    file: Option<FileFindings>,
    digest: Option<DigestCheck>,
    projection: Option<ProjectionCheck>,
    elapsed: Duration,
}

fn read_digest(path: &Path) -> Result<Digest, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuditError::Input {
        path: path.display().to_string(),
        source,
    })?;
    Digest::parse(&text).map_err(|source| AuditError::BadDigest {
        path: path.display().to_string(),
        source,
    })
}

/// Reads and checks the whole log of `source`; `digest` positions have their stored hashes
/// looked up.
async fn verify_source(
    source: &Source,
    digest: Option<&Digest>,
    projection: Option<Projection<'_>>,
    progress: bool,
) -> Result<Verification, AuditError> {
    let started = Instant::now();
    let wanted: HashMap<(String, String), u64> = digest
        .map(|d| {
            d.streams
                .iter()
                .map(|h| {
                    (
                        (h.aggregate_type.clone(), h.aggregate_id.clone()),
                        h.sequence,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut hashes: HashMap<(String, String, u64), String> = HashMap::new();
    let mut file = None;
    let mut projection_check = None;
    let report = match source {
        Source::Store(path) => {
            // Opening checks the file is a chaos store (and recovers a WAL left by a crash).
            open(path, OpenMode::MustExist).await?.close().await;
            let path = path.clone();
            let projection = projection.is_some();
            let (report, looked_up, checked) = tokio::task::spawn_blocking(move || {
                let total: u64 = read_only(&path)?.query_row(
                    "SELECT coalesce(max(rowid), 0) FROM events",
                    [],
                    |r| r.get(0),
                )?;
                let mut bar = Progress::new("verifying", "events", total, progress);
                let report = verify_file(&path, 10_000, |n| bar.update(n))?;
                bar.finish();
                let looked_up = store_hashes(&path, &wanted)?;
                let checked = if projection {
                    check_projection(&path)?
                } else {
                    None
                };
                Ok::<_, AuditError>((report, looked_up, checked))
            })
            .await
            .map_err(task)??;
            hashes = looked_up;
            projection_check = checked;
            report
        }
        Source::Dynamo(table) => {
            let client = dynamodb().await;
            let mut bar = Progress::new("listing", "events", 0, progress);
            let (streams, total) = dynamo_streams(&client, table, &mut bar).await?;
            bar.finish();
            let mut audit = match projection {
                Some(Projection {
                    views_table: Some(views),
                }) => Some(DynamoAuditCheck::new(&client, views)),
                _ => None,
            };
            let mut bar = Progress::new("verifying", "events", total, progress);
            let mut verifier = ChainVerifier::new();
            let mut read = 0u64;
            for (aggregate_type, aggregate_id) in &streams {
                let rows = dynamo_stream(&client, table, aggregate_type, aggregate_id).await?;
                for row in &rows {
                    verifier.push(&row.row());
                    if !wanted.is_empty() {
                        remember_hash(&row.row(), &wanted, &mut hashes);
                    }
                }
                if let Some(audit) = &mut audit {
                    audit.stream(aggregate_type, aggregate_id, &rows).await?;
                }
                read += rows.len() as u64;
                bar.update(read);
            }
            bar.finish();
            if let Some(mut audit) = audit {
                audit.orphans(&streams).await?;
                projection_check = Some(audit.finish());
            }
            verifier.finish().of_whole_log()
        }
        Source::File(path) => {
            let path = path.clone();
            let (report, findings) = tokio::task::spawn_blocking(move || {
                let total = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let mut bar = Progress::new("verifying", "bytes", total, progress);
                let verified = verify_export(&path, file_verifiers(), &wanted, &mut bar);
                bar.finish();
                verified
            })
            .await
            .map_err(task)??;
            let mut findings = findings;
            hashes = std::mem::take(&mut findings.hashes);
            file = Some(findings);
            report
        }
    };
    let digest = digest.map(|d| {
        digest::check(d, &report, |t, id, n| {
            hashes.get(&(t.to_owned(), id.to_owned(), n)).cloned()
        })
    });
    Ok(Verification {
        source: source.clone(),
        report,
        file,
        digest,
        projection: projection_check,
        elapsed: started.elapsed(),
    })
}

/// Verifies an export file as `chaos audit verify --file` does (no digest, no progress line),
/// on `verifiers` verifier threads (`None`: as many as the command uses).
pub fn verify_export_file(
    path: &Path,
    verifiers: Option<usize>,
) -> Result<VerifyReport, AuditError> {
    let verifiers = verifiers.unwrap_or_else(file_verifiers);
    let (report, findings) = verify_export(
        path,
        verifiers,
        &HashMap::new(),
        &mut Progress::new("", "", 0, false),
    )?;
    if let Some((line, problem)) = findings.bad_lines.first() {
        return Err(AuditError::Unverified(format!("line {line}: {problem}")));
    }
    Ok(report)
}

/// Writes the export of an embedded store as `chaos audit export` does (no progress line);
/// returns the events written.
pub fn export_store(db: &Path, out: &Path, csv: Option<&Path>) -> Result<u64, AuditError> {
    let mut writer = ExportWriter {
        jsonl: Output::create(out)?,
        csv: csv.map(Output::create).transpose()?,
        line: String::with_capacity(4096),
        events: 0,
        hasher: Sha256::new(),
        unreadable: Vec::new(),
    };
    if let Some(csv) = &mut writer.csv {
        csv.write(format!("{CSV_HEADER}\r\n").as_bytes())?;
    }
    store_rows(&read_only(db)?, "", &[], |row, not_text| {
        writer.push(&row, not_text)
    })?;
    let events = writer.events;
    writer.jsonl.finish()?;
    if let Some(csv) = writer.csv {
        csv.finish()?;
    }
    match writer.unreadable.len() {
        0 => Ok(events),
        n => Err(AuditError::Tampered(n)),
    }
}

/// Verifier threads for an export file: one per core (the reader only splits and decodes),
/// at most four.
fn file_verifiers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, 4)
}

/// Stored hashes of the store's events at the positions `wanted` names, by primary key.
fn store_hashes(
    path: &Path,
    wanted: &HashMap<(String, String), u64>,
) -> Result<HashMap<(String, String, u64), String>, AuditError> {
    let mut hashes = HashMap::new();
    if wanted.is_empty() {
        return Ok(hashes);
    }
    let conn = read_only(path)?;
    let mut statement = conn.prepare(
        "SELECT metadata FROM events WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND sequence = ?3",
    )?;
    for ((t, id), &sequence) in wanted {
        let metadata: Option<String> = {
            use rusqlite::OptionalExtension;
            statement
                .query_row(
                    rusqlite::params![t, id, i64::try_from(sequence).unwrap_or(i64::MAX)],
                    |r| Ok(r.get_ref(0)?.as_str().ok().map(str::to_owned)),
                )
                .optional()?
                .flatten()
        };
        if let Some(m) = metadata.and_then(|m| serde_json::from_str::<EventMetadata>(&m).ok()) {
            hashes.insert((t.clone(), id.clone(), sequence), m.hash);
        }
    }
    Ok(hashes)
}

/// `chaos audit verify`.
pub async fn verify(db: &Path, args: VerifyArgs) -> Result<(), AuditError> {
    // Inputs first: a bad digest file is a usage error before anything is read.
    let digest = args.digest.as_deref().map(read_digest).transpose()?;
    let source = Source::of(db, &args.source);
    let verification = verify_source(
        &source,
        digest.as_ref(),
        (!args.no_projection).then_some(Projection {
            views_table: args.views_table.as_deref(),
        }),
        !args.json,
    )
    .await?;
    if args.json {
        out(&serde_json::to_string_pretty(&verification_json(
            &verification,
            args.digest.as_deref(),
        ))?)?;
    } else {
        print_verification(&verification, args.digest.as_deref())?;
    }
    outcome(&verification)
}

/// The exit status of a verification: the most serious finding wins (a broken chain, then a
/// departure from the digest, then a read model that disagrees).
fn outcome(v: &Verification) -> Result<(), AuditError> {
    let bad_lines = v.file.as_ref().map_or(0, |f| f.bad_lines.len());
    if !v.report.is_ok() || bad_lines > 0 {
        return Err(AuditError::Tampered(v.report.faults.len() + bad_lines));
    }
    if let Some(check) = v.digest.as_ref().filter(|d| !d.faults.is_empty()) {
        return Err(AuditError::DigestMismatch(check.faults.len()));
    }
    if let Some(check) = v.projection.as_ref().filter(|p| !p.faults.is_empty()) {
        return Err(AuditError::ProjectionMismatch(check.faults.len()));
    }
    Ok(())
}

fn fault_line(v: &Verification, f: &Fault) -> Option<u64> {
    v.file.as_ref().and_then(|file| {
        file.fault_lines
            .get(&(f.aggregate_type.clone(), f.aggregate_id.clone()))
            .copied()
    })
}

fn verification_json(v: &Verification, digest_path: Option<&Path>) -> Value {
    let faults: Vec<Value> = v
        .report
        .faults
        .iter()
        .map(|f| {
            let mut fault = json!({
                "aggregate_type": f.aggregate_type,
                "aggregate_id": f.aggregate_id,
                "sequence": f.sequence,
                "problem": f.kind.to_string(),
            });
            if let Some(line) = fault_line(v, f) {
                fault["line"] = line.into();
            }
            fault
        })
        .collect();
    let mut report = json!({
        "ok": outcome(v).is_ok(),
        "source": v.source.describe(),
        "events": v.report.events,
        "streams": v.report.streams,
        "faults": faults,
        "digest": null,
        "projection": null,
    });
    if let Some(file) = &v.file {
        report["bad_lines"] = file
            .bad_lines
            .iter()
            .map(|(line, problem)| json!({"line": line, "problem": problem}))
            .collect();
    }
    if let Some(check) = &v.digest {
        report["digest"] = json!({
            "file": digest_path.map(|p| p.display().to_string()),
            "streams": check.streams,
            "broken": check.broken,
            "faults": check.faults.iter().map(|f| json!({
                "aggregate_type": f.aggregate_type,
                "aggregate_id": f.aggregate_id,
                "sequence": f.sequence,
                "problem": f.kind.to_string(),
            })).collect::<Vec<_>>(),
        });
    }
    if let Some(check) = &v.projection {
        report["projection"] = json!({
            "entries": check.entries,
            "faults": check.faults.iter().map(|f| json!({
                "aggregate_type": f.aggregate_type,
                "aggregate_id": f.aggregate_id,
                "sequence": f.sequence,
                "problem": f.problem,
            })).collect::<Vec<_>>(),
        });
    }
    report
}

fn print_verification(v: &Verification, digest_path: Option<&Path>) -> Result<(), AuditError> {
    let report = &v.report;
    let rate = report.events as f64 / v.elapsed.as_secs_f64().max(1e-9);
    let bad_lines = v.file.as_ref().map_or(&[][..], |f| &f.bad_lines[..]);
    if report.is_ok() && bad_lines.is_empty() {
        out(&format!(
            "OK: {} events in {} streams verified ({:.0} events/s)",
            report.events, report.streams, rate
        ))?;
    } else {
        let mut headline = format!(
            "FAILED: {} of {} streams do not verify ({} events read)",
            report.faults.len(),
            report.streams,
            report.events
        );
        if !bad_lines.is_empty() {
            headline.push_str(&format!(
                "; {} line(s) are not export records",
                bad_lines.len()
            ));
        }
        out(&headline)?;
        for fault in &report.faults {
            match fault_line(v, fault) {
                Some(line) => out(&format!(
                    "  {}/{} at sequence {} (line {line}): {}",
                    fault.aggregate_type, fault.aggregate_id, fault.sequence, fault.kind
                ))?,
                None => out(&format!("  {fault}"))?,
            }
        }
        for (line, problem) in bad_lines {
            out(&format!("  line {line}: {problem}"))?;
        }
    }
    if let Some(check) = &v.digest {
        let file = digest_path.map_or_else(String::new, |p| format!(" {}", p.display()));
        if check.faults.is_empty() {
            out(&format!(
                "digest{file}: all {} streams match ({} broken, reported above)",
                check.streams, check.broken
            ))?;
        } else {
            out(&format!(
                "DIGEST MISMATCH{file}: {} of {} streams differ",
                check.faults.len(),
                check.streams
            ))?;
            for fault in &check.faults {
                out(&format!("  {fault}"))?;
            }
        }
    }
    if let Some(check) = &v.projection {
        if check.faults.is_empty() {
            out(&format!(
                "projection: the audit log read model agrees with the log ({} entries)",
                check.entries
            ))?;
        } else {
            out(&format!(
                "PROJECTION MISMATCH: the audit log read model disagrees in {} streams",
                check.faults.len()
            ))?;
            for f in &check.faults {
                out(&format!(
                    "  {}/{} at sequence {}: {}",
                    f.aggregate_type, f.aggregate_id, f.sequence, f.problem
                ))?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// digest

/// `chaos audit digest`: verifies the log, then prints its chain heads as JSON.
pub async fn print_digest(
    db: &Path,
    args: &SourceArgs,
    taken_at: Timestamp,
) -> Result<(), AuditError> {
    let source = Source::of(db, args);
    let v = verify_source(&source, None, None, true).await?;
    if let Err(e) = outcome(&v) {
        print_verification(&v, None)?;
        return Err(e);
    }
    let digest = Digest::of(&v.report, Some(taken_at.to_string()));
    out(&serde_json::to_string_pretty(&digest)?)
}

// ---------------------------------------------------------------------------------------------
// export

/// Options of `chaos audit export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The JSON Lines file to write (one event per line, byte-exact).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Also write a CSV summary: one row per event (stream, sequence, type, recorded_at,
    /// actor, hash).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

/// The CSV summary's header line.
pub const CSV_HEADER: &str =
    "aggregate_type,aggregate_id,sequence,event_type,recorded_at,actor,hash";

/// Writes both files as rows come, to `<name>.partial` files renamed into place at the end, so
/// a file with the final name is always a complete export.
struct ExportWriter {
    jsonl: Output,
    csv: Option<Output>,
    line: String,
    events: u64,
    hasher: Sha256,
    /// Stored events that could not be read as text, so were not written.
    unreadable: Vec<Fault>,
}

/// One file being written: `<name>.partial` until [`Output::finish`] renames it into place;
/// dropped unfinished (a failed export), the partial file is removed.
struct Output {
    path: PathBuf,
    partial: PathBuf,
    writer: Option<BufWriter<std::fs::File>>,
}

impl Drop for Output {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

impl Output {
    fn create(path: &Path) -> Result<Self, AuditError> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = std::fs::File::create(&partial).map_err(|source| AuditError::Output {
            path: partial.display().to_string(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            partial,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        let written = match &mut self.writer {
            Some(writer) => writer.write_all(bytes),
            None => Err(std::io::Error::other("written after it was finished")),
        };
        written.map_err(|source| AuditError::Output {
            path: self.partial.display().to_string(),
            source,
        })
    }

    fn finish(mut self) -> Result<(), AuditError> {
        let error = |source| AuditError::Output {
            path: self.path.display().to_string(),
            source,
        };
        let Some(writer) = self.writer.take() else {
            return Err(error(std::io::Error::other("finished twice")));
        };
        let finished = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::rename(&self.partial, &self.path));
        if finished.is_err() {
            let _ = std::fs::remove_file(&self.partial);
        }
        finished.map_err(error)
    }
}

impl ExportWriter {
    /// Writes `row`; a row with a column that is not text (`not_text`) cannot be written as
    /// it is stored: it is left out and named in `unreadable`.
    fn push(&mut self, row: &StoredRow<'_>, not_text: Option<&str>) -> Result<(), AuditError> {
        if let Some(column) = not_text {
            self.unreadable.push(Fault {
                aggregate_type: row.aggregate_type.to_owned(),
                aggregate_id: row.aggregate_id.to_owned(),
                sequence: u64::try_from(row.sequence).unwrap_or(0),
                kind: FaultKind::NotText(column.to_owned()),
            });
            return Ok(());
        }
        self.line.clear();
        export::write_line(&mut self.line, row);
        self.jsonl.write(self.line.as_bytes())?;
        self.hasher.update(self.line.as_bytes());
        self.events += 1;
        if let Some(csv) = &mut self.csv {
            self.line.clear();
            csv_row(&mut self.line, row);
            csv.write(self.line.as_bytes())?;
        }
        Ok(())
    }
}

/// One CSV row (RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled).
/// Metadata that does not parse leaves its three fields empty (the export has the bytes).
fn csv_row(out: &mut String, row: &StoredRow<'_>) {
    let metadata = serde_json::from_str::<EventMetadata>(row.metadata).ok();
    let sequence = row.sequence.to_string();
    let fields = [
        row.aggregate_type,
        row.aggregate_id,
        &sequence,
        row.event_type,
        metadata.as_ref().map_or("", |m| &m.recorded_at),
        metadata.as_ref().map_or("", |m| &m.actor),
        metadata.as_ref().map_or("", |m| &m.hash),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

/// `chaos audit export`: copies the log, as stored, to a JSON Lines file (and a CSV summary).
pub async fn export(db: &Path, args: ExportArgs) -> Result<(), AuditError> {
    let source = Source::of(db, &args.source);
    let mut writer = ExportWriter {
        jsonl: Output::create(&args.out)?,
        csv: args.csv.as_deref().map(Output::create).transpose()?,
        line: String::with_capacity(4096),
        events: 0,
        hasher: Sha256::new(),
        unreadable: Vec::new(),
    };
    if let Some(csv) = &mut writer.csv {
        csv.write(format!("{CSV_HEADER}\r\n").as_bytes())?;
    }
    let started = Instant::now();
    let writer = match &source {
        Source::Store(path) => {
            open(path, OpenMode::MustExist).await?.close().await;
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let conn = read_only(&path)?;
                let total: u64 =
                    conn.query_row("SELECT coalesce(max(rowid), 0) FROM events", [], |r| {
                        r.get(0)
                    })?;
                let mut bar = Progress::new("exporting", "events", total, true);
                store_rows(&conn, "", &[], |row, not_text| {
                    writer.push(&row, not_text)?;
                    bar.update(writer.events);
                    Ok(())
                })?;
                bar.finish();
                Ok::<_, AuditError>(writer)
            })
            .await
            .map_err(task)??
        }
        Source::Dynamo(table) => {
            let client = dynamodb().await;
            let mut bar = Progress::new("listing", "events", 0, true);
            let (streams, total) = dynamo_streams(&client, table, &mut bar).await?;
            bar.finish();
            let mut bar = Progress::new("exporting", "events", total, true);
            for (aggregate_type, aggregate_id) in &streams {
                for row in dynamo_stream(&client, table, aggregate_type, aggregate_id).await? {
                    writer.push(&row.row(), None)?;
                }
                bar.update(writer.events);
            }
            bar.finish();
            writer
        }
        Source::File(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                for_each_file_row(&path, |row| writer.push(&row, None))?;
                Ok::<_, AuditError>(writer)
            })
            .await
            .map_err(task)??
        }
    };
    let ExportWriter {
        jsonl,
        csv,
        events,
        hasher,
        unreadable,
        ..
    } = writer;
    jsonl.finish()?;
    if let Some(csv) = csv {
        csv.finish()?;
    }
    // Events that could not be read are named, each at its position; the file holds every
    // other one, so its verification names the same gaps.
    let faults: Vec<Value> = unreadable
        .iter()
        .map(|f| {
            json!({
                "aggregate_type": f.aggregate_type,
                "aggregate_id": f.aggregate_id,
                "sequence": f.sequence,
                "problem": format!("{}: not exported", f.kind),
            })
        })
        .collect();
    out(&serde_json::to_string_pretty(&json!({
        "source": source.describe(),
        "out": args.out.display().to_string(),
        "csv": args.csv.as_ref().map(|p| p.display().to_string()),
        "events": events,
        "sha256": hex_digest(hasher),
        "seconds": started.elapsed().as_secs_f64(),
        "unreadable": faults,
    }))?)?;
    match unreadable.len() {
        0 => Ok(()),
        n => Err(AuditError::Tampered(n)),
    }
}

fn hex_digest(hasher: Sha256) -> String {
    hex::encode(hasher.finalize())
}

/// Calls `each` with every row of an export file, in file order, on this thread. A line that
/// is not an export record is an error here (naming it); `verify` reports such lines instead.
/// The problem of a last line without its line feed.
const CUT_SHORT: &str = "not an export record: no line feed at its end: the file is cut short";

fn for_each_file_row(
    path: &Path,
    mut each: impl FnMut(StoredRow<'_>) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    let input = |source| AuditError::Input {
        path: path.display().to_string(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(input)?;
    let mut scratch = String::new();
    let mut lines: Vec<&str> = text.split('\n').collect();
    // What follows the last line feed: nothing, in an export.
    if lines.pop().is_some_and(|rest| !rest.is_empty()) {
        return Err(input(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("line {}: {CUT_SHORT}", lines.len() + 1),
        )));
    }
    for (i, line) in lines.into_iter().enumerate() {
        scratch.clear();
        let decoded = export::decode_line(line, &mut scratch).map_err(|e| {
            input(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {}: {e}", i + 1),
            ))
        })?;
        if let Some(row) = export::row_at(&scratch, &decoded) {
            each(row)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// replay

/// Options of `chaos audit replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The experiment id (or `platform` for the platform's own stream).
    #[arg(long, value_name = "ID")]
    experiment: String,
    /// The instant, RFC 3339 (e.g. 2026-11-26T10:15:00Z): events recorded at or before it are
    /// folded.
    #[arg(long, value_name = "TIME")]
    at: Timestamp,
}

/// `chaos audit replay`: the stream's state at an instant, as JSON.
pub async fn replay(db: &Path, args: ReplayArgs) -> Result<(), AuditError> {
    let source = Source::of(db, &args.source);
    let id = args.experiment.clone();
    let mut rows = Vec::new();
    for aggregate_type in ["Experiment", "Platform"] {
        rows = stream_rows(&source, aggregate_type, &id).await?;
        if !rows.is_empty() {
            break;
        }
    }
    if rows.is_empty() {
        return Err(AuditError::NoSuchStream(id));
    }
    // Only a verified prefix is replayed: a stream broken at or before the instant is refused.
    let mut verifier = ChainVerifier::new();
    for (row, not_text) in &rows {
        match not_text {
            None => verifier.push(&row.row()),
            Some(column) => verifier.push_not_text(&row.row(), column),
        }
    }
    let report = verifier.finish();
    let replayed = replay::replay(rows.iter().map(|(row, _)| row.row()), args.at);
    if let Some(fault) = report.faults.first() {
        // The replay reached up to (not including) its first event after the instant.
        let reached = match &replayed {
            Ok(replayed) => replayed
                .next
                .as_ref()
                .map_or(u64::MAX, |(sequence, _)| *sequence),
            Err(_) => u64::MAX,
        };
        if fault.sequence <= reached {
            return Err(AuditError::Unverified(fault.to_string()));
        }
    }
    let replayed = replayed?;
    let aggregate_type = rows[0].0.aggregate_type.clone();
    let mut answer = json!({
        "source": source.describe(),
        "aggregate_type": aggregate_type,
        "id": id,
        "at": args.at,
        "exists": replayed.state.is_some(),
        "applied": replayed.applied,
        "last_recorded_at": replayed.last_recorded_at,
        "next": replayed.next.as_ref().map(|(sequence, recorded_at)| json!({
            "sequence": sequence,
            "recorded_at": recorded_at,
        })),
        "stream_events": rows.len(),
    });
    match &replayed.state {
        Some(Replayed::Experiment(record)) => {
            answer["summary"] = serde_json::to_value(record.summary())?;
            answer["record"] = serde_json::to_value(record)?;
        }
        Some(Replayed::Platform(platform)) => {
            answer["platform"] = serde_json::to_value(platform)?;
        }
        None => {}
    }
    out(&serde_json::to_string_pretty(&answer)?)
}

/// The rows of one stream in storage order, each with the name of its first column that is
/// not UTF-8 text, if one is not.
async fn stream_rows(
    source: &Source,
    aggregate_type: &str,
    id: &str,
) -> Result<Vec<(OwnedRow, Option<&'static str>)>, AuditError> {
    let owned = |row: StoredRow<'_>| OwnedRow {
        aggregate_type: row.aggregate_type.to_owned(),
        aggregate_id: row.aggregate_id.to_owned(),
        sequence: row.sequence,
        event_type: row.event_type.to_owned(),
        event_version: row.event_version.to_owned(),
        payload: row.payload.to_owned(),
        metadata: row.metadata.to_owned(),
    };
    match source {
        Source::Store(path) => {
            open(path, OpenMode::MustExist).await?.close().await;
            let (path, t, id) = (path.clone(), aggregate_type.to_owned(), id.to_owned());
            tokio::task::spawn_blocking(move || {
                let conn = read_only(&path)?;
                let mut rows = Vec::new();
                store_rows(
                    &conn,
                    "WHERE aggregate_type = ?1 AND aggregate_id = ?2",
                    &[&t, &id],
                    |row, not_text| {
                        rows.push((owned(row), not_text));
                        Ok(())
                    },
                )?;
                Ok::<_, AuditError>(rows)
            })
            .await
            .map_err(task)?
        }
        Source::Dynamo(table) => Ok(dynamo_stream(&dynamodb().await, table, aggregate_type, id)
            .await?
            .into_iter()
            .map(|row| (row, None))
            .collect()),
        Source::File(path) => {
            let (path, t, id) = (path.clone(), aggregate_type.to_owned(), id.to_owned());
            tokio::task::spawn_blocking(move || {
                let mut rows = Vec::new();
                for_each_file_row(&path, |row| {
                    if row.aggregate_type == t && row.aggregate_id == id {
                        rows.push((owned(row), None));
                    }
                    Ok(())
                })?;
                Ok::<_, AuditError>(rows)
            })
            .await
            .map_err(task)?
        }
    }
}

/// Writes a line to standard output; a reader that has gone is not an error.
fn out(line: &str) -> Result<(), AuditError> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(AuditError::Write(e)),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// The chain, checked for the API

/// One chain check at a time per process: a check of the whole log reads every event, and a
/// second one at the same moment would only give the same answer later, at twice the cost.
static CHAIN_CHECKS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();

/// Verifies the chain and sequence of one stream (`(type, id)`) or, without one, of every
/// stream, with the checks `chaos audit verify` makes (the same `ChainVerifier`, fed rows in
/// the same order): for the API's `auditChain` query.
///
/// Embedded, one stream is one indexed read of its rows; the whole log is
/// [`verify_file`]'s streamed scan (a read-only connection on a blocking thread, memory
/// growing with the number of streams, not of events). On AWS it is `chaos audit verify
/// --dynamo-table`'s path: a `Scan` of the table's keys (for the whole log), then one
/// `Query` per stream, one stream in memory at a time.
pub async fn check_chain(
    backend: &crate::backend::Backend,
    stream: Option<(String, String)>,
) -> Result<VerifyReport, AuditError> {
    use crate::backend::Backend;
    let _one = CHAIN_CHECKS
        .get_or_init(|| tokio::sync::Semaphore::new(1))
        .acquire()
        .await
        .map_err(|e| AuditError::Task(e.to_string()))?;
    match backend {
        Backend::Embedded { reads, .. } => {
            let path = reads.path().to_owned();
            tokio::task::spawn_blocking(move || match stream {
                None => Ok(verify_file(&path, 0, |_| {})?),
                Some((aggregate_type, aggregate_id)) => {
                    let mut verifier = ChainVerifier::new();
                    store_rows(
                        &read_only(&path)?,
                        "WHERE aggregate_type = ?1 AND aggregate_id = ?2",
                        &[&aggregate_type, &aggregate_id],
                        |row, not_text| {
                            match not_text {
                                None => verifier.push(&row),
                                Some(column) => verifier.push_not_text(&row, column),
                            }
                            Ok(())
                        },
                    )?;
                    Ok(verifier.finish())
                }
            })
            .await
            .map_err(task)?
        }
        Backend::Aws(aws) => {
            let (client, table) = (&aws.events, aws.events_table.as_str());
            let whole = stream.is_none();
            let streams = match stream {
                Some(stream) => BTreeSet::from([stream]),
                None => {
                    dynamo_streams(client, table, &mut Progress::new("", "", 0, false))
                        .await?
                        .0
                }
            };
            let mut verifier = ChainVerifier::new();
            for (aggregate_type, aggregate_id) in &streams {
                for row in dynamo_stream(client, table, aggregate_type, aggregate_id).await? {
                    verifier.push(&row.row());
                }
            }
            let report = verifier.finish();
            Ok(if whole { report.of_whole_log() } else { report })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        let metadata = r#"{"actor":"o'neil, \"bob\"","actor_role":"ADMIN","command_id":"c","correlation_id":"c","event_id":"e","hash":"h","prev_hash":"p","recorded_at":"2026-11-26T10:00:00.000Z","source":"cli"}"#;
        let mut line = String::new();
        csv_row(
            &mut line,
            &StoredRow {
                aggregate_type: "Experiment",
                aggregate_id: "exp,1",
                sequence: 3,
                event_type: "ExperimentStarted",
                event_version: "1",
                payload: "{}",
                metadata,
            },
        );
        assert_eq!(
            line,
            "Experiment,\"exp,1\",3,ExperimentStarted,2026-11-26T10:00:00.000Z,\"o'neil, \"\"bob\"\"\",h\r\n"
        );
    }
}
