//! A worker of the demo fleet: a process serving HTTP on 127.0.0.1, which the supervisor starts
//! (`chaos fleet worker --id ID`), kills and pauses.
//!
//! It prints `listening ADDR` on its standard output once it accepts connections, and exits
//! when its standard input closes, so no worker outlives the supervisor that started it, however
//! that one ends. `GET /health` answers `ok`; every other request answers a small JSON document
//! naming the worker.

use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head a worker reads.
const MAX_HEAD: usize = 8 * 1024;

/// Runs a worker until its standard input closes.
pub async fn run(id: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {addr}")?;
        out.flush()?;
    }
    let id: std::sync::Arc<str> = id.into();
    let serving = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors, say: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let id = std::sync::Arc::clone(&id);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &id)).await;
            });
        }
    };
    let orphaned = async {
        // Blocking reads on a thread of their own: standard input ends when the supervisor goes.
        let _ = tokio::task::spawn_blocking(|| {
            use std::io::Read;
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        })
        .await;
    };
    tokio::select! {
        () = serving => Ok(()),
        () = orphaned => Ok(()),
    }
}

/// Reads a request head from `stream`: up to the blank line, at most [`MAX_HEAD`] bytes.
pub(crate) async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

/// An HTTP/1.1 response that closes the connection.
pub(crate) fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn answer(mut stream: TcpStream, id: &str) -> std::io::Result<()> {
    let reply = match read_head(&mut stream).await {
        Ok(head) => {
            let path = head
                .split(|b| *b == b' ')
                .nth(1)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            if path == "/health" {
                response("200 OK", "text/plain", "ok")
            } else {
                let body = serde_json::json!({
                    "worker": id,
                    "pid": std::process::id(),
                    "path": path,
                })
                .to_string();
                response("200 OK", "application/json", &body)
            }
        }
        Err(_) => response("400 Bad Request", "text/plain", "bad request"),
    };
    stream.write_all(&reply).await?;
    stream.shutdown().await
}
