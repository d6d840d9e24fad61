//! The report: one serialisable value (`report.json`) and its markdown rendering
//! (`REPORT.md`). Every figure is in both; the markdown also carries a hand-written analysis
//! (`ANALYSIS.md` next to it) when there is one.

use std::fmt::Write as _;

use serde::Serialize;

use crate::plan::Plan;
use crate::procs::Machine;
use crate::stats::Summary;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `janus-perf`.
    pub harness: &'static str,
    /// Unix time the run started.
    pub started_unix: u64,
    /// Wall time of the whole run.
    pub wall_seconds: f64,
    /// The machine.
    pub machine: Machine,
    /// `/proc/loadavg` when the run started (before any load of ours).
    pub loadavg_start: [f64; 3],
    /// `/proc/loadavg` at the end (includes our own load).
    pub loadavg_end: [f64; 3],
    /// Who ran where.
    pub placement: Placement,
    /// The nginx path: binary, version, the exact config it ran.
    pub nginx: Option<NginxReport>,
    /// How each side logged (the comparison is with both access logs on).
    pub logging: Logging,
    /// The parameters.
    pub plan: Plan,
    /// Scenario 1: non-stream, concurrency 1.
    pub closed_loop_c1: Compare,
    /// Closed-loop saturation throughput of the paths (where the search starts).
    pub capacity: Capacity,
    /// Scenario 2: open loop at fractions of the direct capacity.
    pub open_loop: Vec<OpenLoopRow>,
    /// Scenario 3: highest rate within the p99 limit, and CPU cost.
    pub throughput: Throughput,
    /// Scenario 4: streaming.
    pub streaming: Streaming,
    /// Scenario 5: idle streams.
    pub idle: Vec<IdleRow>,
    /// Each goal of the issue with the figure it is judged by.
    pub goals: Vec<Goal>,
    /// Failed requests and streams in every scenario except the throughput search (where
    /// failing is how the limit is found). Zero in a healthy run.
    pub errors_total: u64,
}

/// Process placement and threads.
#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    /// Whether `taskset` pinning was applied.
    pub pinned: bool,
    /// Core of the gateway (and of the hop relay and nginx).
    pub gateway_cpu: Option<usize>,
    /// Core of the mock and the load generator.
    pub load_cpu: Option<usize>,
    /// The gateway program.
    pub gateway_bin: String,
    /// Its arguments.
    pub gateway_args: Vec<String>,
    /// Environment given to it (`RUST_LOG`, `TOKIO_WORKER_THREADS`).
    pub gateway_env: Vec<(String, String)>,
    /// `TOKIO_WORKER_THREADS` of the gateway (and the hop relay).
    pub gateway_worker_threads: usize,
    /// Threads of the gateway process at the end (workers + blocking pool + main).
    pub gateway_threads_seen: u64,
    /// Threads of the mock process at the end.
    pub mock_threads_seen: u64,
    /// The load generator's threads.
    pub load_threads: String,
    /// Open-file soft limit of the load generator.
    pub load_nofile: u64,
    /// Clock ticks per second of `/proc/<pid>/stat` (used only for the user/kernel split;
    /// CPU totals come from schedstat in nanoseconds).
    pub clock_ticks: u64,
}

/// The nginx path.
#[derive(Debug, Clone, Serialize)]
pub struct NginxReport {
    /// The binary.
    pub binary: String,
    /// `nginx -v`.
    pub version: String,
    /// How it was started (`<prefix>` is the run's own directory for it).
    pub command: String,
    /// `master_process on`: a master and one worker.
    pub master_process: bool,
    /// Which process the CPU and RSS figures are of.
    pub measured: &'static str,
    /// `worker_connections`.
    pub worker_connections: u64,
    /// `worker_rlimit_nofile`.
    pub worker_rlimit_nofile: u64,
    /// Open-file soft limit the worker actually had.
    pub worker_nofile_seen: u64,
    /// The master's RSS at the start, KiB (constant; not in any per-stream figure).
    pub master_rss_kib: u64,
    /// The exact nginx.conf.
    pub config: String,
}

/// Both sides' access logs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Logging {
    /// The gateway's logging, in words.
    pub gateway: String,
    /// nginx's logging, in words.
    pub nginx: Option<String>,
    /// Access lines (`janus_gateway::access`) the gateway wrote in the whole run.
    pub gateway_access_lines: u64,
    /// Lines nginx wrote to its access log in the whole run.
    pub nginx_access_lines: Option<u64>,
}

