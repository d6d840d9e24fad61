//! Prometheus metrics, hand-written: a few counters, gauges and histograms with low-cardinality
//! labels (competitor ids, outcomes, error kinds), rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0,
];
/// Upper bounds of the stream gap buckets, in seconds (the contract's line is 2 s).
const GAP_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0];

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        // Buckets are stored non-cumulative and summed at render time: one increment here.
        if let Some(i) = self.bounds.iter().position(|&b| seconds <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// All gateway metrics.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    upstream_errors: Mutex<BTreeMap<String, u64>>,
    competitor_up: Mutex<BTreeMap<String, bool>>,
    competitor_restarts: Mutex<BTreeMap<String, u64>>,
    request_duration: Histogram,
    ttft: Histogram,
    max_gap: Histogram,
    active_streams: AtomicI64,
    bytes_relayed: AtomicU64,
    keepalives: AtomicU64,
    platform_calls: Mutex<BTreeMap<String, u64>>,
    platform_tokens: Mutex<BTreeMap<(String, &'static str), u64>>,
    platform_sandbox_micros: AtomicU64,
    platform_cost_micro_usd: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            upstream_errors: Mutex::default(),
            competitor_up: Mutex::default(),
            competitor_restarts: Mutex::default(),
            request_duration: Histogram::new(&LATENCY_BUCKETS),
            ttft: Histogram::new(&LATENCY_BUCKETS),
            max_gap: Histogram::new(&GAP_BUCKETS),
            active_streams: AtomicI64::new(0),
            bytes_relayed: AtomicU64::new(0),
            keepalives: AtomicU64::new(0),
            platform_calls: Mutex::default(),
            platform_tokens: Mutex::default(),
            platform_sandbox_micros: AtomicU64::new(0),
            platform_cost_micro_usd: AtomicU64::new(0),
        }
    }
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *map.entry(key).or_insert(0) += 1;
}

