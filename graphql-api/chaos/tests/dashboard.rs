//! The dashboard in a real browser: `chaos serve` on 127.0.0.1 port 0 (embedded, with its demo
//! fleet, an admin and a viewer added with `chaos user add`; or `--aws` on moto), and scripts
//! under `tests/dashboard/` driving headless Debian chromium through playwright-core:
//! - `flow.cjs`: sign in; a refused run, a target preview and a real run that hits exactly
//!   the previewed worker, followed live to COMPLETED; its result, charts and CSV, JSON and PDF
//!   exports; the list's filters and pages; a narrow screen; run again, a template, a
//!   scheduled run cancelled; halt-all stopping a running experiment; a viewer shown no control
//!   they may not use and refused by the API anyway; all with access tokens that expire every
//!   six seconds;
//! - `admin_pages.cjs`: the audit log and settings for an admin and a viewer;
//! - `chain_broken.cjs`: an auditor told where the hash chain breaks in a changed store;
//! - `first_admin.cjs`: a new store's first administrator, made from the printed link;
//! - `cognito.cjs`: signing in through a Cognito user pool on AWS;
//! - `reconnect.cjs`: an experiment page that must reconnect by itself when the server is
//!   killed and restarted under it, missing nothing.
//!
//! The scripts share `harness.cjs`, which fails on any console error, failed request or CSP
//! violation; a failing script is shown with the server's log.
//!
//! Needs the built dashboard, chromium and playwright-core, which `cargo xtask test` provides
//! (`CHAOS_DASHBOARD_DIR`, `CHROMIUM`, `PLAYWRIGHT_NODE_MODULES`). Screenshots of every page
//! are written under the target directory (the path is printed).

mod server;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use server::{CHAOS, Server, chaos_input as chaos};
use std::time::{Duration, Instant};
use test_support::{aws, cognito};

/// The target directory this test was built in (`<target>/debug/chaos` -> `<target>`).
fn target_dir() -> PathBuf {
    Path::new(CHAOS)
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("the chaos binary is in a target directory")
}

/// The built dashboard: `CHAOS_DASHBOARD_DIR`, or where `cargo xtask` builds it.
fn dashboard_dir() -> PathBuf {
    let dir = std::env::var_os("CHAOS_DASHBOARD_DIR")
        .map_or_else(|| target_dir().join("dashboard"), PathBuf::from);
    assert!(
        dir.join("index.html").exists(),
        "no built dashboard in {}: run `cargo xtask test` (or `cargo xtask dashboard`)",
        dir.display()
    );
    dir
}

fn playwright_modules() -> PathBuf {
    let dir = std::env::var_os("PLAYWRIGHT_NODE_MODULES").map_or_else(
        || PathBuf::from(aws::installed_tool("node/node_modules").unwrap_or_default()),
        PathBuf::from,
    );
    assert!(
        dir.join("playwright-core/package.json").exists(),
        "playwright-core is not in {}: run `cargo xtask test`, which installs it",
        dir.display()
    );
    dir
}

fn chromium() -> PathBuf {
    let path =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    assert!(
        path.exists(),
        "no chromium at {}: run `cargo xtask test`, which installs Debian's",
        path.display()
    );
    path
}

/// `chaos serve` on `addr` (port 0: any free port) with `args`, serving `dashboard`, once it
/// listens; and its address as a URL.
fn serve(db: &Path, dashboard: &Path, addr: &str, args: &[&str]) -> (Server, String) {
    let dashboard = dashboard.to_str().expect("a UTF-8 path");
    let args = [&["--fleet-replace-after-ms", "300"], args].concat();
    // The workflow's states are logged too: a failing run shows where each experiment was.
    let env = [
        ("CHAOS_DASHBOARD_DIR", dashboard),
        (
            "RUST_LOG",
            "info,embedded_write::workflow=debug,graphql_api::feed=debug,\
             graphql_api::api::subscription=debug",
        ),
    ];
    let server = server::serve_at(db, addr, &args, &env);
    let url = format!("http://{}", server.addr);
    (server, url)
}

/// One browser at a time: the machine the tests run on may have two cores.
static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What every browser test starts from: the browser to itself, the built dashboard, and a
/// directory of its own.
struct Start {
    _one: std::sync::MutexGuard<'static, ()>,
    dashboard: PathBuf,
    dir: tempfile::TempDir,
}

