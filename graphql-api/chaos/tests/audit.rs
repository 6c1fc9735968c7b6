//! The auditor's commands, black-box: the `chaos` binary over real SQLite stores and the files
//! it writes. Every tamper case is found at its stream and sequence, in the store and in its
//! export (there also at its line); a digest catches what the chain alone cannot.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use command_lambdas::clock::{Clock, UuidV7};
use domain::Timestamp;
use domain::audit::verify::canonical_metadata;
use domain::audit::{EventRecord, GENESIS_HASH, seal};
use domain::experiment::Experiment;
use domain::provenance::EventMetadata;
use embedded_write::SqliteStore;
use embedded_write::sqlite::{OpenMode, open, repository};
use serde_json::Value;
use test_support::common;

const CHAOS: &str = env!("CARGO_BIN_EXE_chaos");

fn chaos(db: &Path, args: &[&str]) -> Output {
    Command::new(CHAOS)
        .arg("--db")
        .arg(db)
        .args(args)
        .env("CHAOS_ACTOR", "auditor")
        .env_remove("RUST_LOG")
        .output()
        .expect("run chaos")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            stdout(out),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A clock that moves one second per reading, so every commit has its own `recorded_at`.
#[derive(Debug)]
struct Ticking(AtomicI64);

impl Clock for Ticking {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.0.fetch_add(1_000, Ordering::SeqCst))
    }
}

/// When the ticking clock starts: 2026-11-26T10:00:00Z.
const START_MS: i64 = 1_795_687_200_000;

/// Three interleaved experiment runs of 13 events each, written through the store layer.
fn populated_store(dir: &Path) -> PathBuf {
    let db = dir.join("chaos.db");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let pool = open(&db, OpenMode::CreateIfMissing).await.expect("open");
        let store = SqliteStore::new(
            repository(pool.clone()),
            Arc::new(Ticking(AtomicI64::new(START_MS))),
            Arc::new(UuidV7),
        );
        let runs: Vec<_> = ["exp-a", "exp-b", "exp-c"]
            .iter()
            .map(|id| (*id, common::lifecycle(id, 3)))
            .collect();
        for step in 0..13 {
            for (id, commands) in &runs {
                store
                    .execute::<Experiment>(
                        id,
                        commands[step].clone(),
                        &common::context(&format!("{id}-{step}")),
                    )
                    .await
                    .expect("append");
            }
        }
        pool.close().await;
    });
    db
}

fn sql(db: &Path, statements: &str) {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.execute_batch(statements).expect("tamper");
}

/// The single fault of a failed `verify --json`: (stream, sequence, problem, line).
fn the_fault(out: &Output) -> (String, u64, String, Option<u64>) {
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}\n{}",
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(out);
    assert_eq!(report["ok"], false);
    let faults = report["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 1, "only the tampered stream: {faults:?}");
    (
        faults[0]["aggregate_id"].as_str().expect("id").to_owned(),
        faults[0]["sequence"].as_u64().expect("sequence"),
        faults[0]["problem"].as_str().expect("problem").to_owned(),
        faults[0]["line"].as_u64(),
    )
}

/// The independent verifier in docs/audit (Python, written from docs/AUDIT.md alone):
/// its exit code and its report.
fn independent(args: &[&str]) -> (Option<i32>, String) {
    let script = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../../docs/audit/verify_chain.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    (out.status.code(), stdout(&out))
}

/// The line of the export holding `(id, sequence)`, from 1.
fn line_of(export: &Path, id: &str, sequence: u64) -> u64 {
    let text = std::fs::read_to_string(export).expect("export");
    let index = text
        .lines()
        .position(|line| {
            let v: Value = serde_json::from_str(line).expect("line");
            v["aggregate_id"] == id && v["sequence"] == sequence
        })
        .expect("line present");
    index as u64 + 1
}

