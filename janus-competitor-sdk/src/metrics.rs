//! Prometheus metrics, hand-written in the text exposition format: requests by mode and
//! outcome, requests in flight, request duration, keep-alives sent and artifacts published.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the duration buckets, in seconds (streams may run 5 minutes).
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The two ways a chat request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mode {
    Stream,
    NonStream,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Stream => "stream",
            Mode::NonStream => "non_stream",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(Mode, &'static str), u64>>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    in_flight: AtomicI64,
    keepalives: AtomicU64,
    artifacts_inline: AtomicU64,
    artifacts_file: AtomicU64,
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *map.entry(key).or_insert(0) += 1;
}

impl Metrics {
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request_finished(&self, mode: Mode, outcome: &'static str, took: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        bump(&self.requests, (mode, outcome));
        let seconds = took.as_secs_f64();
        // Buckets are stored non-cumulative and summed when rendered: one increment here.
        if let Some(i) = DURATION_BUCKETS.iter().position(|&b| seconds <= b) {
            self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_sum_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// A chat request refused before its handler ran (`invalid`, `too_large`).
    pub(crate) fn request_rejected(&self, reason: &'static str) {
        bump(&self.rejected, reason);
    }

    pub(crate) fn keepalive_sent(&self) {
        self.keepalives.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn artifact_published(&self, inline: bool) {
        let counter = if inline {
            &self.artifacts_inline
        } else {
            &self.artifacts_file
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str(
            "# HELP janus_competitor_requests_total Chat completion requests answered, by mode and outcome.\n\
             # TYPE janus_competitor_requests_total counter\n",
        );
        {
            let requests = self
                .requests
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for ((mode, outcome), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "janus_competitor_requests_total{{mode=\"{}\",outcome=\"{outcome}\"}} {count}",
                    mode.as_str()
                );
            }
        }
        out.push_str(
            "# HELP janus_competitor_rejected_requests_total Chat completion requests refused before the handler ran.\n\
             # TYPE janus_competitor_rejected_requests_total counter\n",
        );
        {
            let rejected = self
                .rejected
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (reason, count) in rejected.iter() {
                let _ = writeln!(
                    out,
                    "janus_competitor_rejected_requests_total{{reason=\"{reason}\"}} {count}"
                );
            }
        }
        let _ = write!(
            out,
            "# HELP janus_competitor_requests_in_flight Chat completion requests being answered.\n\
             # TYPE janus_competitor_requests_in_flight gauge\n\
             janus_competitor_requests_in_flight {}\n",
            self.in_flight.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP janus_competitor_request_duration_seconds Time from request to the end of the response.\n\
             # TYPE janus_competitor_request_duration_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (bound, count) in DURATION_BUCKETS.iter().zip(&self.duration_buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "janus_competitor_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let sum = self.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = write!(
            out,
            "janus_competitor_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             janus_competitor_request_duration_seconds_sum {sum}\n\
             janus_competitor_request_duration_seconds_count {count}\n"
        );
        let _ = write!(
            out,
            "# HELP janus_competitor_keepalives_total Keep-alive comments sent on streams.\n\
             # TYPE janus_competitor_keepalives_total counter\n\
             janus_competitor_keepalives_total {}\n",
            self.keepalives.load(Ordering::Relaxed)
        );
        let _ = write!(
            out,
            "# HELP janus_competitor_artifacts_total Artifacts published, by storage.\n\
             # TYPE janus_competitor_artifacts_total counter\n\
             janus_competitor_artifacts_total{{storage=\"data_url\"}} {}\n\
             janus_competitor_artifacts_total{{storage=\"file\"}} {}\n",
            self.artifacts_inline.load(Ordering::Relaxed),
            self.artifacts_file.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.request_started();
        metrics.request_finished(Mode::Stream, "ok", Duration::from_millis(30));
        metrics.request_started();
        metrics.request_finished(Mode::NonStream, "error", Duration::from_secs(3));
        metrics.request_started();
        let text = metrics.render();
        assert!(
            text.contains("janus_competitor_requests_total{mode=\"stream\",outcome=\"ok\"} 1\n")
        );
        assert!(text.contains("janus_competitor_requests_in_flight 1\n"));
        assert!(text.contains("janus_competitor_request_duration_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("janus_competitor_request_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("janus_competitor_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        // Every family has HELP then TYPE before its samples.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let family = line.split(['{', ' ']).next().unwrap_or_default();
            let base = family
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {base} ")), "{line}");
        }
    }
}
