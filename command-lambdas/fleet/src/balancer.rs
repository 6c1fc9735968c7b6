//! The demo fleet's load balancer: HTTP on 127.0.0.1, each request sent to the next healthy
//! worker in turn; a worker that refuses the connection or does not answer in time is skipped
//! for the next one, and when none answers the client gets `502` or `504`, as from a cloud load
//! balancer. Every request's latency and outcome go into a sliding window, which the health
//! probe reads (p95 latency, error rate).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::worker::{read_head, response};

/// The longest response relayed.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Why a request to a worker failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The connection was refused or reset.
    Refused,
    /// No answer in time.
    TimedOut,
}

/// Sends `head` to `addr` and reads the whole response (the worker closes after it).
pub(crate) async fn exchange(
    addr: SocketAddr,
    head: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let work = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|_| Failure::Refused)?;
        stream.write_all(head).await.map_err(|_| Failure::Refused)?;
        let mut answer = Vec::new();
        let mut limited = (&mut stream).take(MAX_RESPONSE as u64);
        limited
            .read_to_end(&mut answer)
            .await
            .map_err(|_| Failure::Refused)?;
        if answer.is_empty() {
            return Err(Failure::Refused);
        }
        Ok(answer)
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(Failure::TimedOut))
}

/// The status code of a raw HTTP response.
pub(crate) fn status_of(response: &[u8]) -> Option<u16> {
    let line = response.split(|b| *b == b'\r').next()?;
    std::str::from_utf8(line.split(|b| *b == b' ').nth(1)?)
        .ok()?
        .parse()
        .ok()
}

/// A `GET path` request head.
pub(crate) fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Request outcomes over a sliding window.
#[derive(Debug)]
pub(crate) struct Window {
    span: Duration,
    samples: VecDeque<(Instant, u32, bool)>,
}

/// What a window says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TrafficStats {
    /// Requests in the window.
    pub requests: u32,
    /// 95th percentile latency, in milliseconds (0 without requests).
    pub latency_p95_ms: u32,
    /// Errors (5xx or no answer), in basis points of the requests.
    pub error_rate_bp: u32,
}

impl Window {
    pub(crate) fn new(span: Duration) -> Self {
        Window {
            span,
            samples: VecDeque::new(),
        }
    }

    fn trim(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.samples.front() {
            if now.duration_since(*at) > self.span {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    pub(crate) fn record(&mut self, latency: Duration, error: bool) {
        let now = Instant::now();
        self.trim(now);
        let ms = u32::try_from(latency.as_millis()).unwrap_or(u32::MAX);
        self.samples.push_back((now, ms, error));
    }

    pub(crate) fn stats(&mut self) -> TrafficStats {
        self.trim(Instant::now());
        let requests = u32::try_from(self.samples.len()).unwrap_or(u32::MAX);
        if requests == 0 {
            return TrafficStats::default();
        }
        let mut latencies: Vec<u32> = self.samples.iter().map(|(_, ms, _)| *ms).collect();
        latencies.sort_unstable();
        let rank = (latencies.len() * 95).div_ceil(100).max(1) - 1;
        let errors = self.samples.iter().filter(|(_, _, e)| *e).count() as u64;
        TrafficStats {
            requests,
            latency_p95_ms: latencies[rank],
            error_rate_bp: u32::try_from(errors * 10_000 / u64::from(requests)).unwrap_or(10_000),
        }
    }
}

/// Where the balancer sends requests: the healthy workers now.
pub(crate) trait Backends: Send + Sync + 'static {
    fn healthy(&self) -> Vec<SocketAddr>;
}

/// Serves the balancer on `listener` until the task is dropped.
pub(crate) async fn serve<B: Backends>(
    listener: TcpListener,
    backends: Arc<B>,
    window: Arc<Mutex<Window>>,
    timeout: Duration,
) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors, say: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (backends, window, next) = (backends.clone(), window.clone(), next.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                relay(client, &*backends, &window, &next, timeout),
            )
            .await;
        });
    }
}

async fn relay<B: Backends>(
    mut client: TcpStream,
    backends: &B,
    window: &Mutex<Window>,
    next: &AtomicUsize,
    timeout: Duration,
) -> std::io::Result<()> {
    let Ok(head) = read_head(&mut client).await else {
        return client
            .write_all(&response("400 Bad Request", "text/plain", "bad request"))
            .await;
    };
    let started = Instant::now();
    let healthy = backends.healthy();
    let mut outcome = Err(Failure::Refused);
    // Two tries: a request that met a worker as it died goes to the next one.
    for attempt in 0..healthy.len().min(2) {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let addr = healthy[(i + attempt) % healthy.len()];
        outcome = exchange(addr, &head, timeout).await;
        if outcome.is_ok() {
            break;
        }
    }
    let answer = match outcome {
        Ok(answer) => answer,
        Err(Failure::TimedOut) => response(
            "504 Gateway Timeout",
            "text/plain",
            "no worker answered in time",
        ),
        Err(Failure::Refused) => response("502 Bad Gateway", "text/plain", "no worker available"),
    };
    let error = status_of(&answer).is_none_or(|s| s >= 500);
    if let Ok(mut window) = window.lock() {
        window.record(started.elapsed(), error);
    }
    client.write_all(&answer).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_gives_p95_and_error_rate() {
        let mut window = Window::new(Duration::from_secs(60));
        assert_eq!(window.stats(), TrafficStats::default());
        for ms in 1..=100 {
            window.record(Duration::from_millis(ms), ms > 90);
        }
        assert_eq!(
            window.stats(),
            TrafficStats {
                requests: 100,
                latency_p95_ms: 95,
                error_rate_bp: 1_000
            }
        );
        let mut short = Window::new(Duration::ZERO);
        short.record(Duration::from_millis(5), true);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(short.stats().requests, 0);
    }

    #[test]
    fn status_lines_are_read() {
        assert_eq!(
            status_of(b"HTTP/1.1 504 Gateway Timeout\r\n\r\n"),
            Some(504)
        );
        assert_eq!(status_of(b"garbage"), None);
    }
}
