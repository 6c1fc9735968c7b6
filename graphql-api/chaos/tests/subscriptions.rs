//! Subscriptions, black box: `chaos serve` on port 0, real WebSockets speaking
//! `graphql-transport-ws`, a real experiment against the demo fleet.

mod server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server::ws::{collect, connect, next, open, send};
use server::{Server, chaos, gql, key, ok_json, spec};
use tungstenite::client::IntoClientRequest;

/// The experiment as the page shows it, in the `experiment` query and in every update.
macro_rules! shown {
    () => {
        "experiment { id name target failureType dryRun status phase outcome recoveryMs createdAt \
         createdBy startedAt endedAt version } failure stopReason"
    };
}

const UPDATES: &str = concat!(
    "subscription($id: ID!, $after: Int) { experimentUpdates(id: $id, afterSequence: $after) { \
     experimentId sequence eventType status phase ended actor summary ",
    shown!(),
    " entry { sequence eventType action actor at hash } } }"
);

/// A store in a directory of its own, an operator's and a viewer's keys, and `chaos serve`
/// over it with a demo fleet of `workers`, each replaced `replace_ms` after it is lost.
struct Platform {
    _dir: tempfile::TempDir,
    db: PathBuf,
    operator: String,
    viewer: String,
    server: Server,
}

fn platform(workers: &str, replace_ms: &str) -> Platform {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    let operator = key(&db, "ops", "OPERATOR");
    let viewer = key(&db, "watcher", "VIEWER");
    let server = server::serve(
        &db,
        &[
            "--fleet-size",
            workers,
            "--fleet-replace-after-ms",
            replace_ms,
        ],
    );
    Platform {
        _dir: dir,
        db,
        operator,
        viewer,
        server,
    }
}

