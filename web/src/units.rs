//! Numbers as the pages show them, with one decimal, computed in integers: every figure the
//! dashboard shows is a ratio of integers it already has (milliseconds, basis points), so it
//! is rounded exactly, the same way on every page, without going through floating point.

/// `numerator / denominator` with one decimal, rounded half away from zero (`"12.3"`); `"–"`
/// when `denominator` is zero.
pub fn one_decimal(numerator: i64, denominator: i64) -> String {
    if denominator == 0 {
        return "–".to_owned();
    }
    let negative = (numerator < 0) != (denominator < 0);
    let (n, d) = (
        i128::from(numerator).abs() * 10,
        i128::from(denominator).abs(),
    );
    let tenths = (n + d / 2) / d;
    let sign = if negative && tenths != 0 { "-" } else { "" };
    format!("{sign}{}.{}", tenths / 10, tenths % 10)
}

/// Milliseconds as seconds with one decimal (`"12.3 s"`).
pub fn seconds(ms: i64) -> String {
    format!("{} s", one_decimal(ms, 1000))
}

/// Basis points as a percentage with one decimal (`"99.5 %"`).
pub fn percent_bp(bp: i64) -> String {
    format!("{} %", one_decimal(bp, 100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(one_decimal(12_345, 1000), "12.3");
        assert_eq!(one_decimal(12_350, 1000), "12.4");
        assert_eq!(one_decimal(-12_350, 1000), "-12.4");
        assert_eq!(one_decimal(12_349, -1000), "-12.3");
        assert_eq!(one_decimal(-40, 1000), "0.0");
        assert_eq!(one_decimal(0, 7), "0.0");
        assert_eq!(one_decimal(2, 3), "0.7");
        assert_eq!(one_decimal(i64::MAX, 1), format!("{}.0", i64::MAX));
    }

    #[test]
    fn nothing_over_nothing_is_a_dash() {
        assert_eq!(one_decimal(5, 0), "–");
    }

    #[test]
    fn seconds_and_percentages() {
        assert_eq!(seconds(1_234), "1.2 s");
        assert_eq!(seconds(59_950), "60.0 s");
        assert_eq!(percent_bp(9_950), "99.5 %");
        assert_eq!(percent_bp(10_000), "100.0 %");
    }
}
