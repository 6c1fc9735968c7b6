//! `chaos serve --aws`, black box, against AWS spoken to over the wire on a local moto server:
//! commands land in the events table through dynamo-es, the projection Lambda's handler (fed
//! the table's real stream records, as Lambda would) keeps the read-model table the API
//! reads, and subscriptions are fed by the events table's DynamoDB Stream.

mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use command_lambdas::dynamo::create_events_table;
use domain::provenance::Role;
use projection_lambdas::dynamo_stream::{ViewStore, create_views_table, handle};
use serde_json::{Value, json};
use server::ws::{collect, connect, next, send};
use server::{Server, code, gql, serve_with, spec};
use test_support::{aws, common, fleet, streams};

/// The tables of one platform on moto.
struct Platform {
    events: String,
    views: String,
    runtime: tokio::runtime::Runtime,
}

impl Platform {
    fn new() -> Platform {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let events = aws::unique("Events");
        let views = aws::unique("Views");
        runtime.block_on(async {
            let client = aws::dynamodb();
            create_events_table(&client, &events)
                .await
                .expect("events table");
            create_views_table(&client, &views)
                .await
                .expect("views table");
        });
        Platform {
            events,
            views,
            runtime,
        }
    }

    /// An API key of `role`, issued on the AWS event store as an administrator's tool would.
    fn key(&self, id: &str, role: Role) -> String {
        self.runtime.block_on(async {
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(aws::moto().endpoint())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "test", "test", None, None, "static",
                ))
                .load()
                .await;
            let service = command_lambdas::lambda::aws_service(&config, &self.events);
            command_lambdas::api_keys::issue(&service, id, id, role, &common::context(id))
                .await
                .expect("an API key")
                .secret
        })
    }

    /// Feeds every record of the events table's stream to the projection's handler, as the
    /// event source mapping would (records it has applied before are skipped by it).
    fn project(&self) {
        self.runtime.block_on(async {
            let records = streams::stream_records(&aws::dynamodb(), &self.events).await;
            let views = ViewStore::new(aws::dynamodb(), &self.views);
            let response = handle(&views, streams::event(&records)).await;
            assert!(
                response.batch_item_failures.is_empty(),
                "every record applies"
            );
        });
    }

    fn serve(&self, dir: &Path) -> Server {
        let endpoint = aws::moto().endpoint();
        serve_with(
            &dir.join("absent.db"),
            &[
                "--aws",
                "--events-table",
                &self.events,
                "--views-table",
                &self.views,
                "--state-machine-arn",
                "arn:aws:states:us-east-1:123456789012:stateMachine:experiment",
            ],
            &[
                ("AWS_ENDPOINT_URL", &endpoint),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
        )
    }
}

fn ok(answer: &Value) -> &Value {
    assert!(answer["errors"].is_null(), "{answer}");
    &answer["data"]
}

fn health(addr: SocketAddr) -> Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("JSON")
}

const CREATE: &str =
    "mutation($id: ID!, $spec: JSON!) { createExperiment(id: $id, spec: $spec) { version } }";

