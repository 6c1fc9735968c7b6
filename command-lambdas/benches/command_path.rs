//! Benchmark of the realistic command path on the embedded store, then of replay + verify.
//!
//! Each command loads its experiment's stream from SQLite, folds it, runs `handle`, seals the
//! new event into the hash chain and commits it (WAL, synchronous=NORMAL: durable against a
//! process crash once acknowledged). Defaults: 1,000 experiments x 100 commands = 100,000
//! events, driven by 2 concurrent clients (one per core), each advancing its experiments step by step.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p command-lambdas --bench command_path`).
//! Knobs: BENCH_EXPERIMENTS, BENCH_COMMANDS (>= 10), BENCH_CLIENTS, BENCH_DIR.

use common::{knob, percentile};
use test_support::common;

use std::sync::Arc;
use std::time::Instant;

use domain::experiment::Experiment;
use embedded_write::sqlite::{stats, verify_file};

/// The allocator the `chaos` binary runs with (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let experiments = knob("BENCH_EXPERIMENTS", 1_000);
    let commands_each = knob("BENCH_COMMANDS", 100).max(10);
    let clients = knob("BENCH_CLIENTS", 2).max(1);
    let dir = match std::env::var("BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .expect("temp dir");
    let db = dir.path().join("bench.db");
    let (store, pool) = common::store_at(&db).await;
    let store = Arc::new(store);

    println!(
        "command path: {experiments} experiments x {commands_each} commands, {clients} clients, db {}",
        db.display()
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let ids: Vec<String> = (client..experiments)
                .step_by(clients)
                .map(|n| format!("bench-{n:05}"))
                .collect();
            let scripts: Vec<_> = ids
                .iter()
                .map(|id| common::lifecycle(id, commands_each - 10))
                .collect();
            let mut latencies = Vec::with_capacity(ids.len() * commands_each);
            for step in 0..commands_each {
                for (id, script) in ids.iter().zip(&scripts) {
                    let context = common::context(&format!("{id}-{step}"));
                    let t = Instant::now();
                    store
                        .execute::<Experiment>(id, script[step].clone(), &context)
                        .await
                        .expect("command accepted");
                    latencies.push(t.elapsed());
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("client"));
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let commands = latencies.len();

    let counts = stats(&pool).await.expect("stats");
    let text_bytes: i64 =
        sqlx::query_scalar("SELECT sum(length(payload) + length(metadata) + length(aggregate_id) + length(event_type)) FROM events")
            .fetch_one(&pool)
            .await
            .expect("sizes");
    sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .expect("checkpoint");
    let file_bytes = file_len(&db) + file_len(&db.with_extension("db-wal"));

    println!("commands: {commands} in {:.2} s", elapsed.as_secs_f64());
    println!(
        "  throughput: {:.0} commands/s",
        commands as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  size: {} events, {:.0} bytes/event stored text, {:.0} bytes/event on disk",
        counts.events,
        text_bytes as f64 / counts.events as f64,
        file_bytes as f64 / counts.events as f64
    );
    assert_eq!(counts.events as usize, commands, "one event per command");

    let started = Instant::now();
    let report = verify_file(&db, 0, |_| {}).expect("verify");
    let elapsed = started.elapsed();
    assert!(report.is_ok(), "{:?}", report.faults.first());
    println!(
        "replay + verify: {} events in {} streams in {:.3} s: {:.0} events/s",
        report.events,
        report.streams,
        elapsed.as_secs_f64(),
        report.events as f64 / elapsed.as_secs_f64()
    );
    pool.close().await;
}