/// Every relay path against direct, median of round figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Compare {
    /// Measured rounds per path.
    pub rounds: usize,
    /// Median of the gateway's round summaries.
    pub gateway: Summary,
    /// Median of the direct round summaries.
    pub direct: Summary,
    /// Median of the hop-floor round summaries, when measured.
    pub hop: Option<Summary>,
    /// Median of nginx's round summaries, when measured.
    pub nginx: Option<Summary>,
    /// gateway p50 − direct p50.
    pub added_p50_us: f64,
    /// gateway p99 − direct p99.
    pub added_p99_us: f64,
    /// hop p50 − direct p50: what any extra process on the other core costs.
    pub hop_added_p50_us: Option<f64>,
    /// hop p99 − direct p99.
    pub hop_added_p99_us: Option<f64>,
    /// nginx p50 − direct p50.
    pub nginx_added_p50_us: Option<f64>,
    /// nginx p99 − direct p99.
    pub nginx_added_p99_us: Option<f64>,
    /// gateway p50 − hop p50: the gateway's own share.
    pub gateway_own_p50_us: Option<f64>,
    /// nginx p50 − hop p50: nginx's own share.
    pub nginx_own_p50_us: Option<f64>,
    /// gateway added p50 ÷ nginx added p50.
    pub added_p50_vs_nginx: Option<f64>,
    /// gateway added p99 ÷ nginx added p99.
    pub added_p99_vs_nginx: Option<f64>,
    /// Requests per second achieved (median over rounds), gateway.
    pub gateway_rps: f64,
    /// Requests per second achieved (median over rounds), direct.
    pub direct_rps: f64,
    /// Requests per second achieved (median over rounds), hop.
    pub hop_rps: Option<f64>,
    /// Requests per second achieved (median over rounds), nginx.
    pub nginx_rps: Option<f64>,
    /// Failures in measured rounds, all paths.
    pub errors: u64,
    /// Every measured gateway round.
    pub gateway_rounds: Vec<Summary>,
    /// Every measured direct round.
    pub direct_rounds: Vec<Summary>,
    /// Every measured hop round.
    pub hop_rounds: Vec<Summary>,
    /// Every measured nginx round.
    pub nginx_rounds: Vec<Summary>,
}

/// Saturation throughput (closed loop).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Capacity {
    /// Connections used.
    pub connections: usize,
    /// Median rate, direct.
    pub direct_rps: f64,
    /// Median rate through the gateway.
    pub gateway_rps: f64,
    /// Median rate through nginx.
    pub nginx_rps: Option<f64>,
    /// Each direct run.
    pub direct_runs: Vec<f64>,
    /// Each gateway run.
    pub gateway_runs: Vec<f64>,
    /// Each nginx run.
    pub nginx_runs: Vec<f64>,
}

/// CPU seconds per 1,000 requests (or chunks): totals from `/proc/<pid>/task/*/schedstat`
/// (nanoseconds), the user/kernel split from utime and stime in `/proc/<pid>/stat`.
/// "Relay" is the process on the relay core for that path: the gateway, the hop, nginx's
/// worker, or none.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuCost {
    /// Requests (or chunks) the figures cover.
    pub requests: u64,
    /// Relay CPU seconds per 1,000.
    pub relay_s_per_1k: f64,
    /// Share of the relay's CPU spent in user space (the rest is the kernel).
    pub relay_user_share: f64,
    /// Mock CPU seconds per 1,000, same runs.
    pub mock_s_per_1k: f64,
    /// Share of the mock's CPU spent in user space.
    pub mock_user_share: f64,
    /// The load generator's CPU seconds per 1,000, same runs.
    pub load_s_per_1k: f64,
    /// relay / mock.
    pub ratio: f64,
}

/// One offered rate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpenLoopRow {
    /// Fraction of the base rate.
    pub fraction: f64,
    /// Offered requests per second.
    pub rate_rps: f64,
    /// Latency from the intended send time.
    pub latency: Compare,
    /// Latency from the actual send (service time), median of rounds.
    pub service_gateway: Summary,
    /// Service time direct.
    pub service_direct: Summary,
    /// Service time through the hop.
    pub service_hop: Option<Summary>,
    /// Service time through nginx.
    pub service_nginx: Option<Summary>,
    /// CPU cost in the gateway rounds.
    pub cpu_gateway: CpuCost,
    /// CPU cost in the direct rounds.
    pub cpu_direct: CpuCost,
    /// CPU cost in the hop rounds.
    pub cpu_hop: Option<CpuCost>,
    /// CPU cost in the nginx rounds (nginx's worker as the relay).
    pub cpu_nginx: Option<CpuCost>,
}

/// One throughput-search step.
#[derive(Debug, Clone, Serialize)]
pub struct SearchStep {
    /// `gateway`, `direct` or `nginx`.
    pub path: &'static str,
    /// Offered rate.
    pub rate_rps: f64,
    /// Latency from the intended send time.
    pub latency: Summary,
    /// Completed per second of the step.
    pub achieved_rps: f64,
    /// Errors + timeouts + late.
    pub failures: u64,
    /// p99 under the limit and no failures.
    pub pass: bool,
    /// CPU cost of the step.
    pub cpu: CpuCost,
}

