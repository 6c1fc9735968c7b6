//! Build, test and benchmark recipes: the one place the project's commands are written down.
//!
//! `cargo xtask run` runs the platform in embedded mode; `cargo xtask test` runs every check and
//! test (CI runs exactly this through `.ci/run`); `cargo xtask bench` runs the benchmarks.
//! Each recipe installs or checks what it needs itself and says what it is doing.

mod coverage;
mod dashboard;
mod tidy;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  run     build and run the platform in embedded mode (chaos serve on 127.0.0.1:8080, with
          the dashboard at http://127.0.0.1:8080/)
          extra arguments are passed to `chaos serve`, e.g. `cargo xtask run -- --addr 127.0.0.1:9000`
  test    every check and test: format, lints, repository rules, unit, integration and
          end-to-end tests (what CI runs)
  bench   the benchmarks, printing their figures
  coverage
          line coverage of the tests (cargo-llvm-cov): per crate and in total, with an HTML
          report in <target dir>/coverage
  dashboard
          build the web dashboard (wasm) into <target dir>/dashboard and report its size
  lambdas build every Lambda for AWS as `sam build` does (cargo-lambda, release, arm64) and
          report each binary's size
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(),
        Some("bench") => bench(),
        Some("coverage") => coverage::run(),
        Some("lambdas") => lambdas(),
        Some("dashboard") => dashboard::build().map(|_| ()),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (the parent of this crate).
/// The repository root: the parent of this package's directory, as cargo says when it runs
/// xtask (a build shared between two checkouts, one target directory, would otherwise point at
/// the checkout that built it).
fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// Runs a command from the repository root, failing with its name when it fails.
fn sh(program: &str, args: &[&str]) -> Result<(), String> {
    let mut command = Command::new(program);
    command.args(args).current_dir(root());
    as_from_a_shell(&mut command);
    ENV.with(|env| {
        for (name, value) in env.borrow().iter() {
            command.env(name, value);
        }
    });
    let status = command
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

/// Takes away what `cargo run` added to this process's environment (the package's
/// `CARGO_*` variables, its library paths), so the commands run from here see what a person's
/// shell gives them. Build scripts that track variables (aws-lc-sys's do) then find nothing
/// changed, and a `cargo test` typed by hand after `cargo xtask test` reuses its build.
fn as_from_a_shell(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let added_by_cargo_run = matches!(
            name.as_ref(),
            "CARGO"
                | "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
        ) || name.starts_with("CARGO_PKG_");
        if added_by_cargo_run {
            command.env_remove(name.as_ref());
        }
    }
    // cargo put the target directory's and the toolchain's library directories first.
    let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") else {
        return;
    };
    let toolchain = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|cargo| Some(cargo.parent()?.parent()?.to_path_buf()));
    let target = target_dir();
    let kept: Vec<PathBuf> = std::env::split_paths(&paths)
        .filter(|p| !p.starts_with(&target) && toolchain.as_ref().is_none_or(|t| !p.starts_with(t)))
        .collect();
    match std::env::join_paths(&kept) {
        Ok(joined) if !kept.is_empty() => command.env("LD_LIBRARY_PATH", joined),
        _ => command.env_remove("LD_LIBRARY_PATH"),
    };
}

/// Sets a variable for the commands this process runs next (see [`sh`]).
fn set_env(name: &str, value: &str) {
    ENV.with(|env| env.borrow_mut().push((name.to_owned(), value.to_owned())));
}

thread_local! {
    static ENV: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn cargo(args: &[&str]) -> Result<(), String> {
    sh(
        &std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()),
        args,
    )
}

/// Checks that a cargo subcommand is installed (rustfmt and clippy come with rustup's default
/// profile; they cannot be downloaded offline).
fn require_cargo_tool(tool: &str) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let ok = Command::new(cargo)
        .args([tool, "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`cargo {tool}` is not installed: run `rustup component add {}`",
            if tool == "fmt" { "rustfmt" } else { tool }
        ))
    }
}

/// Installs Debian packages whose command is missing (the machine is set up as root).
fn ensure_debian_packages(needed: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(command, _)| {
            !Command::new(command)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(_, package)| *package)
        .collect();
    apt_install(&missing)
}