/// The API on AWS from the first command to the read model. One long test because its steps
/// build on each other over one server and one moto (each costs seconds to start).
#[test]
fn the_api_on_aws_commands_through_dynamo_es_and_reads_the_read_model_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = Platform::new();
    let admin = platform.key("root", Role::Admin);
    let operator = platform.key("ops", Role::Operator);
    let viewer = platform.key("watcher", Role::Viewer);
    let server = platform.serve(dir.path());
    let addr = server.addr;

    let health = health(addr);
    assert_eq!(health["mode"], "aws", "{health}");
    assert_eq!(health["halted"], false);

    // Nobody signs in here: people use the Cognito user pool.
    let login = gql(
        addr,
        None,
        "mutation { login(username: \"someone\", password: \"long enough password\") { accessToken } }",
        json!({}),
    );
    assert_eq!(code(&login).as_deref(), Some("UNSUPPORTED"), "{login}");

    // Commands are recorded in the events table, with the caller as the actor.
    for (id, name) in [
        ("aws-1", "latency on checkout"),
        ("aws-2", "kill a web node"),
    ] {
        let created = gql(
            addr,
            Some(&operator),
            CREATE,
            json!({"id": id, "spec": spec(name, false)}),
        );
        assert_eq!(ok(&created)["createExperiment"]["version"], 1);
    }
    let refused = gql(
        addr,
        Some(&viewer),
        CREATE,
        json!({"id": "aws-3", "spec": spec("viewer's", false)}),
    );
    assert_eq!(code(&refused).as_deref(), Some("FORBIDDEN"));
    let cancelled = gql(
        addr,
        Some(&operator),
        "mutation { cancelExperiment(id: \"aws-2\", reason: \"not today\") { version } }",
        json!({}),
    );
    assert_eq!(ok(&cancelled)["cancelExperiment"]["version"], 2);

    // The projection Lambda keeps the read-model table; the API reads it.
    platform.project();
    let listed = gql(
        addr,
        Some(&viewer),
        "{ experiments(first: 1) { items { id name status } nextCursor } }",
        json!({}),
    );
    let page = &ok(&listed)["experiments"];
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{listed}");
    let cursor = page["nextCursor"].as_str().expect("a second page");
    let rest = gql(
        addr,
        Some(&viewer),
        "query($after: String) { experiments(first: 10, after: $after) { items { id } nextCursor } }",
        json!({"after": cursor}),
    );
    let mut ids: Vec<String> = [page["items"][0]["id"].clone()]
        .into_iter()
        .chain(
            ok(&rest)["experiments"]["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|i| i["id"].clone()),
        )
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["aws-1", "aws-2"]);
    assert!(ok(&rest)["experiments"]["nextCursor"].is_null());
    let cancelled_only = gql(
        addr,
        Some(&viewer),
        "{ experiments(filter: {status: \"CANCELLED\"}) { items { id status } } }",
        json!({}),
    );
    assert_eq!(
        ok(&cancelled_only)["experiments"]["items"],
        json!([{"id": "aws-2", "status": "CANCELLED"}])
    );
    let detail = gql(
        addr,
        Some(&viewer),
        "{ experiment(id: \"aws-2\") { experiment { status } timeline { sequence eventType actor } } }",
        json!({}),
    );
    let detail = &ok(&detail)["experiment"];
    assert_eq!(detail["experiment"]["status"], "CANCELLED");
    assert_eq!(detail["timeline"][0]["actor"], "key:ops");
    assert_eq!(detail["timeline"][1]["eventType"], "ExperimentCancelled");
    let audit = gql(
        addr,
        Some(&viewer),
        "{ auditLog(filter: {actor: \"key:ops\"}) { aggregateId sequence eventType } }",
        json!({}),
    );
    assert_eq!(
        ok(&audit)["auditLog"].as_array().map(Vec::len),
        Some(3),
        "{audit}"
    );
    let bad_cursor = gql(
        addr,
        Some(&viewer),
        "{ experiments(after: \"not a cursor\") { items { id } } }",
        json!({}),
    );
    assert_eq!(code(&bad_cursor).as_deref(), Some("INVALID_INPUT"));

    // Platform commands, templates and preferences.
    let halted = gql(
        addr,
        Some(&admin),
        "mutation { haltAll(reason: \"drill\") { version } }",
        json!({}),
    );
    ok(&halted);
    let config = gql(
        addr,
        Some(&viewer),
        "{ config { halted haltReason } }",
        json!({}),
    );
    assert_eq!(
        ok(&config)["config"],
        json!({"halted": true, "haltReason": "drill"})
    );
    ok(&gql(
        addr,
        Some(&admin),
        "mutation { unhaltAll { version } }",
        json!({}),
    ));
    let saved = gql(
        addr,
        Some(&operator),
        "mutation($spec: JSON!) { saveTemplate(id: \"tpl-1\", name: \"weekly kill\", spec: $spec) { id name savedBy } }",
        json!({"spec": spec("from a template", true)}),
    );
    assert_eq!(
        ok(&saved)["saveTemplate"],
        json!({"id": "tpl-1", "name": "weekly kill", "savedBy": "key:ops"})
    );
    let from_template = gql(
        addr,
        Some(&operator),
        "mutation { createExperimentFromTemplate(templateId: \"tpl-1\", id: \"aws-4\") { version } }",
        json!({}),
    );
    assert_eq!(
        ok(&from_template)["createExperimentFromTemplate"]["version"],
        1
    );
    let templates = gql(addr, Some(&viewer), "{ templates { id name } }", json!({}));
    assert_eq!(
        ok(&templates)["templates"],
        json!([{"id": "tpl-1", "name": "weekly kill"}])
    );
    let preferences = gql(
        addr,
        Some(&viewer),
        "mutation { updatePreferences(preferences: {notifyOn: [\"FAILED\"], timeZone: \"Europe/Berlin\", pageSize: 25}) { timeZone } }",
        json!({}),
    );
    assert_eq!(
        ok(&preferences)["updatePreferences"]["timeZone"],
        "Europe/Berlin"
    );
    let mine = gql(
        addr,
        Some(&viewer),
        "{ preferences { notifyOn timeZone pageSize } }",
        json!({}),
    );
    assert_eq!(
        ok(&mine)["preferences"],
        json!({"notifyOn": ["FAILED"], "timeZone": "Europe/Berlin", "pageSize": 25})
    );
    let health = gql(
        addr,
        Some(&viewer),
        "{ health { halted projectionBehind } }",
        json!({}),
    );
    assert_eq!(
        ok(&health)["health"],
        json!({"halted": false, "projectionBehind": null})
    );
    drop(server);
}

