//! Passwords of the embedded identity provider: Argon2id (RFC 9106) with the argon2 crate's
//! defaults (19 MiB, 2 passes, 1 lane: OWASP's recommended minimum), a fresh random salt per
//! hash, kept as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). Hashing and
//! checking are CPU work of tens of milliseconds: callers run them on a blocking thread.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest password accepted, in characters.
pub const MIN_CHARS: usize = 12;
/// Longest password accepted, in bytes (bounds the work one request can cause).
pub const MAX_BYTES: usize = 1_024;

/// Why a password cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// It breaks the policy.
    #[error("the password {0}")]
    Weak(String),
    /// Hashing failed.
    #[error("the password could not be hashed: {0}")]
    Hash(String),
}

/// Checks the policy: at least [`MIN_CHARS`] characters, at most [`MAX_BYTES`] bytes, not
/// only whitespace.
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_CHARS {
        return Err(PasswordError::Weak(format!(
            "must have at least {MIN_CHARS} characters"
        )));
    }
    if password.len() > MAX_BYTES {
        return Err(PasswordError::Weak(format!(
            "must have at most {MAX_BYTES} bytes"
        )));
    }
    if password.trim().is_empty() {
        return Err(PasswordError::Weak(
            "must not be only whitespace".to_owned(),
        ));
    }
    Ok(())
}

/// The PHC string of `password` (after [`check_policy`]).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_policy(password)?;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PasswordError::Hash(format!("random source: {e}")))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `stored`. A malformed `stored` matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash no password is known for: checked against when the user is unknown, so that a
/// wrong name takes as long to refuse as a wrong password.
pub fn decoy() -> &'static str {
    static DECOY: LazyLock<String> = LazyLock::new(|| {
        let mut bytes = [0u8; 32];
        // Without randomness the decoy is still a valid hash; it only has to cost the same.
        let _ = getrandom::fill(&mut bytes);
        hash(&hex::encode(bytes)).unwrap_or_default()
    });
    &DECOY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let stored = hash("correct horse battery").expect("hash");
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterY", &stored));
        assert!(!verify("correct horse battery", "not a phc string"));
        // Salted: the same password hashes differently twice.
        assert_ne!(stored, hash("correct horse battery").expect("hash"));
        assert!(!verify("anything at all", decoy()));
    }

    #[test]
    fn the_policy_refuses_short_long_and_blank_passwords() {
        for bad in ["short", "            ", &"x".repeat(MAX_BYTES + 1)] {
            assert!(
                matches!(check_policy(bad), Err(PasswordError::Weak(_))),
                "{bad:?}"
            );
        }
        assert!(check_policy("twelve chars").is_ok());
    }
}
