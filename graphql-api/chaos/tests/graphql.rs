//! The GraphQL API, black box: `chaos serve` on port 0, spoken to over real HTTP as scripts and
//! the dashboard do, with API keys issued by `chaos apikey create` and users added by
//! `chaos user add`.

mod server;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server::{Server, chaos, code, gql, key, ok_json, post_raw, spec};

fn serve(db: &Path, fleet: bool) -> Server {
    if fleet {
        server::serve(
            db,
            &["--fleet-size", "2", "--fleet-replace-after-ms", "300"],
        )
    } else {
        server::serve(db, &["--no-fleet"])
    }
}

/// Adds user `name` with `role` and `password` through `chaos user add` (password on stdin).
fn add_user(db: &Path, name: &str, role: &str, password: &str) -> Output {
    server::chaos_with_input(
        db,
        &["user", "add", name, "--role", role],
        &format!("{password}\n"),
    )
}

/// Signs `name` in through the API: the `login` answer.
fn login(addr: SocketAddr, name: &str, password: &str) -> Value {
    gql(
        addr,
        None,
        "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken accessTokenExpiresAt refreshToken refreshTokenExpiresAt user { id role } } }",
        json!({"u": name, "p": password}),
    )
}

/// The access token of a successful sign-in.
fn access_token(answer: &Value) -> String {
    answer["data"]["login"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("not signed in: {answer}"))
        .to_owned()
}

/// Tokens the embedded issuer would never hand out, each made from a real one: expired,
/// signed with another key, unsigned (`alg: none`), from another issuer, signed HS512.
fn bad_tokens(db: &Path, genuine: &str) -> Vec<(&'static str, String)> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let key_file = graphql_api::identity::local::key_file(db);
    let key = hex::decode(
        std::fs::read_to_string(&key_file)
            .expect("the signing key, beside the store")
            .trim(),
    )
    .expect("hex");
    let payload = genuine.split('.').nth(1).expect("claims");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    let now = claims["iat"].as_i64().expect("iat");
    let sign = |claims: &Value, alg: Algorithm, key: &[u8]| {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key))
            .expect("sign")
    };
    let mut expired = claims.clone();
    expired["iat"] = json!(now - 1_000);
    expired["exp"] = json!(now - 120);
    let mut elsewhere = claims.clone();
    elsewhere["iss"] = json!("https://issuer.invalid");
    let mut ahead = claims.clone();
    ahead["iat"] = json!(now + 3_600);
    ahead["exp"] = json!(now + 7_200);
    let mut someone_else = claims.clone();
    someone_else["sub"] = json!("otto");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        payload
    );
    vec![
        ("expired token", sign(&expired, Algorithm::HS256, &key)),
        (
            "forged signature",
            sign(&claims, Algorithm::HS256, &[7u8; 32]),
        ),
        ("alg none", unsigned),
        ("wrong issuer", sign(&elsewhere, Algorithm::HS256, &key)),
        ("issued in the future", sign(&ahead, Algorithm::HS256, &key)),
        (
            "another user's name on this session",
            sign(&someone_else, Algorithm::HS256, &key),
        ),
        ("HS512", sign(&claims, Algorithm::HS512, &key)),
    ]
}

#[test]
fn the_committed_sdl_is_the_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema.graphql");
    let sdl = graphql_api::api::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &sdl).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "graphql-api/schema.graphql differs from the schema the code serves; \
         review the change and run `UPDATE_SCHEMA=1 cargo test -p graphql-api --test graphql`"
    );
}

