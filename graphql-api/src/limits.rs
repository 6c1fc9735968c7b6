//! Rate limits: a token bucket per caller.
//!
//! Each caller (an authenticated actor, else the client's address) may send
//! `per_second` requests a second on average, in bursts of up to twice that; a request over
//! the limit is answered 429 with `Retry-After` and the code `RATE_LIMITED`, and costs the
//! server nothing more. Failed sign-ins have a stricter bucket of their own per source
//! address, whatever the user name: password guessing is slowed where it comes from, people
//! behind one address who sign in rightly are not, and no one can lock an account by failing
//! to sign in to it. Within one request, at most one password is
//! checked and one audit chain verified ([`RequestScope`]), so aliases multiply neither.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `per_second` on average, `burst` at once; 0 per second: no limit.
    pub fn new(per_second: f64, burst: f64) -> Self {
        RateLimiter {
            per_second,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the limit is off.
    pub fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }

    /// Takes a token for `key` at `now`: how long to wait when there is none.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.is_off() {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock is a bug elsewhere; limiting nothing beats refusing everyone.
            return Ok(());
        };
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let full_after = Duration::from_secs_f64(self.burst / self.per_second);
            buckets.retain(|_, b| now.saturating_duration_since(b.updated) < full_after);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

impl RateLimiter {
    /// Gives `key` back the token a request took (a sign-in that succeeded costs nothing:
    /// only failures are counted against their source).
    pub fn refund(&self, key: &str) {
        if let Ok(mut buckets) = self.buckets.lock()
            && let Some(bucket) = buckets.get_mut(key)
        {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }
}

/// The limits a server applies.
#[derive(Debug)]
pub struct Limits {
    /// Requests per caller.
    pub requests: RateLimiter,
    /// Failed sign-ins per source address.
    pub logins: RateLimiter,
    /// Whether webhooks may target non-public addresses (off unless the deployment allows
    /// them explicitly: see `domain::net`).
    pub private_webhook_targets: bool,
}

/// What one request may spend on its expensive fields, and where it comes from.
#[derive(Debug, Default)]
pub struct RequestScope {
    /// The client's address, when known.
    pub peer: Option<std::net::IpAddr>,
    password_checks: std::sync::atomic::AtomicU32,
    chain_checks: std::sync::atomic::AtomicU32,
}

impl RequestScope {
    /// The scope of a request from `peer`.
    pub fn from(peer: Option<std::net::IpAddr>) -> Self {
        RequestScope {
            peer,
            ..RequestScope::default()
        }
    }

    /// Takes the request's one password check (an Argon2 hash costs tens of milliseconds):
    /// false when it was taken.
    pub fn password_check(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.password_checks.fetch_add(1, Ordering::Relaxed) == 0
    }

    /// Takes the request's one audit chain check (it may read the whole log): false when it
    /// was taken.
    pub fn chain_check(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.chain_checks.fetch_add(1, Ordering::Relaxed) == 0
    }

    /// The key a sign-in from here is limited by.
    pub fn source(&self) -> String {
        self.peer
            .map_or_else(|| "unknown source".to_owned(), |peer| format!("ip:{peer}"))
    }
}

impl Limits {
    /// `per_second` requests per caller (0: none), bursts of twice that; 10 failed sign-ins
    /// per source address a minute, in bursts of 5.
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        Limits {
            requests: RateLimiter::new(rate, rate * 2.0),
            logins: RateLimiter::new(10.0 / 60.0, 5.0),
            private_webhook_targets: false,
        }
    }

    /// These limits, with webhooks to non-public addresses allowed or not.
    #[must_use]
    pub fn with_private_webhook_targets(mut self, allowed: bool) -> Self {
        self.private_webhook_targets = allowed;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(DEFAULT_PER_SECOND)
    }
}

/// Requests per second per caller, by default.
pub const DEFAULT_PER_SECOND: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_burst_then_the_rate_and_keys_are_apart() {
        let limiter = RateLimiter::new(10.0, 20.0);
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(limiter.take("a", t0).is_ok());
        }
        let wait = limiter.take("a", t0).expect_err("over the burst");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Another caller is not held up.
        assert!(limiter.take("b", t0).is_ok());
        // A tenth of a second later, one more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.take("a", t1).is_ok());
        assert!(limiter.take("a", t1).is_err());
        // Off: anything goes.
        let off = RateLimiter::new(0.0, 0.0);
        for _ in 0..1_000 {
            assert!(off.take("a", t0).is_ok());
        }
    }
}
