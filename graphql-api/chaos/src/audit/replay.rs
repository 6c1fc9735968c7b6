//! `chaos audit replay`: one stream's state at an instant, folded from its events.

use std::path::Path;

use clap::Args;
use domain::Timestamp;
use domain::audit::ChainVerifier;
use domain::audit::replay::{self, Replayed};
use serde_json::json;

use super::{AuditError, Source, SourceArgs, out, stream_rows};

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