/// Seals rows of one stream again from `from` on, as an attacker with write access would:
/// every event keeps its content except what `edit` changes, and gets a fresh, valid chain.
fn reseal(db: &Path, id: &str, edit: impl Fn(&mut EventMetadata)) {
    let mut conn = rusqlite::Connection::open(db).expect("open");
    let tx = conn.transaction().expect("tx");
    let rows: Vec<(i64, String, String, String)> = {
        let mut statement = tx
            .prepare(
                "SELECT sequence, event_type, payload, metadata FROM events \
                 WHERE aggregate_id = ?1 ORDER BY sequence",
            )
            .expect("prepare");
        statement
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let mut prev = GENESIS_HASH.to_owned();
    for (sequence, event_type, payload, metadata) in rows {
        let mut m: EventMetadata = serde_json::from_str(&metadata).expect("metadata");
        edit(&mut m);
        m.prev_hash = prev.clone();
        let value: Value = serde_json::from_str(&payload).expect("payload");
        m.hash = seal(
            &EventRecord {
                aggregate_type: "Experiment",
                aggregate_id: id,
                sequence: sequence as u64,
                event_type: &event_type,
                event_version: "1",
                metadata: &m,
            },
            &value,
            &prev,
        )
        .expect("seal");
        prev = m.hash.clone();
        tx.execute(
            "UPDATE events SET metadata = ?1 WHERE aggregate_id = ?2 AND sequence = ?3",
            rusqlite::params![canonical_metadata(&m), id, sequence],
        )
        .expect("update");
    }
    tx.commit().expect("commit");
}

/// Each tamper case, by SQL on the store: where it must be found.
const TAMPERING: [(&str, &str, &str, u64); 5] = [
    (
        "an altered payload byte",
        "UPDATE events SET payload = replace(payload, '\"healthy\":3', '\"healthy\":2') \
         WHERE aggregate_id = 'exp-b' AND sequence = 5",
        "exp-b",
        5,
    ),
    (
        "an altered metadata byte",
        "UPDATE events SET metadata = replace(metadata, 'test-correlation', 'test-correlatiom') \
         WHERE aggregate_id = 'exp-c' AND sequence = 9",
        "exp-c",
        9,
    ),
    (
        "a deleted event",
        "DELETE FROM events WHERE aggregate_id = 'exp-a' AND sequence = 4",
        "exp-a",
        4,
    ),
    (
        "two events swapped",
        "CREATE TEMP TABLE x AS SELECT sequence, event_type, payload, metadata FROM events \
           WHERE aggregate_id = 'exp-c' AND sequence IN (6, 7); \
         UPDATE events SET event_type = (SELECT event_type FROM x WHERE sequence = 7), \
           payload = (SELECT payload FROM x WHERE sequence = 7), \
           metadata = (SELECT metadata FROM x WHERE sequence = 7) \
           WHERE aggregate_id = 'exp-c' AND sequence = 6; \
         UPDATE events SET event_type = (SELECT event_type FROM x WHERE sequence = 6), \
           payload = (SELECT payload FROM x WHERE sequence = 6), \
           metadata = (SELECT metadata FROM x WHERE sequence = 6) \
           WHERE aggregate_id = 'exp-c' AND sequence = 7;",
        "exp-c",
        6,
    ),
    (
        "an inserted event",
        // Later events moved up one to make room, a copy of event 5 put in at 6.
        "UPDATE events SET sequence = sequence + 1000 WHERE aggregate_id = 'exp-a' AND sequence >= 6; \
         UPDATE events SET sequence = sequence - 999 WHERE aggregate_id = 'exp-a' AND sequence >= 1000; \
         INSERT INTO events SELECT aggregate_type, aggregate_id, 6, event_type, event_version, payload, metadata \
           FROM events WHERE aggregate_id = 'exp-a' AND sequence = 5;",
        "exp-a",
        6,
    ),
];

#[test]
fn every_tamper_case_is_found_at_its_position_in_the_store_and_in_its_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = populated_store(dir.path());
    let clean = json(&ok(chaos(&db, &["audit", "verify", "--json"])));
    assert_eq!(
        (clean["events"].as_u64(), clean["streams"].as_u64()),
        (Some(39), Some(3))
    );
    let pristine = dir.path().join("pristine.db");
    std::fs::copy(&db, &pristine).expect("copy");
    let export = dir.path().join("tampered.jsonl");

    for (case, statements, id, sequence) in TAMPERING {
        std::fs::copy(&pristine, &db).expect("reset");
        sql(&db, statements);
        let (found_id, found_sequence, problem, _) =
            the_fault(&chaos(&db, &["audit", "verify", "--json"]));
        assert_eq!(
            (found_id.as_str(), found_sequence),
            (id, sequence),
            "{case} in the store: {problem}"
        );

        // The export carries the tampered bytes as they are: the same fault, at its line.
        ok(chaos(&db, &["audit", "export", "--out", path(&export)]));
        let (file_id, file_sequence, file_problem, line) = the_fault(&chaos(
            &db,
            &["audit", "verify", "--json", "--file", path(&export)],
        ));
        assert_eq!(
            (file_id.as_str(), file_sequence, file_problem.as_str()),
            (id, sequence, problem.as_str()),
            "{case} in the export"
        );
        // The auditor's own implementation names the same position in the export.
        let (code, said) = independent(&[path(&export)]);
        assert_eq!(code, Some(4), "{case}: {said}");
        assert!(
            said.starts_with(&format!("Experiment/{id} at sequence {sequence}:")),
            "{case}: the independent verifier said {said:?}"
        );
        let line = line.expect("a file fault names its line");
        let text = std::fs::read_to_string(&export).expect("export");
        let at_line: Value =
            serde_json::from_str(text.lines().nth(line as usize - 1).expect("line")).expect("json");
        assert_eq!(at_line["aggregate_id"], id, "{case}: line {line}");
    }

    // The human report names the position too, and says how to read it.
    std::fs::copy(&pristine, &db).expect("reset");
    sql(&db, TAMPERING[0].1);
    let human = chaos(&db, &["audit", "verify"]);
    assert_eq!(human.status.code(), Some(4));
    assert!(
        stdout(&human).contains("FAILED: 1 of 3 streams do not verify"),
        "{}",
        stdout(&human)
    );
    assert!(stdout(&human).contains("Experiment/exp-b at sequence 5: hash "));
}

