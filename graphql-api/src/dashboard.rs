//! The web dashboard as `chaos serve` serves it: the built `web` crate (an `index.html`, and
//! content-hashed JavaScript, wasm and CSS under `assets/`, written by `cargo xtask run`).
//!
//! Every page of the app is the same `index.html`, which is never cached; the assets are
//! immutable (a new build has new names), sent gzipped to browsers that accept it when the
//! build wrote a gzipped copy beside them. Every response carries a Content-Security-Policy that
//! allows scripts only from this origin (and the compilation of its wasm), no inline script or
//! style, connections only to this origin (its GraphQL endpoint and WebSocket) and, when the
//! server trusts a Cognito user pool, to the Cognito endpoint people sign in through, and no
//! framing.
//! Where the build is found: `CHAOS_DASHBOARD_DIR`, or `dashboard/` beside the directory of the
//! `chaos` executable (cargo's target directory, where `cargo xtask` builds it). Without a
//! build the API still runs and the pages answer 503 saying how to build it.
//!
//! This module only serves files; it never reads anything outside the build directory.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The environment variable naming the directory of the built dashboard.
pub const DIR_ENV: &str = "CHAOS_DASHBOARD_DIR";

/// The app's own routes: each answers with `index.html`, and the app shows the page.
pub const PAGES: [&str; 8] = [
    "/",
    "/login",
    "/experiments",
    "/experiments/new",
    "/experiments/{id}",
    "/results",
    "/audit",
    "/settings",
];

/// Where the built dashboard is.
#[derive(Debug, Clone)]
pub struct Dashboard {
    dir: PathBuf,
    /// Origins besides this one the pages may call (a Cognito endpoint to sign in to).
    connect: Vec<String>,
}

impl Dashboard {
    /// The dashboard built into `dir` (it may not be built yet).
    pub fn at(dir: impl Into<PathBuf>) -> Dashboard {
        Dashboard {
            dir: dir.into(),
            connect: Vec::new(),
        }
    }

    /// The same dashboard, its pages also allowed to call `origin` (`https://host[:port]`).
    pub fn connecting_to(mut self, origin: String) -> Dashboard {
        self.connect.push(origin);
        self
    }

    /// The dashboard named by `CHAOS_DASHBOARD_DIR`, or else the one beside the `chaos`
    /// executable's directory (`target/dashboard` for `target/release/chaos`).
    pub fn located() -> Dashboard {
        if let Some(dir) = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
            return Dashboard::at(dir);
        }
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("dashboard")));
        Dashboard::at(beside.unwrap_or_else(|| PathBuf::from("dashboard")))
    }

    /// The directory it is served from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The dashboard's routes: its pages and `/assets/...`.
pub fn routes(dashboard: Dashboard) -> Router {
    let mut router = Router::new();
    for page in PAGES {
        router = router.route(page, get(index));
    }
    router
        .route("/assets/{*file}", get(asset))
        .with_state(dashboard)
}

/// The Content-Security-Policy of every dashboard response. `'self'` covers same-origin
/// WebSockets in current browsers; the socket's own origin is named too, for those that
/// predate that rule (only when the `Host` header is a plain host name and port).
fn content_security_policy(headers: &HeaderMap, connect: &[String]) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; font-src 'self'; connect-src 'self'{}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        socket_sources(headers, connect)
    )
}

/// The `connect-src` sources beyond `'self'`: this host's WebSocket origins (only when the
/// `Host` header is a plain host name and port), then `connect`, each after a space.
pub(crate) fn socket_sources(headers: &HeaderMap, connect: &[String]) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
    let mut sockets = host.map_or_else(String::new, |h| format!(" ws://{h} wss://{h}"));
    for origin in connect {
        sockets.push(' ');
        sockets.push_str(origin);
    }
    sockets
}

/// A response with the dashboard's security headers.
fn secured(
    dashboard: &Dashboard,
    request: &HeaderMap,
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    body: impl Into<Body>,
) -> Response {
    let csp = content_security_policy(request, &dashboard.connect);
    with_policy(&csp, status, content_type, cache, body)
}

