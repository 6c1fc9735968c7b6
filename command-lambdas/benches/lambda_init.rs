//! Init of every write-side Lambda, as Lambda counts it: from starting the process to its
//! first request for an invocation, against a stand-in for the Runtime API on 127.0.0.1
//! (`test_support::runtime_api`). The binaries are this benchmark's build of them (release,
//! with line tables); what is deployed is `cargo xtask lambdas`' (cargo-lambda: stripped, thin
//! LTO, one codegen unit), whose sizes that command prints.
//!
//! Run with `cargo xtask bench` (or `cargo bench -p command-lambdas --bench lambda_init`).
//! Knob: BENCH_INIT_RUNS (default 30).

use std::path::Path;

use test_support::common::knob;
use test_support::runtime_api::report;

fn main() {
    let tables: &[(&str, &str)] = &[
        ("EVENTS_TABLE", "Events"),
        ("VIEWS_TABLE", "Views"),
        (
            "STATE_MACHINE_ARN",
            "arn:aws:states:us-east-1:123456789012:stateMachine:experiment",
        ),
    ];
    let functions = [
        ("command", env!("CARGO_BIN_EXE_command")),
        ("housekeeping", env!("CARGO_BIN_EXE_housekeeping")),
        (
            "task-resolve-targets",
            env!("CARGO_BIN_EXE_task-resolve-targets"),
        ),
        ("task-baseline", env!("CARGO_BIN_EXE_task-baseline")),
        ("task-inject", env!("CARGO_BIN_EXE_task-inject")),
        ("task-check-health", env!("CARGO_BIN_EXE_task-check-health")),
        ("task-finish", env!("CARGO_BIN_EXE_task-finish")),
        ("task-rollback", env!("CARGO_BIN_EXE_task-rollback")),
    ];
    let functions: Vec<_> = functions
        .iter()
        .map(|(name, path)| (*name, Path::new(*path), tables))
        .collect();
    report(&functions, knob("BENCH_INIT_RUNS", 30));
}
