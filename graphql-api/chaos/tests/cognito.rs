//! The API trusting a Cognito user pool: tokens issued by the pool over the real Cognito API
//! (a moto server on 127.0.0.1, driven by boto3 in `test-support/cognito_pool.py`), verified by
//! `chaos serve` against the pool's JWKS fetched over HTTP from the same server.

mod server;

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use test_support::aws;
use test_support::cognito::pool;

/// A GraphQL request with `Authorization: Bearer <token>`: the JSON answer.
fn gql(addr: SocketAddr, token: &str, query: &str) -> Value {
    server::gql(addr, Some(token), query, json!({}))
}

fn code(answer: &Value) -> Option<String> {
    server::code(answer)
}

fn message(answer: &Value) -> &str {
    answer["errors"][0]["message"].as_str().unwrap_or_default()
}

/// `token` with one claim changed and its signature kept.
fn tampered(token: &str, claim: &str, value: Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64")).expect("json");
    claims[claim] = value;
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// `token` unsigned, with `alg: none`.
fn unsigned(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("claims");
    format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"dummy"}"#)
    )
}

#[test]
fn cognito_tokens_are_verified_against_the_pools_keys_and_groups_are_roles() {
    let pool = pool();
    let pool_id = pool["pool"].as_str().expect("pool id");
    let client = pool["client"].as_str().expect("client id");
    let tokens = &pool["tokens"];
    let token = |user: &str, kind: &str| tokens[user][kind].as_str().expect("token").to_owned();

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let jwks = format!("{}/{pool_id}/.well-known/jwks.json", aws::moto().endpoint());
    let server = server::serve(
        &db,
        &[
            "--no-fleet",
            "--cognito-user-pool-id",
            pool_id,
            "--cognito-client-id",
            client,
            "--cognito-region",
            "us-east-1",
            "--cognito-jwks-url",
            &jwks,
        ],
    );
    let addr = server.addr;
    let me = "{ me { id role } }";

    // Access and ID tokens of each group's user: that user, with the group's role.
    for (user, role) in [("ada", "ADMIN"), ("otto", "OPERATOR"), ("vera", "VIEWER")] {
        for kind in ["access", "id"] {
            let answer = gql(addr, &token(user, kind), me);
            assert_eq!(
                answer["data"]["me"],
                json!({"id": format!("cognito:{user}"), "role": role}),
                "{user} {kind}: {answer}"
            );
        }
    }
    // Roles are enforced: an operator runs experiments but does not halt.
    let halt = "mutation { haltAll(reason: \"cognito\") { events } }";
    assert_eq!(
        code(&gql(addr, &token("otto", "access"), halt)).as_deref(),
        Some("FORBIDDEN")
    );
    let halted = gql(addr, &token("ada", "access"), halt);
    assert!(halted["errors"].is_null(), "{halted}");
    let lifted = gql(
        addr,
        &token("ada", "id"),
        "mutation { unhaltAll { events } }",
    );
    assert!(lifted["errors"].is_null(), "{lifted}");

    // Refused, each with its reason.
    let ada = token("ada", "access");
    let issuer = format!("https://cognito-idp.us-east-1.amazonaws.com/{pool_id}");
    let refused: Vec<(&str, String, &str)> = vec![
        ("no group", token("nemo", "access"), "no role group"),
        (
            "another app client",
            tokens["other_client"].as_str().expect("token").to_owned(),
            "another app client",
        ),
        (
            "expired",
            tokens["expired"].as_str().expect("token").to_owned(),
            "expired",
        ),
        (
            "a claim changed (role escalation)",
            tampered(&token("vera", "id"), "cognito:groups", json!(["ADMIN"])),
            "signature",
        ),
        ("alg none", unsigned(&ada), "only HS256"),
        (
            "another pool",
            tampered(&ada, "iss", json!(format!("{issuer}x"))),
            "not trusted",
        ),
        (
            "token_use refresh",
            tampered(&ada, "token_use", json!("refresh")),
            "signature",
        ),
    ];
    for (what, token, why) in &refused {
        let answer = gql(addr, token, me);
        assert_eq!(
            code(&answer).as_deref(),
            Some("UNAUTHENTICATED"),
            "{what}: {answer}"
        );
        assert!(message(&answer).contains(why), "{what}: {answer}");
        let answer = gql(addr, token, halt);
        assert_eq!(
            code(&answer).as_deref(),
            Some("UNAUTHENTICATED"),
            "{what}: {answer}"
        );
    }

    // Who acted is in the log: the halt was recorded as ada's, from the API.
    let log = server::chaos_as(
        &db,
        "auditor",
        &["audit", "log", "--experiment", "halt-switch.1"],
    );
    let entries = server::ok_json(&log);
    let halt = entries
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["event_type"] == "PlatformHalted" || e["eventType"] == "PlatformHalted")
        .unwrap_or_else(|| panic!("{entries}"));
    assert_eq!(halt["actor"], "cognito:ada", "{halt}");
}
