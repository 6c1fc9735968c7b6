//! Benchmarks of the embedded read side.
//!
//! 1. **Lag**: a writer appends at a steady rate (default 1,000 events/s, spread over many
//!    experiments) for a while, through the real command path; the projector runs its serving
//!    loop (`Projector::run`) on its own thread. For every event, lag = the moment the
//!    projector's transaction containing it committed minus the moment the writer's command
//!    was acknowledged. Reported as p50 / p99 / max.
//! 2. **Rebuild**: all read models dropped and projected again from the whole log (default
//!    100,000 events over 1,000 experiments): events/s.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p projection-lambdas --bench projection`).
//! Knobs: BENCH_RATE (events/s), BENCH_SECONDS (0 skips the lag run), BENCH_EXPERIMENTS,
//! BENCH_COMMANDS, BENCH_REBUILDS (rebuilds timed; the median is reported), BENCH_DB (keep the
//! store at this path, so a later run reuses the log instead of writing it again), BENCH_BATCH
//! (the rebuild's chunk size).

use common::{knob, ms, percentile};
use test_support::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::experiment::Experiment;
use embedded_read::projector::Projector;

/// The allocator the `chaos` binary runs with (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Acks = Arc<Mutex<HashMap<(String, i64), Instant>>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate = knob("BENCH_RATE", 1_000).max(1);
    let seconds = knob("BENCH_SECONDS", 20);
    let experiments = knob("BENCH_EXPERIMENTS", 1_000).max(1);
    let commands = knob("BENCH_COMMANDS", 100).max(10);
    let rebuilds = knob("BENCH_REBUILDS", 3).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = std::env::var_os("BENCH_DB")
        .map_or_else(|| dir.path().join("bench.db"), std::path::PathBuf::from);
    let (store, _pool) = common::store_at(&db).await;
    let store = Arc::new(store);

    if seconds > 0 {
        lag(&db, &store, rate, seconds).await;
    }
    rebuild(&db, &store, experiments, commands, rebuilds).await;
}

type Store = Arc<embedded_write::SqliteStore>;

/// Lag at a steady rate: see the module docs.
async fn lag(db: &std::path::Path, store: &Store, rate: usize, seconds: usize) {
    // --- Lag at a steady rate -------------------------------------------------------------
    let total = rate * seconds;
    let streams = (total / 50).max(1);
    println!(
        "lag: {total} events at {rate}/s over {streams} experiments, projector polling every {} ms when idle",
        embedded_read::projector::IDLE_POLL.as_millis()
    );
    let acks: Acks = Arc::default();
    // When the projector's transaction holding each event committed. An event may be projected
    // before its writer has even noted the acknowledgement: its lag counts as zero.
    let projected: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let projector = {
        let db = db.to_owned();
        let projected = Arc::clone(&projected);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut projector = Projector::open(&db, None).expect("projector");
            let reader = rusqlite::Connection::open(&db).expect("reader");
            let mut last = 0i64;
            projector.run(&stop, embedded_read::projector::IDLE_POLL, |report| {
                if report.position <= last {
                    return;
                }
                let committed = Instant::now();
                let mut statement = reader
                    .prepare_cached("SELECT aggregate_id, sequence FROM events WHERE rowid > ?1 AND rowid <= ?2")
                    .expect("query");
                let rows = statement
                    .query_map([last, report.position], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .expect("rows");
                let mut projected = projected.lock().expect("projected");
                for row in rows {
                    projected.insert(row.expect("row"), committed);
                }
                last = report.position;
            });
        })
    };

    let scripts: Vec<(String, Vec<_>)> = (0..streams)
        .map(|n| {
            let id = format!("lag-{n:05}");
            let script = common::lifecycle(&id, 40);
            (id, script)
        })
        .collect();
    let started = Instant::now();
    let mut written = 0usize;
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    'outer: for step in 0.. {
        let due = started + tick * u32::try_from(step).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due.into()).await;
        for _ in 0..per_tick {
            if written >= total {
                break 'outer;
            }
            let stream = written % streams;
            let position = written / streams;
            let (id, script) = &scripts[stream];
            let Some(command) = script.get(position) else {
                written += 1;
                continue;
            };
            let outcome = store
                .execute::<Experiment>(
                    id,
                    command.clone(),
                    &common::context(&format!("{id}-{position}")),
                )
                .await
                .expect("command accepted");
            let acked = Instant::now();
            let mut acks = acks.lock().expect("acks");
            for e in outcome.events {
                acks.insert(
                    (id.clone(), i64::try_from(e.sequence).unwrap_or(i64::MAX)),
                    acked,
                );
            }
            written += 1;
        }
    }
    let writing = started.elapsed();
    // Let the projector drain, then stop it.
    let expected = acks.lock().expect("acks").len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while projected.lock().expect("projected").len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    projector.join().expect("projector thread");
    let projected = std::mem::take(&mut *projected.lock().expect("projected"));
    let mut lags: Vec<Duration> = acks
        .lock()
        .expect("acks")
        .iter()
        .filter_map(|(key, acked)| {
            projected
                .get(key)
                .map(|p| p.saturating_duration_since(*acked))
        })
        .collect();
    lags.sort_unstable();
    println!(
        "  wrote {expected} events in {:.1} s ({:.0} events/s); projected {}",
        writing.as_secs_f64(),
        expected as f64 / writing.as_secs_f64(),
        lags.len()
    );
    println!(
        "  lag: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&lags, 50.0)),
        ms(percentile(&lags, 99.0)),
        ms(lags.last().copied().unwrap_or_default())
    );
    assert_eq!(
        lags.len(),
        expected,
        "every acknowledged event was projected"
    );
}

/// Rebuild of every read model from the whole log: see the module docs.
async fn rebuild(
    db: &std::path::Path,
    store: &Store,
    experiments: usize,
    commands: usize,
    rebuilds: usize,
) {
    let existing: i64 = rusqlite::Connection::open(db)
        .expect("count")
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count");
    let wanted = experiments * commands;
    let more = wanted.saturating_sub(usize::try_from(existing).unwrap_or(0));
    println!(
        "rebuild: topping the log up to {wanted} events ({more} more through the command path)"
    );
    let fill_streams = more.div_ceil(commands);
    let mut tasks = Vec::new();
    for client in 0..4usize {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            for n in (client..fill_streams).step_by(4) {
                let id = format!("fill-{n:05}");
                for (i, command) in common::lifecycle(&id, commands - 10)
                    .into_iter()
                    .enumerate()
                {
                    store
                        .execute::<Experiment>(&id, command, &common::context(&format!("{id}-{i}")))
                        .await
                        .expect("command accepted");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    // As `chaos projections rebuild` runs it, unless BENCH_BATCH says otherwise.
    let mut projector = Projector::open(db, None).expect("projector");
    if let Some(batch) = std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        projector = projector.with_batch(batch);
    }
    let mut times = Vec::new();
    let mut applied = 0;
    for _ in 0..rebuilds {
        let started = Instant::now();
        let report = projector.rebuild().expect("rebuild");
        times.push(started.elapsed());
        applied = report.applied;
    }
    times.sort_unstable();
    let median = times[times.len() / 2];
    println!(
        "  rebuilt every read model from {applied} events, {rebuilds} times: median {:.2} s ({:.0} events/s), fastest {:.2} s",
        median.as_secs_f64(),
        applied as f64 / median.as_secs_f64(),
        times[0].as_secs_f64(),
    );
}
