//! `chaos` as the black-box tests run it: `chaos serve` on 127.0.0.1 port 0 (the address read
//! from the line it prints), and one-shot commands whose JSON output is read back.
#![allow(dead_code)]

pub mod ws;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// The binary under test.
pub const CHAOS: &str = env!("CARGO_BIN_EXE_chaos");

/// A running `chaos serve`, stopped when dropped. It also stops by itself when this test
/// process dies, however it dies: it holds the other end of its standard input, which the
/// kernel closes then.
pub struct Server {
    /// Its process.
    pub child: Child,
    /// Its standard input: closing it asks the server to stop as it does on SIGTERM.
    stdin: Option<ChildStdin>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The last lines it logged, for a failing test to show.
    log: Arc<Mutex<VecDeque<String>>>,
}

/// How many of a server's last log lines are kept.
const LOG_LINES: usize = 2_000;

impl Server {
    /// The last lines the server logged (at most [`LOG_LINES`]), oldest first.
    pub fn log_tail(&self) -> String {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.iter().fold(String::new(), |mut all, line| {
            all.push_str(line);
            all.push('\n');
            all
        })
    }
}

/// How long a server is given to stop cleanly before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

impl Server {
    /// Stops the server as SIGTERM would (so it writes what a clean exit writes, a coverage
    /// profile among them), killing it if it has not stopped within [`STOP_TIMEOUT`].
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        while std::time::Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "chaos serve (pid {}) did not stop within {STOP_TIMEOUT:?}: killed",
            self.child.id()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Kills the server with SIGKILL, as a crash would end it: no shutdown of any kind (its
    /// demo fleet's workers see their standard input close and go with it).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `chaos --db DB serve --addr 127.0.0.1:0 ARGS...`, once it listens.
pub fn serve(db: &Path, args: &[&str]) -> Server {
    serve_with(db, args, &[])
}

/// [`serve`] with environment variables `env` set.
pub fn serve_with(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    serve_at(db, "127.0.0.1:0", args, env)
}

/// `chaos --db DB serve --addr ADDR ARGS...` with `env` set, once it listens (a fixed address
/// brings a server back where its clients were).
pub fn serve_at(db: &Path, addr: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(CHAOS)
        .arg("--db")
        .arg(db)
        .args(["serve", "--addr", addr, "--stop-when-stdin-closes"])
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaos serve");
    let stdin = child.stdin.take();
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server announced its address")
            .expect("read");
        if let Some(addr) = line.strip_prefix("chaos: listening on http://") {
            break addr.parse().expect("address");
        }
    };
    // Keep draining the log so the server never blocks on a full pipe; its tail is kept.
    let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
    let kept = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut kept = kept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if kept.len() == LOG_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    });
    Server {
        child,
        stdin,
        addr,
        log,
    }
}

/// `chaos --db DB ARGS...` as `actor`.
pub fn chaos_as(db: &Path, actor: &str, args: &[&str]) -> Output {
    Command::new(CHAOS)
        .arg("--db")
        .arg(db)
        .args(args)
        .env("CHAOS_ACTOR", actor)
        .env_remove("RUST_LOG")
        .output()
        .expect("run chaos")
}

/// `chaos --db DB ARGS...` as the console's administrator, with `stdin` written to its
/// standard input (a password, a spec); panics on failure.
pub fn chaos_input(db: &Path, args: &[&str], stdin: &str) {
    let out = chaos_with_input(db, args, stdin);
    assert!(
        out.status.success(),
        "chaos {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `chaos --db DB ARGS...` as the console's administrator, with `stdin` written to its
/// standard input: what it printed and how it ended.
pub fn chaos_with_input(db: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(CHAOS)
        .arg("--db")
        .arg(db)
        .args(args)
        .env("CHAOS_ACTOR", "admin-at-console")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chaos");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("chaos")
}

/// The JSON a successful command printed.
pub fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "chaos failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

pub fn chaos(db: &Path, args: &[&str]) -> Output {
    chaos_as(db, "admin-at-console", args)
}

/// Issues a key `id` with `role`; returns its secret.
pub fn key(db: &Path, id: &str, role: &str) -> String {
    let issued = ok_json(&chaos(
        db,
        &["apikey", "create", "--id", id, "--name", id, "--role", role],
    ));
    assert_eq!(issued["actor"], format!("key:{id}"));
    issued["secret"].as_str().expect("secret").to_owned()
}

/// POSTs `body` (raw bytes) to `/graphql` with `headers` over a socket of its own; the status
/// and the JSON answer. The body is sent as `application/json` unless `headers` give a
/// `Content-Type` (an empty one: none at all). Not an HTTP client but a peer that sends what
/// the tests of bad requests need (no content type, a body past the limit, which the server
/// may answer and close on before reading it all); every other request goes through [`gql`].
pub fn post_raw(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let typed = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    let mut head = format!(
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !typed {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers.iter().filter(|(_, value)| !value.is_empty()) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    // A server may answer (and close) before reading all of an oversized body.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = serde_json::from_str(body)
        .or_else(|_| {
            body.lines()
                .find_map(|l| serde_json::from_str(l).ok())
                .ok_or(())
        })
        .unwrap_or_else(|()| panic!("no JSON in {answer:?}"));
    (status, json)
}

/// A GraphQL request as `secret` (none: anonymous), over HTTP as any client sends it.
pub fn gql(addr: SocketAddr, secret: Option<&str>, query: &str, variables: Value) -> Value {
    let bearer = secret.map(|s| format!("Bearer {s}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    let body = json!({"query": query, "variables": variables});
    let answer = test_support::http::post_json(&format!("http://{addr}/graphql"), &headers, &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {}", answer.body))
}

/// The code of the first error, if any.
pub fn code(answer: &Value) -> Option<String> {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_owned)
}

pub fn spec(name: &str, dry_run: bool) -> Value {
    json!({
        "name": name,
        "target": { "kind": "LOCAL_FLEET", "group": "web" },
        "selection": { "mode": "COUNT", "value": 1 },
        "max_targets": 2,
        "failure": { "type": "TERMINATE" },
        "dry_run": dry_run,
        "guardrails": {
            "stop_conditions": [{ "type": "MAX_ERROR_RATE", "percent": 50 }],
            "max_duration_secs": 120
        },
        "recovery": { "timeout_secs": 30, "poll_interval_secs": 1, "baseline_samples": 1 }
    })
}
