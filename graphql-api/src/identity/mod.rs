//! Who a request is. Three kinds of credential, each presented as `Authorization: Bearer`:
//!
//! - an **API key** (`chaos_` and 64 hex digits), for scripts and pipelines
//!   ([`command_lambdas::api_keys`]);
//! - an access token of the **embedded identity provider** ([`local`]), for people signed in
//!   with a password;
//! - an ID or access token of the **Cognito user pool** the server is told to trust
//!   ([`cognito`]), in the AWS deployment.
//!
//! A token is routed by its (not yet trusted) `iss` to the one verifier of that issuer, which
//! then checks everything with its own fixed algorithm: HS256 for the embedded provider,
//! RS256 for Cognito. A token of any other issuer, or signed with any other algorithm
//! (`none` included), is refused.

pub mod cognito;
pub mod first_admin;
pub mod local;
pub mod password;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use command_lambdas::api_keys;
use domain::platform::Concern;
use domain::provenance::Actor;
use jsonwebtoken::errors::ErrorKind;

use cognito::{Cognito, CognitoError};
use local::{AuthError, LocalIssuer};

use crate::backend::Backend;

/// The actor id of an embedded user.
pub fn user_actor(username: &str) -> String {
    format!("user:{username}")
}

/// Who a credential says the caller is.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// An authenticated actor; `session` is the embedded sign-in session, when that is how.
    Actor {
        /// Who, with which role.
        actor: Actor,
        /// The embedded session the token belongs to.
        session: Option<String>,
    },
    /// The credential authenticates no one: why.
    Refused(String),
}

/// Why a credential could not be checked at all (the caller is not to blame).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The log could not be read.
    #[error("the platform cannot be read: {0}")]
    Platform(String),
    /// The identity store failed.
    #[error(transparent)]
    Local(AuthError),
    /// Cognito's keys could not be fetched.
    #[error(transparent)]
    Cognito(CognitoError),
}

/// Every verifier the server trusts.
#[derive(Debug, Clone)]
pub struct Authenticator {
    /// The embedded identity provider (none on AWS, where people sign in with Cognito).
    pub local: Option<LocalIssuer>,
    /// The Cognito user pool, when one is trusted.
    pub cognito: Option<Arc<Cognito>>,
    /// The one-time code of a store with no users yet (embedded only).
    pub first_admin: Option<Arc<first_admin::FirstAdmin>>,
}

/// Words for a token refused by the JWT library.
pub(crate) fn describe(e: &jsonwebtoken::errors::Error) -> String {
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::InvalidIssuer => "the token's issuer is not trusted".to_owned(),
        ErrorKind::InvalidAudience => "the token is meant for another audience".to_owned(),
        ErrorKind::InvalidAlgorithm => {
            "the token is signed with an algorithm its issuer does not use".to_owned()
        }
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "the token is malformed".to_owned(),
        _ => format!("the token is refused: {e}"),
    }
}

/// The `iss` a token claims, read without trusting it (to pick its verifier), and its `alg`.
fn claimed_issuer(token: &str) -> Result<String, String> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is malformed: a JWT has three parts".to_owned());
    };
    let json = |part: &str| -> Option<serde_json::Value> {
        URL_SAFE_NO_PAD
            .decode(part)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    };
    let header = json(header).ok_or("the token is malformed: its header is not JSON")?;
    let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
    if !matches!(alg, "HS256" | "RS256") {
        return Err(format!(
            "the token is signed {alg:?}; only HS256 (this server's own) and RS256 (Cognito) are accepted"
        ));
    }
    let payload = json(payload).ok_or("the token is malformed: its claims are not JSON")?;
    payload
        .get("iss")
        .and_then(|iss| iss.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "the token has no issuer (`iss`)".to_owned())
}

impl Authenticator {
    /// Who `credential` (the bearer text) authenticates.
    pub async fn identify(
        &self,
        backend: &dyn Backend,
        credential: &str,
    ) -> Result<Verdict, IdentityError> {
        if credential.starts_with(api_keys::PREFIX) {
            if !api_keys::looks_like_secret(credential) {
                return Ok(Verdict::Refused(
                    "the API key is malformed: it is `chaos_` and 64 hex digits".to_owned(),
                ));
            }
            let platform = backend
                .platform(&[Concern::ApiKeys])
                .await
                .map_err(IdentityError::Platform)?;
            return Ok(match api_keys::holder(&platform, credential) {
                Some(actor) => Verdict::Actor {
                    actor,
                    session: None,
                },
                None => Verdict::Refused("the API key is unknown or revoked".to_owned()),
            });
        }
        let issuer = match claimed_issuer(credential) {
            Ok(issuer) => issuer,
            Err(why) => return Ok(Verdict::Refused(why)),
        };
        if let Some(local) = self.local.as_ref().filter(|_| issuer == local::ISSUER) {
            let claims = match local.verify(credential).await {
                Ok(claims) => claims,
                Err(AuthError::Refused(why)) => return Ok(Verdict::Refused(why)),
                Err(e) => return Err(IdentityError::Local(e)),
            };
            let platform = backend
                .platform(&[Concern::Users])
                .await
                .map_err(IdentityError::Platform)?;
            return Ok(match platform.user(&claims.sub) {
                Some(user) => Verdict::Actor {
                    actor: Actor {
                        id: user_actor(&claims.sub),
                        role: user.role,
                    },
                    session: Some(claims.sid),
                },
                None => Verdict::Refused(format!("user {} no longer exists", claims.sub)),
            });
        }
        if let Some(cognito) = self.cognito.as_ref().filter(|c| c.issuer() == issuer) {
            return match cognito.verify(credential).await {
                Ok(actor) => Ok(Verdict::Actor {
                    actor,
                    session: None,
                }),
                Err(CognitoError::Refused(why)) => Ok(Verdict::Refused(why)),
                Err(e) => Err(IdentityError::Cognito(e)),
            };
        }
        Ok(Verdict::Refused(format!(
            "the token's issuer {issuer:?} is not trusted"
        )))
    }
}