#[test]
fn subscriptions_on_aws_follow_the_events_tables_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = Platform::new();
    let operator = platform.key("ops", Role::Operator);
    let viewer = platform.key("watcher", Role::Viewer);
    let server = platform.serve(dir.path());
    let addr = server.addr;
    let created = gql(
        addr,
        Some(&operator),
        CREATE,
        json!({"id": "live-1", "spec": spec("watched", false)}),
    );
    ok(&created);
    // The feed reads the stream every 200 ms; what it has read before a subscriber comes is
    // not delivered to it as new.
    std::thread::sleep(Duration::from_secs(1));

    // The whole stream so far, then what comes next, then the end of the run.
    let mut updates = connect(addr, &viewer);
    send(
        &mut updates,
        json!({"id": "u", "type": "subscribe", "payload": {"query": "subscription { experimentUpdates(id: \"live-1\", afterSequence: 0) { sequence eventType status ended actor } }"}}),
    );
    let first = next(&mut updates).expect("the replayed event");
    assert_eq!(
        first["payload"]["data"]["experimentUpdates"],
        json!({"sequence": 1, "eventType": "ExperimentCreated", "status": "DRAFT", "ended": false, "actor": "key:ops"}),
        "{first}"
    );
    let mut activity = connect(addr, &viewer);
    send(
        &mut activity,
        json!({"id": "a", "type": "subscribe", "payload": {"query": "subscription { platformActivity { position streamId sequence eventType actor } }"}}),
    );
    // Resuming platform activity by position is the embedded log's.
    let mut resumed = connect(addr, &viewer);
    send(
        &mut resumed,
        json!({"id": "r", "type": "subscribe", "payload": {"query": "subscription { platformActivity(after: \"0\") { sequence } }"}}),
    );
    let refused = next(&mut resumed).expect("an error");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "INVALID_INPUT",
        "{refused}"
    );
    std::thread::sleep(Duration::from_millis(500));

    let began = Instant::now();
    let cancelled = gql(
        addr,
        Some(&operator),
        "mutation { cancelExperiment(id: \"live-1\", reason: \"rescheduled\") { version } }",
        json!({}),
    );
    ok(&cancelled);
    let rest = collect(&mut updates, "u");
    assert_eq!(
        rest,
        [
            json!({"experimentUpdates": {"sequence": 2, "eventType": "ExperimentCancelled", "status": "CANCELLED", "ended": true, "actor": "key:ops"}})
        ]
    );
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "delivered in {:?}",
        began.elapsed()
    );
    ok(&gql(
        addr,
        Some(&operator),
        CREATE,
        json!({"id": "live-2", "spec": spec("another", false)}),
    ));
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = next(&mut activity).expect("activity");
        assert_eq!(message["type"], "next", "{message}");
        seen.push(message["payload"]["data"]["platformActivity"].clone());
    }
    assert_eq!(
        seen,
        [
            json!({"position": null, "streamId": "live-1", "sequence": 2, "eventType": "ExperimentCancelled", "actor": "key:ops"}),
            json!({"position": null, "streamId": "live-2", "sequence": 1, "eventType": "ExperimentCreated", "actor": "key:ops"}),
        ]
    );
    drop(server);
}