#[test]
fn a_tampered_export_is_caught_at_the_right_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = populated_store(dir.path());
    let export = dir.path().join("log.jsonl");
    ok(chaos(&db, &["audit", "export", "--out", path(&export)]));
    let original = std::fs::read_to_string(&export).expect("export");
    let lines: Vec<&str> = original.lines().collect();
    let tampered = dir.path().join("tampered.jsonl");
    let verify = |text: String| {
        std::fs::write(&tampered, text).expect("write");
        chaos(
            &db,
            &["audit", "verify", "--json", "--file", path(&tampered)],
        )
    };
    let joined = |lines: &[String]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    let owned: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();

    // A payload byte inside the escaped payload text.
    let target = line_of(&export, "exp-b", 9) as usize;
    let mut edited = owned.clone();
    edited[target - 1] = edited[target - 1].replacen("\\\"healthy\\\":2", "\\\"healthy\\\":3", 1);
    assert_ne!(edited[target - 1], owned[target - 1]);
    let (id, sequence, _, line) = the_fault(&verify(joined(&edited)));
    assert_eq!(
        (id.as_str(), sequence, line),
        ("exp-b", 9, Some(target as u64))
    );

    // A metadata byte: the actor.
    let target = line_of(&export, "exp-a", 2) as usize;
    let mut edited = owned.clone();
    edited[target - 1] = edited[target - 1].replacen("tester", "tasted", 1);
    let (id, sequence, problem, line) = the_fault(&verify(joined(&edited)));
    assert_eq!(
        (id.as_str(), sequence, line),
        ("exp-a", 2, Some(target as u64))
    );
    assert!(problem.starts_with("hash "), "{problem}");

    // A deleted line: found at the next event of that stream.
    let target = line_of(&export, "exp-c", 3) as usize;
    let mut edited = owned.clone();
    edited.remove(target - 1);
    let (id, sequence, problem, line) = the_fault(&verify(joined(&edited)));
    assert_eq!((id.as_str(), sequence), ("exp-c", 3));
    assert_eq!(problem, "expected sequence 3, found 4");
    assert_eq!(line, Some(line_of(&export, "exp-c", 4) - 1));

    // Two lines of a stream swapped.
    let (first, second) = (
        line_of(&export, "exp-a", 10) as usize,
        line_of(&export, "exp-a", 11) as usize,
    );
    let mut edited = owned.clone();
    edited.swap(first - 1, second - 1);
    let (id, sequence, _, line) = the_fault(&verify(joined(&edited)));
    assert_eq!(
        (id.as_str(), sequence, line),
        ("exp-a", 10, Some(first as u64))
    );

    // A line inserted: a copy of an event put in again after it.
    let target = line_of(&export, "exp-b", 12) as usize;
    let mut edited = owned.clone();
    edited.insert(target, owned[target - 1].clone());
    let (id, sequence, problem, line) = the_fault(&verify(joined(&edited)));
    assert_eq!(
        (id.as_str(), sequence, line),
        ("exp-b", 13, Some(target as u64 + 1))
    );
    assert_eq!(problem, "expected sequence 13, found 12");

    // A line that is not a record at all.
    let mut edited = owned.clone();
    edited.insert(5, "{\"aggregate_id\": truncated".into());
    let out = verify(joined(&edited));
    assert_eq!(out.status.code(), Some(4));
    let report = json(&out);
    assert_eq!(report["bad_lines"][0]["line"], 6);
    assert_eq!(report["faults"].as_array().map(Vec::len), Some(0));

    // The same records in other bytes: respaced, another escape, CRLF line ends, no final
    // line feed. A file that verifies is the export byte for byte, so each is refused at its
    // line, here and by the auditors' own verifier.
    let with_line = |line: String| {
        let mut edited = owned.clone();
        edited[2] = line;
        joined(&edited)
    };
    for (text, line) in [
        (with_line(owned[2].replacen("\":", "\": ", 1)), 3),
        (
            with_line(owned[2].replacen(
                "\"aggregate_type\":\"Experiment\"",
                "\"aggregate_type\":\"\\u0045xperiment\"",
                1,
            )),
            3,
        ),
        (original.replace('\n', "\r\n"), 1),
        (original.trim_end_matches('\n').to_owned(), lines.len()),
    ] {
        let out = verify(text);
        assert_eq!(out.status.code(), Some(4));
        let report = json(&out);
        assert_eq!(report["bad_lines"][0]["line"], line, "{report}");
        let (code, said) = independent(&[path(&tampered)]);
        assert_eq!(code, Some(4), "{said}");
        assert!(
            said.contains(&format!("line {line}: not an export record")),
            "{said}"
        );
    }

    // The untouched export still verifies.
    assert!(verify(original.clone()).status.success());
}