/// Scenario 3.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    /// The p99 limit in ms.
    pub p99_limit_ms: f64,
    /// Highest passing rate, direct.
    pub direct_max_rps: f64,
    /// Highest passing rate through the gateway.
    pub gateway_max_rps: f64,
    /// Highest passing rate through nginx.
    pub nginx_max_rps: Option<f64>,
    /// gateway / direct.
    pub gateway_vs_direct: f64,
    /// gateway / nginx (`None` when nginx found no passing rate or was not measured).
    pub gateway_vs_nginx: Option<f64>,
    /// CPU cost at the gateway's highest passing rate.
    pub cpu_at_max: CpuCost,
    /// CPU cost at nginx's highest passing rate (its worker as the relay).
    pub nginx_cpu_at_max: Option<CpuCost>,
    /// Every step, in order.
    pub steps: Vec<SearchStep>,
}

/// One path's streaming figures (median of rounds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamSide {
    /// Request sent → first content chunk.
    pub ttft: Summary,
    /// Between consecutive content chunks.
    pub gap: Summary,
    /// Mock send stamp → client receipt, per chunk.
    pub relay: Summary,
    /// Streams complete (all rounds).
    pub streams_ok: u64,
    /// Content chunks received (all rounds).
    pub chunks: u64,
    /// Gaps over twice the interval (all rounds).
    pub stalls: u64,
    /// Longest gap between any two events, ms.
    pub max_gap_ms: f64,
    /// Failed streams (all rounds).
    pub errors: u64,
}

/// Scenario 4.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Streaming {
    /// Concurrent streams per round.
    pub streams_per_round: usize,
    /// Content chunks per stream.
    pub chunks: u32,
    /// Interval between chunks, ms.
    pub interval_ms: f64,
    /// Measured rounds per path.
    pub rounds: usize,
    /// Through the gateway.
    pub gateway: StreamSide,
    /// Direct.
    pub direct: StreamSide,
    /// Through the hop floor.
    pub hop: Option<StreamSide>,
    /// Through nginx.
    pub nginx: Option<StreamSide>,
    /// gateway TTFT p50 − direct.
    pub added_ttft_p50_us: f64,
    /// gateway TTFT p99 − direct.
    pub added_ttft_p99_us: f64,
    /// gateway gap p50 − direct.
    pub added_gap_p50_us: f64,
    /// gateway gap p99 − direct.
    pub added_gap_p99_us: f64,
    /// gateway relay p50 − direct.
    pub added_relay_p50_us: f64,
    /// gateway relay p99 − direct.
    pub added_relay_p99_us: f64,
    /// hop TTFT p99 − direct.
    pub hop_added_ttft_p99_us: Option<f64>,
    /// hop gap p99 − direct.
    pub hop_added_gap_p99_us: Option<f64>,
    /// hop relay p99 − direct.
    pub hop_added_relay_p99_us: Option<f64>,
    /// nginx TTFT p50 − direct.
    pub nginx_added_ttft_p50_us: Option<f64>,
    /// nginx TTFT p99 − direct.
    pub nginx_added_ttft_p99_us: Option<f64>,
    /// nginx gap p50 − direct.
    pub nginx_added_gap_p50_us: Option<f64>,
    /// nginx gap p99 − direct.
    pub nginx_added_gap_p99_us: Option<f64>,
    /// nginx relay p50 − direct.
    pub nginx_added_relay_p50_us: Option<f64>,
    /// nginx relay p99 − direct.
    pub nginx_added_relay_p99_us: Option<f64>,
    /// CPU per 1,000 content chunks in the gateway rounds.
    pub cpu_per_1k_chunks_gateway: CpuCost,
    /// CPU per 1,000 content chunks in the hop rounds.
    pub cpu_per_1k_chunks_hop: Option<CpuCost>,
    /// CPU per 1,000 content chunks in the nginx rounds.
    pub cpu_per_1k_chunks_nginx: Option<CpuCost>,
}

/// One idle-stream count (scenario 5): the same number of streams through a freshly
/// started gateway and through a freshly started nginx.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IdleRow {
    /// Streams the plan asked for.
    pub requested: usize,
    /// Why fewer were run, if they were.
    pub limit_note: Option<String>,
    /// Streams run on each path.
    pub streams: usize,
    /// Through the gateway (keep-alives expected).
    pub gateway: IdleSide,
    /// Through nginx (the mock is silent and nginx sends nothing: no keep-alives).
    pub nginx: Option<IdleSide>,
    /// gateway KiB / stream ÷ nginx KiB / stream.
    pub per_stream_vs_nginx: Option<f64>,
}

/// One path's idle streams.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IdleSide {
    /// Streams that got their headers.
    pub opened: usize,
    /// Seconds to open them all.
    pub open_seconds: f64,
    /// Relay RSS before opening, KiB (a fresh process that has answered only `/health`).
    pub rss_before_kib: u64,
    /// Relay RSS with all streams open, KiB.
    pub rss_held_kib: u64,
    /// (held − before) / opened, KiB.
    pub rss_per_stream_kib: f64,
    /// Relay RSS `idle_settle` after the streams ended, KiB.
    pub rss_after_kib: u64,
    /// Relay RSS `rss_return_wait` after the streams ended, KiB.
    pub rss_return_kib: u64,
    /// rss_return ÷ rss_before (the goal: ≤ 1.2).
    pub rss_return_ratio: f64,
    /// The mock's RSS growth per stream, KiB (its side of the same streams, for scale).
    pub mock_rss_per_stream_kib: f64,
    /// Longest client-side silence, ms.
    pub max_gap_ms: f64,
    /// Client-side silences over 2 s.
    pub gaps_over_2s: u64,
    /// Keep-alives per stream received.
    pub keepalives_per_stream: f64,
    /// Streams that failed to open or broke while held.
    pub errors: u64,
}

