//! The worked example in docs/AUDIT.md is computed by this code, byte for byte.

use domain::audit::GENESIS_HASH;
use domain::audit::chain::{EventRecord, canonical_event, seal};
use domain::provenance::EventMetadata;
use serde_json::Value;
use std::path::PathBuf;

/// This package's directory, as cargo says when it runs the tests: a build shared between
/// two checkouts (one target directory) would otherwise point at the one that built it.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

const CANONICAL_1: &str = r#"{"aggregate_id":"platform","aggregate_type":"Platform","event_type":"PlatformHalted","event_version":"1","metadata":{"actor":"alice","actor_role":"ADMIN","command_id":"cmd-0001","correlation_id":"run-7","event_id":"01a21797-f969-73d2-8bee-c31f3a196930","recorded_at":"2026-11-26T11:22:45.481Z","source":"cli"},"payload":{"PlatformHalted":{"at":"2026-11-26T11:22:45.481Z","reason":"game day"}},"sequence":1}"#;
const HASH_1: &str = "6314f506604f4b26654f994a701499f3b0530a1d908958e9fa3b0fe38e7728cb";
const CANONICAL_2: &str = r#"{"aggregate_id":"platform","aggregate_type":"Platform","event_type":"HaltLifted","event_version":"1","metadata":{"actor":"alice","actor_role":"ADMIN","command_id":"cmd-0002","correlation_id":"run-7","event_id":"01a21797-f985-71f8-b731-e763ff8da03d","recorded_at":"2026-11-26T11:22:45.509Z","source":"cli"},"payload":{"HaltLifted":{"at":"2026-11-26T11:22:45.508Z"}},"sequence":2}"#;
const HASH_2: &str = "99b4da4f50c58f0506594e51e8446f23d4408f42dc5e70f1749afc1c82aa34a6";

fn metadata(command_id: &str, event_id: &str, recorded_at: &str) -> EventMetadata {
    EventMetadata {
        event_id: event_id.into(),
        command_id: command_id.into(),
        correlation_id: "run-7".into(),
        actor: "alice".into(),
        actor_role: "ADMIN".into(),
        command: None,
        source: "cli".into(),
        recorded_at: recorded_at.into(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

fn payload(text: &str) -> Value {
    serde_json::from_str(text).expect("payload json")
}

#[test]
fn the_documented_example_is_what_the_code_computes() {
    let m1 = metadata(
        "cmd-0001",
        "01a21797-f969-73d2-8bee-c31f3a196930",
        "2026-11-26T11:22:45.481Z",
    );
    let r1 = EventRecord {
        aggregate_type: "Platform",
        aggregate_id: "platform",
        sequence: 1,
        event_type: "PlatformHalted",
        event_version: "1",
        metadata: &m1,
    };
    let p1 = payload(r#"{"PlatformHalted":{"at":"2026-11-26T11:22:45.481Z","reason":"game day"}}"#);
    assert_eq!(canonical_event(&r1, &p1).expect("canonical"), CANONICAL_1);
    assert_eq!(CANONICAL_1.len(), 406);
    assert_eq!(seal(&r1, &p1, GENESIS_HASH).expect("seal"), HASH_1);

    let m2 = metadata(
        "cmd-0002",
        "01a21797-f985-71f8-b731-e763ff8da03d",
        "2026-11-26T11:22:45.509Z",
    );
    let r2 = EventRecord {
        sequence: 2,
        event_type: "HaltLifted",
        metadata: &m2,
        ..r1
    };
    let p2 = payload(r#"{"HaltLifted":{"at":"2026-11-26T11:22:45.508Z"}}"#);
    assert_eq!(canonical_event(&r2, &p2).expect("canonical"), CANONICAL_2);
    assert_eq!(CANONICAL_2.len(), 378);
    assert_eq!(seal(&r2, &p2, HASH_1).expect("seal"), HASH_2);
}

#[test]
fn the_document_shows_these_exact_bytes() {
    let doc =
        std::fs::read_to_string(manifest_dir().join("../docs/AUDIT.md")).expect("docs/AUDIT.md");
    for needle in [
        CANONICAL_1,
        HASH_1,
        CANONICAL_2,
        HASH_2,
        "(406 bytes",
        "(378 bytes",
    ] {
        assert!(
            doc.contains(needle),
            "docs/AUDIT.md no longer shows {needle}"
        );
    }
}
