//! A local AWS endpoint for tests: one moto server per test binary, on 127.0.0.1 and a free
//! port, started on first use and stopped when the test process exits.
//!
//! The server runs under a small shell that kills it when its standard input closes, which
//! happens when the test process ends however it ends; no moto process outlives the tests.
//! Every SDK client points at it through its endpoint URL with static test credentials, so no
//! request can reach a real AWS account. Tests isolate themselves with unique table names.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

/// The running server.
#[derive(Debug)]
pub struct Moto {
    /// Where it listens.
    pub addr: SocketAddr,
    _child: Mutex<Child>,
    _stdin: Mutex<ChildStdin>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// The Python that has moto: the one beside `MOTO_SERVER` (set by `cargo xtask test` to the
/// virtual environment's `moto_server`), or the one `cargo xtask test` installed last, or
/// `python3` on PATH.
pub fn python() -> String {
    std::env::var("MOTO_SERVER")
        .ok()
        .and_then(|server| {
            let python = std::path::Path::new(&server).with_file_name("python");
            python
                .exists()
                .then(|| python.to_string_lossy().into_owned())
        })
        .or_else(|| installed_tool("python-test/bin/python"))
        .unwrap_or_else(|| "python3".to_owned())
}

/// `path` under the tools `cargo xtask test` installed last (`~/.cache/chaos-platform/tools`,
/// where it links the newest installation of each kind), if it is there: what a `cargo test`
/// run by hand uses when xtask did not say.
pub fn installed_tool(path: &str) -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let tool = std::path::Path::new(&home)
        .join(".cache/chaos-platform/tools")
        .join(path);
    tool.exists().then(|| tool.to_string_lossy().into_owned())
}

/// `moto_server.py` of this crate: moto's server, with canned Lambda errors (see there).
const SERVER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/moto_server.py");

fn start() -> Moto {
    let port = free_port();
    // MOTO_PORT: Step Functions in moto calls its Lambda tasks back on this port. Cognito
    // checks the codes of authenticator apps (TOTP), as the real one does.
    let script = format!(
        "MOTO_PORT={port} MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP=true \"$0\" \"$1\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; read _; kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(python())
        .arg(SERVER_SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start moto_server (install it with `cargo xtask test`)");
    let stdin = child.stdin.take().expect("stdin");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() && answers(addr) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "moto_server exited at start ({status}); is it installed? run `cargo xtask test`"
            );
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on {addr} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        addr,
        _child: Mutex::new(child),
        _stdin: Mutex::new(stdin),
    }
}

/// Whether the server answers HTTP.
fn answers(addr: SocketAddr) -> bool {
    let url = format!("http://{addr}/moto-api/");
    crate::http::send("GET", &url, &[], None, Duration::from_secs(2)).is_ok()
}

/// The shared server, started on first use.
pub fn moto() -> &'static Moto {
    static SERVER: OnceLock<Moto> = OnceLock::new();
    SERVER.get_or_init(start)
}

impl Moto {
    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A DynamoDB client pointed at the local server.
pub fn dynamodb() -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(moto().endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A client of any AWS SDK crate pointed at the local server, as [`dynamodb`] builds one:
/// `aws::client!(aws_sdk_eventbridge)`, `aws::client!(aws_sdk_sqs)`. A macro, so that only
/// the test binaries that use a service need its SDK crate.
#[macro_export]
macro_rules! client {
    ($sdk:ident) => {{
        use $sdk::config::{BehaviorVersion, Credentials, Region};
        let config = $sdk::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url($crate::aws::moto().endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "static"))
            .build();
        $sdk::Client::from_conf(config)
    }};
}
pub use crate::client;

/// A table name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// POSTs JSON to the server's own API (`/moto-api/...`: configuration, canned results);
/// panics unless it answers 2xx.
pub fn post_json(path: &str, body: &serde_json::Value) {
    let answer = crate::http::post_json(&format!("{}{path}", moto().endpoint()), &[], body);
    assert!(
        (200..300).contains(&answer.status),
        "POST {path} answered {}: {}",
        answer.status,
        answer.body
    );
}
