//! How much of everything a run does: the full run (minutes, pinned, the report) and the
//! smoke run (seconds, inside the test command, only proves the harness still works).

use std::time::Duration;

use serde::Serialize;

use crate::wire::StreamPlan;

/// Which preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The full run behind the committed report.
    Full,
    /// A few seconds of everything, for CI.
    Smoke,
}

/// Parameters of a run. Every duration and count the report depends on lives here and is
/// written into the report.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The preset this came from.
    pub mode: Mode,
    /// Measured rounds per path in the interleaved scenarios (1, 2, 4).
    pub rounds: usize,
    /// Rounds per path run first and discarded.
    pub warmup_rounds: usize,
    /// Length of one closed-loop or open-loop round.
    #[serde(with = "secs")]
    pub round: Duration,
    /// Connections of the open-loop client.
    pub open_conns: usize,
    /// Connections of the capacity (closed-loop, saturating) runs.
    pub capacity_conns: usize,
    /// Capacity runs per path; the median counts.
    pub capacity_runs: usize,
    /// Length of one capacity run.
    #[serde(with = "secs")]
    pub capacity_run: Duration,
    /// Offered rates as fractions of the direct capacity (scenario 2).
    pub fractions: Vec<f64>,
    /// Take the fractions of the slower path's capacity instead of the direct one. Only the
    /// smoke run does this: there a debug-build gateway is far slower than the mock, and the
    /// smoke run must not overload it.
    pub fractions_of_slower: bool,
    /// Also measure the hop floor (a plain TCP relay placed like the gateway) in scenarios
    /// 1, 2 and 4.
    pub hop: bool,
    /// Also measure nginx (`proxy_pass` to the mock, see the `nginx` module) in every
    /// scenario.
    pub nginx: bool,
    /// Each path's throughput search starts at this fraction of its closed-loop capacity.
    pub search_start: f64,
    /// Length of one throughput-search step.
    #[serde(with = "secs")]
    pub search_step: Duration,
    /// Steps of the ramp before bisecting, at most.
    pub search_max_steps: usize,
    /// Pause after each search step, so a backlog drains.
    #[serde(with = "secs")]
    pub search_pause: Duration,
    /// Bisection steps after the first failing rate.
    pub bisect_steps: usize,
    /// The p99 a passing throughput step must stay under.
    #[serde(with = "secs")]
    pub p99_limit: Duration,
    /// Longest a single request may take.
    #[serde(with = "secs")]
    pub request_timeout: Duration,
    /// Open loop: requests not sent by the end of the run plus this are counted late.
    #[serde(with = "secs")]
    pub late_grace: Duration,
    /// The streaming scenario's stream.
    pub stream: StreamPlan,
    /// Concurrent streams per streaming round.
    pub streams: usize,
    /// Idle-stream counts (scenario 5).
    pub idle_counts: Vec<usize>,
    /// How long idle streams are held once all are open.
    #[serde(with = "secs")]
    pub idle_hold: Duration,
    /// Wait after the idle streams end before RSS is read again.
    #[serde(with = "secs")]
    pub idle_settle: Duration,
    /// Wait after the idle streams end before RSS is read for the RSS-return goal (RSS back
    /// within 20 % of the fresh process's).
    #[serde(with = "secs")]
    pub rss_return_wait: Duration,
    /// Idle streams opening at once.
    pub idle_open_concurrency: usize,
    /// `--keepalive-interval` passed to the gateway (its default when `None`).
    pub keepalive_interval: Option<String>,
    /// Open-file limit asked for every process.
    pub nofile: u64,
}

impl Plan {
    /// The full run: about eight minutes of load.
    pub fn full() -> Plan {
        Plan {
            mode: Mode::Full,
            rounds: 7,
            warmup_rounds: 1,
            round: Duration::from_secs(2),
            open_conns: 64,
            capacity_conns: 32,
            capacity_runs: 3,
            capacity_run: Duration::from_secs(2),
            fractions: vec![0.25, 0.5, 0.8],
            fractions_of_slower: false,
            hop: true,
            nginx: true,
            search_start: 0.5,
            search_step: Duration::from_secs(2),
            search_max_steps: 12,
            search_pause: Duration::from_millis(300),
            bisect_steps: 4,
            p99_limit: Duration::from_millis(5),
            request_timeout: Duration::from_secs(2),
            late_grace: Duration::from_secs(1),
            stream: StreamPlan {
                chunks: 64,
                interval_us: 20_000,
                idle: false,
                hold_ms: 0,
            },
            streams: 100,
            idle_counts: vec![1000, 5000, 10_000],
            idle_hold: Duration::from_millis(4500),
            idle_settle: Duration::from_millis(1500),
            rss_return_wait: Duration::from_secs(10),
            idle_open_concurrency: 256,
            keepalive_interval: None,
            nofile: 65_536,
        }
    }

    /// The smoke run: every scenario, a few seconds in all, debug builds welcome.
    pub fn smoke() -> Plan {
        Plan {
            mode: Mode::Smoke,
            rounds: 2,
            warmup_rounds: 1,
            round: Duration::from_millis(200),
            open_conns: 8,
            capacity_conns: 8,
            capacity_runs: 1,
            capacity_run: Duration::from_millis(250),
            fractions: vec![0.1, 0.2, 0.3],
            fractions_of_slower: true,
            hop: true,
            nginx: true,
            search_start: 0.5,
            search_step: Duration::from_millis(250),
            search_max_steps: 6,
            search_pause: Duration::from_millis(50),
            bisect_steps: 1,
            p99_limit: Duration::from_millis(5),
            request_timeout: Duration::from_secs(2),
            late_grace: Duration::from_millis(300),
            stream: StreamPlan {
                chunks: 8,
                interval_us: 20_000,
                idle: false,
                hold_ms: 0,
            },
            streams: 8,
            idle_counts: vec![20, 50, 100],
            idle_hold: Duration::from_millis(600),
            idle_settle: Duration::from_millis(300),
            rss_return_wait: Duration::from_millis(500),
            idle_open_concurrency: 32,
            // Short, so the held streams see keep-alives within the smoke's budget.
            keepalive_interval: Some("250ms".into()),
            nofile: 4096,
        }
    }
}

mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
