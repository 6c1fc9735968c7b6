//! `chaos audit verify`: every stream's chain and sequence, optionally against an earlier
//! digest, and the audit-log read model against the log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use domain::audit::digest::{self, Digest, DigestCheck};
use domain::audit::{ChainVerifier, Fault, VerifyReport};
use domain::provenance::EventMetadata;
use embedded_write::sqlite::{OpenMode, open, verify_file};
use graphql_api::chain::{dynamo_stream, dynamo_streams, dynamodb, read_only};
use serde_json::{Value, json};

use super::file::{FileFindings, remember_hash, verify_export};
use super::progress::Progress;
use super::projection::{DynamoAuditCheck, Projection, ProjectionCheck, check_projection};
use super::{AuditError, Source, SourceArgs, out, task};

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
pub(crate) struct Verification {
    pub(crate) source: Source,
    pub(crate) report: VerifyReport,
    pub(crate) file: Option<FileFindings>,
    pub(crate) digest: Option<DigestCheck>,
    pub(crate) projection: Option<ProjectionCheck>,
    pub(crate) elapsed: Duration,
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
pub(crate) async fn verify_source(
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
            let (streams, total) = dynamo_streams(&client, table, |n| bar.update(n)).await?;
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
pub(crate) fn outcome(v: &Verification) -> Result<(), AuditError> {
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

pub(crate) fn print_verification(
    v: &Verification,
    digest_path: Option<&Path>,
) -> Result<(), AuditError> {
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