/// Escapes a label value for the exposition format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Counts one finished chat request.
    pub fn request_finished(&self, competitor: &str, outcome: &str, duration: Duration) {
        {
            let mut map = self
                .requests
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Look up by &str first: the counter almost always exists, so no allocation.
            match map.get_mut(competitor).and_then(|m| m.get_mut(outcome)) {
                Some(count) => *count += 1,
                None => {
                    *map.entry(competitor.to_owned())
                        .or_default()
                        .entry(outcome.to_owned())
                        .or_insert(0) += 1;
                }
            }
        }
        self.request_duration.observe(duration);
    }

    /// Records a stream's time to first event.
    pub fn observe_ttft(&self, ttft: Duration) {
        self.ttft.observe(ttft);
    }

    /// Records a stream's largest gap between events.
    pub fn observe_max_gap(&self, gap: Duration) {
        self.max_gap.observe(gap);
    }

    /// A stream started (+1) or ended (-1).
    pub fn active_streams_add(&self, delta: i64) {
        self.active_streams.fetch_add(delta, Ordering::Relaxed);
    }

    /// Bytes sent to clients in relayed streams and responses.
    pub fn add_bytes_relayed(&self, bytes: u64) {
        self.bytes_relayed.fetch_add(bytes, Ordering::Relaxed);
    }

    /// One keep-alive comment sent.
    pub fn keepalive_sent(&self) {
        self.keepalives.fetch_add(1, Ordering::Relaxed);
    }

    /// One upstream failure of this kind.
    pub fn upstream_error(&self, kind: &str) {
        bump(&self.upstream_errors, kind.to_owned());
    }

    /// One platform call to this service (counted by the replica that served it).
    pub fn platform_call(&self, service: &str) {
        bump(&self.platform_calls, service.to_owned());
    }

    /// Inference tokens an upstream reported.
    pub fn platform_tokens(&self, service: &str, prompt: u64, completion: u64) {
        let mut map = self
            .platform_tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *map.entry((service.to_owned(), "prompt")).or_insert(0) += prompt;
        *map.entry((service.to_owned(), "completion")).or_insert(0) += completion;
    }

    /// A request's platform life ended: its sandbox seconds and cost.
    pub fn platform_request_finished(&self, sandbox_seconds: f64, cost_usd: f64) {
        let micros = |v: f64| (v.max(0.0) * 1e6) as u64;
        self.platform_sandbox_micros
            .fetch_add(micros(sandbox_seconds), Ordering::Relaxed);
        self.platform_cost_micro_usd
            .fetch_add(micros(cost_usd), Ordering::Relaxed);
    }

    /// Health probe result.
    pub fn set_competitor_up(&self, competitor: &str, up: bool) {
        let mut map = self
            .competitor_up
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.insert(competitor.to_owned(), up);
    }

    /// A launched competitor was restarted after it exited.
    pub fn competitor_restarted(&self, competitor: &str) {
        bump(&self.competitor_restarts, competitor.to_owned());
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP janus_gateway_requests_total Chat completion requests by competitor and outcome.\n");
        out.push_str("# TYPE janus_gateway_requests_total counter\n");
        {
            let map = self
                .requests
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (competitor, outcome, count) in map
                .iter()
                .flat_map(|(c, m)| m.iter().map(move |(o, n)| (c, o, n)))
            {
                let _ = writeln!(
                    out,
                    "janus_gateway_requests_total{{competitor=\"{}\",outcome=\"{}\"}} {count}",
                    label(competitor),
                    label(outcome)
                );
            }
        }
        out.push_str("# HELP janus_gateway_request_duration_seconds Time from request to the end of the response.\n");
        out.push_str("# TYPE janus_gateway_request_duration_seconds histogram\n");
        self.request_duration
            .render(&mut out, "janus_gateway_request_duration_seconds");
        out.push_str("# HELP janus_gateway_ttft_seconds Time from request to the first relayed event of a stream.\n");
        out.push_str("# TYPE janus_gateway_ttft_seconds histogram\n");
        self.ttft.render(&mut out, "janus_gateway_ttft_seconds");
        out.push_str("# HELP janus_gateway_stream_max_gap_seconds Largest gap between two events a client saw, per stream.\n");
        out.push_str("# TYPE janus_gateway_stream_max_gap_seconds histogram\n");
        self.max_gap
            .render(&mut out, "janus_gateway_stream_max_gap_seconds");
        out.push_str("# HELP janus_gateway_active_streams Streams being relayed now.\n");
        out.push_str("# TYPE janus_gateway_active_streams gauge\n");
        let _ = writeln!(
            out,
            "janus_gateway_active_streams {}",
            self.active_streams.load(Ordering::Relaxed)
        );
        out.push_str("# HELP janus_gateway_relayed_bytes_total Response bytes sent to clients.\n");
        out.push_str("# TYPE janus_gateway_relayed_bytes_total counter\n");
        let _ = writeln!(
            out,
            "janus_gateway_relayed_bytes_total {}",
            self.bytes_relayed.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP janus_gateway_keepalives_total Keep-alive comments sent to clients.\n",
        );
        out.push_str("# TYPE janus_gateway_keepalives_total counter\n");
        let _ = writeln!(
            out,
            "janus_gateway_keepalives_total {}",
            self.keepalives.load(Ordering::Relaxed)
        );
        out.push_str("# HELP janus_gateway_upstream_errors_total Competitor failures by kind.\n");
        out.push_str("# TYPE janus_gateway_upstream_errors_total counter\n");
        {
            let map = self
                .upstream_errors
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (kind, count) in map.iter() {
                let _ = writeln!(
                    out,
                    "janus_gateway_upstream_errors_total{{kind=\"{}\"}} {count}",
                    label(kind)
                );
            }
        }
        out.push_str("# HELP janus_gateway_competitor_up Whether the last health probe of a competitor succeeded.\n");
        out.push_str("# TYPE janus_gateway_competitor_up gauge\n");
        {
            let map = self
                .competitor_up
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (competitor, up) in map.iter() {
                let _ = writeln!(
                    out,
                    "janus_gateway_competitor_up{{competitor=\"{}\"}} {}",
                    label(competitor),
                    u8::from(*up)
                );
            }
        }
        out.push_str("# HELP janus_gateway_competitor_restarts_total Restarts of launched competitors after they exited.\n");
        out.push_str("# TYPE janus_gateway_competitor_restarts_total counter\n");
        {
            let map = self
                .competitor_restarts
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (competitor, count) in map.iter() {
                let _ = writeln!(
                    out,
                    "janus_gateway_competitor_restarts_total{{competitor=\"{}\"}} {count}",
                    label(competitor)
                );
            }
        }
        out.push_str("# HELP janus_gateway_platform_calls_total Platform calls served by this replica, by service.\n");
        out.push_str("# TYPE janus_gateway_platform_calls_total counter\n");
        {
            let map = self
                .platform_calls
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (service, count) in map.iter() {
                let _ = writeln!(
                    out,
                    "janus_gateway_platform_calls_total{{service=\"{}\"}} {count}",
                    label(service)
                );
            }
        }
        out.push_str("# HELP janus_gateway_platform_tokens_total Inference tokens reported by platform upstreams.\n");
        out.push_str("# TYPE janus_gateway_platform_tokens_total counter\n");
        {
            let map = self
                .platform_tokens
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for ((service, kind), count) in map.iter() {
                let _ = writeln!(
                    out,
                    "janus_gateway_platform_tokens_total{{service=\"{}\",kind=\"{kind}\"}} {count}",
                    label(service)
                );
            }
        }
        out.push_str("# HELP janus_gateway_platform_sandbox_seconds_total Sandbox seconds of finished requests.\n");
        out.push_str("# TYPE janus_gateway_platform_sandbox_seconds_total counter\n");
        let _ = writeln!(
            out,
            "janus_gateway_platform_sandbox_seconds_total {}",
            self.platform_sandbox_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        out.push_str("# HELP janus_gateway_platform_cost_usd_total Platform cost of finished requests, from the price table.\n");
        out.push_str("# TYPE janus_gateway_platform_cost_usd_total counter\n");
        let _ = writeln!(
            out,
            "janus_gateway_platform_cost_usd_total {}",
            self.platform_cost_micro_usd.load(Ordering::Relaxed) as f64 / 1e6
        );
        out
    }
}