fn start() -> Start {
    Start {
        _one: BROWSER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        dashboard: dashboard_dir(),
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

const ADMIN: (&str, &str) = ("ada", "correct horse battery staple");
const VIEWER: (&str, &str) = ("vic", "viewer sees but never touches");

/// A store with an admin and a viewer, in `dir`.
fn store(dir: &Path) -> PathBuf {
    let db = dir.join("chaos.db");
    chaos(&db, &["init"], "");
    chaos(
        &db,
        &["user", "add", ADMIN.0, "--role", "ADMIN"],
        &format!("{}\n", ADMIN.1),
    );
    chaos(
        &db,
        &["user", "add", VIEWER.0, "--role", "VIEWER"],
        &format!("{}\n", VIEWER.1),
    );
    db
}

/// `count` dry-run drafts against the demo fleet, named `<prefix> 00`, `<prefix> 01`, ...
fn drafts(db: &Path, prefix: &str, count: usize) {
    for n in 0..count {
        let spec = server::spec(&format!("{prefix} {n:02}"), true).to_string();
        chaos(db, &["experiment", "create", "--spec", "-"], &spec);
    }
}

/// Where screenshots go (printed).
fn artifacts() -> PathBuf {
    let artifacts = target_dir().join("test-artifacts").join("dashboard");
    std::fs::create_dir_all(&artifacts).expect("artifacts directory");
    eprintln!("dashboard screenshots: {}", artifacts.display());
    artifacts
}

/// Removes the screenshots `pages` left by an earlier run: they prove nothing about this one.
fn clear_screenshots(pages: &[&str]) {
    let artifacts = artifacts();
    for page in pages {
        let _ = std::fs::remove_file(artifacts.join(format!("{page}.png")));
    }
}

/// Asserts the script took a screenshot of each of `pages`.
fn assert_screenshots(pages: &[&str]) {
    let artifacts = artifacts();
    for page in pages {
        assert!(
            artifacts.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
}

/// `node tests/dashboard/SCRIPT` against `url`, its standard input and output piped.
fn browser_script(script: &str, url: &str) -> Child {
    browser_script_with(script, url, &[])
}

/// [`browser_script`] with more environment variables for the script.
fn browser_script_with(script: &str, url: &str, env: &[(&str, &str)]) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/dashboard")
        .join(script);
    Command::new("node")
        .arg(&script)
        .env("BASE_URL", url)
        .env("ADMIN_USER", ADMIN.0)
        .env("ADMIN_PASSWORD", ADMIN.1)
        .env("VIEWER_USER", VIEWER.0)
        .env("VIEWER_PASSWORD", VIEWER.1)
        .env("ARTIFACTS", artifacts())
        .env("CHROMIUM", chromium())
        .env("PLAYWRIGHT_NODE_MODULES", playwright_modules())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (cargo xtask test installs it)")
}

/// Waits (at most five minutes) for the script to end and asserts it passed, showing what
/// `server` logged if it did not; returns its report (`already`: what was read of its output
/// before).
fn passed(mut node: Child, already: &str, server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    while node.try_wait().expect("wait for node").is_none() {
        if Instant::now() > deadline {
            let _ = node.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = node.wait_with_output().expect("node");
    let report = format!(
        "{already}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
    if !out.status.success() {
        eprintln!("the server's log:\n{}", server.log_tail());
    }
    assert!(out.status.success(), "the browser test failed:\n{report}");
    assert!(report.contains("dashboard: ok"), "{report}");
    report
}

#[test]
fn sign_in_run_an_experiment_live_to_completion_and_a_viewer_sees_no_controls() {
    let Start {
        _one,
        dashboard,
        dir,
    } = start();
    let db = store(dir.path());
    // Access tokens that live six seconds: the pages must refresh them as they go.
    let (server, url) = serve(
        &db,
        &dashboard,
        "127.0.0.1:0",
        &["--access-token-ttl-secs", "6"],
    );
    // Drafts enough for two pages of the experiments list.
    drafts(&db, "draft", 21);
    let pages = [
        "01-login",
        "02-home-admin",
        "05-experiment-completed",
        "08-home-viewer",
        "11-results",
    ];
    clear_screenshots(&pages);
    passed(browser_script("flow.cjs", &url), "", &server);
    assert_screenshots(&pages);
}

#[test]
fn a_live_page_reconnects_after_a_server_restart_and_misses_nothing() {
    use std::io::{BufRead, BufReader};
    let Start {
        _one,
        dashboard,
        dir,
    } = start();
    let db = store(dir.path());
    let (server, url) = serve(&db, &dashboard, "127.0.0.1:0", &[]);
    let addr = server.addr.to_string();
    let mut node = browser_script("reconnect.cjs", &url);
    let mut stdin = node.stdin.take().expect("stdin");
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let mut report = String::new();
    for line in lines.by_ref() {
        let line = line.expect("read the script's output");
        report.push_str(&line);
        report.push('\n');
        if line == "RESTART" {
            break;
        }
    }
    if !report.contains("RESTART") {
        // The script failed before: show why (and the server's log) rather than nothing.
        passed(node, &report, &server);
        panic!("the script never asked for a restart:\n{report}");
    }
    // Killed, as a crash would be; its runs resume once it is back on the same address.
    server.kill();
    let (server, _) = serve(&db, &dashboard, &addr, &[]);
    writeln!(stdin, "RESTARTED").expect("tell the script");
    for line in lines {
        report.push_str(&line.expect("read the script's output"));
        report.push('\n');
    }
    let report = passed(node, &report, &server);
    assert!(report.contains("after the restart"), "{report}");
}

#[test]
fn on_aws_people_sign_in_through_the_cognito_user_pool_from_the_page() {
    let Start {
        _one,
        dashboard,
        dir,
    } = start();
    let pool = cognito::pool();
    let text = |field: &str| pool[field].as_str().expect(field).to_owned();
    let (pool, client, password) = (text("pool"), text("client"), text("password"));
    let temporary = text("temporary");
    let endpoint = aws::moto().endpoint();
    let (events, views) = (aws::unique("Events"), aws::unique("Views"));
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let dynamodb = aws::dynamodb();
            command_lambdas::dynamo::create_events_table(&dynamodb, &events)
                .await
                .expect("events table");
            projection_lambdas::dynamo_stream::create_views_table(&dynamodb, &views)
                .await
                .expect("views table");
        });
    let jwks = format!("{endpoint}/{pool}/.well-known/jwks.json");
    let server = server::serve_with(
        &dir.path().join("absent.db"),
        &[
            "--aws",
            "--events-table",
            &events,
            "--views-table",
            &views,
            "--state-machine-arn",
            "arn:aws:states:us-east-1:123456789012:stateMachine:experiment",
            "--cognito-user-pool-id",
            &pool,
            "--cognito-client-id",
            &client,
            "--cognito-region",
            "us-east-1",
            "--cognito-jwks-url",
            &jwks,
            "--cognito-sign-in-endpoint",
            &endpoint,
        ],
        &[
            ("CHAOS_DASHBOARD_DIR", dashboard.to_str().expect("UTF-8")),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    let url = format!("http://{}", server.addr);
    let pages = [
        "30-login-cognito",
        "33-cognito-first-sign-in",
        "34-cognito-authenticator",
        "35-cognito-signed-in-with-a-code",
    ];
    clear_screenshots(&pages);
    let node = browser_script_with(
        "cognito.cjs",
        &url,
        &[
            ("COGNITO_ENDPOINT", &endpoint),
            ("COGNITO_PASSWORD", &password),
            ("COGNITO_TEMPORARY", &temporary),
        ],
    );
    let report = passed(node, "", &server);
    assert!(report.contains("refreshed through Cognito"), "{report}");
    assert!(report.contains("a first sign-in"), "{report}");
    assert_screenshots(&pages);
}

#[test]
fn the_audit_log_and_settings_pages_show_each_role_what_it_may_do() {
    let Start {
        _one,
        dashboard,
        dir,
    } = start();
    let db = store(dir.path());
    // Drafts enough for two pages of the audit log, each in its own stream.
    drafts(&db, "audited draft", 21);
    let pages = [
        "20-audit",
        "21-audit-filtered",
        "22-settings-admin",
        "23-settings-apikey-created",
        "24-settings-viewer",
        "25-audit-narrow",
    ];
    clear_screenshots(&pages);
    let (server, url) = serve(&db, &dashboard, "127.0.0.1:0", &[]);
    let report = passed(browser_script("admin_pages.cjs", &url), "", &server);
    assert!(report.contains("appeared live"), "{report}");
    assert_screenshots(&pages);
}

#[test]
fn an_auditor_is_told_the_chain_is_broken_where_an_event_was_changed() {
    let Start {
        _one,
        dashboard,
        dir,
    } = start();
    let db = store(dir.path());
    drafts(&db, "to be changed", 1);
    // One recorded event changed in the store file, as someone with the disk could.
    let conn = rusqlite::Connection::open(&db).expect("open the store");
    let (rowid, stream): (i64, String) = conn
        .query_row(
            "SELECT rowid, aggregate_id FROM events WHERE aggregate_type = 'Experiment' \
             ORDER BY rowid LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the experiment's first event");
    let changed = conn
        .execute(
            "UPDATE events SET payload = replace(payload, '\"at\":\"2', '\"at\":\"1') \
             WHERE rowid = ?1",
            [rowid],
        )
        .expect("change the event");
    assert_eq!(changed, 1);
    drop(conn);
    clear_screenshots(&["26-audit-chain-broken"]);
    let (server, url) = serve(&db, &dashboard, "127.0.0.1:0", &[]);
    let node = browser_script_with("chain_broken.cjs", &url, &[("TAMPERED_STREAM", &stream)]);
    let report = passed(node, "", &server);
    assert!(report.contains("the chain is broken"), "{report}");
    assert_screenshots(&["26-audit-chain-broken"]);
}

/// A process that keeps one core busy until it is dropped (or this test process dies: it ends
/// when its standard input closes).
struct Burner(Child);

impl Burner {
    fn start() -> Burner {
        let child = Command::new("sh")
            .arg("-c")
            .arg("while :; do :; done & pid=$!; read _; kill $pid")
            .stdin(Stdio::piped())
            .spawn()
            .expect("start a busy loop");
        Burner(child)
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

#[test]
fn a_session_renewed_under_load_is_never_signed_out() {
    let Start {
        _one,
        dashboard,
        dir,
    } = start();
    let db = store(dir.path());
    // Access tokens that live two seconds: the page renews every second.
    let (server, url) = serve(
        &db,
        &dashboard,
        "127.0.0.1:0",
        &["--access-token-ttl-secs", "2"],
    );
    clear_screenshots(&["30-session-after-load"]);
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let burners: Vec<Burner> = (0..cores).map(|_| Burner::start()).collect();
    let node = browser_script_with("session.cjs", &url, &[("LOAD_SECONDS", "30")]);
    let report = passed(node, "", &server);
    drop(burners);
    assert!(report.contains("never signed out"), "{report}");
    assert_screenshots(&["30-session-after-load"]);
    // The identity provider ended no session: none was taken for a stolen one.
    let revoked: Vec<String> = rusqlite::Connection::open(&db)
        .expect("open the store")
        .prepare("SELECT revoked_why FROM identity_sessions WHERE revoked_at IS NOT NULL")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()
        })
        .expect("read the sessions");
    assert!(revoked.is_empty(), "sessions revoked: {revoked:?}");
}

#[test]
fn the_graphql_explorer_loads_from_the_server_alone_and_runs_a_query() {
    let Start {
        _one,
        dashboard,
        dir,
    } = start();
    let db = store(dir.path());
    let (server, url) = serve(&db, &dashboard, "127.0.0.1:0", &[]);
    clear_screenshots(&["40-graphiql"]);
    passed(browser_script("graphiql.cjs", &url), "", &server);
    assert_screenshots(&["40-graphiql"]);
}

#[test]
fn a_new_store_gets_its_first_administrator_from_the_link_the_server_printed() {
    let Start {
        _one,
        dashboard,
        dir,
    } = start();
    let db = dir.path().join("chaos.db");
    let (server, _url) = serve(&db, &dashboard, "127.0.0.1:0", &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let link = loop {
        let log = server.log_tail();
        if let Some(link) = log
            .split_whitespace()
            .find(|word| word.contains("/#first-admin="))
        {
            break link.to_owned();
        }
        assert!(Instant::now() < deadline, "no set-up link printed:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let url = format!("http://{}", server.addr);
    assert!(link.starts_with(&url), "{link}");
    clear_screenshots(&["30-first-admin"]);
    passed(
        browser_script_with("first_admin.cjs", &url, &[("FIRST_ADMIN_LINK", &link)]),
        "",
        &server,
    );
    assert_screenshots(&["30-first-admin"]);
}
