//! A Cognito user pool on the local moto server, set up over the real Cognito API by
//! `cognito_pool.py` of this crate: the tests that trust it share it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::aws;

/// A new pool: its id (`pool`), app client (`client`), the users' shared `password`, and the
/// `tokens` it issued (see `cognito_pool.py`).
pub fn pool() -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cognito_pool.py");
    let out = Command::new(aws::python())
        .arg(script)
        .arg(aws::moto().endpoint())
        .output()
        .expect("run cognito_pool.py");
    assert!(
        out.status.success(),
        "pool.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("pool.py prints JSON")
}