/// `chaos audit verify --dynamo-table E --views-table V --json`: its exit code and report.
fn verify_on_aws(platform: &Platform, dir: &Path) -> (Option<i32>, Value) {
    let out = std::process::Command::new(server::CHAOS)
        .arg("--db")
        .arg(dir.join("absent.db"))
        .args([
            "audit",
            "verify",
            "--dynamo-table",
            &platform.events,
            "--views-table",
            &platform.views,
            "--json",
        ])
        .env("AWS_ENDPOINT_URL", aws::moto().endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run chaos");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

#[test]
fn an_auditor_compares_the_audit_log_in_the_read_model_table_with_the_events_table() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = Platform::new();
    let operator = platform.key("ops", Role::Operator);
    let server = platform.serve(dir.path());
    for id in ["audited-1", "audited-2"] {
        ok(&gql(
            server.addr,
            Some(&operator),
            CREATE,
            json!({"id": id, "spec": spec(id, false)}),
        ));
    }
    ok(&gql(
        server.addr,
        Some(&operator),
        "mutation { cancelExperiment(id: \"audited-2\", reason: \"no\") { version } }",
        json!({}),
    ));
    drop(server);

    // Nothing projected yet: nothing to compare, nothing wrong.
    let (code, report) = verify_on_aws(&platform, dir.path());
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["projection"]["entries"], 0, "{report:#}");

    platform.project();
    let (code, report) = verify_on_aws(&platform, dir.path());
    assert_eq!(code, Some(0), "{report:#}");
    // The key's own event, the two creations and the cancellation.
    assert_eq!(report["projection"]["entries"], 4, "{report:#}");

    // An entry that says someone else did it is named, at its stream and sequence.
    platform.runtime.block_on(async {
        let client = aws::dynamodb();
        let key = |pk: &str| {
            [
                ("Pk".to_owned(), AttributeValue::S(pk.to_owned())),
                (
                    "Sk".to_owned(),
                    AttributeValue::S("audit#0000000002".to_owned()),
                ),
            ]
            .into_iter()
            .collect::<HashMap<_, _>>()
        };
        let mut item = client
            .get_item()
            .table_name(&platform.views)
            .set_key(Some(key("Experiment#audited-2")))
            .send()
            .await
            .expect("get")
            .item
            .expect("the audit row");
        let entry = item["Entry"]
            .as_s()
            .expect("entry")
            .replace("key:ops", "key:someone-else");
        item.insert("Entry".into(), AttributeValue::S(entry));
        client
            .put_item()
            .table_name(&platform.views)
            .set_item(Some(item))
            .send()
            .await
            .expect("put");
    });
    let (code, report) = verify_on_aws(&platform, dir.path());
    assert_eq!(code, Some(6), "{report:#}");
    let faults = &report["projection"]["faults"];
    assert_eq!(faults.as_array().map(Vec::len), Some(1), "{report:#}");
    assert_eq!(faults[0]["aggregate_id"], "audited-2");
    assert_eq!(faults[0]["sequence"], 2);
    assert!(
        faults[0]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("actor")),
        "{report:#}"
    );

    // An entry of a stream the log does not hold at all is found through the audit feed.
    platform.runtime.block_on(async {
        let client = aws::dynamodb();
        client
            .put_item()
            .table_name(&platform.views)
            .item("Pk", AttributeValue::S("Experiment#ghost".into()))
            .item("Sk", AttributeValue::S("audit#0000000001".into()))
            .item("Feed", AttributeValue::S("audit".into()))
            .item(
                "FeedKey",
                AttributeValue::S("2026-01-01T00:00:00.000Z#ghost#0000000001".into()),
            )
            .item("Entry", AttributeValue::S("{}".into()))
            .send()
            .await
            .expect("put");
    });
    let (code, report) = verify_on_aws(&platform, dir.path());
    assert_eq!(code, Some(6), "{report:#}");
    let ghost = report["projection"]["faults"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["aggregate_id"] == "ghost"))
        .cloned()
        .unwrap_or_else(|| panic!("the ghost entry is reported: {report:#}"));
    assert_eq!(ghost["sequence"], 1);
    assert!(
        ghost["problem"]
            .as_str()
            .is_some_and(|p| p.contains("does not hold")),
        "{ghost}"
    );
}

