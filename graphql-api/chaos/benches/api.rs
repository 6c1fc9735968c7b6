//! Benchmarks of the GraphQL API as `chaos serve` runs it (embedded mode, real HTTP and
//! WebSockets on 127.0.0.1, the load generators in the same process on the same 2 cores).
//!
//! 1. **Experiments list**: the first page of 50 (`experiments(first: 50)`) with an API key,
//!    from BENCH_CLIENTS concurrent keep-alive connections for BENCH_SECONDS, with
//!    BENCH_EXPERIMENTS experiments in the read model (written through the real command path
//!    and projected). Latency p50 / p95 / p99 and requests per second. Targets on the
//!    development machine: p95 <= 10 ms, >= 5,000 requests/s. Nothing is written during the
//!    run, so after the first request the page comes from the read models' page cache
//!    (`graphql_api::reads`), as it does for every dashboard showing the same first page
//!    while nothing changes.
//! 2. **Subscription delivery**: BENCH_SUBSCRIBERS sockets subscribed to `platformActivity`;
//!    BENCH_EVENTS commands, 50 per second; for every (subscriber, event) pair, the time from
//!    the command's acknowledgement to the update's arrival. p50 / p95 / p99 / max.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p graphql-api --bench api`). BENCH_DB keeps
//! the store at that path, so a later run reuses the experiments instead of writing them again.

use common::{knob, ms, percentile};
use test_support::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use command_lambdas::clock::SystemClock;
use demo_fleet::LocalFleets;
use domain::experiment::Experiment;
use domain::provenance::Role;
use embedded_read::projector::Projector;
use embedded_write::sqlite::{OpenMode, open};
use graphql_api::backend::embedded::EmbeddedBackend;
use graphql_api::http::{AppState, router};
use graphql_api::identity::Authenticator;
use graphql_api::identity::local::{LocalIssuer, TokenPolicy, key_file};
use serde_json::{Value, json};

/// The allocator the `chaos` binary runs with (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let experiments = knob("BENCH_EXPERIMENTS", 100_000);
    let clients = knob("BENCH_CLIENTS", 32).max(1);
    let seconds = knob("BENCH_SECONDS", 10).max(1);
    let subscribers = knob("BENCH_SUBSCRIBERS", 100);
    let events = knob("BENCH_EVENTS", 200);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = std::env::var_os("BENCH_DB")
        .map_or_else(|| dir.path().join("bench.db"), std::path::PathBuf::from);

    fill(&db, experiments).await;

    let pool = open(&db, OpenMode::CreateIfMissing).await.expect("open");
    let local = LocalIssuer::open(pool.clone(), &key_file(&db), TokenPolicy::default())
        .await
        .expect("identity");
    let auth = Authenticator {
        local: Some(local),
        cognito: None,
        first_admin: None,
    };
    let fleets = LocalFleets::default();
    let (backend, _workflows) =
        EmbeddedBackend::start(&db, pool.clone(), &fleets, Arc::new(SystemClock))
            .await
            .expect("backend");
    let service = backend.service().clone();
    // The capacity of the server is measured, not the limit of one caller.
    let state = AppState::new(
        Arc::new(backend),
        fleets,
        auth,
        graphql_api::limits::Limits::new(0),
    );
    let id = format!("bench-{}", uuid::Uuid::now_v7());
    let issued = command_lambdas::api_keys::issue(
        &service,
        &id,
        "benchmark",
        Role::Admin,
        &common::context(&id),
    )
    .await
    .expect("api key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.expect("serve");
    });

    list(addr, &issued.secret, clients, seconds).await;
    if subscribers > 0 {
        subscriptions(addr, &issued.secret, &service, subscribers, events).await;
    }
}