#[test]
fn export_then_verify_round_trips_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = populated_store(dir.path());
    let export = dir.path().join("log.jsonl");
    let csv = dir.path().join("log.csv");
    let summary = json(&ok(chaos(
        &db,
        &[
            "audit",
            "export",
            "--out",
            path(&export),
            "--csv",
            path(&csv),
        ],
    )));
    assert_eq!(summary["events"], 39);
    let bytes = std::fs::read(&export).expect("export");
    use sha2::Digest as _;
    assert_eq!(summary["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
    assert!(!dir.path().join("log.jsonl.partial").exists());

    // Every line holds the stored payload and metadata exactly.
    let conn = rusqlite::Connection::open(&db).expect("open");
    let stored: Vec<(String, i64, String, String)> = conn
        .prepare("SELECT aggregate_id, sequence, payload, metadata FROM events ORDER BY rowid")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert_eq!(text.lines().count(), stored.len());
    for (line, (id, sequence, payload, metadata)) in text.lines().zip(&stored) {
        let v: Value = serde_json::from_str(line).expect("json line");
        assert_eq!(
            (&v["aggregate_id"], &v["sequence"]),
            (&Value::from(id.as_str()), &Value::from(*sequence))
        );
        assert_eq!(v["payload"].as_str(), Some(payload.as_str()));
        assert_eq!(v["metadata"].as_str(), Some(metadata.as_str()));
    }

    // The export verifies with the store's heads: the digests agree but for their time.
    let from_store = json(&ok(chaos(&db, &["audit", "digest"])));
    let from_file = json(&ok(chaos(
        &db,
        &["audit", "digest", "--file", path(&export)],
    )));
    assert_eq!(from_store["streams"], from_file["streams"]);
    assert_eq!(from_file["events"], 39);
    let verified = json(&ok(chaos(
        &db,
        &["audit", "verify", "--json", "--file", path(&export)],
    )));
    assert_eq!(
        (verified["events"].as_u64(), verified["streams"].as_u64()),
        (Some(39), Some(3))
    );

    // Exporting the export gives the same bytes.
    let again = dir.path().join("again.jsonl");
    ok(chaos(
        &db,
        &[
            "audit",
            "export",
            "--file",
            path(&export),
            "--out",
            path(&again),
        ],
    ));
    assert_eq!(std::fs::read(&again).expect("again"), bytes);

    // The CSV summary: a header, then one row per event in the export's order.
    let csv = std::fs::read_to_string(&csv).expect("csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "aggregate_type,aggregate_id,sequence,event_type,recorded_at,actor,hash"
    );
    assert_eq!(rows.len(), 40);
    let first: Value = serde_json::from_str(text.lines().next().expect("line")).expect("json");
    let m: EventMetadata =
        serde_json::from_str(first["metadata"].as_str().expect("metadata")).expect("metadata");
    assert_eq!(
        rows[1],
        format!(
            "Experiment,exp-a,1,ExperimentCreated,{},tester,{}",
            m.recorded_at, m.hash
        )
    );
}

#[test]
fn a_digest_catches_a_truncated_tail_a_missing_stream_and_a_fresh_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = populated_store(dir.path());
    let digest = dir.path().join("digest.json");
    let taken = ok(chaos(&db, &["audit", "digest"]));
    std::fs::write(&digest, &taken.stdout).expect("keep the digest");
    let heads = json(&taken);
    assert_eq!(heads["format"], "chaos-audit-digest");
    assert_eq!(heads["streams"].as_array().map(Vec::len), Some(3));
    let pristine = dir.path().join("pristine.db");
    std::fs::copy(&db, &pristine).expect("copy");
    let with_digest = ["audit", "verify", "--json", "--digest", path(&digest)];

    // The log grew since: still matches.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (store, pool) = common::store_at(&db).await;
        store
            .execute::<Experiment>(
                "exp-a",
                domain::experiment::ExperimentCommand::ArchiveExperiment {
                    at: common::at(100),
                },
                &common::context("archive"),
            )
            .await
            .expect("archive");
        for (i, command) in common::lifecycle("exp-d", 1).into_iter().enumerate() {
            store
                .execute::<Experiment>("exp-d", command, &common::context(&format!("d{i}")))
                .await
                .expect("append");
        }
        pool.close().await;
    });
    let grown = json(&ok(chaos(&db, &with_digest)));
    assert_eq!(grown["digest"]["streams"], 3);
    assert_eq!(grown["digest"]["faults"].as_array().map(Vec::len), Some(0));

    let departures = |db: &Path, args: &[&str]| -> Vec<(String, u64, String)> {
        let out = chaos(db, args);
        assert_eq!(out.status.code(), Some(5), "{}", stdout(&out));
        let report = json(&out);
        assert_eq!(
            report["faults"].as_array().map(Vec::len),
            Some(0),
            "the chain itself verifies"
        );
        report["digest"]["faults"]
            .as_array()
            .expect("faults")
            .iter()
            .map(|f| {
                (
                    f["aggregate_id"].as_str().expect("id").to_owned(),
                    f["sequence"].as_u64().expect("sequence"),
                    f["problem"].as_str().expect("problem").to_owned(),
                )
            })
            .collect()
    };

    // A truncated tail: the chain alone cannot see it, the digest does.
    std::fs::copy(&pristine, &db).expect("reset");
    sql(
        &db,
        "DELETE FROM events WHERE aggregate_id = 'exp-b' AND sequence >= 12",
    );
    ok(chaos(&db, &["audit", "verify"]));
    assert_eq!(
        departures(&db, &with_digest),
        [(
            "exp-b".to_owned(),
            12,
            "truncated: the log ends at sequence 11, the digest recorded 13".to_owned()
        )]
    );
    // The same over an export of the truncated log.
    let export = dir.path().join("truncated.jsonl");
    ok(chaos(&db, &["audit", "export", "--out", path(&export)]));
    let mut over_file = with_digest.to_vec();
    over_file.extend(["--file", path(&export)]);
    assert_eq!(departures(&db, &over_file)[0].1, 12);
    assert_eq!(
        independent(&[path(&export), "--digest", path(&digest)]),
        (
            Some(5),
            "OK: 37 events in 3 streams\nExperiment/exp-b at sequence 12: truncated\n".to_owned()
        )
    );

    // A whole stream removed.
    std::fs::copy(&pristine, &db).expect("reset");
    sql(&db, "DELETE FROM events WHERE aggregate_id = 'exp-c'");
    assert_eq!(
        departures(&db, &with_digest),
        [(
            "exp-c".to_owned(),
            1,
            "stream missing: the digest recorded 13 events".to_owned()
        )]
    );

    // History rewritten with a fresh, valid chain (another actor on every event).
    std::fs::copy(&pristine, &db).expect("reset");
    reseal(&db, "exp-a", |m| m.actor = "mallory".into());
    ok(chaos(&db, &["audit", "verify", "--no-projection"]));
    let found = departures(&db, &with_digest);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0.as_str(), found[0].1), ("exp-a", 13));
    assert!(
        found[0]
            .2
            .starts_with("rewritten: the event at sequence 13 hashes to "),
        "{}",
        found[0].2
    );
    let (code, said) = independent(&[path(&db), "--digest", path(&digest)]);
    assert_eq!(code, Some(5), "{said}");
    assert!(
        said.contains("Experiment/exp-a at sequence 13: rewritten"),
        "{said}"
    );
    let human = chaos(&db, &["audit", "verify", "--digest", path(&digest)]);
    assert_eq!(human.status.code(), Some(5));
    assert!(
        stdout(&human).contains("DIGEST MISMATCH"),
        "{}",
        stdout(&human)
    );
    assert!(stdout(&human).contains("Experiment/exp-a at sequence 13: rewritten"));

    // A broken chain outranks a departure from the digest.
    sql(
        &db,
        "DELETE FROM events WHERE aggregate_id = 'exp-b' AND sequence = 2",
    );
    assert_eq!(chaos(&db, &with_digest).status.code(), Some(4));

    // A file that is not a digest is a usage error, before anything is read.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"format\":\"something else\"}").expect("write");
    let out = chaos(&db, &["audit", "verify", "--digest", path(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    // A digest is refused for a log that does not verify.
    let out = chaos(&db, &["audit", "digest"]);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn the_audit_log_read_model_is_held_to_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = populated_store(dir.path());
    // No read models yet: nothing to compare.
    let before = json(&ok(chaos(&db, &["audit", "verify", "--json"])));
    assert_eq!(before["projection"], Value::Null);
    // `audit log` brings the read models up to date.
    ok(chaos(&db, &["audit", "log"]));
    let agreed = json(&ok(chaos(&db, &["audit", "verify", "--json"])));
    assert_eq!(agreed["projection"]["entries"], 39);
    let pristine = dir.path().join("pristine.db");
    std::fs::copy(&db, &pristine).expect("copy");

    let disagreement = |db: &Path| -> (String, u64, String) {
        let out = chaos(db, &["audit", "verify", "--json"]);
        assert_eq!(out.status.code(), Some(6), "{}", stdout(&out));
        let faults = json(&out)["projection"]["faults"].clone();
        assert_eq!(faults.as_array().map(Vec::len), Some(1), "{faults}");
        (
            faults[0]["aggregate_id"].as_str().expect("id").to_owned(),
            faults[0]["sequence"].as_u64().expect("sequence"),
            faults[0]["problem"].as_str().expect("problem").to_owned(),
        )
    };

    sql(
        &db,
        "UPDATE view_audit_log SET actor = 'someone-else' WHERE aggregate_id = 'exp-b' AND sequence = 7",
    );
    assert_eq!(
        disagreement(&db),
        (
            "exp-b".to_owned(),
            7,
            "the audit log entry's actor is \"someone-else\", the log says \"tester\"".to_owned()
        )
    );

    std::fs::copy(&pristine, &db).expect("reset");
    sql(
        &db,
        "DELETE FROM view_audit_log WHERE aggregate_id = 'exp-c' AND sequence = 3",
    );
    let (id, sequence, problem) = disagreement(&db);
    assert_eq!((id.as_str(), sequence), ("exp-c", 3));
    assert!(problem.starts_with("no audit log entry"), "{problem}");

    std::fs::copy(&pristine, &db).expect("reset");
    sql(
        &db,
        "INSERT INTO view_audit_log SELECT aggregate_type, aggregate_id, 99, event_type, actor, recorded_at, at, action \
         FROM view_audit_log WHERE aggregate_id = 'exp-a' AND sequence = 1",
    );
    assert_eq!(disagreement(&db).1, 99);
    ok(chaos(&db, &["audit", "verify", "--no-projection"]));
}

#[test]
fn replay_gives_the_state_before_between_and_after_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = populated_store(dir.path());
    // The ticking clock gave exp-a's commits these times (one per second, three streams).
    let recorded: Vec<String> = {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.prepare("SELECT metadata FROM events WHERE aggregate_id = 'exp-a' ORDER BY sequence")
            .expect("prepare")
            .query_map([], |r| r.get::<_, String>(0))
            .expect("query")
            .map(|m| {
                serde_json::from_str::<EventMetadata>(&m.expect("row"))
                    .expect("metadata")
                    .recorded_at
            })
            .collect()
    };
    assert_eq!(recorded.len(), 13);
    let replay = |at: &str| {
        json(&ok(chaos(
            &db,
            &["audit", "replay", "--experiment", "exp-a", "--at", at],
        )))
    };

    let before = replay("2026-11-26T09:00:00Z");
    assert_eq!(before["exists"], false);
    assert_eq!(before["applied"], 0);
    assert_eq!(before["next"]["sequence"], 1);

    // Exactly at the second event: it is included.
    let at_start = replay(&recorded[1]);
    assert_eq!(at_start["applied"], 2);
    assert_eq!(at_start["summary"]["status"], "RUNNING");
    assert_eq!(at_start["summary"]["phase"], "RESOLVING_TARGETS");

    // Between the injection (8th) and the first health check after it (9th).
    let injected: Timestamp = recorded[7].parse().expect("time");
    let between = replay(&injected.plus_millis(500).to_string());
    assert_eq!(between["applied"], 8);
    assert_eq!(between["last_recorded_at"], recorded[7].as_str());
    assert_eq!(between["next"]["recorded_at"], recorded[8].as_str());
    assert_eq!(between["summary"]["phase"], "OBSERVING_RECOVERY");
    assert_eq!(between["record"]["state"]["targets"][0], "worker-1");

    let after = replay("2027-01-01T00:00:00+01:00");
    assert_eq!(after["applied"], 13);
    assert_eq!(after["next"], Value::Null);
    assert_eq!(after["summary"]["status"], "COMPLETED");
    assert_eq!(after["summary"]["outcome"], "RECOVERED");

    // The same from an export, and the platform stream too.
    let export = dir.path().join("log.jsonl");
    ok(chaos(&db, &["audit", "export", "--out", path(&export)]));
    let from_file = json(&ok(chaos(
        &db,
        &[
            "audit",
            "replay",
            "--file",
            path(&export),
            "--experiment",
            "exp-a",
            "--at",
            &injected.plus_millis(500).to_string(),
        ],
    )));
    assert_eq!(from_file["record"], between["record"]);

    let missing = chaos(
        &db,
        &[
            "audit",
            "replay",
            "--experiment",
            "nope",
            "--at",
            "2027-01-01T00:00:00Z",
        ],
    );
    assert_eq!(missing.status.code(), Some(3));
    let bad_time = chaos(
        &db,
        &[
            "audit",
            "replay",
            "--experiment",
            "exp-a",
            "--at",
            "yesterday",
        ],
    );
    assert_eq!(bad_time.status.code(), Some(2));

    // A stream broken before the instant is not replayed; one broken after it is.
    sql(
        &db,
        "UPDATE events SET payload = replace(payload, '\"healthy\":2', '\"healthy\":1') WHERE aggregate_id = 'exp-a' AND sequence = 10",
    );
    let refused = chaos(
        &db,
        &[
            "audit",
            "replay",
            "--experiment",
            "exp-a",
            "--at",
            "2027-01-01T00:00:00Z",
        ],
    );
    assert_eq!(refused.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Experiment/exp-a at sequence 10"));
    assert_eq!(replay(&injected.plus_millis(500).to_string())["applied"], 8);
}

/// The worked example of docs/AUDIT.md: its two stored events, exported, digested, truncated
/// and replayed by the binary, give exactly what the page shows.
#[test]
fn the_documented_export_digest_and_replay_are_what_the_binary_gives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("example.db");
    ok(chaos(&db, &["init"]));
    let doc = std::fs::read_to_string(
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
            .join("../../docs/AUDIT.md"),
    )
    .expect("docs/AUDIT.md");
    let conn = rusqlite::Connection::open(&db).expect("open");
    for (sequence, event_type, payload, metadata) in [
        (
            1,
            "PlatformHalted",
            r#"{"PlatformHalted":{"at":"2026-11-26T11:22:45.481Z","reason":"game day"}}"#,
            r#"{"actor":"alice","actor_role":"ADMIN","command_id":"cmd-0001","correlation_id":"run-7","event_id":"01a21797-f969-73d2-8bee-c31f3a196930","hash":"6314f506604f4b26654f994a701499f3b0530a1d908958e9fa3b0fe38e7728cb","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","recorded_at":"2026-11-26T11:22:45.481Z","source":"cli"}"#,
        ),
        (
            2,
            "HaltLifted",
            r#"{"HaltLifted":{"at":"2026-11-26T11:22:45.508Z"}}"#,
            r#"{"actor":"alice","actor_role":"ADMIN","command_id":"cmd-0002","correlation_id":"run-7","event_id":"01a21797-f985-71f8-b731-e763ff8da03d","hash":"99b4da4f50c58f0506594e51e8446f23d4408f42dc5e70f1749afc1c82aa34a6","prev_hash":"6314f506604f4b26654f994a701499f3b0530a1d908958e9fa3b0fe38e7728cb","recorded_at":"2026-11-26T11:22:45.509Z","source":"cli"}"#,
        ),
    ] {
        // The stored columns as the page shows them.
        assert!(doc.contains(&format!("payload         {payload}")));
        assert!(doc.contains(&format!("metadata        {metadata}")));
        conn.execute(
            "INSERT INTO events VALUES ('Platform', 'platform', ?1, ?2, '1', ?3, ?4)",
            rusqlite::params![sequence, event_type, payload, metadata],
        )
        .expect("insert");
    }
    drop(conn);
    ok(chaos(&db, &["audit", "verify"]));

    let export = dir.path().join("log.jsonl");
    let csv = dir.path().join("log.csv");
    let summary = json(&ok(chaos(
        &db,
        &[
            "audit",
            "export",
            "--out",
            path(&export),
            "--csv",
            path(&csv),
        ],
    )));
    let text = std::fs::read_to_string(&export).expect("export");
    for line in text.lines() {
        assert!(doc.contains(line), "the page does not show the line {line}");
    }
    let sha = summary["sha256"].as_str().expect("sha256");
    assert!(doc.contains(&format!(
        "writes `log.jsonl` ({},{:03} bytes, SHA-256\n`{sha}`)",
        text.len() / 1000,
        text.len() % 1000
    )));
    for line in std::fs::read_to_string(&csv).expect("csv").lines() {
        assert!(
            doc.contains(line),
            "the page does not show the CSV row {line}"
        );
    }

    let digest = ok(chaos(&db, &["audit", "digest"]));
    let mut shown = stdout(&digest);
    let taken_at = json(&digest)["taken_at"].as_str().expect("time").to_owned();
    shown = shown.replace(&taken_at, "2026-11-26T23:24:08.143Z");
    assert!(
        doc.contains(shown.trim_end()),
        "the page does not show the digest {shown}"
    );
    let kept = dir.path().join("digest.json");
    std::fs::write(&kept, &digest.stdout).expect("keep");

    let replayed = json(&ok(chaos(
        &db,
        &[
            "audit",
            "replay",
            "--experiment",
            "platform",
            "--at",
            "2026-11-26T11:22:45.500Z",
        ],
    )));
    assert_eq!(replayed["applied"], 1);
    assert_eq!(
        replayed["platform"]["halted"],
        serde_json::json!({"reason": "game day", "at": "2026-11-26T11:22:45.481Z"})
    );

    sql(&db, "DELETE FROM events WHERE sequence = 2");
    let truncated = chaos(&db, &["audit", "verify", "--digest", path(&kept)]);
    assert_eq!(truncated.status.code(), Some(5));
    let said = "Platform/platform at sequence 2: truncated: the log ends at sequence 1, the digest recorded 2";
    assert!(stdout(&truncated).contains(said), "{}", stdout(&truncated));
    assert!(doc.contains(&format!("`{said}`")));
}