#[test]
fn serving_aws_without_its_tables_says_which_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(server::CHAOS)
        .arg("--db")
        .arg(dir.path().join("absent.db"))
        .args([
            "serve",
            "--aws",
            "--addr",
            "127.0.0.1:0",
            "--views-table",
            "Views",
        ])
        .env_remove("EVENTS_TABLE")
        .env_remove("VIEWS_TABLE")
        .env_remove("STATE_MACHINE_ARN")
        .env_remove("RUST_LOG")
        .output()
        .expect("run chaos");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--aws needs --events-table (or EVENTS_TABLE)"),
        "{said}"
    );
}

#[test]
fn the_audit_chain_on_aws_is_checked_from_the_events_table() {
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;
    const CHAIN: &str = "query($id: ID) { auditChain(experimentId: $id) { intact streams events \
        faults { streamType streamId sequence problem } } }";
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = Platform::new();
    let operator = platform.key("chain-ops", Role::Operator);
    let viewer = platform.key("chain-auditor", Role::Viewer);
    let server = platform.serve(dir.path());
    for id in ["chain-a", "chain-b"] {
        ok(&gql(
            server.addr,
            Some(&operator),
            CREATE,
            json!({"id": id, "spec": spec(id, false)}),
        ));
    }
    ok(&gql(
        server.addr,
        Some(&operator),
        "mutation { cancelExperiment(id: \"chain-b\", reason: \"no\") { version } }",
        json!({}),
    ));

    // The platform's stream (two keys issued) and the two experiments' (three events).
    let whole = gql(server.addr, Some(&viewer), CHAIN, json!({}));
    assert_eq!(
        ok(&whole)["auditChain"],
        json!({"intact": true, "streams": 3, "events": 5, "faults": []}),
        "{whole}"
    );
    let one = gql(server.addr, Some(&viewer), CHAIN, json!({"id": "chain-b"}));
    assert_eq!(ok(&one)["auditChain"]["events"], 2, "{one}");

    // The cancellation's reason changed in the table: the chain breaks there.
    platform.runtime.block_on(async {
        let client = aws::dynamodb();
        let mut item = client
            .get_item()
            .table_name(&platform.events)
            .key(
                "AggregateTypeAndId",
                AttributeValue::S("Experiment:chain-b".into()),
            )
            .key("AggregateIdSequence", AttributeValue::N("2".into()))
            .send()
            .await
            .expect("get")
            .item
            .expect("the cancellation");
        let payload = String::from_utf8(item["Payload"].as_b().expect("payload").as_ref().to_vec())
            .expect("UTF-8");
        let changed = payload.replace("\"reason\":\"no\"", "\"reason\":\"on\"");
        assert_ne!(changed, payload, "{payload}");
        item.insert("Payload".into(), AttributeValue::B(Blob::new(changed)));
        client
            .put_item()
            .table_name(&platform.events)
            .set_item(Some(item))
            .send()
            .await
            .expect("put");
    });
    for variables in [json!({}), json!({"id": "chain-b"})] {
        let broken = gql(server.addr, Some(&viewer), CHAIN, variables);
        let status = &ok(&broken)["auditChain"];
        assert_eq!(status["intact"], false, "{broken}");
        let faults = status["faults"].as_array().expect("faults");
        assert_eq!(faults.len(), 1, "{broken}");
        assert_eq!(
            (&faults[0]["streamId"], &faults[0]["sequence"]),
            (&json!("chain-b"), &json!(2)),
            "{broken}"
        );
        assert!(
            faults[0]["problem"]
                .as_str()
                .is_some_and(|p| p.contains("does not match the content")),
            "{broken}"
        );
    }
    let missing = gql(server.addr, Some(&viewer), CHAIN, json!({"id": "chain-z"}));
    assert_eq!(code(&missing).as_deref(), Some("NOT_FOUND"), "{missing}");
}

