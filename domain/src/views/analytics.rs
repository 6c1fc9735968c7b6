//! Analytics over finished runs: success and failure rates, MTTR, recovery-time percentiles
//! and availability during runs, overall and per day, per target and per failure type.
//!
//! Computed from the results read model (one row per run) rather than kept as running totals:
//! percentiles need every recovery time anyway, and a pure function of the results is equal
//! after a rebuild by construction. Dry runs and interrupted runs are counted but excluded
//! from the rates: neither measured the target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::results::{RunOutcome, RunResult};

/// Figures over a set of runs. Rates and availability are in basis points (10000 = 100 %).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Finished runs, dry runs included.
    pub runs: u32,
    /// Runs that recovered.
    pub recovered: u32,
    /// Runs that did not recover within their timeout.
    pub not_recovered: u32,
    /// Runs that could not be carried out.
    pub failed: u32,
    /// Runs stopped early.
    pub stopped: u32,
    /// Dry runs.
    pub dry_runs: u32,
    /// Runs the platform interrupted while their failure was in effect.
    pub interrupted: u32,
    /// Recovered / real runs (neither dry nor interrupted).
    pub success_rate_bp: Option<u32>,
    /// (Not recovered + failed) / real runs.
    pub failure_rate_bp: Option<u32>,
    /// Mean time to recovery over recovered runs, ms.
    pub mttr_ms: Option<u64>,
    /// Median recovery time, ms (nearest rank).
    pub p50_recovery_ms: Option<u64>,
    /// 95th percentile recovery time, ms (nearest rank).
    pub p95_recovery_ms: Option<u64>,
    /// Mean availability over runs with health samples (interrupted runs left out).
    pub availability_bp: Option<u32>,
}

/// Analytics overall and by dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analytics {
    /// Every run.
    pub overall: Stats,
    /// By UTC day of the run's end (`YYYY-MM-DD`).
    pub by_day: BTreeMap<String, Stats>,
    /// By target key.
    pub by_target: BTreeMap<String, Stats>,
    /// By failure type.
    pub by_failure_type: BTreeMap<String, Stats>,
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p` % of the
/// values at or below it.
pub fn nearest_rank(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(p) * n).div_ceil(100).max(1);
    let index = usize::try_from(rank - 1)
        .unwrap_or(usize::MAX)
        .min(sorted.len() - 1);
    Some(sorted[index])
}

fn ratio_bp(part: u32, whole: u32) -> Option<u32> {
    (whole > 0)
        .then(|| u32::try_from(u64::from(part) * 10_000 / u64::from(whole)).unwrap_or(10_000))
}

/// Figures over `runs`.
pub fn stats<'a>(runs: impl IntoIterator<Item = &'a RunResult>) -> Stats {
    let mut s = Stats::default();
    let mut recovery = Vec::new();
    let (mut availability_sum, mut availability_runs) = (0u64, 0u64);
    for r in runs {
        s.runs += 1;
        match r.outcome {
            RunOutcome::Recovered => s.recovered += 1,
            RunOutcome::NotRecovered => s.not_recovered += 1,
            RunOutcome::Failed => s.failed += 1,
            RunOutcome::Stopped => s.stopped += 1,
            RunOutcome::DryRun => s.dry_runs += 1,
            RunOutcome::Interrupted => s.interrupted += 1,
        }
        if let (RunOutcome::Recovered, Some(ms)) = (r.outcome, r.recovery_ms) {
            recovery.push(ms);
        }
        if let (false, Some(a)) = (r.outcome == RunOutcome::Interrupted, r.availability_bp) {
            availability_sum += u64::from(a);
            availability_runs += 1;
        }
    }
    let real = s.runs - s.dry_runs - s.interrupted;
    s.success_rate_bp = ratio_bp(s.recovered, real);
    s.failure_rate_bp = ratio_bp(s.not_recovered + s.failed, real);
    recovery.sort_unstable();
    if !recovery.is_empty() {
        s.mttr_ms = Some(recovery.iter().sum::<u64>() / recovery.len() as u64);
    }
    s.p50_recovery_ms = nearest_rank(&recovery, 50);
    s.p95_recovery_ms = nearest_rank(&recovery, 95);
    s.availability_bp = (availability_runs > 0)
        .then(|| u32::try_from(availability_sum / availability_runs).unwrap_or(10_000));
    s
}

/// Analytics over every result.
pub fn analytics(results: &[RunResult]) -> Analytics {
    fn by<'a>(
        results: &'a [RunResult],
        key: impl Fn(&'a RunResult) -> &'a str,
    ) -> BTreeMap<String, Stats> {
        let mut groups: BTreeMap<&str, Vec<&RunResult>> = BTreeMap::new();
        for r in results {
            groups.entry(key(r)).or_default().push(r);
        }
        groups
            .into_iter()
            .map(|(k, runs)| (k.to_owned(), stats(runs)))
            .collect()
    }
    Analytics {
        overall: stats(results),
        by_day: by(results, |r| &r.day),
        by_target: by(results, |r| &r.target),
        by_failure_type: by(results, |r| &r.failure_type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=20).map(|i| i * 100).collect();
        assert_eq!(nearest_rank(&v, 50), Some(1_000));
        assert_eq!(nearest_rank(&v, 95), Some(1_900));
        assert_eq!(nearest_rank(&v, 100), Some(2_000));
        assert_eq!(nearest_rank(&[7], 95), Some(7));
        assert_eq!(nearest_rank(&[], 50), None);
    }
}
