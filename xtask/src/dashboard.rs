//! Builds the web dashboard without `dx`: the `web` binary for wasm32 (profile
//! `wasm-release`), bound by wasm-bindgen as a library, then written with content-hashed names
//! beside a hand-written `index.html` into `<target dir>/dashboard`, where `chaos serve` finds
//! it. The page has no inline script or style: a module script boots the wasm.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The page's budget: the wasm and JavaScript, gzipped. Raised from 300 KiB for the first
/// sign-in on Cognito (a new password, an authenticator app set up, codes), then to 320 KiB
/// for a new store's first administrator and webhook signing secrets, then to 330 KiB for the
/// halt banner, the notice centre, problems shown at their fields and filters kept in the
/// address, with the load time measured by `cargo xtask bench` each time; it gives way to a
/// load-time budget once there is one.
const GZIP_BUDGET: u64 = 330 * 1024;

/// Adds the wasm32 standard library when rustup does not have it yet.
fn ensure_wasm_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    crate::step("add the wasm32 standard library (the dashboard is compiled to wasm)");
    crate::sh("rustup", &["target", "add", WASM_TARGET])
}

/// `name-<first 16 hex digits of the content's SHA-256>.ext`.
fn hashed(name: &str, ext: &str, content: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(content));
    format!("{name}-{}.{ext}", &digest[..16])
}

fn write(path: &Path, content: &[u8]) -> Result<(), String> {
    std::fs::write(path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `content` gzipped by zopfli: slower to write than zlib's best, smaller to send, and read
/// by every gzip decoder. Five iterations get nearly all of the gain of the default fifteen.
fn gzip(content: &[u8]) -> Result<Vec<u8>, String> {
    let options = zopfli::Options {
        iteration_count: std::num::NonZeroU64::new(5).unwrap_or(std::num::NonZeroU64::MIN),
        ..zopfli::Options::default()
    };
    let mut out = Vec::new();
    zopfli::compress(options, zopfli::Format::Gzip, content, &mut out)
        .map_err(|e| format!("cannot gzip: {e}"))?;
    Ok(out)
}

fn gzip_len(content: &[u8]) -> Result<u64, String> {
    Ok(gzip(content)?.len() as u64)
}

/// Writes `<file>.gz` beside every file under `dir` worth compressing (the server sends it to
/// browsers that accept gzip).
fn gzip_tree(dir: &Path) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            gzip_tree(&path)?;
            continue;
        }
        let content = read(&path)?;
        if content.len() < 1024 {
            continue;
        }
        let mut name = path.clone().into_os_string();
        name.push(".gz");
        write(Path::new(&name), &gzip(&content)?)?;
    }
    Ok(())
}

/// Copies the files under `from` into `to` (created), collecting their contents.
fn copy_tree(from: &Path, to: &Path, contents: &mut Vec<Vec<u8>>) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", from.display()))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target, contents)?;
        } else {
            let bytes = read(&path)?;
            write(&target, &bytes)?;
            contents.push(bytes);
        }
    }
    Ok(())
}

/// Builds the dashboard into `<target dir>/dashboard` and returns that directory.
pub fn build() -> Result<PathBuf, String> {
    ensure_wasm_target()?;
    crate::step("build the dashboard (web, wasm32, profile wasm-release)");
    crate::cargo(&[
        "build",
        "--locked",
        "-p",
        "web",
        "--bin",
        "web",
        "--target",
        WASM_TARGET,
        "--profile",
        "wasm-release",
    ])?;
    let target = crate::target_dir();
    let wasm = target
        .join(WASM_TARGET)
        .join("wasm-release")
        .join("web.wasm");
    let staging = target.join("dashboard-bindgen");
    let _ = std::fs::remove_dir_all(&staging);
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)
        .map_err(|e| format!("wasm-bindgen: {e}"))?
        .typescript(false)
        .remove_name_section(true)
        .remove_producers_section(true)
        .generate(&staging)
        .map_err(|e| format!("wasm-bindgen: {e}"))?;

    let out = target.join("dashboard");
    let fresh = target.join("dashboard.new");
    let _ = std::fs::remove_dir_all(&fresh);
    let assets = fresh.join("assets");
    std::fs::create_dir_all(&assets)
        .map_err(|e| format!("cannot create {}: {e}", assets.display()))?;

    let wasm_bytes = read(&staging.join("web_bg.wasm"))?;
    let wasm_name = hashed("web", "wasm", &wasm_bytes);
    let js_bytes = read(&staging.join("web.js"))?;
    let js_name = hashed("web", "js", &js_bytes);
    let css_bytes = read(&crate::root().join("web/style.css"))?;
    let css_name = hashed("style", "css", &css_bytes);
    let boot = format!(
        "// Starts the dashboard: loads its wasm (the page has no inline script).\n\
         import init from \"./{js_name}\";\n\
         init({{ module_or_path: \"/assets/{wasm_name}\" }});\n"
    );
    let boot_name = hashed("boot", "js", boot.as_bytes());
    write(&assets.join(&wasm_name), &wasm_bytes)?;
    write(&assets.join(&js_name), &js_bytes)?;
    write(&assets.join(&css_name), &css_bytes)?;
    write(&assets.join(&boot_name), boot.as_bytes())?;
    // The JavaScript that crates bring (`./snippets/<crate>-<hash>/...`, imported relative to
    // the bindings): copied as they are, and counted.
    let mut snippets = Vec::new();
    copy_tree(
        &staging.join("snippets"),
        &assets.join("snippets"),
        &mut snippets,
    )?;
    let index = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Chaos platform</title>\n\
         <link rel=\"icon\" href=\"data:,\">\n\
         <link rel=\"stylesheet\" href=\"/assets/{css_name}\">\n\
         <link rel=\"modulepreload\" href=\"/assets/{js_name}\">\n\
         <link rel=\"preload\" href=\"/assets/{wasm_name}\" as=\"fetch\" type=\"application/wasm\" crossorigin>\n\
         <script type=\"module\" src=\"/assets/{boot_name}\"></script>\n\
         </head>\n<body>\n<div id=\"main\"></div>\n\
         <p class=\"boot\">Loading the dashboard…</p>\n\
         <noscript><p>The dashboard needs JavaScript and WebAssembly. The API is at /graphql.</p></noscript>\n\
         </body>\n</html>\n"
    );
    write(&fresh.join("index.html"), index.as_bytes())?;
    gzip_tree(&assets)?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&fresh, &out)
        .map_err(|e| format!("cannot move the dashboard into {}: {e}", out.display()))?;

    let mut raw = (wasm_bytes.len() + js_bytes.len() + boot.len()) as u64;
    let mut gzip = gzip_len(&wasm_bytes)? + gzip_len(&js_bytes)? + gzip_len(boot.as_bytes())?;
    let mut snippet_bytes = 0;
    for snippet in &snippets {
        raw += snippet.len() as u64;
        snippet_bytes += snippet.len();
        gzip += gzip_len(snippet)?;
    }
    println!(
        "dashboard: {} (wasm {} KiB, JavaScript {} KiB, CSS {} KiB; wasm + JavaScript {} KiB raw, {} KiB gzip)",
        out.display(),
        wasm_bytes.len() / 1024,
        (js_bytes.len() + boot.len() + snippet_bytes) / 1024,
        css_bytes.len() / 1024,
        raw / 1024,
        gzip / 1024,
    );
    if gzip > GZIP_BUDGET {
        return Err(format!(
            "the dashboard's wasm and JavaScript are {} KiB gzipped, over the budget of {} KiB",
            gzip / 1024,
            GZIP_BUDGET / 1024
        ));
    }
    Ok(out)
}
