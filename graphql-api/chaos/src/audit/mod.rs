//! `chaos audit ...`: what an auditor runs against the log without trusting the running system.
//!
//! - `verify`: every stream's chain and sequence over the embedded store, a DynamoDB `Events`
//!   table or an export file; optionally against an earlier digest; and, on the embedded
//!   store, the audit-log read model against the log.
//! - `export`: the log as JSON Lines, byte-exact (`domain::audit::export`), and a CSV summary.
//! - `digest`: the chain heads of a verified log, for keeping elsewhere.
//! - `replay`: one stream's state at an instant, folded from its events.
//!
//! Everything here only reads: the store through its own read-only connection, the table
//! through `Scan`/`Query` ([`graphql_api::chain`], which the API's `auditChain` query reads
//! through too), files as given. The checks themselves are `domain::audit`'s; this module
//! reads rows, spreads the work over threads and reports.

mod digest;
mod export;
mod file;
mod progress;
mod projection;
mod replay;
mod verify;

pub use digest::print_digest;
pub use export::{ExportArgs, export, export_store};
pub use replay::{ReplayArgs, replay};
pub use verify::{VerifyArgs, verify, verify_export_file};

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use domain::audit::digest::DigestError;
use domain::audit::replay::ReplayError;
use domain::audit::{OwnedRow, StoredRow};
use embedded_write::sqlite::{OpenError, OpenMode, open};
use graphql_api::chain::{ChainError, dynamo_stream, dynamodb, read_only};

use file::for_each_file_row;

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

/// [`graphql_api::chain::store_rows`], for the commands here.
fn store_rows(
    conn: &rusqlite::Connection,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
    each: impl FnMut(StoredRow<'_>, Option<&'static str>) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    graphql_api::chain::store_rows(conn, filter, params, each)
}

impl From<ChainError> for AuditError {
    fn from(e: ChainError) -> Self {
        match e {
            ChainError::Open(e) => AuditError::Open(e),
            ChainError::Sqlite(e) => AuditError::Sqlite(e),
            ChainError::Dynamo(e) => AuditError::Dynamo(e),
            ChainError::Task(e) => AuditError::Task(e),
        }
    }
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
