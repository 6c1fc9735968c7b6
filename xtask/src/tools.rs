//! The tools the recipes install, each at the exact versions locked in `xtask/tools/`:
//! - Python tools (moto's server, cfn-lint with the SAM translator; cargo-lambda) in virtual
//!   environments, from `*-python.lock`: every package of their closure pinned with `==` and
//!   its hashes, installed with `--require-hashes --no-deps --only-binary :all:`, so nothing is
//!   resolved, built or chosen on the machine;
//! - npm tools (asl-validator, playwright-core) with `npm ci` from `node/package-lock.json`.
//!
//! Each installation lives in a directory of `~/.cache/chaos-platform/tools` named after the
//! hash of what it holds (the lock, and the interpreter it runs on), so a changed lock builds a
//! new one and no cache made from an older lock is ever used. A directory counts only once its
//! installation finished (a marker file written last); older ones are removed. A stable link
//! beside them (`python-test`, `node`) names the newest, for a `cargo test` run by hand.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{apt_install, sh, step};

/// Written last into an installation: its presence says the installation is whole.
const COMPLETE: &str = ".complete";

/// Where the tools are installed: outside the clone, so they survive it.
pub fn dir() -> PathBuf {
    std::env::var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/root"))
        .join(".cache/chaos-platform/tools")
}

/// The locks, in the repository.
fn locks() -> PathBuf {
    crate::root().join("xtask/tools")
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The first line a program prints of its version (`python3 --version`), or why it cannot.
fn version_of(program: &str) -> Result<String, String> {
    let out = Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Ok(String::from_utf8_lossy(&text).trim().to_owned())
}

/// The first 16 hex digits of the SHA-256 of `parts`, each length-prefixed.
pub fn key(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())[..16].to_owned()
}

/// `<tools>/<kind>-<key>`, made anew when it is not complete; the others of `kind` are removed,
/// and `<tools>/<kind>` links to it. `install` fills the directory it is given.
pub fn keyed(
    kind: &str,
    key: &str,
    install: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let tools = dir();
    let home = tools.join(format!("{kind}-{key}"));
    if !home.join(COMPLETE).exists() {
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home)
            .map_err(|e| format!("cannot create {}: {e}", home.display()))?;
        install(&home)?;
        std::fs::write(home.join(COMPLETE), key)
            .map_err(|e| format!("cannot write {}: {e}", home.join(COMPLETE).display()))?;
    }
    prune(&tools, kind, &home)?;
    Ok(home)
}

