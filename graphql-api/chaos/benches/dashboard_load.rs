//! The dashboard's load in headless Chromium: first render and time to interactive, median of
//! BENCH_LOADS (default 10) cold loads from `chaos serve` on 127.0.0.1 (the release binary,
//! embedded mode), and the time from pressing Enter on the sign-in form to the home page
//! showing the platform's health. Also the bundle's sizes, raw and gzipped as served.
//!
//! Needs the built dashboard (`CHAOS_DASHBOARD_DIR`), Debian's chromium (`CHROMIUM`) and
//! playwright-core (`PLAYWRIGHT_NODE_MODULES`): `cargo xtask bench` provides all three. The
//! browser is driven by `dashboard_load.cjs` beside this file.

#[path = "../tests/server/mod.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use server::chaos_input as chaos;

const USER: (&str, &str) = ("bench", "a password only a benchmark knows");

fn env_path(name: &str, default: &str) -> PathBuf {
    std::env::var_os(name).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The wasm and JavaScript under `dir`: bytes raw, and as served gzipped.
fn bundle(dir: &Path) -> (u64, u64) {
    let mut raw = 0;
    let mut gzipped = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("list the dashboard") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            if ext != "wasm" && ext != "js" {
                continue;
            }
            let size = std::fs::metadata(&path).expect("size").len();
            raw += size;
            let mut gz = path.clone().into_os_string();
            gz.push(".gz");
            gzipped += std::fs::metadata(&gz).map_or(size, |m| m.len());
        }
    }
    (raw, gzipped)
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn main() {
    let dashboard = env_path("CHAOS_DASHBOARD_DIR", "target/dashboard");
    assert!(
        dashboard.join("index.html").exists(),
        "no built dashboard in {} (run `cargo xtask bench`)",
        dashboard.display()
    );
    let loads: usize = std::env::var("BENCH_LOADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    chaos(&db, &["init"], "");
    // One user per load (and the warm-up's): sign-in attempts are rate limited per user.
    for n in 0..=loads {
        chaos(
            &db,
            &["user", "add", &format!("{}-{n}", USER.0), "--role", "ADMIN"],
            &format!("{}\n", USER.1),
        );
    }
    let dashboard_env = dashboard.to_str().expect("a UTF-8 path");
    let server = server::serve_with(&db, &[], &[("CHAOS_DASHBOARD_DIR", dashboard_env)]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/dashboard_load.cjs");
    let out = Command::new("node")
        .arg(script)
        .env("BASE_URL", format!("http://{}", server.addr))
        .env("LOADS", loads.to_string())
        .env("USER_NAME", USER.0)
        .env("USER_PASSWORD", USER.1)
        .env(
            "CHROMIUM",
            env_path("CHROMIUM", "/usr/bin/chromium").as_os_str(),
        )
        .env(
            "PLAYWRIGHT_NODE_MODULES",
            env_path(
                "PLAYWRIGHT_NODE_MODULES",
                "/root/.cache/chaos-platform/tools/node/node_modules",
            )
            .as_os_str(),
        )
        .output()
        .expect("run node");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("bench: done"),
        "the browser run failed:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<Value> = report
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let column = |name: &str| -> Vec<u64> {
        runs.iter()
            .map(|r| r[name].as_u64().expect("a number"))
            .collect()
    };
    let (raw, gzipped) = bundle(&dashboard);
    println!(
        "dashboard: {} cold loads from http://{}",
        runs.len(),
        server.addr
    );
    for (name, label) in [
        ("firstRender", "first render (sign-in form)"),
        ("interactive", "time to interactive"),
        ("signedIn", "sign-in to home with health"),
    ] {
        let values = column(name);
        println!(
            "  {label:30} median {:5} ms   min {:5} ms   max {:5} ms",
            median(values.clone()),
            values.iter().min().copied().unwrap_or_default(),
            values.iter().max().copied().unwrap_or_default()
        );
    }
    println!(
        "  long tasks (over 50 ms) per load: at most {}",
        column("longTasks").into_iter().max().unwrap_or_default()
    );
    println!(
        "  bytes transferred per cold load: median {}",
        median(column("bytes"))
    );
    println!("  bundle (wasm + JavaScript): {raw} B raw, {gzipped} B gzipped as served");
}