/// One run followed live, replayed, and compared with the log and the read models. One long test
/// because every check is of the same run (which takes seconds against the demo fleet).
#[test]
fn a_subscription_follows_one_experiment_in_order_from_start_to_finish() {
    let Platform {
        _dir,
        db,
        operator,
        viewer,
        server,
    } = platform("2", "300");
    let addr = server.addr;

    let created = gql(
        addr,
        Some(&operator),
        "mutation($spec: JSON!) { createExperiment(id: \"live-1\", spec: $spec) { version } }",
        json!({"spec": spec("watched: kill one web worker", false)}),
    );
    assert_eq!(
        created["data"]["createExperiment"]["version"], 1,
        "{created}"
    );

    // A viewer follows it live (from what comes next), another socket follows the platform.
    let mut live = connect(addr, &viewer);
    send(
        &mut live,
        json!({"id": "u", "type": "subscribe", "payload": {"query": UPDATES, "variables": {"id": "live-1"}}}),
    );
    let mut activity = connect(addr, &viewer);
    send(
        &mut activity,
        json!({"id": "a", "type": "subscribe", "payload": {"query": "subscription { platformActivity { position streamId sequence eventType actor } }"}}),
    );
    // Give both subscriptions a moment to be in place before the run starts.
    std::thread::sleep(Duration::from_millis(300));
    let started = gql(
        addr,
        Some(&operator),
        "mutation { startExperiment(id: \"live-1\") { events } }",
        json!({}),
    );
    assert!(started["errors"].is_null(), "{started}");

    let updates: Vec<Value> = collect(&mut live, "u")
        .into_iter()
        .map(|data| data["experimentUpdates"].clone())
        .collect();
    // From the start (sequence 2, after the creation) to the outcome, each once, in order.
    let sequences: Vec<i64> = updates
        .iter()
        .map(|u| u["sequence"].as_i64().expect("sequence"))
        .collect();
    let expected: Vec<i64> = (2..2 + i64::try_from(updates.len()).expect("len")).collect();
    assert_eq!(sequences, expected, "{updates:#?}");
    assert_eq!(updates[0]["eventType"], "ExperimentStarted");
    assert_eq!(updates[0]["actor"], "key:ops");
    assert_eq!(updates[0]["status"], "RUNNING");
    let last = updates.last().expect("an update");
    assert_eq!(last["eventType"], "ExperimentCompleted", "{updates:#?}");
    assert_eq!(
        (&last["status"], &last["ended"]),
        (&json!("COMPLETED"), &json!(true))
    );
    assert!(
        updates[..updates.len() - 1]
            .iter()
            .all(|u| u["ended"] == false)
    );
    for kind in [
        "TargetsResolved",
        "BaselineRecorded",
        "FailureInjected",
        "RecoveryObserved",
    ] {
        assert!(
            updates.iter().any(|u| u["eventType"] == kind),
            "no {kind}: {updates:#?}"
        );
    }
    // The same events as the log holds.
    let shown = ok_json(&chaos(&db, &["experiment", "show", "live-1"]));
    let logged: Vec<&str> = shown["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .skip(1)
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    let delivered: Vec<&str> = updates
        .iter()
        .map(|u| u["eventType"].as_str().expect("type"))
        .collect();
    assert_eq!(delivered, logged);

    // Each update carries the experiment as the `experiment` query shows it once the read
    // models have that event, and the timeline entry the query lists for it: one view.
    for update in &updates {
        assert_eq!(
            update["experiment"]["version"], update["sequence"],
            "{update:#}"
        );
        assert_eq!(
            update["experiment"]["status"], update["status"],
            "{update:#}"
        );
        assert_eq!(
            update["entry"]["sequence"], update["sequence"],
            "{update:#}"
        );
    }
    let query = concat!(
        "query { experiment(id: \"live-1\") { ",
        shown!(),
        " timeline { sequence eventType action actor at hash } } }"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let detail = loop {
        let read = gql(addr, Some(&viewer), query, json!({}));
        let detail = read["data"]["experiment"].clone();
        if detail["experiment"]["version"] == last["sequence"] {
            break detail;
        }
        assert!(
            Instant::now() < deadline,
            "the read models never caught up: {read}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(last["experiment"], detail["experiment"]);
    assert_eq!(
        (&last["failure"], &last["stopReason"]),
        (&detail["failure"], &detail["stopReason"])
    );
    let entries: Vec<&Value> = updates.iter().map(|u| &u["entry"]).collect();
    let timeline: Vec<&Value> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .skip(1)
        .collect();
    assert_eq!(entries, timeline);

    // A late subscriber asking from the start gets the whole run, then the end.
    let mut late = connect(addr, &viewer);
    send(
        &mut late,
        json!({"id": "r", "type": "subscribe", "payload": {"query": UPDATES, "variables": {"id": "live-1", "after": 0}}}),
    );
    let replayed = collect(&mut late, "r");
    assert_eq!(replayed.len(), updates.len() + 1);
    assert_eq!(
        replayed[0]["experimentUpdates"]["eventType"],
        "ExperimentCreated"
    );

    // The platform feed had every event of the run, in log order.
    let mut seen = Vec::new();
    while seen.len() < updates.len() {
        let message = next(&mut activity).expect("activity");
        assert_eq!(message["type"], "next", "{message}");
        let item = message["payload"]["data"]["platformActivity"].clone();
        if item["streamId"] == "live-1" {
            seen.push(item["sequence"].as_i64().expect("sequence"));
        }
    }
    assert_eq!(seen, expected);
}

#[test]
fn a_socket_without_a_good_credential_is_closed_and_roles_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db: &Path = &dir.path().join("chaos.db");
    ok_json(&chaos(db, &["init"]));
    let viewer = key(db, "watcher", "VIEWER");
    let server = server::serve(db, &["--no-fleet"]);
    let addr = server.addr;

    for payload in [
        json!({}),
        json!({"Authorization": "Bearer chaos_nope"}),
        json!({"Authorization": format!("Bearer chaos_{}", "0".repeat(64))}),
        json!({"Authorization": "Bearer a.b.c"}),
    ] {
        let mut socket = open(addr);
        send(
            &mut socket,
            json!({"type": "connection_init", "payload": payload}),
        );
        let (code, reason) = next(&mut socket).expect_err("closed");
        assert_eq!(code, 4403, "{payload}: {reason}");
        assert!(!reason.is_empty(), "{payload}: the reason is given");
    }
    // Subscribing before connection_init breaks the protocol: closed.
    let mut socket = open(addr);
    send(
        &mut socket,
        json!({"id": "x", "type": "subscribe", "payload": {"query": "subscription { platformActivity { position } }"}}),
    );
    assert!(next(&mut socket).is_err());

    // A viewer's socket: an unknown experiment and a bad query are errors on that
    // subscription only; the socket stays usable.
    let mut socket = connect(addr, &viewer);
    send(
        &mut socket,
        json!({"id": "1", "type": "subscribe", "payload": {"query": UPDATES, "variables": {"id": "nope"}}}),
    );
    let answer = next(&mut socket).expect("answer");
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{answer}"
    );
    assert_eq!(next(&mut socket).expect("complete")["type"], "complete");
    send(
        &mut socket,
        json!({"id": "2", "type": "subscribe", "payload": {"query": "subscription { nothing }"}}),
    );
    let answer = next(&mut socket).expect("answer");
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "INVALID_QUERY",
        "{answer}"
    );
    assert_eq!(next(&mut socket).expect("complete")["type"], "complete");
    // Commands over the socket keep their roles: a viewer cannot halt.
    send(
        &mut socket,
        json!({"id": "3", "type": "subscribe", "payload": {"query": "mutation { haltAll(reason: \"ws\") { events } }"}}),
    );
    let answer = next(&mut socket).expect("answer");
    assert_eq!(
        answer["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{answer}"
    );
    // A socket does not outlive its credential: revoked, the next delivery closes it.
    let doomed = key(db, "doomed", "VIEWER");
    let mut socket = connect(addr, &doomed);
    send(
        &mut socket,
        json!({"id": "a", "type": "subscribe", "payload": {"query": "subscription { platformActivity { eventType } }"}}),
    );
    ok_json(&chaos(db, &["apikey", "revoke", "doomed"]));
    std::thread::sleep(Duration::from_millis(1_100));
    ok_json(&chaos(
        db,
        &["platform", "halt", "--reason", "wake the feed"],
    ));
    loop {
        match next(&mut socket) {
            Ok(message) => assert_eq!(message["type"], "next", "{message}"),
            Err((code, reason)) => {
                assert_eq!(code, 4403, "{reason}");
                assert!(reason.contains("revoked"), "{reason}");
                break;
            }
        }
    }

    // A plain GET is still GraphiQL; a socket without the subprotocol is refused.
    let started = Instant::now();
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .expect("request");
    request.headers_mut().remove("Sec-WebSocket-Protocol");
    let refused = tungstenite::connect(request);
    assert!(refused.is_err(), "no subprotocol, no socket");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// What a page does: read the experiment, then subscribe after the last event it read. Every
/// joiner, whenever it joins (before the run starts, mid-run, after it ended), ends up with
/// the whole stream, each event once, in order, and the subscription ends with the run.
#[test]
fn subscribers_joining_mid_run_after_reading_the_experiment_see_the_rest_exactly_once() {
    const JOINERS: u64 = 12;
    const DETAIL: &str =
        "query($id: ID!) { experiment(id: $id) { experiment { version } timeline { sequence } } }";
    let Platform {
        _dir,
        db,
        operator,
        viewer,
        server,
    } = platform("3", "200");
    let addr = server.addr;

    for run in 0..3 {
        let id = format!("joined-{run}");
        let created = gql(
            addr,
            Some(&operator),
            "mutation($id: ID!, $spec: JSON!) { createExperiment(id: $id, spec: $spec) { version } }",
            json!({"id": id, "spec": spec(&format!("joined run {run}"), false)}),
        );
        assert!(created["errors"].is_null(), "{created}");
        let joiners: Vec<_> = (0..JOINERS)
            .map(|i| {
                let (id, viewer) = (id.clone(), viewer.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(i * 120));
                    let read = loop {
                        let answer = gql(addr, Some(&viewer), DETAIL, json!({"id": id}));
                        assert!(answer["errors"].is_null(), "{answer}");
                        if !answer["data"]["experiment"].is_null() {
                            break answer["data"]["experiment"].clone();
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    };
                    let mut seen: Vec<i64> = read["timeline"]
                        .as_array()
                        .expect("timeline")
                        .iter()
                        .map(|e| e["sequence"].as_i64().expect("sequence"))
                        .collect();
                    let after = seen.last().copied().unwrap_or(0);
                    let mut socket = connect(addr, &viewer);
                    send(
                        &mut socket,
                        json!({"id": "u", "type": "subscribe", "payload": {"query": UPDATES, "variables": {"id": id, "after": after}}}),
                    );
                    let updates = collect(&mut socket, "u");
                    seen.extend(
                        updates
                            .iter()
                            .map(|u| u["experimentUpdates"]["sequence"].as_i64().expect("sequence")),
                    );
                    (i, after, seen, updates.last().cloned())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let started = gql(
            addr,
            Some(&operator),
            "mutation($id: ID!) { startExperiment(id: $id) { events } }",
            json!({"id": id}),
        );
        assert!(started["errors"].is_null(), "{started}");
        let results: Vec<_> = joiners
            .into_iter()
            .map(|j| j.join().expect("joiner"))
            .collect();
        let shown = ok_json(&chaos(&db, &["experiment", "show", &id]));
        let stored =
            i64::try_from(shown["timeline"].as_array().expect("timeline").len()).expect("length");
        let whole: Vec<i64> = (1..=stored).collect();
        for (i, after, seen, last) in results {
            assert_eq!(
                seen, whole,
                "joiner {i} of run {run} read up to {after}, then subscribed"
            );
            if let Some(last) = last {
                assert_eq!(
                    last["experimentUpdates"]["ended"], true,
                    "joiner {i}: {last}"
                );
            }
        }
    }
}

/// A socket is held to the protocol's timeout and its caller's rate: one that never sends
/// `connection_init` is closed 4408; operations started over a socket count against the
/// caller's request rate as over HTTP, and one past it closes the socket 4429.
#[test]
fn a_socket_keeps_to_the_init_timeout_and_its_callers_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db: &Path = &dir.path().join("chaos.db");
    ok_json(&chaos(db, &["init"]));
    let viewer = key(db, "flooder", "VIEWER");
    let server = server::serve(db, &["--no-fleet", "--rate-limit", "5"]);
    let addr = server.addr;

    let mut silent = open(addr);
    let opened = Instant::now();
    let (code, reason) = next(&mut silent).expect_err("closed");
    assert_eq!(code, 4408, "{reason}");
    assert!(
        opened.elapsed() >= Duration::from_secs(9),
        "closed after {:?}",
        opened.elapsed()
    );

    let mut socket = connect(addr, &viewer);
    for n in 0..600 {
        let id = format!("op-{n}");
        let sent = socket.send(tungstenite::Message::Text(
            json!({"id": id, "type": "subscribe", "payload": {"query": "subscription { platformActivity { position } }"}})
                .to_string()
                .into(),
        ));
        if sent.is_err() {
            break;
        }
    }
    // Past the burst (ten, at five a second), the socket is closed with the reason.
    let (code, reason) = loop {
        if let Err(end) = next(&mut socket) {
            break end;
        }
    };
    assert_eq!(code, 4429, "{reason}");
    // The caller may come back once the rate allows.
    std::thread::sleep(Duration::from_millis(500));
    let _again = connect(addr, &viewer);
}
