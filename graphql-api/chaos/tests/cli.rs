//! The `chaos` binary, black-box: real process, real SQLite file, real HTTP on port 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use domain::experiment::Experiment;
use serde_json::{Value, json};
use test_support::common;

const CHAOS: &str = env!("CARGO_BIN_EXE_chaos");

fn chaos(db: &Path, args: &[&str]) -> Output {
    Command::new(CHAOS)
        .arg("--db")
        .arg(db)
        .args(args)
        .env("CHAOS_ACTOR", "ci-bot")
        .env_remove("RUST_LOG")
        .output()
        .expect("run chaos")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// This package's directory, as cargo says when it runs the tests: a build shared between
/// two checkouts (one target directory) would otherwise point at the one that built it.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// A copy of the example spec documented in the README.
fn spec_file(dir: &Path) -> PathBuf {
    let path = dir.join("spec.json");
    let example = manifest_dir().join("../../docs/examples/kill-one-worker.json");
    std::fs::copy(example, &path).expect("copy the example spec");
    path
}

#[test]
fn a_script_creates_starts_and_shows_an_experiment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let spec = spec_file(dir.path());
    let spec = spec.to_str().expect("utf-8 path");

    let init = chaos(&db, &["init"]);
    assert!(init.status.success(), "{}", stderr(&init));
    assert_eq!(stdout_json(&init)["store"]["events"], 0);

    let args = [
        "experiment",
        "create",
        "--spec",
        spec,
        "--id",
        "exp-1",
        "--command-id",
        "ci-42",
    ];
    let created = chaos(&db, &args);
    assert!(created.status.success(), "{}", stderr(&created));
    let created = stdout_json(&created);
    assert_eq!(created["aggregate_id"], "exp-1");
    assert_eq!(created["events"][0]["event_type"], "ExperimentCreated");
    assert_eq!(created["deduplicated"], false);

    // A CI job retrying after a timeout gets the same answer and appends nothing.
    let retried = stdout_json(&chaos(&db, &args));
    assert_eq!(retried["deduplicated"], true);
    assert_eq!(retried["events"], created["events"]);

    let started = chaos(&db, &["experiment", "start", "exp-1"]);
    assert!(started.status.success(), "{}", stderr(&started));

    let again = chaos(&db, &["experiment", "start", "exp-1"]);
    assert_eq!(again.status.code(), Some(3));
    assert!(
        stderr(&again).contains("cannot start: experiment is running"),
        "{}",
        stderr(&again)
    );

    let shown = chaos(&db, &["experiment", "show", "exp-1"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let shown = stdout_json(&shown);
    assert_eq!(shown["status"], "RUNNING");
    assert_eq!(shown["phase"], "RESOLVING_TARGETS");
    assert_eq!(shown["version"], 2);
    let timeline = shown["timeline"].as_array().expect("timeline");
    assert_eq!(timeline.len(), 2);
    assert_eq!(timeline[0]["type"], "ExperimentCreated");
    assert_eq!(timeline[0]["actor"], "ci-bot");
    assert_eq!(timeline[0]["actor_role"], "ADMIN");
    assert_eq!(timeline[0]["source"], "cli");
    assert_eq!(timeline[0]["command_id"], "ci-42");
    assert_eq!(timeline[1]["type"], "ExperimentStarted");

    let missing = chaos(&db, &["experiment", "show", "nope"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(stderr(&missing).contains("experiment not found"));

    let verified = chaos(&db, &["audit", "verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(String::from_utf8_lossy(&verified.stdout).starts_with("OK: 2 events in 1 streams"));
}

#[test]
fn the_halt_switch_blocks_starts_until_lifted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let spec = spec_file(dir.path());
    let spec = spec.to_str().expect("utf-8 path");
    assert!(chaos(&db, &["init"]).status.success());
    assert!(
        chaos(&db, &["experiment", "create", "--spec", spec, "--id", "e"])
            .status
            .success()
    );
    assert!(
        chaos(&db, &["platform", "halt", "--reason", "incident 7"])
            .status
            .success()
    );
    let refused = chaos(&db, &["experiment", "start", "e"]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(stderr(&refused).contains("platform is halted: incident 7"));
    let shown = stdout_json(&chaos(&db, &["platform", "show"]));
    assert_eq!(shown["halted"], true);
    assert!(chaos(&db, &["platform", "unhalt"]).status.success());
    assert!(chaos(&db, &["experiment", "start", "e"]).status.success());
    // Platform caps are enforced at start too.
    assert!(
        chaos(&db, &["experiment", "create", "--spec", spec, "--id", "f"])
            .status
            .success()
    );
    let config = [
        "platform",
        "config",
        "--max-targets-per-run",
        "2",
        "--max-duration-secs",
        "600",
    ];
    assert!(chaos(&db, &config).status.success());
    let capped = chaos(&db, &["experiment", "start", "f"]);
    assert_eq!(capped.status.code(), Some(3));
    assert!(stderr(&capped).contains("max_targets 3 exceeds the platform limit of 2"));
}

/// A stream id names one stream whatever its type: an experiment may not take the id of one of
/// the platform's streams, so `audit replay --experiment platform` can only mean the platform.
#[test]
fn an_experiment_may_not_take_the_id_of_a_platform_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    assert!(chaos(&db, &["init"]).status.success());
    let spec = spec_file(dir.path());
    let spec = spec.to_str().expect("path");
    for reserved in ["platform", "halt-switch.1", "users.12"] {
        let out = chaos(
            &db,
            &["experiment", "create", "--spec", spec, "--id", reserved],
        );
        assert_eq!(out.status.code(), Some(3), "{reserved}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is reserved: it names one of the platform's own streams"),
            "{}",
            stderr(&out)
        );
    }
    let fine = chaos(
        &db,
        &[
            "experiment",
            "create",
            "--spec",
            spec,
            "--id",
            "halt-switch-drill.1",
        ],
    );
    assert!(fine.status.success(), "{}", stderr(&fine));
    let events: i64 = rusqlite::Connection::open(&db)
        .expect("open")
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count");
    assert_eq!(events, 1, "only the experiment that may exist was created");
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read file")
}

#[test]
fn bad_input_gets_a_clear_error_and_touches_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");

    let unknown_flag = chaos(&db, &["audit", "verify", "--colour"]);
    assert_eq!(unknown_flag.status.code(), Some(2));
    assert!(stderr(&unknown_flag).contains("unexpected argument '--colour'"));

    let missing = chaos(&db, &["audit", "verify"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no such event store"),
        "{}",
        stderr(&missing)
    );
    assert!(!db.exists(), "a read must not create the store");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database, it is a shopping list\n").expect("write");
    let before = file_bytes(&garbage);
    let out = chaos(&garbage, &["init"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not an SQLite database (left untouched)"));
    assert_eq!(file_bytes(&garbage), before);

    let foreign = dir.path().join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).expect("create a foreign database");
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .expect("foreign schema");
    }
    let before = file_bytes(&foreign);
    let out = chaos(&foreign, &["serve", "--addr", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a chaos event store (left untouched)"));
    assert_eq!(file_bytes(&foreign), before);
    assert!(!dir.path().join("foreign.db-wal").exists());

    let out = chaos(dir.path(), &["init"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a regular file"));

    // An empty file is no store: every command that needs one refuses it and leaves it be.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("write");
    let export = dir.path().join("empty.jsonl");
    let export = export.to_str().expect("path");
    for args in [
        &["audit", "verify"][..],
        &["audit", "digest"],
        &["audit", "export", "--out", export],
        &[
            "audit",
            "replay",
            "--experiment",
            "e",
            "--at",
            "2026-01-01T00:00:00Z",
        ],
        &["audit", "log"],
        &["experiment", "list"],
        &["projections", "status"],
        &["experiment", "start", "e"],
    ] {
        let out = chaos(&empty, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("an empty file, not a chaos event store (left untouched"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(file_bytes(&empty), b"", "{args:?} wrote to the file");
        assert!(!Path::new(export).exists(), "{args:?}");
    }

    assert!(chaos(&db, &["init"]).status.success());
    let no_spec = chaos(
        &db,
        &["experiment", "create", "--spec", "/nonexistent/spec.json"],
    );
    assert_eq!(no_spec.status.code(), Some(2));
    assert!(stderr(&no_spec).contains("cannot read /nonexistent/spec.json"));

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"name": "x", "colour": "red"}"#).expect("write");
    let out = chaos(
        &db,
        &[
            "experiment",
            "create",
            "--spec",
            bad.to_str().expect("path"),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    // Every problem, a line each with its path.
    let said = stderr(&out);
    for line in [
        "\n  colour: unknown field; expected one of name, description,",
        "\n  target: is required",
        "\n  selection: is required",
        "\n  max_targets: is required",
        "\n  failure: is required",
        "\n  guardrails: is required",
        "\n  recovery: is required",
    ] {
        assert!(said.contains(line), "{line} in {said}");
    }

    let spec = spec_file(dir.path());
    let text = std::fs::read_to_string(&spec)
        .expect("read")
        .replace("\"value\": 1", "\"value\": 0");
    std::fs::write(&spec, text).expect("write");
    let out = chaos(
        &db,
        &[
            "experiment",
            "create",
            "--spec",
            spec.to_str().expect("path"),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("selection.value: COUNT must be between 1 and 50 (got 0)"));

    let bad_id = chaos(&db, &["experiment", "start", "has space"]);
    assert_eq!(bad_id.status.code(), Some(3));
    assert!(stderr(&bad_id).contains("id: may contain only"));

    let verified = stdout_json(&chaos(&db, &["audit", "verify", "--json"]));
    assert_eq!(
        verified["events"], 0,
        "nothing was written by the refused commands"
    );
}

/// Writes three full experiment runs through the store layer.
fn populated_store(dir: &Path) -> PathBuf {
    let db = dir.join("chaos.db");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (store, pool) = common::store_at(&db).await;
        for id in ["exp-a", "exp-b", "exp-c"] {
            for (i, command) in common::lifecycle(id, 3).into_iter().enumerate() {
                store
                    .execute::<Experiment>(id, command, &common::context(&format!("{id}-{i}")))
                    .await
                    .expect("append");
            }
        }
        pool.close().await;
    });
    db
}

fn sql(db: &Path, statements: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let pool = embedded_write::sqlite::open(db, embedded_write::sqlite::OpenMode::MustExist)
            .await
            .expect("open");
        sqlx::raw_sql(statements)
            .execute(&pool)
            .await
            .expect("tamper");
        pool.close().await;
    });
}

/// The independent verifier in docs/audit (Python, written from docs/AUDIT.md alone).
fn independent_verify(db: &Path) -> (Option<i32>, String) {
    let script = manifest_dir().join("../../docs/audit/verify_chain.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(db)
        .output()
        .expect("python3 runs (cargo xtask test installs it)");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn first_fault(db: &Path) -> (String, u64, String) {
    let out = chaos(db, &["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["ok"], false);
    assert_eq!(report["streams"], 3);
    let faults = report["faults"].as_array().expect("faults");
    assert_eq!(
        faults.len(),
        1,
        "only the tampered stream is broken: {faults:?}"
    );
    let fault = (
        faults[0]["aggregate_id"].as_str().expect("id").to_owned(),
        faults[0]["sequence"].as_u64().expect("sequence"),
        faults[0]["problem"].as_str().expect("problem").to_owned(),
    );
    // The auditor's own implementation must name the same position.
    let (code, text) = independent_verify(db);
    assert_eq!(code, Some(4), "{text}");
    let expected = format!("Experiment/{} at sequence {}:", fault.0, fault.1);
    assert!(
        text.starts_with(&expected),
        "independent verifier said {text:?}, expected {expected:?}"
    );
    fault
}

#[test]
fn a_stored_row_that_is_not_text_is_a_bad_event_at_its_position_and_the_rest_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = populated_store(dir.path());
    // One payload's bytes damaged into something that is not UTF-8.
    sql(
        &db,
        "UPDATE events SET payload = CAST(X'7B226BFF223A317D' AS TEXT) \
              WHERE aggregate_id = 'exp-b' AND sequence = 5",
    );
    let bad = json!([{
        "aggregate_type": "Experiment",
        "aggregate_id": "exp-b",
        "sequence": 5,
        "problem": "the payload column is not UTF-8 text",
    }]);

    // verify: the position, every other stream verified.
    let out = chaos(&db, &["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["faults"], bad, "{report}");
    assert_eq!(
        (&report["events"], &report["streams"]),
        (&json!(39), &json!(3))
    );
    // The auditors' own verifier, written from docs/AUDIT.md, says the same.
    let (code, text) = independent_verify(&db);
    assert_eq!(code, Some(4), "{text}");
    assert!(
        text.starts_with("Experiment/exp-b at sequence 5: the payload column is not UTF-8 text"),
        "{text}"
    );

    // digest: refused with the same report.
    let out = chaos(&db, &["audit", "digest"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Experiment/exp-b at sequence 5"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // export: every other event written, the bad one named, no partial file left.
    let export = dir.path().join("log.jsonl");
    let out = chaos(
        &db,
        &["audit", "export", "--out", export.to_str().expect("path")],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let summary = stdout_json(&out);
    assert_eq!(summary["events"], 38, "{summary}");
    assert_eq!(
        summary["unreadable"][0]["problem"],
        "the payload column is not UTF-8 text: not exported"
    );
    assert!(!dir.path().join("log.jsonl.partial").exists());
    let verified = chaos(
        &db,
        &[
            "audit",
            "verify",
            "--json",
            "--file",
            export.to_str().expect("path"),
        ],
    );
    let verified = stdout_json(&verified);
    let faults = verified["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 1, "{verified}");
    assert_eq!(
        (&faults[0]["aggregate_id"], &faults[0]["sequence"]),
        (&json!("exp-b"), &json!(5))
    );

    // replay: the broken stream is refused at its position, the others replay.
    let at = "2100-01-01T00:00:00Z";
    let out = chaos(
        &db,
        &["audit", "replay", "--experiment", "exp-b", "--at", at],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exp-b at sequence 5: the payload column is not UTF-8 text"),
        "{}",
        stderr(&out)
    );
    let out = chaos(
        &db,
        &["audit", "replay", "--experiment", "exp-a", "--at", at],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn tampering_is_named_at_the_first_bad_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = populated_store(dir.path());
    let clean = chaos(&db, &["audit", "verify"]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert_eq!(
        independent_verify(&db),
        (Some(0), "OK: 39 events in 3 streams\n".to_owned())
    );

    let pristine = dir.path().join("pristine.db");
    std::fs::copy(&db, &pristine).expect("copy");
    let reset = || std::fs::copy(&pristine, &db).expect("reset");

    // One payload byte: a digit of a health figure.
    sql(
        &db,
        "UPDATE events SET payload = replace(payload, '\"latency_p95_ms\":12', '\"latency_p95_ms\":13') \
              WHERE aggregate_id = 'exp-b' AND sequence = 5",
    );
    let (id, sequence, problem) = first_fault(&db);
    assert_eq!((id.as_str(), sequence), ("exp-b", 5));
    assert!(problem.starts_with("hash "), "{problem}");
    let human = chaos(&db, &["audit", "verify"]);
    assert_eq!(human.status.code(), Some(4));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("FAILED: 1 of 3 streams do not verify"),
        "{text}"
    );
    assert!(text.contains("Experiment/exp-b at sequence 5"), "{text}");

    // One metadata byte: the actor.
    reset();
    sql(
        &db,
        "UPDATE events SET metadata = replace(metadata, '\"actor\":\"tester\"', '\"actor\":\"tester2\"') \
              WHERE aggregate_id = 'exp-c' AND sequence = 9",
    );
    assert_eq!(first_fault(&db).0.as_str(), "exp-c");
    assert_eq!(first_fault(&db).1, 9);

    // A deleted event.
    reset();
    sql(
        &db,
        "DELETE FROM events WHERE aggregate_id = 'exp-a' AND sequence = 4",
    );
    let (id, sequence, problem) = first_fault(&db);
    assert_eq!((id.as_str(), sequence), ("exp-a", 4));
    assert_eq!(problem, "expected sequence 4, found 5");

    // Two events reordered (their sequence numbers swapped).
    reset();
    sql(
        &db,
        "UPDATE events SET sequence = 1000 WHERE aggregate_id = 'exp-a' AND sequence = 2; \
              UPDATE events SET sequence = 2 WHERE aggregate_id = 'exp-a' AND sequence = 3; \
              UPDATE events SET sequence = 3 WHERE aggregate_id = 'exp-a' AND sequence = 1000;",
    );
    assert_eq!(first_fault(&db).1, 2);

    // Two events' contents swapped in place.
    reset();
    sql(
        &db,
        "CREATE TEMP TABLE x AS SELECT sequence, payload, metadata FROM events WHERE aggregate_id = 'exp-c' AND sequence IN (6, 7); \
              UPDATE events SET payload = (SELECT payload FROM x WHERE sequence = 7), metadata = (SELECT metadata FROM x WHERE sequence = 7) WHERE aggregate_id = 'exp-c' AND sequence = 6; \
              UPDATE events SET payload = (SELECT payload FROM x WHERE sequence = 6), metadata = (SELECT metadata FROM x WHERE sequence = 6) WHERE aggregate_id = 'exp-c' AND sequence = 7;",
    );
    let (id, sequence, _) = first_fault(&db);
    assert_eq!((id.as_str(), sequence), ("exp-c", 6));
}

#[test]
fn serve_answers_health_on_an_ephemeral_port_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("fresh.db");
    // Its standard input is a pipe from this test: should the test die first, it stops too.
    let mut child = Command::new(CHAOS)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--stop-when-stdin-closes",
            "--db",
        ])
        .arg(&db)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    // Held open until it has stopped: what stops it below is SIGTERM.
    let _stdin = child.stdin.take();
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("chaos: listening on http://") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server announced its address");
    assert!(addr.starts_with("127.0.0.1:"));

    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).expect("body");
    let health: Value = serde_json::from_str(body).expect("json body");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"]["events"], 0);
    assert_eq!(health["halted"], false);
    assert!(db.exists(), "serve creates the store");

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
}

#[test]
fn read_models_answer_lists_results_analytics_and_the_audit_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = populated_store(dir.path());
    let spec = spec_file(dir.path());
    let created = chaos(
        &db,
        &[
            "experiment",
            "create",
            "--spec",
            spec.to_str().expect("path"),
            "--id",
            "draft-1",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));

    let listed = stdout_json(&chaos(
        &db,
        &["experiment", "list", "--status", "completed"],
    ));
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 3, "{listed}");
    assert!(ids.contains(&"exp-b"));
    let drafts = stdout_json(&chaos(&db, &["experiment", "list", "--status", "DRAFT"]));
    assert_eq!(drafts["items"][0]["id"], "draft-1");
    assert_eq!(drafts["items"][0]["created_by"], "ci-bot");

    let first = stdout_json(&chaos(&db, &["experiment", "list", "--limit", "2"]));
    assert_eq!(first["items"].as_array().expect("items").len(), 2);
    let cursor = first["next"].as_str().expect("a next page");
    let second = stdout_json(&chaos(
        &db,
        &["experiment", "list", "--limit", "2", "--cursor", cursor],
    ));
    assert_eq!(second["items"].as_array().expect("items").len(), 2);
    assert!(second["next"].is_null());

    let results = stdout_json(&chaos(&db, &["results"]));
    let results = results.as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["outcome"], "RECOVERED");
    assert_eq!(results[0]["recovery_ms"], 4_000);

    let analytics = stdout_json(&chaos(&db, &["analytics"]));
    assert_eq!(analytics["overall"]["runs"], 3);
    assert_eq!(analytics["overall"]["success_rate_bp"], 10_000);
    assert_eq!(analytics["overall"]["mttr_ms"], 4_000);
    assert_eq!(analytics["by_target"]["fleet:web"]["runs"], 3);

    let log = stdout_json(&chaos(&db, &["audit", "log", "--experiment", "exp-a"]));
    let log = log.as_array().expect("entries");
    assert_eq!(log.len(), 13);
    assert_eq!(log[0]["event_type"], "ExperimentCreated");
    assert_eq!(log[0]["actor"], "tester");
    let by_bot = stdout_json(&chaos(&db, &["audit", "log", "--by", "ci-bot"]));
    assert_eq!(by_bot.as_array().expect("entries").len(), 1);

    let status = stdout_json(&chaos(&db, &["projections", "status"]));
    assert_eq!(status["behind"], 0);
    assert_eq!(status["parked"].as_array().expect("parked").len(), 0);
    let rebuilt = chaos(&db, &["projections", "rebuild"]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert_eq!(stdout_json(&rebuilt)["applied"], 40);
    assert_eq!(
        stdout_json(&chaos(&db, &["results"]))
            .as_array()
            .expect("results")
            .len(),
        3
    );
}

/// A minimal HTTP receiver on 127.0.0.1: answers 204 to every request and hands over the
/// request bodies.
fn webhook_receiver() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = stream.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            if tx
                .send(String::from_utf8_lossy(&body).into_owned())
                .is_err()
            {
                return;
            }
        }
    });
    (addr, rx)
}

#[test]
fn a_running_server_delivers_webhooks_for_events_from_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let spec = spec_file(dir.path());
    let (receiver, bodies) = webhook_receiver();

    let bad = chaos(
        &db,
        &[
            "webhooks",
            "add",
            "--id",
            "x",
            "--url",
            "https://me:pw@hooks.example.com/",
        ],
    );
    assert_eq!(bad.status.code(), Some(1), "no store yet: {}", stderr(&bad));
    assert!(chaos(&db, &["init"]).status.success());
    let bad = chaos(
        &db,
        &[
            "webhooks",
            "add",
            "--id",
            "x",
            "--url",
            "https://me:pw@hooks.example.com/",
        ],
    );
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        stderr(&bad).contains("url: must not contain credentials"),
        "{}",
        stderr(&bad)
    );

    // The receiver listens on the loopback: a private target, allowed only explicitly.
    let url = format!("http://{receiver}/hook");
    let add = [
        "webhooks",
        "add",
        "--id",
        "ci",
        "--url",
        &url,
        "--event",
        "ExperimentCreated",
    ];
    let refused = chaos(&db, &add);
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        stderr(&refused).contains("webhooks may only reach public addresses"),
        "{}",
        stderr(&refused)
    );
    let added = chaos(
        &db,
        &[
            &add[..],
            &["--allow-private-target", "--command-id", "add-ci"],
        ]
        .concat(),
    );
    assert!(added.status.success(), "{}", stderr(&added));
    // The secret is shown once; the log names it by its fingerprint, as it does one issued anew.
    let added = stdout_json(&added);
    let secret = added["secret"].as_str().unwrap_or_default();
    assert_eq!(
        added["fingerprint"].as_str(),
        Some(domain::platform::webhook_secret_fingerprint(secret).as_str()),
        "{added}"
    );
    let unknown = chaos(&db, &["webhooks", "rotate-secret", "nope"]);
    assert_eq!(unknown.status.code(), Some(3), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("no webhook nope"),
        "{}",
        stderr(&unknown)
    );
    let rotated = stdout_json(&chaos(&db, &["webhooks", "rotate-secret", "ci"]));
    assert_ne!(rotated["secret"], added["secret"], "{rotated}");
    let log = stdout_json(&chaos(&db, &["audit", "log", "--experiment", "webhooks.1"]));
    let issued: Vec<&str> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event_type"] == "WebhookSecretIssued")
        .filter_map(|e| e["action"].as_str())
        .collect();
    let named = |answer: &Value| {
        format!(
            "webhook ci signs with secret {} from now on",
            answer["fingerprint"].as_str().unwrap_or("?")
        )
    };
    assert_eq!(issued, [named(&added), named(&rotated)], "{log}");
    let listed = stdout_json(&chaos(&db, &["webhooks", "list"]));
    assert_eq!(listed["ci"]["url"], url.as_str());

    let mut server = Command::new(CHAOS)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--stop-when-stdin-closes",
            "--allow-private-webhook-targets",
            "--db",
        ])
        .arg(&db)
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let _stdin = server.stdin.take();
    let created = chaos(
        &db,
        &[
            "experiment",
            "create",
            "--spec",
            spec.to_str().expect("path"),
            "--id",
            "hooked",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let body = bodies.recv_timeout(Duration::from_secs(20));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    assert!(server.wait().expect("wait").success());

    let body: Value =
        serde_json::from_str(&body.expect("the server delivered the event")).expect("json");
    assert_eq!(body["webhook_id"], "ci");
    assert_eq!(body["event_type"], "ExperimentCreated");
    assert_eq!(body["aggregate_id"], "hooked");
    assert_eq!(body["actor"], "ci-bot");
    let delivered = stdout_json(&chaos(
        &db,
        &["webhooks", "deliveries", "--status", "delivered"],
    ));
    assert_eq!(
        delivered.as_array().expect("deliveries").len(),
        1,
        "{delivered}"
    );
    assert_eq!(delivered[0]["attempts"], 1);
}

#[test]
fn a_reader_that_goes_away_early_is_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    assert!(chaos(&db, &["init"]).status.success());
    for args in [&["platform", "show"][..], &["audit", "verify"][..]] {
        let mut child = Command::new(CHAOS)
            .arg("--db")
            .arg(&db)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // The reader closes its end before anything is written, as `| grep -q` may.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
