//! Plain HTTP requests from synchronous test code, with reqwest's blocking client, each on a
//! thread of its own: that client runs a runtime of its own, which may not be started from
//! within an async test's runtime.

use std::time::Duration;

/// An answer: its status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// Sends `method` to `url` with `headers` and `body`, waiting at most `timeout` for the whole
/// answer; the error in words if there is none.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
    timeout: Duration,
) -> Result<Answer, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let client = reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .build()
                    .map_err(|e| e.to_string())?;
                let method =
                    reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
                let mut request = client.request(method, url);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                if let Some(body) = body {
                    request = request.body(body);
                }
                let answer = request.send().map_err(|e| e.to_string())?;
                let status = answer.status().as_u16();
                let body = answer.text().map_err(|e| e.to_string())?;
                Ok(Answer { status, body })
            })
            .join()
            .map_err(|_| "the request's thread panicked".to_owned())?
    })
}

/// POSTs `body` as JSON to `url` with `headers`: the answer, or a panic saying why there is
/// none.
pub fn post_json(url: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Answer {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    send(
        "POST",
        url,
        &all,
        Some(body.to_string()),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}