/// One goal of the issue.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// Scenario number and figure.
    pub figure: String,
    /// The target in words, unit included, e.g. `≤ 118.2 µs (nginx's)`.
    pub target: String,
    /// The target's number.
    pub target_value: f64,
    /// The measured value.
    pub value: f64,
    /// Unit of both.
    pub unit: &'static str,
    /// Whether the value meets the target.
    pub met: bool,
}

fn row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

fn header(out: &mut String, names: &[&str]) {
    row(
        out,
        &names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
    );
    let rule: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { "---".into() } else { "---:".into() })
        .collect();
    row(out, &rule);
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

fn f0(v: f64) -> String {
    format!("{v:.0}")
}

fn pair(s: &Summary) -> String {
    format!("{:.1} / {:.1}", s.p50_us, s.p99_us)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("–".into(), f1)
}

fn cpu_cell(c: &CpuCost) -> String {
    format!(
        "{:.1} µs ({:.0} % user)",
        c.relay_s_per_1k * 1000.0,
        c.relay_user_share * 100.0
    )
}

fn opt_pair(s: Option<&Summary>) -> String {
    s.map_or("–".into(), pair)
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}×"))
}

impl Report {
    /// The markdown report; `analysis` (hand-written) is appended as the closing section.
    pub fn markdown(&self, analysis: Option<&str>) -> String {
        let mut o = String::new();
        self.intro(&mut o);
        self.goals_section(&mut o);
        self.c1_section(&mut o);
        self.open_section(&mut o);
        self.throughput_section(&mut o);
        self.streaming_section(&mut o);
        self.idle_section(&mut o);
        self.nginx_section(&mut o);
        if let Some(analysis) = analysis {
            let _ = writeln!(o, "{}", analysis.trim_end());
        }
        o
    }

