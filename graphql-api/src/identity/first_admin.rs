//! The first administrator of a store with no users, as Grafana and Jenkins do it: the server
//! draws a one-time code, prints it in its console as a link to the dashboard, and whoever
//! holds the console (and so the machine) creates the first administrator with it. The code
//! lives in this process only: it is never stored, works once, and goes with the server.

use tokio::sync::{Mutex, MutexGuard};

/// The one-time code of a server waiting for its first administrator.
#[derive(Debug)]
pub struct FirstAdmin {
    code: Mutex<Option<String>>,
}

/// Why a code could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("random source: {0}")]
pub struct DrawError(String);

impl FirstAdmin {
    /// A fresh code (128 random bits, hex), held until redeemed.
    pub fn draw() -> Result<(Self, String), DrawError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| DrawError(e.to_string()))?;
        let code = hex::encode(bytes);
        Ok((
            FirstAdmin {
                code: Mutex::new(Some(code.clone())),
            },
            code,
        ))
    }

    /// Whether the code is still to be used.
    pub async fn pending(&self) -> bool {
        self.code.lock().await.is_some()
    }

    /// Holds the code while one set-up is carried out: a second set-up waits, and then finds
    /// the code used (or still there, if the first failed).
    pub async fn hold(&self) -> Held<'_> {
        Held(self.code.lock().await)
    }
}

/// The code, held by one set-up.
#[derive(Debug)]
pub struct Held<'a>(MutexGuard<'a, Option<String>>);

impl Held<'_> {
    /// Whether `code` is the pending code (compared in constant time).
    pub fn admits(&self, code: &str) -> bool {
        self.0
            .as_deref()
            .is_some_and(|pending| constant_time_eq(pending.as_bytes(), code.as_bytes()))
    }

    /// Uses the code up: the set-up it admitted succeeded.
    pub fn redeem(mut self) {
        self.0.take();
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_code_admits_once_and_only_itself() {
        let (first, code) = FirstAdmin::draw().expect("a code");
        assert_eq!(code.len(), 32);
        assert!(first.pending().await);
        let held = first.hold().await;
        assert!(!held.admits(""));
        assert!(!held.admits(&code[..31]));
        assert!(!held.admits(&format!("{code}0")));
        assert!(held.admits(&code));
        held.redeem();
        assert!(!first.pending().await);
        assert!(!first.hold().await.admits(&code));
        let (_, other) = FirstAdmin::draw().expect("a code");
        assert_ne!(code, other);
    }
}
