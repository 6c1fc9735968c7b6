//! The SAM template as CloudFormation reads it, and cfn-lint, which checks it: shared by the
//! tests that hold the template to the code (`command-lambdas/tests/infrastructure.rs`) and to
//! the services it configures (`projection-lambdas/tests/aws_publish.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository root (this crate sits two levels below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `infrastructure/template.yaml`.
pub fn template_path() -> PathBuf {
    root().join("infrastructure/template.yaml")
}

/// cfn-lint: `CFN_LINT` (set by `cargo xtask test`), or the one `cargo xtask test` installed
/// last, or on PATH.
fn cfn_lint() -> String {
    let installed = std::env::var("HOME")
        .ok()
        .map(|home| format!("{home}/.cache/chaos-platform/tools/python-test/bin/cfn-lint"))
        .filter(|path| Path::new(path).exists());
    std::env::var("CFN_LINT")
        .ok()
        .or(installed)
        .unwrap_or_else(|| "cfn-lint".into())
}

/// The Python cfn-lint runs on (beside it in its virtual environment), or `python3`.
fn python() -> String {
    let lint = cfn_lint();
    let beside = Path::new(&lint).with_file_name("python");
    if beside.exists() {
        beside.to_string_lossy().into_owned()
    } else {
        "python3".into()
    }
}

/// Whether cfn-lint accepts the template at `path`, and what it said.
pub fn lint(path: &Path) -> (bool, String) {
    let out = Command::new(cfn_lint())
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} (install it with `cargo xtask test`): {e}",
                cfn_lint()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The template as JSON, read by cfn-lint's own YAML loader, which turns the short forms
/// (`!Ref`, `!GetAtt`, `!Sub`) into their `Fn::` objects as CloudFormation does.
pub fn template() -> Value {
    let out = Command::new(python())
        .args([
            "-c",
            "import json, sys\nfrom cfnlint.decode import cfn_yaml\nprint(json.dumps(cfn_yaml.load(sys.argv[1])))",
        ])
        .arg(template_path())
        .output()
        .expect("run cfn-lint's Python");
    assert!(
        out.status.success(),
        "the template does not load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}
