//! `cargo xtask coverage`: line coverage of the workspace's tests, measured by cargo-llvm-cov
//! (source-based coverage: the tests run on an instrumented build, and so does every `chaos`
//! process they start, each writing its own profile when it exits cleanly). Writes an HTML
//! report and prints the lines covered per crate and in all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{cargo, root, set_env, sh, step, target_dir};

/// The cargo-llvm-cov this recipe installs (raising it is a deliberate change, like a lock's).
const LLVM_COV_VERSION: &str = "0.9.1";

/// Lines of one crate (or of all): how many count, how many ran.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Lines {
    count: u64,
    covered: u64,
}

impl Lines {
    fn add(&mut self, other: Lines) {
        self.count += other.count;
        self.covered += other.covered;
    }

    /// The share covered, in tenths of a percent (0 of 0 lines counts as all).
    fn per_mille(self) -> u64 {
        (self.covered * 1000)
            .checked_div(self.count)
            .unwrap_or(1000)
    }
}

fn percent(lines: Lines) -> String {
    let per_mille = lines.per_mille();
    format!("{}.{} %", per_mille / 10, per_mille % 10)
}

/// cargo-llvm-cov, installed at [`LLVM_COV_VERSION`] into the tool cache; returns its `bin`.
fn install() -> Result<PathBuf, String> {
    step("add llvm-tools (rustup), which cargo-llvm-cov reads the profiles with");
    sh("rustup", &["component", "add", "llvm-tools-preview"])?;
    let key = crate::tools::key(&[LLVM_COV_VERSION.as_bytes()]);
    let home = crate::tools::keyed("cargo-llvm-cov", &key, |home| {
        step(&format!("install cargo-llvm-cov {LLVM_COV_VERSION}"));
        cargo(&[
            "install",
            "cargo-llvm-cov",
            "--version",
            &format!("={LLVM_COV_VERSION}"),
            "--locked",
            "--root",
            &home.to_string_lossy(),
        ])
    })?;
    Ok(home.join("bin"))
}

/// The crate a covered file belongs to: its first directory under the repository root.
fn crate_of(file: &str, root: &Path) -> String {
    Path::new(file)
        .strip_prefix(root)
        .ok()
        .and_then(|relative| relative.components().next())
        .map_or_else(
            || "(outside the workspace)".to_owned(),
            |first| first.as_os_str().to_string_lossy().into_owned(),
        )
}

/// Lines per crate from cargo-llvm-cov's JSON summary (llvm-cov export's format).
fn per_crate(summary: &serde_json::Value, root: &Path) -> Result<BTreeMap<String, Lines>, String> {
    let files = summary["data"][0]["files"]
        .as_array()
        .ok_or("the coverage summary lists no files")?;
    let mut crates: BTreeMap<String, Lines> = BTreeMap::new();
    for file in files {
        let name = file["filename"].as_str().unwrap_or_default();
        let lines = &file["summary"]["lines"];
        let counted = Lines {
            count: lines["count"].as_u64().unwrap_or_default(),
            covered: lines["covered"].as_u64().unwrap_or_default(),
        };
        crates.entry(crate_of(name, root)).or_default().add(counted);
    }
    Ok(crates)
}

/// Measures, reports and prints the coverage. A failing test fails the recipe, after the
/// report is written.
pub fn run() -> Result<(), String> {
    let bin = install()?;
    let path = std::env::var("PATH").unwrap_or_default();
    set_env("PATH", &format!("{}:{path}", bin.display()));
    crate::test_environment()?;
    let out = target_dir().join("coverage");
    step("tests on an instrumented build (cargo llvm-cov)");
    cargo(&["llvm-cov", "clean", "--workspace"])?;
    let tested = cargo(&[
        "llvm-cov",
        "--no-report",
        "--workspace",
        "--locked",
        "--no-fail-fast",
    ]);
    step("report");
    let html = out.to_string_lossy().into_owned();
    cargo(&["llvm-cov", "report", "--html", "--output-dir", &html])?;
    let json = out.join("summary.json");
    cargo(&[
        "llvm-cov",
        "report",
        "--json",
        "--summary-only",
        "--output-path",
        &json.to_string_lossy(),
    ])?;
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&json).map_err(|e| format!("cannot read {}: {e}", json.display()))?,
    )
    .map_err(|e| format!("{} is not JSON: {e}", json.display()))?;
    let crates = per_crate(&summary, &root())?;
    let mut total = Lines::default();
    println!(
        "\n{:<22} {:>8} {:>8} {:>8}",
        "crate", "lines", "covered", "share"
    );
    for (name, lines) in &crates {
        total.add(*lines);
        println!(
            "{name:<22} {:>8} {:>8} {:>8}",
            lines.count,
            lines.covered,
            percent(*lines)
        );
    }
    println!(
        "{:<22} {:>8} {:>8} {:>8}",
        "total",
        total.count,
        total.covered,
        percent(total)
    );
    println!("\nHTML report: {}", out.join("html/index.html").display());
    tested.map_err(|e| format!("a test failed under coverage: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_counted_by_crate_and_shares_round_down_to_a_tenth() {
        let root = Path::new("/repo");
        let summary = serde_json::json!({ "data": [{ "files": [
            { "filename": "/repo/domain/src/spec.rs", "summary": { "lines": { "count": 200, "covered": 190 } } },
            { "filename": "/repo/domain/src/limits.rs", "summary": { "lines": { "count": 100, "covered": 50 } } },
            { "filename": "/repo/graphql-api/src/cli.rs", "summary": { "lines": { "count": 3, "covered": 2 } } },
        ] }] });
        let crates = per_crate(&summary, root).expect("a summary");
        assert_eq!(
            crates["domain"],
            Lines {
                count: 300,
                covered: 240
            }
        );
        assert_eq!(percent(crates["domain"]), "80.0 %");
        assert_eq!(percent(crates["graphql-api"]), "66.6 %");
        assert_eq!(percent(Lines::default()), "100.0 %");
        assert_eq!(
            crate_of("/elsewhere/lib.rs", root),
            "(outside the workspace)"
        );
    }
}
