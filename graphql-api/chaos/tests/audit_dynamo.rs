//! `chaos audit` over a DynamoDB `Events` table, spoken to over the wire on a local moto
//! server: the binary finds the endpoint in the usual AWS environment variables.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use command_lambdas::clock::{SystemClock, UuidV7};
use command_lambdas::dynamo::{DynamoStore, create_events_table, repository};
use domain::experiment::Experiment;
use serde_json::Value;
use test_support::{aws, common};

const CHAOS: &str = env!("CARGO_BIN_EXE_chaos");

fn chaos(dir: &Path, args: &[&str]) -> Output {
    Command::new(CHAOS)
        // No embedded store is read: `--db` names nothing that exists.
        .arg("--db")
        .arg(dir.join("absent.db"))
        .args(args)
        .env("AWS_ENDPOINT_URL", aws::moto().endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .expect("run chaos")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A table written once, verified, then tampered with kind by kind. One long test because each
/// kind of tampering builds on the table the steps before left, and moto's table is set up once.
#[test]
fn a_dynamodb_events_table_verifies_and_its_tampering_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = aws::dynamodb();
    let table = aws::unique("Events");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        create_events_table(&client, &table)
            .await
            .expect("create table");
        let store = DynamoStore::new(
            repository(client.clone(), &table),
            Arc::new(SystemClock),
            Arc::new(UuidV7),
        );
        for id in ["exp-a", "exp-b"] {
            for (i, command) in common::lifecycle(id, 2).into_iter().enumerate() {
                store
                    .execute::<Experiment>(id, command, &common::context(&format!("{id}-{i}")))
                    .await
                    .expect("append");
            }
        }
    });

    let verified = chaos(
        dir.path(),
        &["audit", "verify", "--json", "--dynamo-table", &table],
    );
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let report = json(&verified);
    assert_eq!(
        (report["events"].as_u64(), report["streams"].as_u64()),
        (Some(24), Some(2))
    );
    assert_eq!(report["source"], format!("DynamoDB table {table}"));

    // A digest and an export of the table, then the export verified on its own.
    let digest = dir.path().join("digest.json");
    let taken = chaos(dir.path(), &["audit", "digest", "--dynamo-table", &table]);
    assert!(taken.status.success());
    std::fs::write(&digest, &taken.stdout).expect("keep the digest");
    let export = dir.path().join("table.jsonl");
    let exported = chaos(
        dir.path(),
        &[
            "audit",
            "export",
            "--dynamo-table",
            &table,
            "--out",
            export.to_str().expect("path"),
        ],
    );
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    assert_eq!(json(&exported)["events"], 24);
    let from_file = chaos(
        dir.path(),
        &[
            "audit",
            "verify",
            "--json",
            "--file",
            export.to_str().expect("path"),
            "--digest",
            digest.to_str().expect("path"),
        ],
    );
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stdout)
    );

    // One payload byte of exp-b's seventh event (its baseline), changed in the table.
    runtime.block_on(async {
        let key = |seq: &str| {
            [
                (
                    "AggregateTypeAndId".to_owned(),
                    AttributeValue::S("Experiment:exp-b".into()),
                ),
                (
                    "AggregateIdSequence".to_owned(),
                    AttributeValue::N(seq.into()),
                ),
            ]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>()
        };
        let item = client
            .get_item()
            .table_name(&table)
            .set_key(Some(key("7")))
            .send()
            .await
            .expect("get")
            .item
            .expect("event 7");
        let payload = String::from_utf8(item["Payload"].as_b().expect("binary").as_ref().to_vec())
            .expect("utf-8");
        let altered = payload.replacen("\"healthy\":3", "\"healthy\":2", 1);
        assert_ne!(altered, payload);
        client
            .update_item()
            .table_name(&table)
            .set_key(Some(key("7")))
            .update_expression("SET Payload = :p")
            .expression_attribute_values(":p", AttributeValue::B(altered.into_bytes().into()))
            .send()
            .await
            .expect("tamper");
    });
    let tampered = chaos(
        dir.path(),
        &["audit", "verify", "--json", "--dynamo-table", &table],
    );
    assert_eq!(tampered.status.code(), Some(4));
    let report = json(&tampered);
    let faults = report["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["aggregate_id"], "exp-b");
    assert_eq!(faults[0]["sequence"], 7);
    assert!(
        faults[0]["problem"]
            .as_str()
            .expect("problem")
            .starts_with("hash ")
    );

    // The last event of exp-a removed: the chain cannot tell, the digest does.
    runtime.block_on(async {
        client
            .delete_item()
            .table_name(&table)
            .key(
                "AggregateTypeAndId",
                AttributeValue::S("Experiment:exp-a".into()),
            )
            .key("AggregateIdSequence", AttributeValue::N("12".into()))
            .send()
            .await
            .expect("delete");
    });
    let against_digest = chaos(
        dir.path(),
        &[
            "audit",
            "verify",
            "--json",
            "--dynamo-table",
            &table,
            "--digest",
            digest.to_str().expect("path"),
        ],
    );
    let report = json(&against_digest);
    assert_eq!(report["digest"]["faults"][0]["aggregate_id"], "exp-a");
    assert_eq!(report["digest"]["faults"][0]["sequence"], 12);
    // exp-b's broken chain decides the exit code.
    assert_eq!(against_digest.status.code(), Some(4));

    // Replay from the table.
    let replayed = chaos(
        dir.path(),
        &[
            "audit",
            "replay",
            "--dynamo-table",
            &table,
            "--experiment",
            "exp-a",
            "--at",
            "2099-01-01T00:00:00Z",
        ],
    );
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert_eq!(json(&replayed)["applied"], 11);
}
