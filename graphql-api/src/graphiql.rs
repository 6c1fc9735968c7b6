//! GraphiQL, the GraphQL explorer, served from the binary at `GET /graphql`: its scripts and
//! styles (GraphiQL and React, at the versions `graphql-api/graphiql/README.md` names) are
//! compiled in, so it loads offline and inside a private network, and nothing is fetched from a
//! CDN. The page names each file with its Subresource Integrity hash, computed here from the
//! very bytes served, and every response carries the dashboard's security headers: a
//! Content-Security-Policy that allows scripts and styles from this origin only (no inline
//! code), connections to this origin only, and no framing.

use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest, Sha384};

/// A file of the explorer: its name under `/graphiql/`, its type and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 6] = [
    Asset {
        name: "graphiql.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../graphiql/graphiql.min.css"),
    },
    Asset {
        name: "page.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../graphiql/page.css"),
    },
    Asset {
        name: "react.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../graphiql/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../graphiql/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../graphiql/graphiql.min.js"),
    },
    Asset {
        name: "init.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../graphiql/init.js"),
    },
];

/// `sha384-<base64>`, as an `integrity` attribute names a file.
fn integrity(bytes: &[u8]) -> String {
    let digest = Sha384::digest(bytes);
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The page: the styles, then the scripts in the order they depend on one another, each with
/// its integrity hash.
pub fn page() -> String {
    let mut head = String::new();
    let mut body = String::new();
    for asset in &ASSETS {
        let (name, hash) = (asset.name, integrity(asset.bytes));
        if asset.content_type.starts_with("text/css") {
            head.push_str(&format!(
                "<link rel=\"stylesheet\" href=\"/graphiql/{name}\" integrity=\"{hash}\">\n"
            ));
        } else {
            body.push_str(&format!(
                "<script src=\"/graphiql/{name}\" integrity=\"{hash}\"></script>\n"
            ));
        }
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n\
         <link rel=\"icon\" href=\"data:,\">\n\
         <title>Chaos platform: GraphQL explorer</title>\n{head}</head>\n<body>\n\
         <div id=\"graphiql\">Loading the GraphQL explorer…</div>\n{body}</body>\n</html>\n"
    )
}

/// The Content-Security-Policy of the explorer: this origin's scripts, styles and sockets only.
/// GraphiQL's stylesheet carries its fonts as `data:` URLs.
fn content_security_policy(request: &HeaderMap) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         font-src 'self' data:; connect-src 'self'{}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
        crate::dashboard::socket_sources(request, &[])
    )
}

fn secured(
    request: &HeaderMap,
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response {
    // Never cached: a new binary may serve new files under the same names.
    crate::dashboard::with_policy(
        &content_security_policy(request),
        status,
        content_type,
        "no-cache",
        body,
    )
}

/// `GET /graphql` without a WebSocket upgrade: the explorer's page.
pub fn index(request: &HeaderMap) -> Response {
    secured(request, StatusCode::OK, "text/html; charset=utf-8", page())
}

/// `GET /graphiql/{file}`: one of the explorer's files, or 404.
pub async fn asset(UrlPath(file): UrlPath<String>, request: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(asset) => secured(&request, StatusCode::OK, asset.content_type, asset.bytes),
        None => secured(
            &request,
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no such file",
        ),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, header};

    use super::*;

    #[test]
    fn the_page_names_every_file_with_the_hash_of_the_bytes_served() {
        let page = page();
        for asset in &ASSETS {
            let reference = format!(
                "/graphiql/{}\" integrity=\"{}\"",
                asset.name,
                integrity(asset.bytes)
            );
            assert!(page.contains(&reference), "{reference} in {page}");
        }
        // Nothing from elsewhere, and nothing inline.
        assert!(
            !page.contains("https:") && !page.contains("http:"),
            "{page}"
        );
        assert!(
            !page.contains("<style") && !page.contains("<script>"),
            "{page}"
        );
    }

    #[test]
    fn the_policy_allows_this_origin_only() {
        let mut request = HeaderMap::new();
        request.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        let csp = content_security_policy(&request);
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }
}
