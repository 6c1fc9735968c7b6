//! API keys: how scripts and pipelines authenticate.
//!
//! A key's secret is `chaos_` and 64 hex digits (256 bits from the operating system's random
//! source), shown once, when it is issued. The log keeps only the secret's SHA-256, in the
//! platform's `ApiKeyCreated` event, with who issued it; a presented secret is hashed and
//! looked up among the keys in force on the platform stream, which is read from the log
//! itself, so a revocation holds from the next request on. Its holder acts as `key:<id>` with
//! the key's role, and that is the actor every command it sends is recorded with.

use crate::store::Repository;
use domain::provenance::{Actor, CommandContext, Role};
use sha2::{Digest, Sha256};

use crate::service::{ExperimentService, ServiceError};
use crate::store::CommandOutcome;

/// What every secret starts with (so a leaked one is recognizable, e.g. by secret scanners).
pub const PREFIX: &str = "chaos_";

/// The actor id of a key's holder.
pub fn actor_id(key_id: &str) -> String {
    format!("key:{key_id}")
}

/// Why a key could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("no secret could be drawn: the random source failed: {0}")]
    Random(String),
    /// The platform refused or the store failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// A key just issued, with its secret: the only time the secret is seen.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Its id.
    pub id: String,
    /// The secret to present (`Authorization: Bearer <secret>`).
    pub secret: String,
    /// What was recorded.
    pub outcome: CommandOutcome,
}

/// A new secret.
pub fn new_secret() -> Result<String, KeyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(format!("{PREFIX}{}", hex::encode(bytes)))
}

/// The SHA-256 of a secret, as the log keeps it.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `text` has the shape of a secret: a malformed credential is told apart from an
/// unknown or revoked one.
pub fn looks_like_secret(text: &str) -> bool {
    text.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 64
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Issues a key `id` for `name` with `role`, as the actor of `context`.
pub async fn issue<R: Repository>(
    service: &ExperimentService<R>,
    id: &str,
    name: &str,
    role: Role,
    context: &CommandContext,
) -> Result<Issued, KeyError> {
    let secret = new_secret()?;
    let outcome = service
        .issue_api_key(id, name, role, &digest(&secret), context)
        .await?;
    Ok(Issued {
        id: id.to_owned(),
        secret,
        outcome,
    })
}

/// The actor a presented secret authenticates: none for an unknown or revoked key.
pub async fn authenticate<R: Repository>(
    service: &ExperimentService<R>,
    secret: &str,
) -> Result<Option<Actor>, ServiceError> {
    if !looks_like_secret(secret) {
        return Ok(None);
    }
    let platform = service
        .platform_of(&[domain::platform::Concern::ApiKeys])
        .await?
        .aggregate;
    Ok(holder(&platform, secret))
}

/// The actor a presented secret authenticates on `platform` (its state read from the log):
/// none for an unknown or revoked key.
pub fn holder(platform: &domain::platform::Platform, secret: &str) -> Option<Actor> {
    if !looks_like_secret(secret) {
        return None;
    }
    platform
        .api_key_by_hash(&digest(secret))
        .map(|(id, key)| Actor {
            id: actor_id(id.as_str()),
            role: key.role,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_well_formed_and_hashed_the_same_way_twice() {
        let a = new_secret().expect("secret");
        let b = new_secret().expect("secret");
        assert_ne!(a, b);
        assert!(looks_like_secret(&a), "{a}");
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(digest(&a).len(), 64);
        for bad in ["", "chaos_", "chaos_xyz", &a[1..], &a.to_uppercase()] {
            assert!(!looks_like_secret(bad), "{bad}");
        }
    }
}
