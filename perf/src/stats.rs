//! Percentiles of raw samples and the median over rounds.

use serde::Serialize;

/// Percentiles of one set of samples, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

/// Nearest-rank percentile of sorted samples.
fn rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    sorted[index]
}

impl Summary {
    /// Summarises nanosecond samples (sorts them in place).
    pub fn of_ns(samples: &mut [u64]) -> Summary {
        samples.sort_unstable();
        let us = |ns: u64| ns as f64 / 1000.0;
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Summary {
            count: samples.len(),
            p50_us: us(rank(samples, 0.50)),
            p90_us: us(rank(samples, 0.90)),
            p99_us: us(rank(samples, 0.99)),
            p999_us: us(rank(samples, 0.999)),
            max_us: us(samples.last().copied().unwrap_or(0)),
            mean_us: if samples.is_empty() {
                0.0
            } else {
                (sum as f64 / samples.len() as f64) / 1000.0
            },
        }
    }

    /// The median, field by field, of per-round summaries ("median of round medians").
    pub fn median_of(rounds: &[Summary]) -> Summary {
        let pick = |f: fn(&Summary) -> f64| median(rounds.iter().map(f).collect());
        Summary {
            count: rounds.iter().map(|r| r.count).sum(),
            p50_us: pick(|s| s.p50_us),
            p90_us: pick(|s| s.p90_us),
            p99_us: pick(|s| s.p99_us),
            p999_us: pick(|s| s.p999_us),
            max_us: pick(|s| s.max_us),
            mean_us: pick(|s| s.mean_us),
        }
    }
}

/// Median of values (mean of the middle two for an even count); 0 when empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let s = Summary::of_ns(&mut samples);
        assert_eq!(s.p50_us, 50.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.max_us, 100.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
    }
}
