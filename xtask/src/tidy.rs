//! Repository rules checked as tests (`cargo test -p xtask`), so they hold on every change.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        super::super::root()
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Every tracked-looking source file under the root, skipping build output and vendored trees.
    fn files(extension: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.')
                    || name == "target"
                    || name == "node_modules"
                    || name == "chaos-data"
                {
                    continue;
                }
                if path.is_dir() {
                    walk(&path, extension, out);
                } else if path.extension().is_some_and(|e| e == extension) {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&root(), extension, &mut out);
        out
    }

    fn members() -> Vec<String> {
        let manifest = read(&root().join("Cargo.toml"));
        let start = manifest.find("members = [").expect("workspace members");
        let end = start + manifest[start..].find(']').expect("end of members");
        manifest[start..end]
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn no_placeholder_macros_in_code() {
        // Spelled in pieces so that this file does not match its own rule.
        let banned = [
            concat!("todo", "!("),
            concat!("unimplemented", "!("),
            concat!("dbg", "!("),
        ];
        for file in files("rs") {
            let text = read(&file);
            for b in banned {
                assert!(!text.contains(b), "{} contains {b}", file.display());
            }
        }
    }

    #[test]
    fn every_crate_uses_the_workspace_lints_and_documents_itself() {
        for member in members() {
            let dir = root().join(&member);
            let manifest = read(&dir.join("Cargo.toml"));
            assert!(
                manifest.contains("[lints]\nworkspace = true"),
                "{member}/Cargo.toml must inherit [workspace.lints]"
            );
            for entry in ["src/lib.rs", "src/main.rs"] {
                let path = dir.join(entry);
                if path.exists() {
                    assert!(
                        read(&path).trim_start().starts_with("//!"),
                        "{} must start with a //! doc saying what it is for",
                        path.display()
                    );
                }
            }
        }
    }

    #[test]
    fn domain_stays_pure() {
        let manifest = read(&root().join("domain/Cargo.toml"));
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .expect("domain has dependencies");
        let allowed = [
            "cqrs-es",
            "serde",
            "serde_json",
            "thiserror",
            "chrono",
            "chrono-tz",
            "sha2",
            "hex",
            // Parsing only: a URL's host judged as the HTTP client will read it.
            "url",
        ];
        for line in deps
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let name = line.split(['.', ' ', '=']).next().unwrap_or_default();
            assert!(
                allowed.contains(&name),
                "domain may not depend on {name}: it does no I/O (see ARCHITECTURE.md)"
            );
        }
        for file in files("rs")
            .into_iter()
            .filter(|f| f.starts_with(root().join("domain/src")))
        {
            let text = read(&file);
            for banned in [
                "std::fs",
                "std::net",
                "tokio::",
                "Utc::now",
                "SystemTime",
                "Instant::now",
                "std::env",
            ] {
                assert!(
                    !text.contains(banned),
                    "{} uses {banned}: domain does no I/O and reads no clock",
                    file.display()
                );
            }
        }
    }

    #[test]
    fn architecture_map_names_every_crate() {
        let architecture = read(&root().join("ARCHITECTURE.md"));
        for member in members() {
            assert!(
                architecture.contains(&format!("`{member}/`")),
                "ARCHITECTURE.md code map does not mention `{member}/`"
            );
        }
    }

    #[test]
    fn readme_and_ci_run_the_same_test_command() {
        let readme = read(&root().join("README.md"));
        assert!(
            readme.contains("cargo xtask run"),
            "README.md must give the run command"
        );
        assert!(
            readme.contains("cargo xtask test"),
            "README.md must give the test command"
        );
        let ci = read(&root().join(".ci/run"));
        assert!(
            ci.contains("cargo xtask test"),
            ".ci/run must run the README's test command"
        );
    }
}
