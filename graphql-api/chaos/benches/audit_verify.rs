//! Benchmark of the auditor's verification: a whole log verified from the embedded store and
//! from its export file.
//!
//! The log (default 1,000,000 events) is made of real events: one experiment run of 30 events
//! is written through the store layer, and its stored rows are copied to every experiment of
//! the log (ids, event ids and command ids changed) and sealed into a valid chain per stream;
//! experiments are interleaved a hundred at a time, as concurrent runs are. Then:
//!
//! 1. **Export**: `chaos audit export`'s writer, store to JSON Lines: events/s.
//! 2. **Verify, SQLite**: `chaos audit verify`'s scan of the store (`--no-projection`): events/s.
//! 3. **Verify, file**: `chaos audit verify --file`'s reader and verifier threads: events/s,
//!    with the default verifier threads and with one.
//!
//! Each verification runs BENCH_RUNS times (default 3) and the median is reported.
//! Run with `cargo xtask bench` (or `cargo bench -p graphql-api --bench audit_verify`).
//! Knobs: BENCH_EVENTS, BENCH_RUNS, BENCH_DIR (keep the store and export there: a later run
//! with the same BENCH_EVENTS reuses them).

use common::knob;
use test_support::common;

use std::path::Path;
use std::time::{Duration, Instant};

use chaos::audit::{export_store, verify_export_file};
use domain::audit::chain::{link_hash, write_canonical_event};
use domain::audit::verify::canonical_metadata;
use domain::audit::{EventRecord, GENESIS_HASH};
use domain::experiment::Experiment;
use domain::provenance::EventMetadata;
use embedded_write::sqlite::verify_file;

/// The allocator the `chaos` binary runs with (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Events per experiment run.
const RUN_EVENTS: usize = 30;
/// Experiments whose events interleave in the log.
const CONCURRENT: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = knob("BENCH_EVENTS", 1_000_000).max(RUN_EVENTS);
    let runs = knob("BENCH_RUNS", 3).max(1);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = std::env::var_os("BENCH_DIR")
        .map_or_else(|| temp.path().to_owned(), std::path::PathBuf::from);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let db = dir.join(format!("audit-{events}.db"));
    let export = dir.join(format!("audit-{events}.jsonl"));

    if !db.exists() {
        let started = Instant::now();
        let template = template(&dir).await;
        write_log(&db, &template, events / RUN_EVENTS).await;
        println!(
            "log: {} events written in {:.1} s",
            events / RUN_EVENTS * RUN_EVENTS,
            started.elapsed().as_secs_f64()
        );
    }
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len()) as f64 / 1e6;

    let started = Instant::now();
    let exported = export_store(&db, &export, None).expect("export");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "export: {exported} events, {:.0} MB, in {seconds:.2} s: {:.0} events/s",
        size(&export),
        exported as f64 / seconds
    );

    let sqlite = median(runs, || {
        let report = verify_file(&db, 0, |_| {}).expect("verify store");
        assert!(
            report.is_ok() && report.events == exported,
            "{:?}",
            report.faults.first()
        );
    });
    println!(
        "verify, SQLite ({:.0} MB): {exported} events in {:.3} s (median of {runs}): {:.0} events/s",
        size(&db),
        sqlite.as_secs_f64(),
        exported as f64 / sqlite.as_secs_f64()
    );
    for verifiers in [None, Some(1)] {
        let file = median(runs, || {
            let report = verify_export_file(&export, verifiers).expect("verify export");
            assert!(
                report.is_ok() && report.events == exported,
                "{:?}",
                report.faults.first()
            );
        });
        println!(
            "verify, export file ({}): {exported} events in {:.3} s (median of {runs}): {:.0} events/s",
            verifiers.map_or_else(
                || "default verifier threads".to_owned(),
                |n| format!("{n} verifier thread")
            ),
            file.as_secs_f64(),
            exported as f64 / file.as_secs_f64()
        );
    }
}

fn median(runs: usize, mut run: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// One stored run: (event type, payload, metadata) of each event, as the store wrote them.
async fn template(dir: &Path) -> Vec<(String, String, EventMetadata)> {
    let path = dir.join("template.db");
    let _ = std::fs::remove_file(&path);
    let (store, pool) = common::store_at(&path).await;
    for (i, command) in common::lifecycle("template-0000", RUN_EVENTS - 10)
        .into_iter()
        .enumerate()
    {
        store
            .execute::<Experiment>("template-0000", command, &common::context(&format!("c{i}")))
            .await
            .expect("append");
    }
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT event_type, payload, metadata FROM events ORDER BY sequence")
            .fetch_all(&pool)
            .await
            .expect("rows");
    pool.close().await;
    rows.into_iter()
        .map(|(t, p, m)| (t, p, serde_json::from_str(&m).expect("metadata")))
        .collect()
}

/// A store of `experiments` runs copied from `template`, each stream sealed anew.
async fn write_log(db: &Path, template: &[(String, String, EventMetadata)], experiments: usize) {
    let (_, pool) = common::store_at(db).await;
    pool.close().await;
    let mut conn = rusqlite::Connection::open(db).expect("open");
    let tx = conn.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, '1', ?5, ?6)")
            .expect("prepare");
        let mut event = String::new();
        for group in (0..experiments).collect::<Vec<_>>().chunks(CONCURRENT) {
            let mut heads = vec![GENESIS_HASH.to_owned(); group.len()];
            for (sequence, (event_type, payload, metadata)) in template.iter().enumerate() {
                for (n, prev) in group.iter().zip(heads.iter_mut()) {
                    let id = format!("bench-{n:07}");
                    let payload = payload.replace("template-0000", &id);
                    let mut m = metadata.clone();
                    m.event_id = format!("{}-{n:07}", &m.event_id[..28]);
                    m.command_id = format!("{id}-{sequence}");
                    m.prev_hash.clone_from(prev);
                    event.clear();
                    write_canonical_event(
                        &mut event,
                        &EventRecord {
                            aggregate_type: "Experiment",
                            aggregate_id: &id,
                            sequence: sequence as u64 + 1,
                            event_type,
                            event_version: "1",
                            metadata: &m,
                        },
                        &payload,
                    );
                    m.hash = link_hash(
                        &domain::audit::chain::decode_digest(prev).expect("digest"),
                        event.as_bytes(),
                    );
                    prev.clone_from(&m.hash);
                    insert
                        .execute(rusqlite::params![
                            "Experiment",
                            id,
                            sequence as i64 + 1,
                            event_type,
                            payload,
                            canonical_metadata(&m),
                        ])
                        .expect("insert");
                }
            }
        }
    }
    tx.commit().expect("commit");
}