/// Every mutation, for every kind of caller: anonymous; a malformed, unknown or revoked key;
/// an expired, forged, unsigned, foreign or wrongly signed token; a signed-out user's token;
/// and each role, both as an API key and as a signed-in user. A caller without the role a
/// mutation needs is refused before anything happens; one with it gets past authorization
/// (and may still be refused by the platform for its own reasons).
///
/// Long because it is a table: every caller against every mutation, over one server.
#[test]
fn every_mutation_checks_who_calls_and_with_which_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    let admin = key(&db, "admin-key", "ADMIN");
    let operator = key(&db, "operator-key", "OPERATOR");
    let viewer = key(&db, "viewer-key", "VIEWER");
    let revoked = key(&db, "revoked-key", "ADMIN");
    ok_json(&chaos(&db, &["apikey", "revoke", "revoked-key"]));
    for (name, role) in [("ada", "ADMIN"), ("otto", "OPERATOR"), ("vera", "VIEWER")] {
        ok_json(&add_user(
            &db,
            name,
            role,
            &format!("{name} has a long password"),
        ));
    }
    let server = serve(&db, false);
    let addr = server.addr;
    let user_token =
        |name: &str| access_token(&login(addr, name, &format!("{name} has a long password")));
    let (ada, otto, vera) = (user_token("ada"), user_token("otto"), user_token("vera"));
    let signed_out = user_token("ada");
    let out = gql(addr, Some(&signed_out), "mutation { logout }", json!({}));
    assert_eq!(out["data"]["logout"], true, "{out}");
    let bad = bad_tokens(&db, &ada);

    let mutations: Vec<(&str, &str, Value)> = vec![
        (
            "OPERATOR",
            "mutation($spec: JSON!) { createExperiment(spec: $spec) { aggregateId } }",
            json!({"spec": spec("matrix", true)}),
        ),
        (
            "OPERATOR",
            "mutation { startExperiment(id: \"nope\") { version } }",
            json!({}),
        ),
        (
            "OPERATOR",
            "mutation { scheduleExperiment(id: \"nope\", startAt: \"2030-01-01T00:00:00Z\") { version } }",
            json!({}),
        ),
        (
            "OPERATOR",
            "mutation { stopExperiment(id: \"nope\", reason: \"r\") { version } }",
            json!({}),
        ),
        (
            "OPERATOR",
            "mutation { cancelExperiment(id: \"nope\", reason: \"r\") { version } }",
            json!({}),
        ),
        (
            "OPERATOR",
            "mutation { archiveExperiment(id: \"nope\") { version } }",
            json!({}),
        ),
        (
            "ADMIN",
            "mutation { haltAll(reason: \"matrix\") { events } }",
            json!({}),
        ),
        ("ADMIN", "mutation { unhaltAll { events } }", json!({})),
        (
            "ADMIN",
            "mutation { createApiKey(name: \"x\", role: \"VIEWER\") { id secret } }",
            json!({}),
        ),
        (
            "ADMIN",
            "mutation { revokeApiKey(id: \"nope\") { events } }",
            json!({}),
        ),
        (
            "ADMIN",
            "mutation { updateConfig(maxTargetsPerRun: 10, maxDurationSecs: 3600) { events } }",
            json!({}),
        ),
        (
            "ADMIN",
            "mutation { addWebhook(url: \"http://127.0.0.1:9/hook\") { events } }",
            json!({}),
        ),
        (
            "ADMIN",
            "mutation { removeWebhook(id: \"nope\") { events } }",
            json!({}),
        ),
        (
            "OPERATOR",
            "mutation($spec: JSON!) { saveTemplate(name: \"t\", spec: $spec) { id } }",
            json!({"spec": spec("from a template", true)}),
        ),
        (
            "OPERATOR",
            "mutation { deleteTemplate(id: \"nope\") }",
            json!({}),
        ),
        (
            "OPERATOR",
            "mutation { createExperimentFromTemplate(templateId: \"nope\") { version } }",
            json!({}),
        ),
        (
            "VIEWER",
            "mutation { updatePreferences(preferences: {notifyOn: [\"FAILED\"], timeZone: \"UTC\", pageSize: 50}) { timeZone } }",
            json!({}),
        ),
    ];
    let malformed = "chaos_not-a-key";
    let unknown = format!("chaos_{}", "0".repeat(64));
    let mut callers: Vec<(&str, Option<&str>)> = vec![
        ("anonymous", None),
        ("malformed", Some(malformed)),
        ("unknown", Some(&unknown)),
        ("revoked", Some(&revoked)),
        ("signed out", Some(&signed_out)),
        ("VIEWER", Some(&viewer)),
        ("OPERATOR", Some(&operator)),
        ("ADMIN", Some(&admin)),
        ("VIEWER", Some(&vera)),
        ("OPERATOR", Some(&otto)),
        ("ADMIN", Some(&ada)),
    ];
    callers.extend(
        bad.iter()
            .map(|(what, token)| (*what, Some(token.as_str()))),
    );
    let rank = |role: &str| {
        ["VIEWER", "OPERATOR", "ADMIN"]
            .iter()
            .position(|r| *r == role)
    };
    for (needed, query, variables) in &mutations {
        for (caller, secret) in &callers {
            let answer = gql(addr, *secret, query, variables.clone());
            let got = code(&answer);
            let expected = match rank(caller) {
                None => Some("UNAUTHENTICATED"),
                Some(r) if r < rank(needed).expect("a role") => Some("FORBIDDEN"),
                Some(_) => None,
            };
            match expected {
                Some(expected) => {
                    assert_eq!(
                        got.as_deref(),
                        Some(expected),
                        "{caller}: {query}: {answer}"
                    );
                    assert!(answer["data"].is_null(), "{caller}: {query}: {answer}");
                }
                None => assert!(
                    !matches!(got.as_deref(), Some("UNAUTHENTICATED" | "FORBIDDEN")),
                    "{caller} was refused: {query}: {answer}"
                ),
            }
        }
    }
    // Reads need a role too.
    let me = "{ me { id role } }";
    assert_eq!(
        code(&gql(addr, None, me, json!({}))).as_deref(),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(
        code(&gql(addr, Some(&revoked), me, json!({}))).as_deref(),
        Some("UNAUTHENTICATED")
    );
    let answer = gql(addr, Some(&viewer), me, json!({}));
    assert_eq!(
        answer["data"]["me"],
        json!({"id": "key:viewer-key", "role": "VIEWER"})
    );
    let answer = gql(addr, Some(&otto), me, json!({}));
    assert_eq!(
        answer["data"]["me"],
        json!({"id": "user:otto", "role": "OPERATOR"})
    );
    // Each refused token is told why.
    for (what, token) in &bad {
        let answer = gql(addr, Some(token), me, json!({}));
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        let expected = match *what {
            "expired token" => "expired",
            "forged signature" => "signature",
            "alg none" | "HS512" => "only HS256",
            "wrong issuer" => "not trusted",
            "issued in the future" => "issued in the future",
            "another user's name on this session" => "not its session's",
            _ => unreachable!(),
        };
        assert!(message.contains(expected), "{what}: {answer}");
    }
    let keys = "{ apiKeys { id role } }";
    assert_eq!(
        code(&gql(addr, Some(&operator), keys, json!({}))).as_deref(),
        Some("FORBIDDEN")
    );

    // Whoever sent a command is its actor in the log.
    let created = gql(
        addr,
        Some(&operator),
        "mutation($spec: JSON!) { createExperiment(id: \"by-key\", spec: $spec, commandId: \"c-1\") { aggregateId events deduplicated } }",
        json!({"spec": spec("by key", true)}),
    );
    assert_eq!(
        created["data"]["createExperiment"],
        json!({"aggregateId": "by-key", "events": ["ExperimentCreated"], "deduplicated": false}),
        "{created}"
    );
    let again = gql(
        addr,
        Some(&operator),
        "mutation($spec: JSON!) { createExperiment(id: \"by-key\", spec: $spec, commandId: \"c-1\") { deduplicated } }",
        json!({"spec": spec("by key", true)}),
    );
    assert_eq!(
        again["data"]["createExperiment"]["deduplicated"], true,
        "{again}"
    );
    let shown = ok_json(&chaos(&db, &["experiment", "show", "by-key"]));
    let first = &shown["timeline"][0];
    assert_eq!(first["actor"], "key:operator-key", "{shown}");
    assert_eq!(first["actor_role"], "OPERATOR", "{shown}");
    assert_eq!(first["source"], "api", "{shown}");
    gql(
        addr,
        Some(&otto),
        "mutation($spec: JSON!) { createExperiment(id: \"by-user\", spec: $spec) { version } }",
        json!({"spec": spec("by user", true)}),
    );
    let shown = ok_json(&chaos(&db, &["experiment", "show", "by-user"]));
    assert_eq!(shown["timeline"][0]["actor"], "user:otto", "{shown}");
    assert_eq!(shown["timeline"][0]["actor_role"], "OPERATOR", "{shown}");

    // ... and the audit log, filtered by that actor, shows it (once the read models have it).
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let audited = gql(
            addr,
            Some(&viewer),
            "{ auditLog(filter: {actor: \"key:operator-key\"}) { eventType aggregateId actor source } }",
            json!({}),
        );
        let entries = audited["data"]["auditLog"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !entries.is_empty() || Instant::now() > deadline {
            break entries;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        entries
            .iter()
            .any(|e| e["aggregateId"] == "by-key" && e["eventType"] == "ExperimentCreated"),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["actor"] == "key:operator-key" && e["source"] == "api"),
        "{entries:?}"
    );

    // A key issued through the API works at once; revoked, it fails at once.
    let issued = gql(
        addr,
        Some(&admin),
        "mutation { createApiKey(id: \"fresh\", name: \"fresh\", role: \"VIEWER\") { id secret role } }",
        json!({}),
    );
    let secret = issued["data"]["createApiKey"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{issued}"))
        .to_owned();
    assert_eq!(
        gql(addr, Some(&secret), me, json!({}))["data"]["me"]["id"],
        "key:fresh"
    );
    let listed = gql(addr, Some(&admin), keys, json!({}));
    assert!(
        !listed.to_string().contains(&secret),
        "a listing shows no secret"
    );
    gql(
        addr,
        Some(&admin),
        "mutation { revokeApiKey(id: \"fresh\") { events } }",
        json!({}),
    );
    assert_eq!(
        code(&gql(addr, Some(&secret), me, json!({}))).as_deref(),
        Some("UNAUTHENTICATED")
    );
}

/// The platform's configuration, templates, preferences and the target preview, as the
/// dashboard's settings and run pages use them.
///
/// One long test because its steps build on each other over one server (a template saved is
/// listed, used, replaced and deleted).
#[test]
fn settings_templates_preferences_and_a_target_preview_that_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    let admin = key(&db, "admin", "ADMIN");
    let operator = key(&db, "operator", "OPERATOR");
    let viewer = key(&db, "viewer", "VIEWER");
    let server = serve(&db, true);
    let addr = server.addr;
    let ok = |secret: &str, query: &str, variables: Value| {
        let answer = gql(addr, Some(secret), query, variables);
        assert!(answer["errors"].is_null(), "{query}: {answer}");
        answer["data"].clone()
    };

    // Configuration: read by all, changed by admins, refused when out of bounds.
    let config = "{ config { maxTargetsPerRun maxDurationSecs halted } }";
    assert_eq!(
        ok(&viewer, config, json!({}))["config"],
        json!({"maxTargetsPerRun": 10, "maxDurationSecs": 3600, "halted": false})
    );
    ok(
        &admin,
        "mutation { updateConfig(maxTargetsPerRun: 5, maxDurationSecs: 900) { events } }",
        json!({}),
    );
    assert_eq!(
        ok(&viewer, config, json!({}))["config"]["maxTargetsPerRun"],
        5
    );
    let too_many = gql(
        addr,
        Some(&admin),
        "mutation { updateConfig(maxTargetsPerRun: 100000, maxDurationSecs: 900) { events } }",
        json!({}),
    );
    assert_eq!(
        code(&too_many).as_deref(),
        Some("INVALID_INPUT"),
        "{too_many}"
    );

    // Webhooks: admins only, URLs checked, and seen whole by admins only.
    let added = ok(
        &admin,
        "mutation { addWebhook(id: \"ops\", url: \"https://hooks.example/chaos?token=s3cret\", events: [\"ExperimentFailed\"]) { events webhookId secret fingerprint } }",
        json!({}),
    )["addWebhook"]
        .clone();
    assert!(
        added["events"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("WebhookAdded"))),
        "{added}"
    );
    assert_eq!(added["webhookId"], "ops");
    let secret = added["secret"].as_str().unwrap_or_default().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 70,
        "{added}"
    );
    // Issued anew by an admin only, for a webhook that exists.
    let rotate =
        "mutation($id: ID!) { rotateWebhookSecret(id: $id) { webhookId secret fingerprint } }";
    let rotated = ok(&admin, rotate, json!({"id": "ops"}))["rotateWebhookSecret"].clone();
    assert_eq!(rotated["webhookId"], "ops");
    let rotated_secret = rotated["secret"].as_str().unwrap_or_default().to_owned();
    assert!(
        rotated_secret.starts_with("whsec_") && rotated_secret != secret,
        "{rotated}"
    );
    // Each secret is named by its fingerprint, which the log records and anyone holding the
    // secret can compute.
    let fingerprints =
        [&added, &rotated].map(|a| a["fingerprint"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        fingerprints,
        [&secret, &rotated_secret].map(|s| domain::platform::webhook_secret_fingerprint(s))
    );
    assert_eq!(
        code(&gql(addr, Some(&admin), rotate, json!({"id": "nope"}))).as_deref(),
        Some("NOT_FOUND")
    );
    assert_eq!(
        code(&gql(addr, Some(&operator), rotate, json!({"id": "ops"}))).as_deref(),
        Some("FORBIDDEN")
    );
    assert_eq!(
        ok(&admin, "{ webhooks { id url events } }", json!({}))["webhooks"],
        json!([{"id": "ops", "url": "https://hooks.example/chaos?token=s3cret", "events": ["ExperimentFailed"]}])
    );
    // A viewer reading the audit log sees the host the webhook posts to, not its secret.
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let log = ok(
            &viewer,
            "{ auditLog(filter: { experimentId: \"webhooks.1\" }) { action } }",
            json!({}),
        );
        if log["auditLog"].as_array().is_some_and(|e| e.len() >= 3) || Instant::now() > deadline {
            break log["auditLog"].clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Newest first: each secret issued is an event of its own, named by its fingerprint only.
    assert_eq!(
        entries,
        json!([
            {"action": format!("webhook ops signs with secret {} from now on", fingerprints[1])},
            {"action": format!("webhook ops signs with secret {} from now on", fingerprints[0])},
            {"action": "webhook ops added: ExperimentFailed to https://hooks.example/…"},
        ]),
        "{entries}"
    );
    let bad_url = gql(
        addr,
        Some(&admin),
        "mutation { addWebhook(url: \"not a url\") { events } }",
        json!({}),
    );
    assert_eq!(
        code(&bad_url).as_deref(),
        Some("INVALID_INPUT"),
        "{bad_url}"
    );
    // What only the server can reach is no webhook (this server allows no private targets).
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:8080/",
        "http://0x7f.1/",
        "http://localhost:9/hook",
        "http://10.0.0.7/hook",
    ] {
        let refused = gql(
            addr,
            Some(&admin),
            "mutation($url: String!) { addWebhook(url: $url) { events } }",
            json!({ "url": url }),
        );
        assert_eq!(
            code(&refused).as_deref(),
            Some("INVALID_INPUT"),
            "{url}: {refused}"
        );
        assert!(
            refused
                .to_string()
                .contains("webhooks may only reach public addresses"),
            "{url}: {refused}"
        );
    }
    assert_eq!(
        code(&gql(addr, Some(&viewer), "{ webhooks { id } }", json!({}))).as_deref(),
        Some("FORBIDDEN")
    );

    // Templates: a valid spec is saved; an experiment started from one records the whole spec.
    let saved = ok(
        &operator,
        "mutation($spec: JSON!) { saveTemplate(id: \"kill-one\", name: \"Kill one web worker\", spec: $spec) { id name savedBy } }",
        json!({"spec": spec("kill one", true)}),
    );
    assert_eq!(
        saved["saveTemplate"],
        json!({"id": "kill-one", "name": "Kill one web worker", "savedBy": "key:operator"})
    );
    let mut broken = spec("broken", true);
    broken["max_targets"] = json!(0);
    let refused = gql(
        addr,
        Some(&operator),
        "mutation($spec: JSON!) { saveTemplate(name: \"broken\", spec: $spec) { id } }",
        json!({"spec": broken}),
    );
    assert_eq!(
        code(&refused).as_deref(),
        Some("INVALID_INPUT"),
        "{refused}"
    );
    let listed = ok(&viewer, "{ templates { id name spec } }", json!({}));
    assert_eq!(
        listed["templates"][0]["spec"]["name"], "kill one",
        "{listed}"
    );
    ok(
        &operator,
        "mutation { createExperimentFromTemplate(templateId: \"kill-one\", id: \"from-t\", name: \"kill one, Tuesday\") { version } }",
        json!({}),
    );
    ok(
        &operator,
        "mutation { deleteTemplate(id: \"kill-one\") }",
        json!({}),
    );
    assert_eq!(
        ok(&viewer, "{ templates { id } }", json!({}))["templates"],
        json!([])
    );
    let shown = ok_json(&chaos(&db, &["experiment", "show", "from-t"]));
    assert_eq!(shown["spec"]["name"], "kill one, Tuesday", "{shown}");

    // Preferences: each caller's own, checked.
    let prefs = "{ preferences { notifyOn timeZone pageSize } }";
    assert_eq!(
        ok(&viewer, prefs, json!({}))["preferences"]["timeZone"],
        "UTC"
    );
    ok(
        &viewer,
        "mutation { updatePreferences(preferences: {notifyOn: [\"FAILED\", \"STOPPED\"], timeZone: \"Europe/Berlin\", pageSize: 25}) { timeZone } }",
        json!({}),
    );
    assert_eq!(
        ok(&viewer, prefs, json!({}))["preferences"],
        json!({"notifyOn": ["FAILED", "STOPPED"], "timeZone": "Europe/Berlin", "pageSize": 25})
    );
    assert_eq!(
        ok(&operator, prefs, json!({}))["preferences"]["timeZone"],
        "UTC"
    );
    let bad_zone = gql(
        addr,
        Some(&viewer),
        "mutation { updatePreferences(preferences: {notifyOn: [], timeZone: \"Mars/Olympus\", pageSize: 25}) { timeZone } }",
        json!({}),
    );
    assert_eq!(
        code(&bad_zone).as_deref(),
        Some("INVALID_INPUT"),
        "{bad_zone}"
    );

    // The preview names exactly what the run then hits.
    let preview = ok(
        &viewer,
        "query($spec: JSON!) { targets(spec: $spec, id: \"previewed\") { experimentId target candidates wouldHit } }",
        json!({"spec": spec("previewed", true)}),
    )["targets"]
        .clone();
    assert_eq!(preview["target"], "fleet:web", "{preview}");
    assert_eq!(
        preview["candidates"].as_array().map(Vec::len),
        Some(2),
        "{preview}"
    );
    assert_eq!(
        preview["wouldHit"].as_array().map(Vec::len),
        Some(1),
        "{preview}"
    );
    let unknown = gql(
        addr,
        Some(&viewer),
        "query($spec: JSON!) { targets(spec: $spec) { wouldHit } }",
        json!({"spec": {
            "name": "x",
            "target": {"kind": "LOCAL_FLEET", "group": "nowhere"},
            "selection": {"mode": "ALL"},
            "max_targets": 2,
            "failure": {"type": "TERMINATE"},
            "dry_run": true,
            "guardrails": {"stop_conditions": [], "max_duration_secs": 60},
            "recovery": {"timeout_secs": 30, "poll_interval_secs": 1, "baseline_samples": 1}
        }}),
    );
    assert_eq!(code(&unknown).as_deref(), Some("NOT_FOUND"), "{unknown}");
    // What its start would refuse, the preview refuses, naming the field.
    let preview_of = |spec: Value| {
        gql(
            addr,
            Some(&viewer),
            "query($spec: JSON!) { targets(spec: $spec) { wouldHit } }",
            json!({ "spec": spec }),
        )
    };
    let mut over_cap = spec("over the cap", true);
    over_cap["max_targets"] = json!(6);
    let over_cap = preview_of(over_cap);
    assert_eq!(code(&over_cap).as_deref(), Some("REJECTED"), "{over_cap}");
    assert!(
        over_cap
            .to_string()
            .contains("max_targets 6 exceeds the platform limit of 5"),
        "{over_cap}"
    );
    let mut too_long = spec("too long", true);
    too_long["guardrails"]["max_duration_secs"] = json!(901);
    assert!(
        preview_of(too_long)
            .to_string()
            .contains("guardrails.max_duration_secs 901 exceeds the platform limit of 900")
    );
    let mut pause_a_group = spec("pause a group", true);
    pause_a_group["target"] = json!({"kind": "AUTO_SCALING_GROUP", "group": "web"});
    pause_a_group["failure"] = json!({"type": "PAUSE", "duration_secs": 10});
    let pause_a_group = preview_of(pause_a_group);
    assert_eq!(
        code(&pause_a_group).as_deref(),
        Some("INVALID_INPUT"),
        "{pause_a_group}"
    );
    assert!(
        pause_a_group
            .to_string()
            .contains("failure.type: PAUSE acts on local fleet workers only"),
        "{pause_a_group}"
    );
    ok(
        &operator,
        "mutation($spec: JSON!) { createExperiment(id: \"previewed\", spec: $spec) { version } }",
        json!({"spec": spec("previewed", true)}),
    );
    ok(
        &operator,
        "mutation { startExperiment(id: \"previewed\") { version } }",
        json!({}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let targets = loop {
        let shown = ok_json(&chaos(&db, &["experiment", "show", "previewed"]));
        if shown["status"] == "COMPLETED" || shown["status"] == "completed" {
            break shown["targets"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the dry run did not end: {shown}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        targets, preview["wouldHit"],
        "the run hit what the preview said"
    );
}

/// The embedded identity provider: sign-in, rotating refresh tokens, a refresh whose answer
/// was lost taken again, a replayed refresh token ending its session, logout, and role changes and removals holding from the next
/// request on.
///
/// One long test because each step needs the session the steps before left.
#[test]
fn users_sign_in_refresh_once_and_sign_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    let password = "correct horse battery staple";
    let added = ok_json(&add_user(&db, "sam", "VIEWER", password));
    assert_eq!(added["actor"], "user:sam", "{added}");
    // A weak password, a taken name: refused, nothing recorded.
    let weak = add_user(&db, "tim", "VIEWER", "short");
    assert_eq!(weak.status.code(), Some(3), "{weak:?}");
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("at least 12"),
        "{weak:?}"
    );
    let taken = add_user(&db, "sam", "ADMIN", password);
    assert_eq!(taken.status.code(), Some(3), "{taken:?}");
    let users = ok_json(&chaos(&db, &["user", "list"]));
    assert_eq!(users.as_array().map(Vec::len), Some(1), "{users}");
    // The store, which holds password hashes, is its owner's only; the log has the user and
    // the role, never the password.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&db).expect("store").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let log = std::fs::read(&db).expect("store");
    assert!(
        !log.windows(password.len())
            .any(|w| w == password.as_bytes()),
        "the password is not stored in clear"
    );

    let server = serve(&db, false);
    let addr = server.addr;
    let me = "{ me { id role } }";

    // A wrong password and an unknown user are refused alike.
    let wrong = login(addr, "sam", "not the password at all");
    let nobody = login(addr, "nobody", password);
    assert_eq!(code(&wrong).as_deref(), Some("UNAUTHENTICATED"), "{wrong}");
    assert_eq!(
        wrong["errors"][0]["message"],
        nobody["errors"][0]["message"]
    );

    let first = login(addr, "sam", password);
    assert_eq!(
        first["data"]["login"]["user"],
        json!({"id": "user:sam", "role": "VIEWER"}),
        "{first}"
    );
    let token = access_token(&first);
    assert_eq!(
        gql(addr, Some(&token), me, json!({}))["data"]["me"]["id"],
        "user:sam"
    );

    // A refresh token is traded once for a new pair.
    let refresh = |token: &str| {
        gql(
            addr,
            None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken user { role } } }",
            json!({"t": token}),
        )
    };
    let spent = first["data"]["login"]["refreshToken"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let second = refresh(&spent);
    let renewed = second["data"]["refreshSession"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{second}"))
        .to_owned();
    let next = second["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .expect("next refresh token")
        .to_owned();
    assert_ne!(next, spent);
    assert_eq!(
        gql(addr, Some(&renewed), me, json!({}))["data"]["me"]["id"],
        "user:sam"
    );
    // The answer to that refresh may never have reached its page (a reload, a dropped
    // connection): while `next` is unused, the spent token is traded once more, and `next`
    // is spent in its place.
    let retried = refresh(&spent);
    let again = retried["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("a refresh whose answer was lost ended the session: {retried}"))
        .to_owned();
    assert!(again != next && again != spent, "{retried}");
    let latest = refresh(&again);
    let last = latest["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{latest}"))
        .to_owned();
    // Once the line it started went on, the spent one presented again is a copy: it ends the
    // session, and every token of it is refused.
    let replayed = refresh(&spent);
    assert_eq!(
        code(&replayed).as_deref(),
        Some("UNAUTHENTICATED"),
        "{replayed}"
    );
    for token in [&token, &renewed] {
        let answer = gql(addr, Some(token), me, json!({}));
        assert_eq!(
            code(&answer).as_deref(),
            Some("UNAUTHENTICATED"),
            "{answer}"
        );
    }
    for token in [&next, &last] {
        assert_eq!(code(&refresh(token)).as_deref(), Some("UNAUTHENTICATED"));
    }

    // A token traded again within the grace spends its first successor: whoever holds that
    // one and presents it has a copy, and the session ends. (Another user: sign-ins are
    // limited per user name.)
    ok_json(&add_user(&db, "kim", "VIEWER", password));
    let session = login(addr, "kim", password);
    let first_token = session["data"]["login"]["refreshToken"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let superseded = refresh(&first_token)["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .expect("refreshed")
        .to_owned();
    let kept = refresh(&first_token)["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .expect("traded again within the grace")
        .to_owned();
    assert_eq!(
        code(&refresh(&superseded)).as_deref(),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(code(&refresh(&kept)).as_deref(), Some("UNAUTHENTICATED"));

    // Logout with the refresh token (when the access token has expired) ends the session.
    let third = login(addr, "sam", password);
    let token = access_token(&third);
    let refresh_token = third["data"]["login"]["refreshToken"].as_str().expect("rt");
    let out = gql(
        addr,
        None,
        "mutation($t: String) { logout(refreshToken: $t) }",
        json!({"t": refresh_token}),
    );
    assert_eq!(out["data"]["logout"], true, "{out}");
    assert_eq!(
        code(&gql(addr, Some(&token), me, json!({}))).as_deref(),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(
        code(&refresh(refresh_token)).as_deref(),
        Some("UNAUTHENTICATED")
    );

    // A role change holds from the next request; a removal refuses the user's tokens.
    let token = access_token(&login(addr, "sam", password));
    ok_json(&chaos(&db, &["user", "role", "sam", "OPERATOR"]));
    assert_eq!(
        gql(addr, Some(&token), me, json!({}))["data"]["me"]["role"],
        "OPERATOR"
    );
    ok_json(&chaos(&db, &["user", "remove", "sam"]));
    let answer = gql(addr, Some(&token), me, json!({}));
    assert_eq!(
        code(&answer).as_deref(),
        Some("UNAUTHENTICATED"),
        "{answer}"
    );
    assert_eq!(
        code(&login(addr, "sam", password)).as_deref(),
        Some("UNAUTHENTICATED")
    );
    // The log has the history of the account.
    let entries = ok_json(&chaos(&db, &["audit", "log", "--experiment", "users.1"]));
    let kinds: Vec<&str> = entries
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["event_type"].as_str().or_else(|| e["eventType"].as_str()))
        .collect();
    assert!(
        kinds.ends_with(&["UserAdded", "UserRoleChanged", "UserRemoved"]),
        "{entries}"
    );
}

/// Each caller has its own request budget; sign-ins have a budget per user name.
#[test]
fn callers_over_their_rate_are_told_when_to_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    let busy = key(&db, "busy", "VIEWER");
    let calm = key(&db, "calm", "VIEWER");
    let server = server::serve(&db, &["--no-fleet", "--rate-limit", "5"]);
    let addr = server.addr;
    let body = json!({"query": "{ me { id } }"}).to_string();
    let bearer = format!("Bearer {busy}");
    let mut limited = None;
    for _ in 0..30 {
        let (status, answer) = post_raw(addr, &[("Authorization", &bearer)], body.as_bytes());
        if status == 429 {
            limited = Some(answer);
            break;
        }
        assert_eq!(status, 200, "{answer}");
    }
    let limited = limited.expect("a caller over 5/s (bursts of 10) is limited");
    assert_eq!(
        limited["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{limited}"
    );
    // Another caller is not.
    let answer = gql(addr, Some(&calm), "{ me { id } }", json!({}));
    assert_eq!(answer["data"]["me"]["id"], "key:calm", "{answer}");
    // After a moment, the first may call again.
    std::thread::sleep(Duration::from_millis(400));
    let answer = gql(addr, Some(&busy), "{ me { id } }", json!({}));
    assert_eq!(answer["data"]["me"]["id"], "key:busy", "{answer}");

    // Password guessing is slowed where it comes from, whatever the user name...
    let guess =
        "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }";
    let guesses: Vec<Option<String>> = (0..7)
        .map(|i| {
            code(&gql(
                addr,
                None,
                guess,
                json!({"u": format!("user{i}"), "p": format!("guess number {i}")}),
            ))
        })
        .collect();
    assert_eq!(
        guesses[0].as_deref(),
        Some("UNAUTHENTICATED"),
        "{guesses:?}"
    );
    assert_eq!(guesses[6].as_deref(), Some("RATE_LIMITED"), "{guesses:?}");
    // ...and locks no account: from another address, the same user name still signs in.
    ok_json(&add_user(
        &db,
        "root",
        "VIEWER",
        "the real password of root",
    ));
    let elsewhere = gql_from(
        "127.0.0.2",
        addr,
        guess,
        json!({"u": "root", "p": "the real password of root"}),
    );
    assert!(
        elsewhere["data"]["login"]["accessToken"].is_string(),
        "{elsewhere}"
    );
    // Aliases check one password per request, and verify one audit chain.
    let aliased: String = (0..50)
        .map(|i| {
            format!("l{i}: login(username: \"root\", password: \"guess {i}\") {{ accessToken }} ")
        })
        .collect();
    let answer = gql_from(
        "127.0.0.3",
        addr,
        &format!("mutation {{ {aliased} }}"),
        json!({}),
    );
    let errors = answer["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 50, "{answer}");
    let once = errors
        .iter()
        .filter(|e| e["extensions"]["code"] == "INVALID_INPUT")
        .count();
    assert_eq!(once, 49, "one password checked: {answer}");
    let chains: String = (0..20)
        .map(|i| format!("c{i}: auditChain {{ intact }} "))
        .collect();
    let answer = gql(addr, Some(&calm), &format!("{{ {chains} }}"), json!({}));
    let errors = answer["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 19, "one chain checked: {answer}");
}

/// A GraphQL request sent from the loopback address `source` (the server sees another
/// client): the JSON answer.
fn gql_from(source: &str, addr: SocketAddr, query: &str, variables: Value) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = json!({"query": query, "variables": variables}).to_string();
    let source: SocketAddr = format!("{source}:0").parse().expect("a source address");
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.bind(source).expect("bind the source");
            let mut stream = socket.connect(addr).await.expect("connect");
            let head = format!(
                "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await.expect("head");
            stream.write_all(body.as_bytes()).await.expect("body");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.expect("answer");
            let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
        })
}

/// The introspection query clients send by default (graphql-js's `getIntrospectionQuery`,
/// which GraphiQL and gql use), with type references nine `ofType`s deep.
const INTROSPECTION: &str = "query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  } } } } } } } } }
}";

#[test]
fn bad_requests_get_a_clear_error_and_the_server_stays_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    let viewer = key(&db, "viewer-key", "VIEWER");
    let server = serve(&db, false);
    let addr = server.addr;
    let auth = format!("Bearer {viewer}");
    let headers = [("Authorization", auth.as_str())];

    // Not JSON; JSON without a query.
    for body in [&b"{ this is not json"[..], br#"{"variables": {}}"#] {
        let (status, answer) = post_raw(addr, &headers, body);
        assert_eq!(status, 400, "{answer}");
        assert_eq!(code(&answer).as_deref(), Some("BAD_REQUEST"), "{answer}");
    }
    // Bodies that are not said to be JSON (what a page of another site sends without asking
    // the browser first) are refused before anything runs, a sign-in included.
    let login =
        json!({"query": "mutation { login(username: \"x\", password: \"y\") { accessToken } }"})
            .to_string();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let (status, answer) = post_raw(addr, &[("Content-Type", content_type)], login.as_bytes());
        assert_eq!(status, 415, "{content_type}: {answer}");
        assert_eq!(
            code(&answer).as_deref(),
            Some("UNSUPPORTED_MEDIA_TYPE"),
            "{answer}"
        );
    }
    let (status, answer) = post_raw(
        addr,
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        json!({"query": "{ me { id } }"}).to_string().as_bytes(),
    );
    assert_eq!(
        (status, &answer["data"]["me"]["id"]),
        (200, &json!("key:viewer-key"))
    );
    // Too big.
    let huge = json!({"query": format!("{{ me {{ id }} }} #{}", "x".repeat(400 * 1024))});
    let (status, answer) = post_raw(addr, &headers, huge.to_string().as_bytes());
    assert_eq!(status, 413, "{answer}");
    assert_eq!(code(&answer).as_deref(), Some("BAD_REQUEST"));
    // Too slow: a body that stops halfway is answered, and its connection closed, once the
    // body's time is up, not held open for as long as the client likes.
    {
        use std::io::{Read, Write};
        let mut slow = std::net::TcpStream::connect(addr).expect("connect");
        slow.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        write!(
            slow,
            "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"query\": "
        )
        .expect("send half");
        let mut answer = String::new();
        slow.read_to_string(&mut answer)
            .expect("the server answers and closes");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    }
    // Headers that never end: the connection is closed once the headers' time is up, not
    // held (the read would time out after 60 s if it were).
    {
        use std::io::{Read, Write};
        let mut slow = std::net::TcpStream::connect(addr).expect("connect");
        slow.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        write!(
            slow,
            "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"
        )
        .expect("send part of the headers");
        let mut answer = Vec::new();
        slow.read_to_end(&mut answer)
            .expect("the server closes the connection");
    }
    // A field that does not exist; a query that does not parse.
    for query in ["{ me { id password } }", "{ me { id "] {
        let answer = gql(addr, Some(&viewer), query, json!({}));
        assert_eq!(code(&answer).as_deref(), Some("INVALID_QUERY"), "{answer}");
        assert!(
            answer["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Too deep: the schema's own types nest as deep as one asks.
    let mut deep = String::from("name");
    for _ in 0..14 {
        deep = format!("ofType {{ {deep} }}");
    }
    let query = format!("{{ __type(name: \"Query\") {{ fields {{ type {{ {deep} }} }} }} }}");
    let answer = gql(addr, Some(&viewer), &query, json!({}));
    assert_eq!(code(&answer).as_deref(), Some("INVALID_QUERY"), "{answer}");
    // Too wide: thousands of aliases.
    let wide: String = (0..3_000).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let answer = gql(addr, Some(&viewer), &format!("{{ {wide} }}"), json!({}));
    assert_eq!(code(&answer).as_deref(), Some("INVALID_QUERY"), "{answer}");
    // Bad arguments are the caller's error, with the reason.
    let answer = gql(
        addr,
        Some(&viewer),
        "{ experiments(first: 100000) { items { id } } }",
        json!({}),
    );
    assert_eq!(code(&answer).as_deref(), Some("INVALID_INPUT"), "{answer}");
    let answer = gql(
        addr,
        Some(&viewer),
        "{ experiments(after: \"garbage\") { items { id } } }",
        json!({}),
    );
    assert_eq!(code(&answer).as_deref(), Some("INVALID_INPUT"), "{answer}");

    // A search text longer than any name: the caller's error, not an outage.
    let answer = gql(
        addr,
        Some(&viewer),
        "query($s: String) { experiments(filter: { search: $s }) { items { id } } }",
        json!({"s": "%_".repeat(100_000)}),
    );
    assert_eq!(code(&answer).as_deref(), Some("INVALID_INPUT"), "{answer}");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("filter.search")),
        "{answer}"
    );
    // The standard introspection query of graphql-js, GraphiQL and gql answers.
    let answer = gql(addr, Some(&viewer), INTROSPECTION, json!({}));
    assert!(answer["errors"].is_null(), "{answer}");
    assert_eq!(answer["data"]["__schema"]["queryType"]["name"], "Query");

    // Still up, still answering.
    let answer = gql(addr, Some(&viewer), "{ me { id } }", json!({}));
    assert_eq!(answer["data"]["me"]["id"], "key:viewer-key");
}

/// What a pipeline gating a deploy does: with an API key, create a run, start it, and wait
/// for its outcome.
/// The `field`s of an answer's first error's `problems` extension.
fn problem_fields(answer: &Value) -> Vec<String> {
    answer["errors"][0]["extensions"]["problems"]
        .as_array()
        .map(|problems| {
            problems
                .iter()
                .filter_map(|p| p["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_bad_input_is_answered_with_every_problem_at_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    let operator = key(&db, "operator-key", "OPERATOR");
    let admin = key(&db, "admin-key", "ADMIN");
    let server = serve(&db, false);
    let addr = server.addr;

    // Wrong types, unknown fields and bad values, all in one answer.
    let mut bad = spec("", false);
    bad["selection"] = json!({"mode": "EXPLODE"});
    bad["max_targets"] = json!(-1);
    bad["failure"] = json!({"type": "PAUSE", "duration_secs": 0, "signal": "KILL"});
    bad["recovery"]["poll_interval_secs"] = json!("1");
    let expected = [
        "selection.mode",
        "max_targets",
        "failure.signal",
        "recovery.poll_interval_secs",
        "name",
        "failure.duration_secs",
    ];
    for (query, who) in [
        (
            "mutation($spec: JSON!) { createExperiment(spec: $spec) { events } }",
            &operator,
        ),
        (
            "query($spec: JSON!) { targets(spec: $spec) { wouldHit } }",
            &operator,
        ),
        (
            "mutation($spec: JSON!) { saveTemplate(name: \"bad\", spec: $spec) { id } }",
            &operator,
        ),
    ] {
        let answer = gql(addr, Some(who), query, json!({ "spec": bad }));
        assert_eq!(code(&answer).as_deref(), Some("INVALID_INPUT"), "{answer}");
        assert_eq!(problem_fields(&answer), expected, "{query}: {answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("spec: invalid input: ")
                && message.contains("selection.mode: must be one of COUNT, PERCENT, ALL"),
            "{message}"
        );
    }
    // Nothing was created.
    let listed = gql(
        addr,
        Some(&operator),
        "{ experiments { items { id } } }",
        json!({}),
    );
    assert_eq!(
        listed["data"]["experiments"]["items"],
        json!([]),
        "{listed}"
    );

    // Input that is not a spec does not say it is one.
    for (query, field) in [
        (
            "mutation { addWebhook(url: \"ftp://hooks.example/x\") { events } }",
            "url",
        ),
        (
            "mutation { updateConfig(maxTargetsPerRun: 100000, maxDurationSecs: 900) { events } }",
            "max_targets_per_run",
        ),
    ] {
        let answer = gql(addr, Some(&admin), query, json!({}));
        assert_eq!(code(&answer).as_deref(), Some("INVALID_INPUT"), "{answer}");
        assert_eq!(problem_fields(&answer), [field], "{answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("invalid input: ") && !message.contains("spec"),
            "{message}"
        );
    }
}

#[test]
fn a_script_runs_an_experiment_with_an_api_key_and_waits_for_its_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    let ci = key(&db, "ci", "OPERATOR");
    let server = serve(&db, true);
    let addr = server.addr;

    let created = gql(
        addr,
        Some(&ci),
        "mutation($spec: JSON!) { createExperiment(id: \"gate-1\", spec: $spec) { aggregateId } }",
        json!({"spec": spec("deploy gate: kill one web worker", false)}),
    );
    assert_eq!(
        created["data"]["createExperiment"]["aggregateId"], "gate-1",
        "{created}"
    );
    let started = gql(
        addr,
        Some(&ci),
        "mutation { startExperiment(id: \"gate-1\") { events execution } }",
        json!({}),
    );
    assert_eq!(
        started["data"]["startExperiment"]["events"],
        json!(["ExperimentStarted"]),
        "{started}"
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let detail = loop {
        let answer = gql(
            addr,
            Some(&ci),
            "{ experiment(id: \"gate-1\") { experiment { status outcome recoveryMs } timeline { eventType actor } } }",
            json!({}),
        );
        let detail = answer["data"]["experiment"].clone();
        if detail["experiment"]["status"] == "COMPLETED" {
            break detail;
        }
        assert!(
            Instant::now() < deadline,
            "no outcome within 60 s: {answer}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(detail["experiment"]["outcome"], "RECOVERED", "{detail}");
    assert!(
        detail["experiment"]["recoveryMs"].as_u64().is_some(),
        "{detail}"
    );
    let timeline = detail["timeline"].as_array().expect("timeline");
    assert_eq!(timeline[0]["actor"], "key:ci");
    assert!(
        timeline
            .iter()
            .any(|e| e["eventType"] == "FailureInjected" && e["actor"] == "workflow"),
        "{detail}"
    );
    // The list shows it too.
    let listed = gql(
        addr,
        Some(&ci),
        "{ experiments(filter: {status: \"COMPLETED\"}) { items { id outcome } nextCursor } }",
        json!({}),
    );
    assert_eq!(
        listed["data"]["experiments"],
        json!({"items": [{"id": "gate-1", "outcome": "RECOVERED"}], "nextCursor": null}),
        "{listed}"
    );

    // And its result row: what it hit and how long the recovery took.
    let results = gql(
        addr,
        Some(&ci),
        "{ results { items { experimentId outcome recoveryMs targetsHit samples endedAt } nextCursor } }",
        json!({}),
    );
    let row = &results["data"]["results"]["items"][0];
    assert_eq!(row["experimentId"], "gate-1", "{results}");
    assert_eq!(row["outcome"], "RECOVERED");
    assert_eq!(row["recoveryMs"], detail["experiment"]["recoveryMs"]);
    assert_eq!(row["targetsHit"].as_array().map(Vec::len), Some(1));
    assert!(results["data"]["results"]["nextCursor"].is_null());
    let ended = row["endedAt"].as_str().expect("ended at").to_owned();
    let after_it = gql(
        addr,
        Some(&ci),
        "query($cursor: String) { results(after: $cursor) { items { experimentId } } }",
        json!({"cursor": format!("{ended}|gate-1")}),
    );
    assert_eq!(
        after_it["data"]["results"]["items"],
        json!([]),
        "{after_it}"
    );
    let later = gql(
        addr,
        Some(&ci),
        "query($from: String) { results(endedFrom: $from) { items { experimentId } } }",
        json!({"from": ended}),
    );
    assert_eq!(
        later["data"]["results"]["items"],
        json!([{"experimentId": "gate-1"}])
    );
    let bad = gql(
        addr,
        Some(&ci),
        "{ results(after: \"nope\") { nextCursor } }",
        json!({}),
    );
    assert_eq!(code(&bad).as_deref(), Some("INVALID_INPUT"), "{bad}");
}

/// An idempotency key is bound to the command it was first used for: sent again with the
/// same command it is answered with the first outcome, sent with another it is refused
/// (`IDEMPOTENCY_KEY_REUSED`) and nothing happens. A create without an id, retried with its
/// key, finds the experiment it made instead of making another.
#[test]
fn a_command_id_is_bound_to_its_first_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    let admin = key(&db, "admin", "ADMIN");
    let server = serve(&db, false);
    let addr = server.addr;
    let send = |query: &str, variables: Value| gql(addr, Some(&admin), query, variables);
    let halt = |id: &str| {
        send(
            "mutation($id: String) { haltAll(reason: \"drill\", commandId: $id) { events deduplicated } }",
            json!({"id": id}),
        )
    };
    let unhalt = |id: &str| {
        send(
            "mutation($id: String) { unhaltAll(commandId: $id) { events deduplicated } }",
            json!({"id": id}),
        )
    };
    let halted = || {
        send("{ health { halted } }", json!({}))["data"]["health"]["halted"]
            .as_bool()
            .expect("halted")
    };
    assert_eq!(
        halt("h")["data"]["haltAll"]["events"],
        json!(["PlatformHalted"])
    );
    assert_eq!(
        unhalt("u")["data"]["unhaltAll"]["events"],
        json!(["HaltLifted"])
    );
    // The lift's key sent with a halt: refused, and the platform stays as it is.
    let reused = halt("u");
    assert_eq!(
        code(&reused).as_deref(),
        Some("IDEMPOTENCY_KEY_REUSED"),
        "{reused}"
    );
    assert!(
        reused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("LiftHalt")),
        "{reused}"
    );
    assert!(!halted(), "a reused key halted nothing, and said so");
    // The same command with its own key again: the first outcome.
    let again = unhalt("u");
    assert_eq!(again["data"]["unhaltAll"]["deduplicated"], true, "{again}");
    assert_eq!(again["data"]["unhaltAll"]["events"], json!(["HaltLifted"]));

    let create = |name: &str, key: &str| {
        send(
            "mutation($spec: JSON!, $key: String) { createExperiment(spec: $spec, commandId: $key) { aggregateId deduplicated } }",
            json!({"spec": spec(name, true), "key": key}),
        )
    };
    let first = create("retried create", "create-1");
    let id = first["data"]["createExperiment"]["aggregateId"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let retried = create("retried create", "create-1");
    assert_eq!(
        retried["data"]["createExperiment"]["aggregateId"],
        id.as_str()
    );
    assert_eq!(retried["data"]["createExperiment"]["deduplicated"], true);
    let other = create("another spec", "create-1");
    assert_eq!(
        code(&other).as_deref(),
        Some("IDEMPOTENCY_KEY_REUSED"),
        "{other}"
    );
    let listed = ok_json(&chaos(&db, &["experiment", "list"]));
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );

    // The CLI: a create retried with --command-id finds its experiment too.
    let spec_file = dir.path().join("spec.json");
    std::fs::write(&spec_file, spec("from the shell", true).to_string()).expect("spec");
    let from_shell = |key: &str| {
        ok_json(&chaos(
            &db,
            &[
                "experiment",
                "create",
                "--spec",
                spec_file.to_str().expect("path"),
                "--command-id",
                key,
            ],
        ))
    };
    let once = from_shell("shell-1");
    let twice = from_shell("shell-1");
    assert_eq!(once["aggregate_id"], twice["aggregate_id"]);
    assert_eq!(twice["deduplicated"], true, "{twice}");
}

/// The code in the set-up link a server prints when no one can sign in to its store yet.
fn first_admin_code(server: &Server) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = server.log_tail();
        if let Some((_, rest)) = log.split_once("/#first-admin=") {
            return rest.split_whitespace().next().map(str::to_owned);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SET_UP: &str = "mutation($c: String!, $u: String!, $p: String!) { setUpFirstAdmin(code: $c, username: $u, password: $p) { accessToken user { id role } } }";

/// A new store has no user: the server prints a one-time link, and whoever holds its console
/// makes the first administrator with it, once.
#[test]
fn a_store_with_no_user_gets_its_first_administrator_through_a_one_time_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let server = serve(&db, false);
    let addr = server.addr;
    let setup_code = first_admin_code(&server).expect("the server printed a set-up link");
    let options = "{ signInOptions { method firstAdmin } }";
    assert_eq!(
        gql(addr, None, options, json!({}))["data"]["signInOptions"],
        json!({"method": "PASSWORD", "firstAdmin": true})
    );

    let set_up = |code: &str, user: &str, password: &str| {
        gql(
            addr,
            None,
            SET_UP,
            json!({"c": code, "u": user, "p": password}),
        )
    };
    let wrong = set_up(
        "0123456789abcdef0123456789abcdef",
        "root",
        "a long enough password",
    );
    assert_eq!(code(&wrong).as_deref(), Some("UNAUTHENTICATED"), "{wrong}");
    let weak = set_up(&setup_code, "root", "short");
    assert_eq!(code(&weak).as_deref(), Some("INVALID_INPUT"), "{weak}");
    // Nothing was recorded by the refusals: the code still works.
    let made = set_up(&setup_code, "root", "a long enough password");
    assert!(made["errors"].is_null(), "{made}");
    let session = &made["data"]["setUpFirstAdmin"];
    assert_eq!(session["user"], json!({"id": "user:root", "role": "ADMIN"}));
    let token = session["accessToken"].as_str().expect("a token");
    let me = gql(addr, Some(token), "{ me { id role } }", json!({}));
    assert_eq!(
        me["data"]["me"],
        json!({"id": "user:root", "role": "ADMIN"}),
        "{me}"
    );

    // Once: the code is spent, and the server waits for no one any more.
    let again = set_up(&setup_code, "mallory", "a long enough password");
    assert_eq!(code(&again).as_deref(), Some("UNAUTHENTICATED"), "{again}");
    assert_eq!(
        gql(addr, None, options, json!({}))["data"]["signInOptions"]["firstAdmin"],
        false
    );
    let signed_in = login(addr, "root", "a long enough password");
    assert!(signed_in["errors"].is_null(), "{signed_in}");

    // The administrator made themselves, on the record.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let audited = gql(
            addr,
            Some(token),
            "{ auditLog(filter: {actor: \"user:root\"}) { eventType actor } }",
            json!({}),
        );
        if audited["data"]["auditLog"] == json!([{"eventType": "UserAdded", "actor": "user:root"}])
        {
            break;
        }
        assert!(Instant::now() < deadline, "{audited}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);

    // A store with a user prints no link.
    let server = serve(&db, false);
    assert_eq!(first_admin_code(&server), None, "{}", server.log_tail());
    let refused = gql(
        server.addr,
        None,
        SET_UP,
        json!({"c": setup_code, "u": "eve", "p": "a long enough password"}),
    );
    assert_eq!(code(&refused).as_deref(), Some("REJECTED"), "{refused}");
}

/// Whether `needle` occurs in the file at `path`.
fn file_holds(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

/// The key that signs access tokens is not in the store: a copy of the store (an auditor's)
/// cannot sign a token. It is a file of its own, owner-only; a key an older version kept in
/// the store is moved out, with nothing of it left in the store file.
#[test]
fn the_token_signing_key_is_kept_beside_the_store_not_in_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    ok_json(&chaos(&db, &["init"]));
    // A store as an older version left it: the key in a table of its own.
    let legacy = [0x5au8; 32];
    {
        let conn = rusqlite::Connection::open(&db).expect("open store");
        conn.execute_batch(
            "CREATE TABLE identity_signing_key (id INTEGER PRIMARY KEY CHECK (id = 1), \
             secret BLOB NOT NULL, created_at INTEGER NOT NULL);",
        )
        .expect("legacy table");
        conn.execute(
            "INSERT INTO identity_signing_key (id, secret, created_at) VALUES (1, ?1, 0)",
            [legacy.as_slice()],
        )
        .expect("legacy key");
    }
    assert!(
        file_holds(&db, &legacy),
        "the legacy key is in the store to begin with"
    );
    let added = add_user(&db, "ada", "ADMIN", "correct horse battery staple");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    let key_file = graphql_api::identity::local::key_file(&db);
    let text = std::fs::read_to_string(&key_file).expect("the key file");
    assert_eq!(
        text.trim(),
        hex::encode(legacy),
        "the legacy key moved, unchanged"
    );
    let mode = std::fs::metadata(&key_file)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is its owner's only");
    let tables: i64 = rusqlite::Connection::open(&db)
        .expect("open store")
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'identity_signing_key'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(tables, 0, "the key's table is gone from the store");
    assert!(
        !file_holds(&db, &legacy),
        "the key's bytes are left in the store file"
    );

    // Tokens are signed with it, and a server started again keeps it.
    let server = serve(&db, false);
    let token = access_token(&login(server.addr, "ada", "correct horse battery staple"));
    drop(server);
    let server = serve(&db, false);
    let me = gql(server.addr, Some(&token), "{ me { id } }", json!({}));
    assert_eq!(me["data"]["me"]["id"], "user:ada", "{me}");
    assert_eq!(
        std::fs::read_to_string(&key_file)
            .expect("the key file")
            .trim(),
        hex::encode(legacy)
    );
}