/// A response with `csp` as its Content-Security-Policy and the headers every page and file of
/// the dashboard (and of the GraphQL explorer) carries: its type and caching, no sniffing, no
/// framing, no referrer.
pub(crate) fn with_policy(
    csp: &str,
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    body: impl Into<Body>,
) -> Response {
    let mut response = (status, body.into()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(csp) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

const NOT_BUILT: &str = "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Chaos platform: dashboard not built</title></head>
<body><main><h1>The dashboard has not been built</h1>
<p>The API is running (<code>/graphql</code>, <code>/health</code>), but there is no built dashboard to serve
from <code>{dir}</code>.</p>
<p>Build and run everything with <code>cargo xtask run</code>, or point <code>CHAOS_DASHBOARD_DIR</code>
at a directory holding a built dashboard (its <code>index.html</code> and <code>assets/</code>).</p>
</main></body></html>
";

/// `index.html` for every page of the app; 503 with how to build it when it is not built.
async fn index(State(dashboard): State<Dashboard>, request: HeaderMap) -> Response {
    match tokio::fs::read(dashboard.dir.join("index.html")).await {
        Ok(html) => secured(
            &dashboard,
            &request,
            StatusCode::OK,
            "text/html; charset=utf-8",
            "no-cache",
            html,
        ),
        Err(e) => {
            tracing::warn!(dir = %dashboard.dir.display(), error = %e, "dashboard not built");
            let escaped = dashboard
                .dir
                .display()
                .to_string()
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            secured(
                &dashboard,
                &request,
                StatusCode::SERVICE_UNAVAILABLE,
                "text/html; charset=utf-8",
                "no-store",
                NOT_BUILT.replace("{dir}", &escaped),
            )
        }
    }
}

/// The content type of an asset, by its extension; `None` for what the dashboard never has.
fn content_type(file: &str) -> Option<&'static str> {
    let (_, extension) = file.rsplit_once('.')?;
    Some(match extension {
        "js" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

/// A file under `assets/`. Every segment of its path is a plain name (letters, digits, `.`,
/// `-`, `_`, not starting with a dot), so nothing outside the directory can be named. The
/// build names files by their content (and wasm-bindgen's snippets by their crate's hash), so
/// they are cached for a year.
async fn asset(
    State(dashboard): State<Dashboard>,
    UrlPath(file): UrlPath<String>,
    request: HeaderMap,
) -> Response {
    let plain = file.split('/').all(|segment| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    });
    let not_found = |request: &HeaderMap| {
        secured(
            &dashboard,
            request,
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no-store",
            "no such file",
        )
    };
    let Some(kind) = content_type(&file).filter(|_| plain) else {
        return not_found(&request);
    };
    let path = dashboard.dir.join("assets").join(&file);
    let accepts_gzip = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    // The build writes a gzipped copy beside each asset worth compressing.
    if accepts_gzip
        && let Ok(bytes) = tokio::fs::read(path.with_file_name(format!("{file}.gz"))).await
    {
        let mut response = secured(
            &dashboard,
            &request,
            StatusCode::OK,
            kind,
            "public, max-age=31536000, immutable",
            bytes,
        );
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        return response;
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut response = secured(
                &dashboard,
                &request,
                StatusCode::OK,
                kind,
                "public, max-age=31536000, immutable",
                bytes,
            );
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            response
        }
        Err(_) => not_found(&request),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn fetch(router: Router, uri: &str) -> (StatusCode, HeaderMap, String) {
        let response = router
            .oneshot(
                Request::get(uri)
                    .header(header::HOST, "127.0.0.1:8080")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn built() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("assets")).expect("assets");
        std::fs::write(dir.path().join("index.html"), "<div id=\"main\"></div>").expect("index");
        std::fs::write(dir.path().join("assets/web-0123.js"), "export {}").expect("js");
        std::fs::write(dir.path().join("assets/web-0123.wasm"), b"\0asm").expect("wasm");
        std::fs::create_dir_all(dir.path().join("assets/snippets/crate-01")).expect("snippets");
        std::fs::write(
            dir.path().join("assets/snippets/crate-01/inline0.js"),
            "export {}",
        )
        .expect("snippet");
        std::fs::write(dir.path().join("secret.css"), "no").expect("outside");
        dir
    }

    #[tokio::test]
    async fn every_page_is_the_app_with_a_strict_policy() {
        let dir = built();
        // Every page the app has (its own list), so a new page cannot be left unserved.
        for route in web::route::Route::every() {
            let uri = route.path();
            let uri = uri.as_str();
            let (status, headers, body) = fetch(routes(Dashboard::at(dir.path())), uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert_eq!(body, "<div id=\"main\"></div>");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            let csp = headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .expect("ascii");
            assert!(
                csp.contains("script-src 'self' 'wasm-unsafe-eval';"),
                "{csp}"
            );
            assert!(csp.contains("default-src 'self'"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(
                csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"),
                "{csp}"
            );
            assert!(!csp.contains("unsafe-inline"), "{csp}");
        }
    }

    #[tokio::test]
    async fn assets_have_their_type_and_are_immutable() {
        let dir = built();
        let (status, headers, _) =
            fetch(routes(Dashboard::at(dir.path())), "/assets/web-0123.wasm").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
        assert!(!headers.contains_key(header::CONTENT_ENCODING));
        let (status, headers, body) =
            fetch(routes(Dashboard::at(dir.path())), "/assets/web-0123.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(body, "export {}");
        let (status, headers, _) = fetch(
            routes(Dashboard::at(dir.path())),
            "/assets/snippets/crate-01/inline0.js",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn a_gzipped_copy_goes_to_clients_that_accept_it() {
        let dir = built();
        std::fs::write(dir.path().join("assets/web-0123.wasm.gz"), b"gz").expect("gz");
        let response = routes(Dashboard::at(dir.path()))
            .oneshot(
                Request::get("/assets/web-0123.wasm")
                    .header(header::ACCEPT_ENCODING, "gzip, deflate, br")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/wasm");
        assert_eq!(response.headers()[header::VARY], "accept-encoding");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], b"gz");
        // Others get the file as it is.
        let (_, headers, body) =
            fetch(routes(Dashboard::at(dir.path())), "/assets/web-0123.wasm").await;
        assert!(!headers.contains_key(header::CONTENT_ENCODING));
        assert_eq!(body.as_bytes(), b"\0asm");
    }

    #[tokio::test]
    async fn nothing_outside_the_assets_is_served() {
        let dir = built();
        for uri in [
            "/assets/..%2Fsecret.css",
            "/assets/%2E%2E%2Fsecret.css",
            "/assets/.hidden.js",
            "/assets/missing.js",
            "/assets/index.html",
            "/assets/snippets/../../secret.css",
            "/assets/snippets//x.js",
            "/assets/web-0123.wasm.gz",
        ] {
            let (status, headers, _) = fetch(routes(Dashboard::at(dir.path())), uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }

    #[tokio::test]
    async fn without_a_build_the_pages_say_how_to_build_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (status, headers, body) = fetch(routes(Dashboard::at(dir.path())), "/").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("cargo xtask run"), "{body}");
        assert!(body.contains("CHAOS_DASHBOARD_DIR"), "{body}");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
    }

    #[tokio::test]
    async fn the_pages_may_call_the_sign_in_endpoint_they_are_given_and_no_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dashboard = Dashboard::at(dir.path())
            .connecting_to("https://cognito-idp.eu-west-1.amazonaws.com".to_owned());
        let (_, headers, _) = fetch(routes(dashboard), "/").await;
        let csp = headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("text");
        let connect = csp
            .split(';')
            .find(|d| d.trim_start().starts_with("connect-src"))
            .expect("a connect-src");
        assert!(
            connect.ends_with(" https://cognito-idp.eu-west-1.amazonaws.com"),
            "{csp}"
        );
        assert!(!connect.contains('*'), "{csp}");
        let (_, headers, _) = fetch(routes(Dashboard::at(dir.path())), "/").await;
        let plain = headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("text");
        assert!(!plain.contains("cognito"), "{plain}");
    }

    #[test]
    fn a_host_that_is_not_a_plain_name_is_left_out_of_the_policy() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_static("evil.test; script-src *"),
        );
        let csp = content_security_policy(&headers, &[]);
        assert!(!csp.contains("evil"), "{csp}");
    }
}
