//! Reading an export file: split into lines and checked on verifier threads, a stream per
//! thread; or read row by row on one thread.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use domain::audit::export;
use domain::audit::{ChainVerifier, StoredRow, VerifyReport};
use domain::provenance::EventMetadata;

use super::AuditError;
use super::progress::Progress;

/// What verifying an export file found beyond the chain report.
#[derive(Debug, Default)]
pub(crate) struct FileFindings {
    /// Line of each stream's fault, by `(type, id)`.
    pub(crate) fault_lines: HashMap<(String, String), u64>,
    /// Lines that are not export records: `(line, problem)`.
    pub(crate) bad_lines: Vec<(u64, String)>,
    /// Stored hashes at the positions asked for: `(type, id, sequence) -> hash`.
    pub(crate) hashes: HashMap<(String, String, u64), String>,
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
pub(crate) fn verify_export(
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
pub(crate) fn remember_hash(
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

/// The problem of a last line without its line feed.
const CUT_SHORT: &str = "not an export record: no line feed at its end: the file is cut short";

/// Calls `each` with every row of an export file, in file order, on this thread. A line that
/// is not an export record is an error here (naming it); `verify` reports such lines instead.
pub(crate) fn for_each_file_row(
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
