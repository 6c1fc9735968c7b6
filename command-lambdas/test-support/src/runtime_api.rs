//! A stand-in for the Lambda Runtime API on 127.0.0.1, to measure a Lambda binary's init as
//! Lambda counts it: from starting the process to its first request for an invocation
//! (`GET /2018-06-01/runtime/invocation/next`). The process gets the environment Lambda gives
//! (function name, memory, log group, region, credentials) and its configuration, with every
//! AWS endpoint on a closed port of 127.0.0.1, the instance metadata service off and no
//! profile files: its init makes no call, and nothing it might call leaves the machine.

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest an init may take before it counts as failed.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What Lambda sets in every function's environment, for a function called `name`.
fn lambda_environment(name: &str, api: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api),
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_SESSION_TOKEN", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("_HANDLER", "bootstrap"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Starts `binary` as Lambda would, with `config` added to its environment, and measures the
/// time until it asks the runtime API for its first invocation; the process is then killed.
/// The error says why no such request came (the process ended, with what it wrote, or the
/// [`INIT_TIMEOUT`] passed).
pub fn init_time(binary: &Path, config: &[(&str, &str)]) -> Result<Duration, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let api = listener
        .local_addr()
        .map_err(|e| format!("address: {e}"))?
        .to_string();
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("nonblocking: {e}"))?;
    let name = binary.file_name().map_or_else(
        || "function".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .envs(lambda_environment(&name, &api))
        .envs(config.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {}: {e}", binary.display()))?;
    let outcome = loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let elapsed = started.elapsed();
                let mut line = String::new();
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = BufReader::new(stream).read_line(&mut line);
                break if line.starts_with("GET /2018-06-01/runtime/invocation/next ") {
                    Ok(elapsed)
                } else {
                    Err(format!(
                        "the first request was not for an invocation: {line:?}"
                    ))
                };
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => break Err(format!("accept: {e}")),
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut said = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut said);
            }
            break Err(format!(
                "it ended ({status}) before asking for an invocation: {said}"
            ));
        }
        if started.elapsed() > INIT_TIMEOUT {
            break Err(format!(
                "no request for an invocation within {INIT_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_micros(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// A Lambda binary to measure: its name, where it is, and its configuration.
pub type Function<'a> = (&'a str, &'a Path, &'a [(&'a str, &'a str)]);

/// Measures the init of each of `functions` `runs` times (after one run that warms the page
/// cache) and prints, per binary, its size and the median, 95th percentile and slowest init.
/// Panics if an init fails: a benchmark of a binary that cannot start measures nothing.
pub fn report(functions: &[Function<'_>], runs: usize) {
    println!(
        "{:<22} {:>9} {:>10} {:>10} {:>10}",
        "binary", "size MiB", "init p50", "init p95", "init max"
    );
    for (name, binary, config) in functions {
        let size = std::fs::metadata(binary).map_or(0, |m| m.len());
        if let Err(e) = init_time(binary, config) {
            panic!("{name}: {e}");
        }
        let mut times: Vec<Duration> = (0..runs.max(1))
            .map(|_| init_time(binary, config).unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect();
        times.sort();
        let at = |share: f64| {
            // Indexes stay far below 2^52, where the conversions would round.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let index = ((times.len() - 1) as f64 * share).round() as usize;
            times[index].as_secs_f64() * 1_000.0
        };
        #[allow(clippy::cast_precision_loss)]
        let mib = size as f64 / (1024.0 * 1024.0);
        println!(
            "{name:<22} {mib:>9.1} {:>8.1}ms {:>8.1}ms {:>8.1}ms",
            at(0.5),
            at(0.95),
            at(1.0)
        );
    }
}