    fn intro(&self, o: &mut String) {
        let p = &self.placement;
        let m = &self.machine;
        let pl = &self.plan;
        let _ = writeln!(o, "# Janus gateway performance report\n");
        let _ = writeln!(
            o,
            "Generated by `janus-perf` ({:?} mode): the gateway against calling the mock competitor \
             directly and against **nginx** relaying to it, interleaved in the same run, plus the \
             **hop floor** — a plain TCP relay (`janus-perf hop`, tokio `copy_bidirectional`, no \
             HTTP) placed exactly like the gateway, so that *gateway − hop* is the gateway's own \
             work and *hop − direct* is what any extra process on the other core costs on this \
             machine. Gateway and nginx both write a JSON access line per request to a file. \
             Ratios *gateway ÷ nginx* are from the same run. Latencies in µs unless marked. \
             Regenerate with `cargo run --release -p janus-perf -- full` (see README.md).\n",
            pl.mode
        );
        let _ = writeln!(o, "## Machine and placement\n");
        let _ = writeln!(
            o,
            "- Machine: {} × {} logical CPUs, {} MiB RAM; kernel {}; {}; {}",
            m.cpu_model, m.cpus, m.memory_mib, m.kernel, m.os, m.rustc
        );
        let _ = writeln!(
            o,
            "- Load average (1 / 5 / 15 min): {:.2} / {:.2} / {:.2} before the run, {:.2} / {:.2} / {:.2} at its end (the end includes the run's own load); the run took {:.0} s",
            self.loadavg_start[0], self.loadavg_start[1], self.loadavg_start[2],
            self.loadavg_end[0], self.loadavg_end[1], self.loadavg_end[2], self.wall_seconds
        );
        let pin = |cpu: Option<usize>| cpu.map_or("unpinned".to_owned(), |c| format!("core {c}"));
        let _ = writeln!(
            o,
            "- Gateway: `{} {}` — {}, `TOKIO_WORKER_THREADS={}` ({} threads in the process at the end, per /proc); env {}. {}",
            p.gateway_bin,
            p.gateway_args.join(" "),
            pin(p.gateway_cpu),
            p.gateway_worker_threads,
            p.gateway_threads_seen,
            p.gateway_env
                .iter()
                .map(|(k, v)| format!("`{k}={v}`"))
                .collect::<Vec<_>>()
                .join(", "),
            self.logging.gateway
        );
        if let Some(n) = &self.nginx {
            let _ = writeln!(
                o,
                "- nginx: `{}` ({}) — {}, a master and one worker; CPU and RSS figures are the {}. {} Config in the last section.",
                n.binary,
                n.version,
                pin(p.gateway_cpu),
                n.measured,
                self.logging.nginx.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(
            o,
            "- Hop floor: `janus-perf hop` — {}, same runtime flavour and worker count as the gateway.",
            pin(p.gateway_cpu)
        );
        let _ = writeln!(
            o,
            "- Mock competitor: `janus-perf mock`, tokio `current_thread` ({} thread) — {}.",
            p.mock_threads_seen,
            pin(p.load_cpu)
        );
        let _ = writeln!(
            o,
            "- Load generator: {} — {}; open-file limit {}. CPU time from `/proc/<pid>/task/*/schedstat` (ns); user/kernel split from `/proc/<pid>/stat` ({} ticks/s).",
            p.load_threads,
            pin(p.load_cpu),
            p.load_nofile,
            p.clock_ticks
        );
        let _ = writeln!(
            o,
            "- Rounds: {} measured + {} warm-up (discarded) per path, path order rotating every round; every figure is the median of the per-round figures. Round {:.1} s; open loop over {} connections per path.\n",
            pl.rounds, pl.warmup_rounds, pl.round.as_secs_f64(), pl.open_conns
        );
    }

    fn goals_section(&self, o: &mut String) {
        let _ = writeln!(o, "## Goals\n");
        header(o, &["figure", "goal", "measured", "met"]);
        for g in &self.goals {
            row(
                o,
                &[
                    g.figure.clone(),
                    g.target.clone(),
                    format!("{:.1} {}", g.value, g.unit),
                    if g.met { "yes".into() } else { "**no**".into() },
                ],
            );
        }
        let _ = writeln!(
            o,
            "\nFailed requests or streams outside the throughput search: {}.\n",
            self.errors_total
        );
        if self.nginx.is_none() {
            return;
        }
        let _ = writeln!(o, "Headline ratios, gateway against nginx in this run:\n");
        let t = &self.throughput;
        if let Some(n) = t.nginx_max_rps {
            let _ = writeln!(
                o,
                "- Throughput at p99 < {} ms: gateway {:.0} req/s, nginx {:.0} req/s — **{}**.",
                t.p99_limit_ms,
                t.gateway_max_rps,
                n,
                ratio(t.gateway_vs_nginx)
            );
        }
        let c = &self.closed_loop_c1;
        if c.nginx.is_some() {
            let _ = writeln!(
                o,
                "- c=1 added latency p50 / p99: gateway {:.1} / {:.1} µs, nginx {} / {} µs — **{} / {}**; gateway's own share (gateway − hop) at p50 {} µs, nginx's {} µs.",
                c.added_p50_us,
                c.added_p99_us,
                opt(c.nginx_added_p50_us),
                opt(c.nginx_added_p99_us),
                ratio(c.added_p50_vs_nginx),
                ratio(c.added_p99_vs_nginx),
                opt(c.gateway_own_p50_us),
                opt(c.nginx_own_p50_us)
            );
        }
        for r in &self.idle {
            if let Some(n) = &r.nginx {
                let _ = writeln!(
                    o,
                    "- {} idle streams: gateway {:.1} KiB per stream, nginx {:.1} KiB — **{}**.",
                    r.streams,
                    r.gateway.rss_per_stream_kib,
                    n.rss_per_stream_kib,
                    ratio(r.per_stream_vs_nginx)
                );
            }
        }
        let s = &self.streaming;
        if s.nginx.is_some() {
            let _ = writeln!(
                o,
                "- Streaming: added TTFT p99 gateway {:.1} µs, nginx {} µs; added inter-chunk gap p99 gateway {:.1} µs, nginx {} µs.",
                s.added_ttft_p99_us,
                opt(s.nginx_added_ttft_p99_us),
                s.added_gap_p99_us,
                opt(s.nginx_added_gap_p99_us)
            );
        }
        let _ = writeln!(o);
    }

    fn c1_section(&self, o: &mut String) {
        let c = &self.closed_loop_c1;
        let _ = writeln!(o, "## 1. Non-stream, concurrency 1 (closed loop)\n");
        header(
            o,
            &[
                "path", "p50", "p90", "p99", "p99.9", "max", "req/s", "samples",
            ],
        );
        let paths = [
            ("direct", Some(&c.direct), c.direct_rps),
            ("hop floor", c.hop.as_ref(), c.hop_rps.unwrap_or(0.0)),
            ("nginx", c.nginx.as_ref(), c.nginx_rps.unwrap_or(0.0)),
            ("gateway", Some(&c.gateway), c.gateway_rps),
        ];
        for (name, s, rps) in paths {
            let Some(s) = s else { continue };
            row(
                o,
                &[
                    name.into(),
                    f1(s.p50_us),
                    f1(s.p90_us),
                    f1(s.p99_us),
                    f1(s.p999_us),
                    f1(s.max_us),
                    f0(rps),
                    s.count.to_string(),
                ],
            );
        }
        let _ = writeln!(
            o,
            "\nAdded by the gateway: p50 **{:.1} µs**, p99 **{:.1} µs**. Added by nginx: p50 {} µs, p99 {} µs (gateway ÷ nginx: {} / {}). Added by the hop floor: p50 {} µs, p99 {} µs. Own share at p50 (path − hop floor): gateway **{} µs**, nginx {} µs.\n",
            c.added_p50_us,
            c.added_p99_us,
            opt(c.nginx_added_p50_us),
            opt(c.nginx_added_p99_us),
            ratio(c.added_p50_vs_nginx),
            ratio(c.added_p99_vs_nginx),
            opt(c.hop_added_p50_us),
            opt(c.hop_added_p99_us),
            opt(c.gateway_own_p50_us),
            opt(c.nginx_own_p50_us)
        );
        let mut names = vec!["gateway", "direct"];
        if c.hop.is_some() {
            names.push("hop");
        }
        if c.nginx.is_some() {
            names.push("nginx");
        }
        let _ = writeln!(o, "Per-round p50 ({}):\n", names.join(" / "));
        let rounds: Vec<String> = (0..c.gateway_rounds.len())
            .map(|i| {
                let mut cells = vec![
                    c.gateway_rounds.get(i).map_or(0.0, |s| s.p50_us),
                    c.direct_rounds.get(i).map_or(0.0, |s| s.p50_us),
                ];
                if c.hop.is_some() {
                    cells.push(c.hop_rounds.get(i).map_or(0.0, |s| s.p50_us));
                }
                if c.nginx.is_some() {
                    cells.push(c.nginx_rounds.get(i).map_or(0.0, |s| s.p50_us));
                }
                cells
                    .iter()
                    .map(|v| format!("{v:.0}"))
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        let _ = writeln!(o, "{}\n", rounds.join(", "));
    }

    fn open_section(&self, o: &mut String) {
        let cap = &self.capacity;
        let base = if self.plan.fractions_of_slower {
            "the slower path's highest rate with p99 under the limit"
        } else {
            "the direct path's highest rate with p99 under the limit (scenario 3)"
        };
        let _ = writeln!(o, "## 2. Open loop at fractions of the direct capacity\n");
        let _ = writeln!(
            o,
            "The base rate is {base}. (Closed-loop saturation with {} connections, where the \
             search starts: direct {:.0} req/s, nginx {} req/s, gateway {:.0} req/s — batching \
             lets a closed loop go far beyond what an open-loop client can offer without \
             queueing.) Latency is measured from the intended send time, so coordinated omission \
             cannot hide the tail.\n",
            cap.connections,
            cap.direct_rps,
            cap.nginx_rps.map_or("–".into(), f0),
            cap.gateway_rps
        );
        header(
            o,
            &[
                "offered",
                "req/s",
                "direct p50 / p99",
                "hop p50 / p99",
                "nginx p50 / p99",
                "gateway p50 / p99",
                "gateway added p50 / p99",
                "nginx added p50 / p99",
                "hop added p50 / p99",
                "failures",
            ],
        );
        for r in &self.open_loop {
            let l = &r.latency;
            row(
                o,
                &[
                    format!("{:.0} %", r.fraction * 100.0),
                    f0(r.rate_rps),
                    pair(&l.direct),
                    opt_pair(l.hop.as_ref()),
                    opt_pair(l.nginx.as_ref()),
                    pair(&l.gateway),
                    format!("**{:.1} / {:.1}**", l.added_p50_us, l.added_p99_us),
                    format!(
                        "{} / {}",
                        opt(l.nginx_added_p50_us),
                        opt(l.nginx_added_p99_us)
                    ),
                    format!("{} / {}", opt(l.hop_added_p50_us), opt(l.hop_added_p99_us)),
                    l.errors.to_string(),
                ],
            );
        }
        let _ = writeln!(o, "\nService time (from the actual send), p50 / p99, and CPU per request (relay = the process on core {}: the gateway, nginx's worker, the hop):\n", self.placement.gateway_cpu.map_or("–".into(), |c| c.to_string()));
        header(
            o,
            &[
                "offered",
                "direct",
                "hop",
                "nginx",
                "gateway",
                "gateway CPU/req",
                "nginx CPU/req",
                "hop CPU/req",
                "mock CPU/req",
                "load gen CPU/req",
                "gateway ÷ mock",
                "gateway ÷ nginx CPU",
            ],
        );
        for r in &self.open_loop {
            let vs_nginx = r.cpu_nginx.and_then(|n| {
                (n.relay_s_per_1k > 0.0).then(|| r.cpu_gateway.relay_s_per_1k / n.relay_s_per_1k)
            });
            row(
                o,
                &[
                    format!("{:.0} %", r.fraction * 100.0),
                    pair(&r.service_direct),
                    opt_pair(r.service_hop.as_ref()),
                    opt_pair(r.service_nginx.as_ref()),
                    pair(&r.service_gateway),
                    cpu_cell(&r.cpu_gateway),
                    r.cpu_nginx.as_ref().map_or("–".into(), cpu_cell),
                    r.cpu_hop.as_ref().map_or("–".into(), cpu_cell),
                    format!(
                        "{:.1} µs ({:.0} % user)",
                        r.cpu_gateway.mock_s_per_1k * 1000.0,
                        r.cpu_gateway.mock_user_share * 100.0
                    ),
                    format!("{:.1} µs", r.cpu_gateway.load_s_per_1k * 1000.0),
                    format!("**{:.2}×**", r.cpu_gateway.ratio),
                    ratio(vs_nginx),
                ],
            );
        }
        let _ = writeln!(o);
    }

    fn throughput_section(&self, o: &mut String) {
        let t = &self.throughput;
        let c = &t.cpu_at_max;
        let _ = writeln!(
            o,
            "## 3. Throughput (p99 < {} ms, no errors)\n",
            t.p99_limit_ms
        );
        let _ = writeln!(
            o,
            "Highest passing rate: direct **{:.0} req/s**, nginx **{} req/s**, gateway **{:.0} req/s** \
             ({:.0} % of direct; gateway ÷ nginx **{}**).\n\n\
             At the gateway's highest passing rate ({} requests): gateway {:.1} µs CPU per request \
             ({:.0} % user), mock {:.1} µs ({:.0} % user) — ratio **{:.2}×**; load generator {:.1} µs.{}\n",
            t.direct_max_rps,
            t.nginx_max_rps.map_or("–".into(), f0),
            t.gateway_max_rps,
            t.gateway_vs_direct * 100.0,
            ratio(t.gateway_vs_nginx),
            c.requests, c.relay_s_per_1k * 1000.0, c.relay_user_share * 100.0,
            c.mock_s_per_1k * 1000.0, c.mock_user_share * 100.0, c.ratio, c.load_s_per_1k * 1000.0,
            t.nginx_cpu_at_max.map_or(String::new(), |n| format!(
                " At nginx's highest passing rate ({} requests): nginx's worker {:.1} µs CPU per request ({:.0} % user), mock {:.1} µs — ratio {:.2}×.",
                n.requests, n.relay_s_per_1k * 1000.0, n.relay_user_share * 100.0,
                n.mock_s_per_1k * 1000.0, n.ratio
            ))
        );
        header(
            o,
            &[
                "path",
                "offered",
                "achieved",
                "p50",
                "p99",
                "failures",
                "pass",
                "relay CPU/req µs",
                "relay ÷ mock CPU",
            ],
        );
        for s in &t.steps {
            let relay = s.path != "direct";
            row(
                o,
                &[
                    s.path.into(),
                    f0(s.rate_rps),
                    f0(s.achieved_rps),
                    f1(s.latency.p50_us),
                    f1(s.latency.p99_us),
                    s.failures.to_string(),
                    if s.pass { "yes".into() } else { "no".into() },
                    if relay {
                        f1(s.cpu.relay_s_per_1k * 1000.0)
                    } else {
                        String::new()
                    },
                    if relay {
                        format!("{:.2}", s.cpu.ratio)
                    } else {
                        String::new()
                    },
                ],
            );
        }
        let _ = writeln!(o);
    }

    fn streaming_section(&self, o: &mut String) {
        let s = &self.streaming;
        let _ = writeln!(
            o,
            "## 4. Streaming ({} chunks at {} ms, {} concurrent streams per round, starts spread over one interval)\n",
            s.chunks, s.interval_ms, s.streams_per_round
        );
        header(
            o,
            &[
                "figure (p50 / p99)",
                "direct",
                "hop floor",
                "nginx",
                "gateway",
                "gateway added",
                "nginx added",
                "hop added p99",
            ],
        );
        let hop = s.hop.as_ref();
        let nginx = s.nginx.as_ref();
        let both = |a: Option<f64>, b: Option<f64>| format!("{} / {}", opt(a), opt(b));
        row(
            o,
            &[
                "TTFT".into(),
                pair(&s.direct.ttft),
                hop.map_or("–".into(), |h| pair(&h.ttft)),
                nginx.map_or("–".into(), |h| pair(&h.ttft)),
                pair(&s.gateway.ttft),
                format!(
                    "{:.1} / **{:.1}**",
                    s.added_ttft_p50_us, s.added_ttft_p99_us
                ),
                both(s.nginx_added_ttft_p50_us, s.nginx_added_ttft_p99_us),
                opt(s.hop_added_ttft_p99_us),
            ],
        );
        row(
            o,
            &[
                "inter-chunk gap".into(),
                pair(&s.direct.gap),
                hop.map_or("–".into(), |h| pair(&h.gap)),
                nginx.map_or("–".into(), |h| pair(&h.gap)),
                pair(&s.gateway.gap),
                format!("{:.1} / **{:.1}**", s.added_gap_p50_us, s.added_gap_p99_us),
                both(s.nginx_added_gap_p50_us, s.nginx_added_gap_p99_us),
                opt(s.hop_added_gap_p99_us),
            ],
        );
        row(
            o,
            &[
                "relay latency (mock stamp → client)".into(),
                pair(&s.direct.relay),
                hop.map_or("–".into(), |h| pair(&h.relay)),
                nginx.map_or("–".into(), |h| pair(&h.relay)),
                pair(&s.gateway.relay),
                format!("{:.1} / {:.1}", s.added_relay_p50_us, s.added_relay_p99_us),
                both(s.nginx_added_relay_p50_us, s.nginx_added_relay_p99_us),
                opt(s.hop_added_relay_p99_us),
            ],
        );
        let _ = writeln!(o);
        header(
            o,
            &[
                "path",
                "streams complete",
                "chunks",
                "stalls (gap > 2× interval)",
                "longest gap ms",
                "errors",
            ],
        );
        for (name, side) in [
            ("direct", Some(&s.direct)),
            ("hop floor", hop),
            ("nginx", nginx),
            ("gateway", Some(&s.gateway)),
        ] {
            let Some(side) = side else { continue };
            row(
                o,
                &[
                    name.into(),
                    side.streams_ok.to_string(),
                    side.chunks.to_string(),
                    side.stalls.to_string(),
                    f1(side.max_gap_ms),
                    side.errors.to_string(),
                ],
            );
        }
        let g = &s.cpu_per_1k_chunks_gateway;
        let _ = writeln!(
            o,
            "\nCPU per relayed chunk: gateway {:.1} µs ({:.0} % user){}{}; mock {:.1} µs.\n",
            g.relay_s_per_1k * 1000.0,
            g.relay_user_share * 100.0,
            s.cpu_per_1k_chunks_nginx.map_or(String::new(), |n| format!(
                ", nginx {:.1} µs ({:.0} % user)",
                n.relay_s_per_1k * 1000.0,
                n.relay_user_share * 100.0
            )),
            s.cpu_per_1k_chunks_hop.map_or(String::new(), |h| format!(
                ", hop floor {:.1} µs",
                h.relay_s_per_1k * 1000.0
            )),
            g.mock_s_per_1k * 1000.0
        );
    }

    fn idle_section(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "## 5. Idle streams (competitor silent; the gateway sends keep-alives, nginx relays the silence)\n"
        );
        let _ = writeln!(
            o,
            "Each count runs against a freshly started gateway and a freshly started nginx, so memory \
             an allocator kept from an earlier step cannot hide growth. KiB / stream = (RSS held − \
             RSS before) / streams opened, of the gateway process and of nginx's worker. RSS after \
             is read {:.1} s after the client hung up, RSS return {:.1} s after; *return ÷ before* \
             is the RSS-return goal's figure (before = the fresh process, which has answered only \
             `/health`). nginx sends no keep-alives, so its silences are the mock's and are not \
             judged.\n",
            self.plan.idle_settle.as_secs_f64(),
            self.plan.rss_return_wait.as_secs_f64()
        );
        header(
            o,
            &[
                "streams",
                "path",
                "opened",
                "open s",
                "RSS before KiB",
                "RSS held KiB",
                "KiB / stream",
                "RSS after KiB",
                "RSS return KiB",
                "return ÷ before",
                "mock KiB / stream",
                "max gap ms",
                "gaps > 2 s",
                "pings / stream",
                "errors",
            ],
        );
        for r in &self.idle {
            for (name, side) in [("gateway", Some(&r.gateway)), ("nginx", r.nginx.as_ref())] {
                let Some(side) = side else { continue };
                row(
                    o,
                    &[
                        r.streams.to_string(),
                        name.into(),
                        side.opened.to_string(),
                        format!("{:.1}", side.open_seconds),
                        side.rss_before_kib.to_string(),
                        side.rss_held_kib.to_string(),
                        format!("**{:.1}**", side.rss_per_stream_kib),
                        side.rss_after_kib.to_string(),
                        side.rss_return_kib.to_string(),
                        format!("{:.2}", side.rss_return_ratio),
                        format!("{:.1}", side.mock_rss_per_stream_kib),
                        f0(side.max_gap_ms),
                        side.gaps_over_2s.to_string(),
                        format!("{:.1}", side.keepalives_per_stream),
                        side.errors.to_string(),
                    ],
                );
            }
        }
        for r in &self.idle {
            if let Some(note) = &r.limit_note {
                let _ = writeln!(o, "\n- {} requested: {note}.", r.requested);
            }
        }
        let _ = writeln!(o);
    }

    fn nginx_section(&self, o: &mut String) {
        let Some(n) = &self.nginx else {
            return;
        };
        let l = &self.logging;
        let _ = writeln!(o, "## nginx configuration and logging\n");
        let _ = writeln!(
            o,
            "{} (`{}`), started as `{}`; `worker_connections {}`, `worker_rlimit_nofile {}` \
             (the worker's open-file limit was {}); the master's RSS was {} KiB (not in any \
             figure above). CPU and RSS figures are the {}.\n",
            n.version,
            n.binary,
            n.command,
            n.worker_connections,
            n.worker_rlimit_nofile,
            n.worker_nofile_seen,
            n.master_rss_kib,
            n.measured
        );
        let _ = writeln!(
            o,
            "Both sides logged every request they relayed: the gateway wrote {} access lines in \
             the run, nginx {} (each for its own path's requests; nginx also logs the `/health` \
             checks). Gateway: {} nginx: {}\n",
            l.gateway_access_lines,
            l.nginx_access_lines.map_or("–".into(), |n| n.to_string()),
            l.gateway,
            l.nginx.as_deref().unwrap_or("–")
        );
        let _ = writeln!(o, "```nginx\n{}```\n", n.config);
    }
}