/// Tops the store up to `experiments` experiments and projects them.
async fn fill(db: &std::path::Path, experiments: usize) {
    let (store, pool) = common::store_at(db).await;
    let existing: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE aggregate_type = 'Experiment' AND sequence = 1",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    let more = experiments.saturating_sub(usize::try_from(existing).unwrap_or(0));
    println!(
        "experiments list: {experiments} experiments in the read model ({more} more written through the command path)"
    );
    let store = Arc::new(store);
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..4usize {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            for n in (writer..more).step_by(4) {
                let id = format!("list-{existing:06}-{n:06}");
                // One in a hundred has run to its end; the others are drafts.
                let commands = common::lifecycle(&id, 0);
                let take = if n % 100 == 0 { commands.len() } else { 1 };
                for (i, command) in commands.into_iter().take(take).enumerate() {
                    store
                        .execute::<Experiment>(&id, command, &common::context(&format!("{id}-{i}")))
                        .await
                        .expect("command accepted");
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    if more > 0 {
        println!("  written in {:.1} s", started.elapsed().as_secs_f64());
    }
    let path = db.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut projector = Projector::open(&path, None).expect("projector");
        loop {
            let report = projector.step().expect("projection step");
            if report.read == 0 {
                break;
            }
        }
    })
    .await
    .expect("projector");
}

/// The experiments list under load: see the module docs.
async fn list(addr: SocketAddr, secret: &str, clients: usize, seconds: usize) {
    let body = json!({"query": "{ experiments(first: 50) { items { id name status outcome createdAt } nextCursor } }"}).to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let url = format!("http://{addr}/graphql");
    // The answer is what a client expects.
    let answer = client
        .post(&url)
        .bearer_auth(secret)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("request")
        .bytes()
        .await
        .expect("body");
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    let items = answer["data"]["experiments"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no page: {answer}"));
    assert_eq!(items.len(), 50, "{answer}");

    let warmup = Duration::from_secs(1);
    let run = Duration::from_secs(u64::try_from(seconds).unwrap_or(10));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, body, secret) =
            (client.clone(), url.clone(), body.clone(), secret.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let sent = Instant::now();
                if sent >= started + warmup + run {
                    return latencies;
                }
                let response = client
                    .post(&url)
                    .bearer_auth(&secret)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("request");
                assert!(response.status().is_success());
                let bytes = response.bytes().await.expect("body");
                assert!(bytes.len() > 1_000);
                if sent >= started + warmup {
                    latencies.push(sent.elapsed());
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("client"));
    }
    latencies.sort_unstable();
    println!(
        "  first page of 50, {clients} connections, {seconds} s: {:.0} requests/s; p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        latencies.len() as f64 / run.as_secs_f64(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 95.0)),
        ms(percentile(&latencies, 99.0)),
    );
}

/// Subscription delivery latency: see the module docs.
async fn subscriptions(
    addr: SocketAddr,
    secret: &str,
    service: &embedded_write::SqliteService,
    subscribers: usize,
    events: usize,
) {
    println!(
        "subscriptions: {subscribers} subscribers to platformActivity, {events} events at 50/s"
    );
    type Arrivals = Arc<Mutex<Vec<(String, Instant)>>>;
    let arrivals: Arrivals = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut threads = Vec::new();
    for _ in 0..subscribers {
        let (arrivals, ready, secret) =
            (Arc::clone(&arrivals), ready_tx.clone(), secret.to_owned());
        threads.push(std::thread::spawn(move || {
            use tungstenite::client::IntoClientRequest;
            let mut request = format!("ws://{addr}/graphql")
                .into_client_request()
                .expect("request");
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                "graphql-transport-ws".parse().expect("header"),
            );
            let (mut socket, _) = tungstenite::connect(request).expect("connect");
            let send = |socket: &mut tungstenite::WebSocket<_>, v: Value| {
                socket
                    .send(tungstenite::Message::Text(v.to_string().into()))
                    .expect("send");
            };
            send(&mut socket, json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {secret}")}}));
            let _ack = socket.read().expect("ack");
            send(&mut socket, json!({"id": "a", "type": "subscribe", "payload": {"query": "subscription { platformActivity { streamId } }"}}));
            ready.send(()).expect("ready");
            let mut seen = Vec::new();
            while seen.len() < events {
                let Ok(tungstenite::Message::Text(text)) = socket.read() else {
                    continue;
                };
                let at = Instant::now();
                let message: Value = serde_json::from_str(&text).expect("json");
                if let Some(stream) = message["payload"]["data"]["platformActivity"]["streamId"].as_str() {
                    seen.push((stream.to_owned(), at));
                }
            }
            arrivals.lock().expect("arrivals").extend(seen);
        }));
    }
    for _ in 0..subscribers {
        ready_rx.recv().expect("subscriber ready");
    }
    // The subscriptions are registered once their first poll has run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut acked: HashMap<String, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    for n in 0..events {
        ticker.tick().await;
        let id = format!("sub-{}-{n}", uuid::Uuid::now_v7());
        let command = common::lifecycle(&id, 0).remove(0);
        let store = service.store();
        store
            .execute::<Experiment>(&id, command, &common::context(&id))
            .await
            .expect("command");
        acked.insert(id, Instant::now());
    }
    let threads = tokio::task::spawn_blocking(move || {
        for t in threads {
            t.join().expect("subscriber");
        }
    });
    threads.await.expect("subscribers");
    let mut latencies: Vec<Duration> = arrivals
        .lock()
        .expect("arrivals")
        .iter()
        .filter_map(|(stream, at)| acked.get(stream).map(|a| at.saturating_duration_since(*a)))
        .collect();
    assert_eq!(
        latencies.len(),
        subscribers * events,
        "every subscriber got every event"
    );
    latencies.sort_unstable();
    println!(
        "  delivery after the command's acknowledgement: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 95.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}