/// Removes the installations of `kind` other than `keep`, and points `<tools>/<kind>` at it.
fn prune(tools: &Path, kind: &str, keep: &Path) -> Result<(), String> {
    let prefix = format!("{kind}-");
    let entries =
        std::fs::read_dir(tools).map_err(|e| format!("cannot list {}: {e}", tools.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let stale = name
            .strip_prefix(&prefix)
            .is_some_and(|rest| rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
            && path != keep;
        if stale {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
    let link = tools.join(kind);
    let _ = std::fs::remove_file(&link);
    let target = keep.file_name().map(PathBuf::from).unwrap_or_default();
    std::os::unix::fs::symlink(&target, &link).map_err(|e| {
        format!(
            "cannot link {} to {}: {e}",
            link.display(),
            target.display()
        )
    })
}

/// The layout of the tool cache before the tools were locked: removed, so nothing reads it.
fn remove_unlocked_layout() {
    if let Some(cache) = dir().parent() {
        for old in ["moto-venv", "node", "lambda-venv"] {
            let _ = std::fs::remove_dir_all(cache.join(old));
        }
    }
}

/// A virtual environment holding exactly `<name>-python.lock`; returns its `bin` directory.
fn python_venv(name: &str) -> Result<PathBuf, String> {
    crate::ensure_debian_packages(&[("python3", "python3")])?;
    remove_unlocked_layout();
    let lock_path = locks().join(format!("{name}-python.lock"));
    let lock = read(&lock_path)?;
    let python = version_of("python3")?;
    let kind = format!("python-{name}");
    let home = keyed(&kind, &key(&[&lock, python.as_bytes()]), |home| {
        step(&format!(
            "install the {name} tools locked in {} ({python})",
            lock_path.display()
        ));
        let venv = home.to_string_lossy().into_owned();
        // Debian ships venv support separately.
        if sh("python3", &["-m", "venv", &venv]).is_err() {
            apt_install(&["python3-venv"])?;
            sh("python3", &["-m", "venv", "--clear", &venv])?;
        }
        sh(
            &home.join("bin/pip").to_string_lossy(),
            &[
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--require-hashes",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--requirement",
                &lock_path.to_string_lossy(),
            ],
        )
    })?;
    Ok(home.join("bin"))
}

/// What `cargo xtask test` runs besides cargo.
#[derive(Debug)]
pub struct TestTools {
    /// moto's server (a local AWS endpoint the tests talk to over the wire).
    pub moto_server: PathBuf,
    /// cfn-lint, with the SAM translator (checks the SAM template offline).
    pub cfn_lint: PathBuf,
}

/// The Python tools of the tests.
pub fn python_test_tools() -> Result<TestTools, String> {
    let bin = python_venv("test")?;
    let tools = TestTools {
        moto_server: bin.join("moto_server"),
        cfn_lint: bin.join("cfn-lint"),
    };
    for tool in [&tools.moto_server, &tools.cfn_lint] {
        if !tool.exists() {
            return Err(format!("installed, but {} is missing", tool.display()));
        }
    }
    Ok(tools)
}

/// The `bin` directory of the virtual environment that holds cargo-lambda.
pub fn cargo_lambda_bin() -> Result<PathBuf, String> {
    let bin = python_venv("lambda")?;
    if bin.join("cargo-lambda").exists() {
        Ok(bin)
    } else {
        Err(format!(
            "installed, but {} is missing",
            bin.join("cargo-lambda").display()
        ))
    }
}

/// The npm tools (asl-validator, playwright-core), installed by `npm ci` from the committed
/// lock; returns their `node_modules` directory.
pub fn node_modules() -> Result<PathBuf, String> {
    crate::ensure_debian_packages(&[("node", "nodejs"), ("npm", "npm")])?;
    remove_unlocked_layout();
    let locks = locks().join("node");
    let manifest = read(&locks.join("package.json"))?;
    let lock = read(&locks.join("package-lock.json"))?;
    let node = version_of("node")?;
    let home = keyed("node", &key(&[&manifest, &lock, node.as_bytes()]), |home| {
        step(&format!(
            "install the npm tools locked in {} (node {node})",
            locks.join("package-lock.json").display()
        ));
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(locks.join(file), home.join(file))
                .map_err(|e| format!("cannot copy {file} into {}: {e}", home.display()))?;
        }
        sh(
            "npm",
            &[
                "ci",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--prefix",
                &home.to_string_lossy(),
            ],
        )
    })?;
    let modules = home.join("node_modules");
    for tool in ["asl-validator/package.json", "playwright-core/package.json"] {
        if !modules.join(tool).exists() {
            return Err(format!(
                "installed, but {} is missing",
                modules.join(tool).display()
            ));
        }
    }
    Ok(modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_changes_with_any_part_and_with_where_the_parts_split() {
        let base = key(&[b"moto==5.2.5", b"Python 3.11.7"]);
        assert_eq!(base.len(), 16);
        assert_eq!(base, key(&[b"moto==5.2.5", b"Python 3.11.7"]));
        assert_ne!(base, key(&[b"moto==5.2.6", b"Python 3.11.7"]));
        assert_ne!(base, key(&[b"moto==5.2.5", b"Python 3.12.1"]));
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
    }

    #[test]
    fn every_locked_python_package_is_pinned_exactly_with_hashes() {
        for name in ["test", "lambda"] {
            let lock = std::fs::read_to_string(locks().join(format!("{name}-python.lock")))
                .expect("the lock");
            let requirements: Vec<&str> = lock
                .lines()
                .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && !l.trim().is_empty())
                .collect();
            assert!(!requirements.is_empty(), "{name}-python.lock pins nothing");
            for line in requirements {
                let pin = line.trim_end_matches(" \\");
                assert!(
                    pin.contains("==") && !pin.contains(['>', '<', '~', '*', '[']),
                    "{name}-python.lock: {pin:?} is not one exact version"
                );
            }
            let pins = lock.lines().filter(|l| l.contains("==")).count();
            let hashed = lock
                .split("==")
                .skip(1)
                .filter(|entry| entry.contains("--hash=sha256:"))
                .count();
            assert_eq!(pins, hashed, "{name}-python.lock: a package has no hash");
        }
    }

    #[test]
    fn the_npm_tools_are_pinned_exactly_and_their_lock_has_every_package_with_its_integrity() {
        let manifest: serde_json::Value = serde_json::from_slice(
            &read(&locks().join("node/package.json")).expect("package.json"),
        )
        .expect("JSON");
        let lock: serde_json::Value = serde_json::from_slice(
            &read(&locks().join("node/package-lock.json")).expect("package-lock.json"),
        )
        .expect("JSON");
        let wanted = manifest["dependencies"].as_object().expect("dependencies");
        for (name, version) in wanted {
            let version = version.as_str().expect("a version");
            assert!(
                version.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "package.json asks for {name} {version}: not one exact version"
            );
            assert_eq!(
                lock["packages"][format!("node_modules/{name}")]["version"],
                version,
                "package-lock.json is not the lock of package.json for {name}"
            );
        }
        let packages = lock["packages"].as_object().expect("packages");
        for (path, package) in packages.iter().filter(|(path, _)| !path.is_empty()) {
            assert!(
                package["integrity"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("sha512-")),
                "package-lock.json: {path} has no integrity hash"
            );
        }
    }
}