/// Installs Debian packages (nothing when `packages` is empty).
fn apt_install(packages: &[&str]) -> Result<(), String> {
    if packages.is_empty() {
        return Ok(());
    }
    step(&format!("install {}", packages.join(" ")));
    sh("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(packages);
    sh("apt-get", &args)
}

fn test() -> Result<(), String> {
    require_cargo_tool("fmt")?;
    require_cargo_tool("clippy")?;
    test_environment()?;
    step("format");
    cargo(&["fmt", "--all", "--", "--check"])?;
    step("lints");
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    step("lints of the dashboard (wasm32)");
    cargo(&[
        "clippy",
        "-p",
        "web",
        "--target",
        "wasm32-unknown-unknown",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    step("tests (unit, integration, end-to-end, repository rules)");
    cargo(&["test", "--workspace", "--locked"])?;
    eprintln!("\nxtask: all checks and tests passed");
    Ok(())
}

/// Installs what the tests need and tells them where it is (through variables of the
/// commands run next): the locked Python and npm tools, Debian's chromium, the dashboard.
fn test_environment() -> Result<(), String> {
    // python3 runs the auditors' independent chain verifier (docs/audit/verify_chain.py) and
    // the moto server that stands in for AWS.
    let python = tools::python_test_tools()?;
    set_env("MOTO_SERVER", &python.moto_server.to_string_lossy());
    set_env("CFN_LINT", &python.cfn_lint.to_string_lossy());
    // node runs asl-validator, and playwright-core, which drives Debian's chromium in the
    // dashboard's browser tests.
    let node_modules = tools::node_modules()?;
    set_env(
        "ASL_VALIDATOR",
        &node_modules.join(".bin/asl-validator").to_string_lossy(),
    );
    set_env("PLAYWRIGHT_NODE_MODULES", &node_modules.to_string_lossy());
    ensure_debian_packages(&[("chromium", "chromium")])?;
    set_env("CHROMIUM", "/usr/bin/chromium");
    let dashboard = dashboard::build()?;
    set_env("CHAOS_DASHBOARD_DIR", &dashboard.to_string_lossy());
    Ok(())
}

fn run(extra: &[String]) -> Result<(), String> {
    let dashboard = dashboard::build()?;
    set_env("CHAOS_DASHBOARD_DIR", &dashboard.to_string_lossy());
    step("build (release)");
    cargo(&[
        "build",
        "--release",
        "--locked",
        "-p",
        "chaos",
        "--bin",
        "chaos",
    ])?;
    let chaos = target_dir().join("release").join("chaos");
    let data = root().join("chaos-data");
    std::fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let db = data.join("chaos.db");
    step(&format!("chaos serve (store {})", db.display()));
    let extra: Vec<&str> = extra
        .iter()
        .map(String::as_str)
        .skip_while(|a| *a == "--")
        .collect();
    let mut args = vec!["serve", "--db"];
    let db_text = db.to_string_lossy().into_owned();
    args.push(&db_text);
    args.extend(extra);
    sh(&chaos.to_string_lossy(), &args)
}

/// The build directory cargo uses.
fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .ok()
        .and_then(|dir| std::path::absolute(dir).ok())
        .unwrap_or_else(|| root().join("target"))
}

/// The Lambda binaries of a package (`src/bin/*.rs`).
fn lambda_binaries(package: &str) -> Result<Vec<String>, String> {
    let dir = root().join(package).join("src/bin");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            Some(name.strip_suffix(".rs")?.to_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Builds every Lambda as `sam build` does for the template (BuildMethod rust-cargolambda):
/// cargo-lambda, release, arm64 for `provided.al2023`, then reports each binary's size.
fn lambdas() -> Result<(), String> {
    // cargo-lambda (PyPI) brings zig to link for arm64.
    let bin = tools::cargo_lambda_bin()?;
    step("add the arm64 standard library");
    sh("rustup", &["target", "add", "aarch64-unknown-linux-gnu"])?;
    let path = std::env::var("PATH").unwrap_or_default();
    set_env("PATH", &format!("{}:{path}", bin.display()));
    let out = target_dir().join("lambda");
    let out_text = out.to_string_lossy().into_owned();
    step("build every Lambda (release, arm64)");
    cargo(&[
        "lambda",
        "build",
        "--release",
        "--arm64",
        "--locked",
        "-p",
        "command-lambdas",
        "-p",
        "projection-lambdas",
        "--lambda-dir",
        &out_text,
    ])?;
    step("sizes");
    let mut total = 0;
    for package in ["command-lambdas", "projection-lambdas"] {
        for name in lambda_binaries(package)? {
            let bootstrap = out.join(&name).join("bootstrap");
            let size = std::fs::metadata(&bootstrap)
                .map_err(|e| format!("{} was not built: {e}", bootstrap.display()))?
                .len();
            total += size;
            println!("{name:<22} {:>7.1} MiB  {}", mib(size), bootstrap.display());
        }
    }
    println!("{:<22} {:>7.1} MiB", "total", mib(total));
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    // Sizes stay far below 2^52 bytes, where the conversion would round.
    #[allow(clippy::cast_precision_loss)]
    let bytes = bytes as f64;
    bytes / (1024.0 * 1024.0)
}

fn bench() -> Result<(), String> {
    // The dashboard's load in the browser, as `test` sets it up.
    let node_modules = tools::node_modules()?;
    set_env("PLAYWRIGHT_NODE_MODULES", &node_modules.to_string_lossy());
    ensure_debian_packages(&[("chromium", "chromium")])?;
    set_env("CHROMIUM", "/usr/bin/chromium");
    let dashboard = dashboard::build()?;
    set_env("CHAOS_DASHBOARD_DIR", &dashboard.to_string_lossy());
    step("command path and replay + verify (embedded store)");
    cargo(&[
        "bench",
        "--locked",
        "-p",
        "command-lambdas",
        "--bench",
        "command_path",
    ])?;
    step("projection lag and rebuild (embedded read models)");
    cargo(&[
        "bench",
        "--locked",
        "-p",
        "projection-lambdas",
        "--bench",
        "projection",
    ])?;
    step("Lambda init: each binary's start to its first request for an invocation");
    cargo(&[
        "bench",
        "--locked",
        "-p",
        "command-lambdas",
        "--bench",
        "lambda_init",
    ])?;
    cargo(&[
        "bench",
        "--locked",
        "-p",
        "projection-lambdas",
        "--bench",
        "lambda_init",
    ])?;
    step("GraphQL API: experiments list under load, subscription delivery");
    cargo(&["bench", "--locked", "-p", "chaos", "--bench", "api"])?;
    step("audit export and verify, 1,000,000 events (store and export file)");
    cargo(&[
        "bench",
        "--locked",
        "-p",
        "chaos",
        "--bench",
        "audit_verify",
    ])?;
    step("dashboard: first render and time to interactive, 10 cold loads in chromium");
    cargo(&[
        "bench",
        "--locked",
        "-p",
        "chaos",
        "--bench",
        "dashboard_load",
    ])
}
