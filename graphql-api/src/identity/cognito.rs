//! Tokens of an Amazon Cognito user pool (the AWS deployment's identity provider).
//!
//! A token is accepted only when all of this holds (Cognito's own verification steps):
//! - it is signed RS256 (no other algorithm, and never `none`) by a key of the pool's JWKS,
//!   found by the token's `kid`; the JWKS is fetched on first use and again when a `kid` is
//!   not in it (keys rotate), at most once per [`REFETCH_AFTER`];
//! - `iss` is the pool (`https://cognito-idp.<region>.amazonaws.com/<pool id>`);
//! - it has not expired (30 s of clock skew allowed);
//! - `token_use` is `access` with `client_id` the app client, or `id` with `aud` the app
//!   client;
//! - its `cognito:groups` name a role (ADMIN, OPERATOR, VIEWER; the highest counts).
//!
//! The holder acts as `cognito:<username>`.

use std::time::{Duration, Instant};

use domain::provenance::{Actor, Role};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

/// Least time between two fetches of the JWKS.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// Clock skew allowed on `exp`.
pub const LEEWAY_SECS: u64 = 30;

/// Which pool and app client to trust.
#[derive(Debug, Clone)]
pub struct CognitoConfig {
    /// The user pool id (`eu-west-1_AbCdEf123`).
    pub user_pool_id: String,
    /// Its region.
    pub region: String,
    /// The app client whose tokens are accepted.
    pub client_id: String,
    /// Where its JWKS is served (default: the issuer's `/.well-known/jwks.json`).
    pub jwks_url: Option<String>,
    /// Where browsers send their sign-in requests (default: the region's Cognito endpoint).
    pub sign_in_endpoint: Option<String>,
}

impl CognitoConfig {
    /// The pool's issuer.
    pub fn issuer(&self) -> String {
        format!(
            "https://cognito-idp.{}.amazonaws.com/{}",
            self.region, self.user_pool_id
        )
    }
}

/// What a browser needs to sign in to the pool itself (Cognito's `InitiateAuth`): none of it
/// is secret, the app client has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoSignIn {
    /// The Cognito API endpoint (`https://cognito-idp.<region>.amazonaws.com/`).
    pub endpoint: String,
    /// The pool's region.
    pub region: String,
    /// The pool.
    pub user_pool_id: String,
    /// The app client.
    pub client_id: String,
}

impl CognitoSignIn {
    /// The endpoint's origin (`scheme://host[:port]`), for a Content-Security-Policy.
    pub fn origin(&self) -> String {
        match reqwest::Url::parse(&self.endpoint) {
            Ok(url) => url.origin().ascii_serialization(),
            Err(_) => self.endpoint.clone(),
        }
    }
}

/// Why a Cognito token was refused, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CognitoError {
    /// The token authenticates no one: why.
    #[error("{0}")]
    Refused(String),
    /// The JWKS could not be fetched or read.
    #[error("the user pool's keys cannot be fetched from {url}: {why}")]
    Jwks {
        /// From where.
        url: String,
        /// Why.
        why: String,
    },
    /// The sign-in endpoint is not an absolute http(s) URL.
    #[error("the Cognito sign-in endpoint {0:?} is not an http:// or https:// URL")]
    SignInEndpoint(String),
}

struct Keys {
    set: JwkSet,
    fetched: Option<Instant>,
}

/// The verifier of one pool's tokens.
pub struct Cognito {
    issuer: String,
    client_id: String,
    jwks_url: String,
    sign_in: CognitoSignIn,
    http: reqwest::Client,
    keys: Mutex<Keys>,
}

impl std::fmt::Debug for Cognito {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cognito")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    token_use: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    aud: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default, rename = "cognito:username")]
    cognito_username: Option<String>,
    #[serde(default, rename = "cognito:groups")]
    groups: Vec<String>,
}

