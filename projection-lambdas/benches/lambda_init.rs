//! Init of the read-side Lambdas, as Lambda counts it: see
//! `command-lambdas/benches/lambda_init.rs`, which measures the write side the same way.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p projection-lambdas --bench lambda_init`).
//! Knob: BENCH_INIT_RUNS (default 30).

use std::path::Path;

use test_support::common::knob;
use test_support::runtime_api::report;

fn main() {
    report(
        &[
            (
                "project-stream",
                Path::new(env!("CARGO_BIN_EXE_project-stream")),
                &[("VIEWS_TABLE", "Views")],
            ),
            (
                "publish-events",
                Path::new(env!("CARGO_BIN_EXE_publish-events")),
                &[("EVENT_BUS_NAME", "chaos-events")],
            ),
        ],
        knob("BENCH_INIT_RUNS", 30),
    );
}
