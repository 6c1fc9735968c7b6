//! How long a live page waits before it connects again after its socket dropped: doubling
//! from half a second up to 15 seconds, with some spread so that many tabs do not all come
//! back at once after a server restart.

/// The first wait, in milliseconds.
pub const FIRST_MS: u32 = 500;
/// The longest wait, in milliseconds.
pub const MAX_MS: u32 = 15_000;

/// The wait before attempt `attempt` (0 for the first reconnection), given `jitter` in
/// `[0, 1)`: between three quarters and all of the doubled delay.
pub fn delay_ms(attempt: u32, jitter: f64) -> u32 {
    let doubled = FIRST_MS.saturating_mul(1 << attempt.min(10)).min(MAX_MS);
    let jitter = jitter.clamp(0.0, 1.0);
    // At most 15,000, so the product is exact and in range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let spread = (f64::from(doubled / 4) * jitter) as u32;
    doubled - doubled / 4 + spread
}

/// How long to wait before refreshing an access token that expires at `expires_ms` (both
/// times in milliseconds since the epoch): a minute early, or half its remaining life if that
/// is shorter, and never less than a second.
pub fn refresh_in_ms(now_ms: f64, expires_ms: f64) -> f64 {
    let left = expires_ms - now_ms;
    (left - 60_000.0).max(left / 2.0).max(1_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_stop_at_the_cap() {
        assert_eq!(delay_ms(0, 1.0), 500);
        assert_eq!(delay_ms(1, 1.0), 1_000);
        assert_eq!(delay_ms(2, 1.0), 2_000);
        assert_eq!(delay_ms(5, 1.0), 15_000);
        assert_eq!(delay_ms(u32::MAX, 1.0), 15_000);
        assert_eq!(delay_ms(0, 0.0), 375);
        assert_eq!(delay_ms(30, 0.0), 11_250);
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let now = 1_000_000.0;
        assert_eq!(refresh_in_ms(now, now + 15.0 * 60_000.0), 14.0 * 60_000.0);
        assert_eq!(refresh_in_ms(now, now + 60_000.0), 30_000.0);
        assert_eq!(refresh_in_ms(now, now - 5.0), 1_000.0);
    }
}