impl Cognito {
    /// A verifier for `config`'s pool and client.
    pub fn new(config: &CognitoConfig) -> Result<Self, CognitoError> {
        let issuer = config.issuer();
        let jwks_url = config
            .jwks_url
            .clone()
            .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| CognitoError::Jwks {
                url: jwks_url.clone(),
                why: e.to_string(),
            })?;
        let endpoint = config
            .sign_in_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://cognito-idp.{}.amazonaws.com/", config.region));
        let absolute = reqwest::Url::parse(&endpoint)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host());
        if !absolute {
            return Err(CognitoError::SignInEndpoint(endpoint));
        }
        Ok(Cognito {
            issuer,
            client_id: config.client_id.clone(),
            jwks_url,
            sign_in: CognitoSignIn {
                endpoint,
                region: config.region.clone(),
                user_pool_id: config.user_pool_id.clone(),
                client_id: config.client_id.clone(),
            },
            http,
            keys: Mutex::new(Keys {
                set: JwkSet { keys: Vec::new() },
                fetched: None,
            }),
        })
    }

    /// What a browser needs to sign in to the pool.
    pub fn sign_in(&self) -> &CognitoSignIn {
        &self.sign_in
    }

    /// The issuer whose tokens this verifies.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn fetch(&self) -> Result<JwkSet, CognitoError> {
        let jwks_error = |why: String| CognitoError::Jwks {
            url: self.jwks_url.clone(),
            why,
        };
        let response = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .map_err(|e| jwks_error(e.to_string()))?;
        if !response.status().is_success() {
            return Err(jwks_error(format!("HTTP {}", response.status())));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| jwks_error(e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| jwks_error(format!("not a JWKS: {e}")))
    }

    /// The key `kid` names, fetching the JWKS when it is not known yet.
    async fn key(&self, kid: &str) -> Result<DecodingKey, CognitoError> {
        let mut keys = self.keys.lock().await;
        let stale = keys.fetched.is_none_or(|at| at.elapsed() >= REFETCH_AFTER);
        if keys.set.find(kid).is_none() && stale {
            let set = self.fetch().await?;
            keys.set = set;
            keys.fetched = Some(Instant::now());
        }
        let jwk = keys.set.find(kid).ok_or_else(|| {
            CognitoError::Refused(format!("the token's key {kid:?} is not the user pool's"))
        })?;
        let rsa = matches!(jwk.algorithm, AlgorithmParameters::RSA(_));
        let alg_ok = jwk
            .common
            .key_algorithm
            .is_none_or(|alg| alg == KeyAlgorithm::RS256);
        if !(rsa && alg_ok) {
            return Err(CognitoError::Refused(format!(
                "the user pool's key {kid:?} is not an RS256 key"
            )));
        }
        DecodingKey::from_jwk(jwk)
            .map_err(|e| CognitoError::Refused(format!("the user pool's key {kid:?}: {e}")))
    }

    /// The actor a token of this pool authenticates.
    pub async fn verify(&self, token: &str) -> Result<Actor, CognitoError> {
        let refused = |why: String| CognitoError::Refused(why);
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| refused(super::describe(&e)))?;
        if header.alg != Algorithm::RS256 {
            return Err(refused(format!(
                "the token is signed {:?}; the user pool's tokens are RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| refused("the token names no key (`kid`)".to_owned()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[&self.issuer]);
        validation.validate_aud = false; // access tokens have none; checked below per token_use
        validation.set_required_spec_claims(&["exp", "iss"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| refused(super::describe(&e)))?
            .claims;
        let (client, name) = match claims.token_use.as_str() {
            "access" => (claims.client_id, claims.username),
            "id" => (claims.aud, claims.cognito_username),
            other => {
                return Err(refused(format!(
                    "the token's token_use is {other:?}, not access or id"
                )));
            }
        };
        if client.as_deref() != Some(self.client_id.as_str()) {
            return Err(refused(
                "the token was issued to another app client".to_owned(),
            ));
        }
        let name = name.ok_or_else(|| refused("the token names no user".to_owned()))?;
        let role = claims
            .groups
            .iter()
            .filter_map(|group| Role::parse(group))
            .max()
            .ok_or_else(|| {
                refused(format!(
                    "{name} is in no role group (ADMIN, OPERATOR or VIEWER)"
                ))
            })?;
        Ok(Actor {
            id: format!("cognito:{name}"),
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sign_in_endpoint: Option<&str>) -> CognitoConfig {
        CognitoConfig {
            user_pool_id: "eu-west-1_AbCdEf123".to_owned(),
            region: "eu-west-1".to_owned(),
            client_id: "dashboard".to_owned(),
            jwks_url: None,
            sign_in_endpoint: sign_in_endpoint.map(str::to_owned),
        }
    }

    #[test]
    fn browsers_sign_in_at_the_regions_endpoint_unless_told_otherwise() {
        let cognito = Cognito::new(&config(None)).expect("a verifier");
        let sign_in = cognito.sign_in();
        assert_eq!(
            sign_in.endpoint,
            "https://cognito-idp.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            sign_in.origin(),
            "https://cognito-idp.eu-west-1.amazonaws.com"
        );
        assert_eq!(sign_in.client_id, "dashboard");
        let local = Cognito::new(&config(Some("http://127.0.0.1:5000/"))).expect("a verifier");
        assert_eq!(local.sign_in().origin(), "http://127.0.0.1:5000");
    }

    #[test]
    fn a_sign_in_endpoint_that_is_not_an_http_url_is_refused_by_name() {
        for bad in [
            "cognito-idp.eu-west-1.amazonaws.com",
            "ftp://host/",
            "https://",
        ] {
            let error = Cognito::new(&config(Some(bad))).expect_err(bad);
            assert!(
                matches!(&error, CognitoError::SignInEndpoint(named) if named == bad),
                "{error}"
            );
            assert!(error.to_string().contains("not an http:// or https:// URL"));
        }
    }
}
