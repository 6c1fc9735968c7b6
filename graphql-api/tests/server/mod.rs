//! `chaos` as the black-box tests run it: `chaos serve` on 127.0.0.1 port 0 (the address read
//! from the line it prints), and one-shot commands whose JSON output is read back.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The binary under test.
pub const CHAOS: &str = env!("CARGO_BIN_EXE_chaos");

/// A running `chaos serve`, killed when dropped.
pub struct Server {
    /// Its process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `chaos --db DB serve --addr 127.0.0.1:0 ARGS...`, once it listens.
pub fn serve(db: &Path, args: &[&str]) -> Server {
    let mut child = Command::new(CHAOS)
        .arg("--db")
        .arg(db)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chaos serve");
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
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
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

/// The JSON a successful command printed.
pub fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "chaos failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}