/// A spec an Auto Scaling group's run would be refused at: checked where it is written.
#[test]
fn an_error_rate_limit_on_a_group_nothing_measures_is_refused_at_create_and_preview() {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = Platform::new();
    let operator = platform.key("ops", Role::Operator);
    let (plain, measured) = platform.runtime.block_on(async {
        let lb = format!("app/{}/1a2b3c4d5e6f7081", aws::unique("alb"));
        (
            fleet::group(1, None).await,
            fleet::group(1, Some(&lb)).await,
        )
    });
    let server = platform.serve(dir.path());
    let group_spec = |group: &str| {
        let mut spec = spec("kill a group member", false);
        spec["target"] = json!({"kind": "AUTO_SCALING_GROUP", "group": group});
        spec
    };

    let refused = gql(
        server.addr,
        Some(&operator),
        CREATE,
        json!({"id": "unmeasured", "spec": group_spec(&plain)}),
    );
    assert_eq!(
        code(&refused).as_deref(),
        Some("INVALID_INPUT"),
        "{refused}"
    );
    let message = refused["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("guardrails.stop_conditions[0]")
            && message.contains("chaos:load-balancer"),
        "{refused}"
    );
    let preview = gql(
        server.addr,
        Some(&operator),
        "query($spec: JSON!) { targets(spec: $spec) { wouldHit } }",
        json!({"spec": group_spec(&plain)}),
    );
    assert_eq!(
        code(&preview).as_deref(),
        Some("INVALID_INPUT"),
        "{preview}"
    );

    // Nothing was recorded for the refused create: its id is free for a spec that holds.
    let created = gql(
        server.addr,
        Some(&operator),
        CREATE,
        json!({"id": "unmeasured", "spec": group_spec(&measured)}),
    );
    assert_eq!(ok(&created)["createExperiment"]["version"], 1);
    let preview = gql(
        server.addr,
        Some(&operator),
        "query($spec: JSON!) { targets(spec: $spec) { wouldHit } }",
        json!({"spec": group_spec(&measured)}),
    );
    assert_eq!(
        ok(&preview)["targets"]["wouldHit"].as_array().map(Vec::len),
        Some(1),
        "{preview}"
    );
}
