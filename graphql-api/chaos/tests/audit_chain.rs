//! The `auditChain` query, black box: `chaos serve` on port 0 over a real SQLite store. After a
//! real run the chain is intact, of the whole log and of the run's own stream; once an event's
//! payload is changed in the file, behind the server's back, the query names that stream and
//! sequence, as `chaos audit verify` does.

mod server;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server::{chaos, code, gql, key, ok_json, spec};

const CHAIN: &str = "query($id: ID) { auditChain(experimentId: $id) { intact streams events checkedAt \
    faults { streamType streamId sequence problem } } }";

/// The chain status as `secret` asks for it (of stream `id`, or of the whole log).
fn chain(addr: std::net::SocketAddr, secret: &str, id: Option<&str>) -> Value {
    gql(addr, Some(secret), CHAIN, json!({ "id": id }))
}

/// Runs experiment `id` (one worker of the demo fleet terminated) to its end.
fn run(addr: std::net::SocketAddr, operator: &str, id: &str) -> Value {
    let created = gql(
        addr,
        Some(operator),
        "mutation($id: ID!, $spec: JSON!) { createExperiment(id: $id, spec: $spec) { aggregateId } }",
        json!({ "id": id, "spec": spec("kill one web worker", false) }),
    );
    assert_eq!(
        created["data"]["createExperiment"]["aggregateId"], id,
        "{created}"
    );
    let started = gql(
        addr,
        Some(operator),
        "mutation($id: ID!) { startExperiment(id: $id) { events } }",
        json!({ "id": id }),
    );
    assert!(started["errors"].is_null(), "{started}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = gql(
            addr,
            Some(operator),
            "query($id: ID!) { experiment(id: $id) { experiment { status version } } }",
            json!({ "id": id }),
        );
        let experiment = answer["data"]["experiment"]["experiment"].clone();
        if experiment["status"] == "COMPLETED" {
            return experiment;
        }
        assert!(
            Instant::now() < deadline,
            "no outcome within 60 s: {answer}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn events_in_store(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count")
}

#[test]
fn the_chain_is_intact_after_a_run_and_a_changed_payload_is_named_by_stream_and_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    let operator = key(&db, "ops", "OPERATOR");
    let viewer = key(&db, "auditor", "VIEWER");
    let server = server::serve(
        &db,
        &["--fleet-size", "2", "--fleet-replace-after-ms", "300"],
    );
    let addr = server.addr;
    let experiment = run(addr, &operator, "chain-1");
    let version = experiment["version"].as_u64().expect("version");

    // A viewer (an auditor) may ask; an anonymous caller may not.
    let anonymous = gql(addr, None, CHAIN, json!({}));
    assert_eq!(
        code(&anonymous).as_deref(),
        Some("UNAUTHENTICATED"),
        "{anonymous}"
    );

    // The whole log: the API keys' book and the run's stream, every event of the store.
    let whole = chain(addr, &viewer, None);
    let status = &whole["data"]["auditChain"];
    assert_eq!(status["intact"], true, "{whole}");
    assert_eq!(status["faults"], json!([]), "{whole}");
    assert_eq!(status["streams"], 2, "{whole}");
    assert_eq!(
        status["events"].as_u64(),
        Some(events_in_store(&db)),
        "{whole}"
    );
    let checked_at = status["checkedAt"].as_str().expect("checkedAt");
    assert!(
        checked_at.parse::<domain::Timestamp>().is_ok(),
        "checkedAt {checked_at:?} is not RFC 3339"
    );

    // One stream: the run's events only.
    let one = chain(addr, &viewer, Some("chain-1"));
    let status = &one["data"]["auditChain"];
    assert_eq!(
        (
            &status["intact"],
            &status["streams"],
            status["events"].as_u64()
        ),
        (&json!(true), &json!(1), Some(version)),
        "{one}"
    );
    let platform = chain(addr, &viewer, Some("api-keys.1"));
    assert_eq!(platform["data"]["auditChain"]["streams"], 1, "{platform}");
    let missing = chain(addr, &viewer, Some("no-such-experiment"));
    assert_eq!(code(&missing).as_deref(), Some("NOT_FOUND"), "{missing}");

    // The start's time changed in the file, behind the server's back: still canonical JSON,
    // but no longer what was hashed.
    let conn = rusqlite::Connection::open(&db).expect("open");
    let changed = conn
        .execute(
            "UPDATE events SET payload = replace(payload, '\"at\":\"2', '\"at\":\"1') \
             WHERE aggregate_type = 'Experiment' AND aggregate_id = 'chain-1' AND sequence = 2",
            [],
        )
        .expect("tamper");
    assert_eq!(changed, 1);
    drop(conn);

    let expected_fault = |answer: &Value| {
        let status = &answer["data"]["auditChain"];
        assert_eq!(status["intact"], false, "{answer}");
        let faults = status["faults"].as_array().expect("faults");
        assert_eq!(faults.len(), 1, "only the changed stream: {answer}");
        assert_eq!(
            (
                &faults[0]["streamType"],
                &faults[0]["streamId"],
                &faults[0]["sequence"]
            ),
            (&json!("Experiment"), &json!("chain-1"), &json!(2)),
            "{answer}"
        );
        let problem = faults[0]["problem"].as_str().expect("problem");
        assert!(
            problem.starts_with("hash ") && problem.contains("does not match the content"),
            "{problem}"
        );
    };
    let whole = chain(addr, &viewer, None);
    expected_fault(&whole);
    assert_eq!(whole["data"]["auditChain"]["streams"], 2, "{whole}");
    expected_fault(&chain(addr, &viewer, Some("chain-1")));
    // The API keys' book is untouched, and says so.
    let platform = chain(addr, &viewer, Some("api-keys.1"));
    assert_eq!(platform["data"]["auditChain"]["intact"], true, "{platform}");

    // The auditor's command agrees on the position.
    let verified = chaos(&db, &["audit", "verify", "--json", "--no-projection"]);
    assert_eq!(verified.status.code(), Some(4));
    let report: Value = serde_json::from_slice(&verified.stdout).expect("JSON");
    assert_eq!(report["faults"][0]["aggregate_id"], "chain-1", "{report}");
    assert_eq!(report["faults"][0]["sequence"], 2, "{report}");
    assert_eq!(
        report["faults"][0]["problem"],
        whole["data"]["auditChain"]["faults"][0]["problem"]
    );
}
