//! `chaos audit export`: the log as JSON Lines, byte-exact (`domain::audit::export`), and a
//! CSV summary.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use domain::audit::export;
use domain::audit::{Fault, FaultKind, StoredRow};
use domain::provenance::EventMetadata;
use embedded_write::sqlite::{OpenMode, open};
use graphql_api::chain::{dynamo_stream, dynamo_streams, dynamodb, read_only};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::file::for_each_file_row;
use super::progress::Progress;
use super::{AuditError, Source, SourceArgs, out, store_rows, task};

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
pub(crate) struct Output {
    pub(crate) path: PathBuf,
    pub(crate) partial: PathBuf,
    pub(crate) writer: Option<BufWriter<std::fs::File>>,
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
            let (streams, total) = dynamo_streams(&client, table, |n| bar.update(n)).await?;
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
