//! The driver: starts the mock, the gateway, the hop floor and nginx pinned to their cores,
//! runs the scenarios with the paths' rounds interleaved, and assembles the [`Report`].
//!
//! The calling process is the load generator. It should already be pinned and have its
//! open-file limit raised ([`prepare_load_process`]) before its runtime starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;

use crate::client::Conn;
use crate::load::{self, LoadResult, Target};
use crate::nginx::{self, Nginx, NginxSettings};
use crate::plan::Plan;
use crate::procs::{self, Launch, Machine, Proc, ProcSample};
use crate::report::{
    Capacity, Compare, CpuCost, Goal, IdleRow, IdleSide, Logging, NginxReport, OpenLoopRow,
    Placement, Report, SearchStep, StreamSide, Streaming, Throughput,
};
use crate::stats::{median, Summary};
use crate::stream::{self, IdleSet, StreamRound};
use crate::wire;

/// Which scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenarios {
    /// 1: closed loop, concurrency 1.
    pub c1: bool,
    /// 2: open loop at fractions of capacity (needs the capacity runs).
    pub open_loop: bool,
    /// 3: throughput search (needs the capacity runs).
    pub throughput: bool,
    /// 4: streaming.
    pub streaming: bool,
    /// 5: idle streams.
    pub idle: bool,
}

impl Scenarios {
    /// Every scenario.
    pub const ALL: Scenarios = Scenarios {
        c1: true,
        open_loop: true,
        throughput: true,
        streaming: true,
        idle: true,
    };

    /// Parses `c1,open,throughput,stream,idle`.
    pub fn parse(list: &str) -> anyhow::Result<Scenarios> {
        let mut s = Scenarios {
            c1: false,
            open_loop: false,
            throughput: false,
            streaming: false,
            idle: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "c1" => s.c1 = true,
                "open" => s.open_loop = true,
                "throughput" => s.throughput = true,
                "stream" => s.streaming = true,
                "idle" => s.idle = true,
                "all" => s = Scenarios::ALL,
                other => anyhow::bail!(
                    "unknown scenario '{other}' (expected c1, open, throughput, stream, idle, all)"
                ),
            }
        }
        Ok(s)
    }
}

/// How to run the gateway under test.
#[derive(Debug, Clone)]
pub struct GatewayProgram {
    /// The program.
    pub program: PathBuf,
    /// Arguments before the gateway's own flags (e.g. `gateway` for the in-package stand-in).
    pub leading_args: Vec<String>,
}

/// Everything a run needs besides the plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The parameters.
    pub plan: Plan,
    /// The gateway under test.
    pub gateway: GatewayProgram,
    /// The program that serves the mock with `mock --listen ADDR --announce`.
    pub mock_program: PathBuf,
    /// The nginx binary (used when the plan measures nginx).
    pub nginx_bin: PathBuf,
    /// `(gateway core, mock and load core)`; `None` runs unpinned.
    pub pin: Option<(usize, usize)>,
    /// `TOKIO_WORKER_THREADS` for the gateway.
    pub gateway_workers: usize,
    /// Which scenarios.
    pub scenarios: Scenarios,
    /// Scenario 2's base rate, when fixed by hand (A/B comparisons of two gateway builds).
    pub base_rate: Option<f64>,
    /// Where the children's stderr goes.
    pub log_dir: PathBuf,
}

/// What [`prepare_load_process`] managed.
#[derive(Debug, Clone, Copy)]
pub struct LoadProcess {
    /// Pinned to this core.
    pub cpu: Option<usize>,
    /// Open-file soft limit now.
    pub nofile: u64,
}

/// Pins this process (every thread, and threads started later) to `cpu` and raises its
/// open-file limit. Call before the runtime starts. Failures are reported and tolerated.
pub fn prepare_load_process(cpu: Option<usize>, nofile: u64) -> LoadProcess {
    let cpu = cpu.filter(|&c| match procs::pin_self(c) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("janus-perf: not pinned: {e:#}");
            false
        }
    });
    LoadProcess {
        cpu,
        nofile: procs::raise_nofile(nofile),
    }
}

const GATEWAY: usize = 0;
const DIRECT: usize = 1;
const HOP: usize = 2;
const NGINX: usize = 3;
/// Number of paths; arrays indexed by path have this length.
const PATHS: usize = 4;
const PATH_NAMES: [&str; PATHS] = ["gateway", "direct", "hop", "nginx"];

struct Ctx {
    plan: Plan,
    gateway: Proc,
    /// How the gateway was started, to start it afresh.
    gateway_launch: Launch,
    mock: Proc,
    hop: Option<Proc>,
    nginx: Option<Nginx>,
    /// `worker_connections` and friends of the nginx config.
    nginx_settings: Option<NginxSettings>,
    /// Indexed by path; a missing path's target is the mock itself.
    targets: [Target; PATHS],
    ticks: f64,
    errors: u64,
}

impl Ctx {
    /// Stops the gateway (SIGTERM) and starts a fresh one on the same address.
    async fn restart_gateway(&mut self) -> anyhow::Result<()> {
        // The old process is gone before the new one binds the same port.
        self.gateway.respawn(&self.gateway_launch)?;
        procs::wait_healthy(self.targets[GATEWAY].addr, Duration::from_secs(20)).await?;
        // Let the start-up allocations settle before the baseline is read.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }

    /// Stops the relay of `path` (gateway or nginx) and starts a fresh one.
    async fn restart_relay(&mut self, path: usize) -> anyhow::Result<()> {
        match (path, self.nginx.as_mut()) {
            (GATEWAY, _) => self.restart_gateway().await,
            (NGINX, Some(nginx)) => {
                nginx.restart().await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(())
            }
            _ => anyhow::bail!("{} cannot be restarted", PATH_NAMES[path]),
        }
    }

    /// The paths compared in the latency scenarios.
    fn paths(&self) -> Vec<usize> {
        let mut paths = vec![GATEWAY, DIRECT];
        if self.hop.is_some() {
            paths.push(HOP);
        }
        if self.nginx.is_some() {
            paths.push(NGINX);
        }
        paths
    }

    /// The pid of the process on the relay core for `path` (none for direct): the gateway,
    /// the hop, or nginx's worker.
    fn relay(&self, path: usize) -> Option<u32> {
        match path {
            GATEWAY => Some(self.gateway.pid()),
            HOP => self.hop.as_ref().map(Proc::pid),
            NGINX => self.nginx.as_ref().map(Nginx::worker_pid),
            _ => None,
        }
    }

    /// What `/proc` says about the relay of `path` now.
    fn relay_sample(&self, path: usize) -> anyhow::Result<ProcSample> {
        match self.relay(path) {
            Some(pid) => ProcSample::of(pid),
            None => Ok(ProcSample::default()),
        }
    }
}

fn say(message: impl AsRef<str>) {
    eprintln!("janus-perf: {}", message.as_ref());
}

/// Order of the paths in round `r`: rotate, so drift hits every path alike.
fn order(r: usize, paths: &[usize]) -> Vec<usize> {
    let mut order = paths.to_vec();
    if !order.is_empty() {
        let n = order.len();
        order.rotate_left(r % n);
    }
    order
}

/// How the gateway logs in every run: its access log on, to a file.
const GATEWAY_LOGGING: &str = "`RUST_LOG=info`, `--log-format json` and `JANUS_LOG_BUFFER=64k`: \
     the access log is on, one JSON line per chat request (target `janus_gateway::access`), \
     buffered up to 64 KiB and written at least every second (as nginx's `buffer=64k \
     flush=1s`) to the gateway's stderr, which is a file (`gateway.log` in the logs directory).";

/// How nginx logs (see [`nginx::config_text`]).
const NGINX_LOGGING: &str = "`log_format janus escape=json` and `access_log access.log janus \
     buffer=64k flush=1s`: one JSON line per request, buffered, to a file in its prefix.";

/// Runs the plan and returns the report.
pub async fn run(options: RunOptions, load: LoadProcess) -> anyhow::Result<Report> {
    let started = Instant::now();
    let started_unix = wire::wall_ns() / 1_000_000_000;
    let loadavg_start = procs::loadavg();
    let plan = options.plan.clone();
    // Named after our pid: anything already there is a leftover of an earlier process (and
    // the children's logs are appended to).
    let _ = std::fs::remove_dir_all(&options.log_dir);
    std::fs::create_dir_all(&options.log_dir)
        .with_context(|| format!("creating {}", options.log_dir.display()))?;
    let (gateway_cpu, load_cpu) = match options.pin {
        Some((g, l)) => (Some(g), Some(l)),
        None => (None, None),
    };

    let (mut mock, mock_addr) = Proc::spawn_mock(&Launch {
        name: "mock",
        program: options.mock_program.clone(),
        args: vec![
            "mock".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--announce".into(),
        ],
        env: Vec::new(),
        cpu: load_cpu,
        nofile: plan.nofile,
        stderr: Some(options.log_dir.join("mock.log")),
    })?;
    let gateway_port = procs::free_port()?;
    let gateway_addr = SocketAddr::from(([127, 0, 0, 1], gateway_port));
    let mut gateway_args = vec![
        "--listen".to_owned(),
        gateway_addr.to_string(),
        "--competitor".to_owned(),
        format!("{}=http://{mock_addr}", wire::MODEL),
        "--log-format".to_owned(),
        "json".to_owned(),
    ];
    if let Some(interval) = &plan.keepalive_interval {
        gateway_args.push("--keepalive-interval".into());
        gateway_args.push(interval.clone());
    }
    // The access log (info) is on and goes to a file (the gateway's stderr is one): the
    // comparison with nginx is with both sides logging.
    let gateway_env = vec![
        ("RUST_LOG".to_owned(), "info".to_owned()),
        // Buffered like nginx's access log (buffer=64k flush=1s): like for like.
        ("JANUS_LOG_BUFFER".to_owned(), "64k".to_owned()),
        (
            "TOKIO_WORKER_THREADS".to_owned(),
            options.gateway_workers.to_string(),
        ),
    ];
    let gateway_log = options.log_dir.join("gateway.log");
    let gateway_launch = Launch {
        name: "gateway",
        program: options.gateway.program.clone(),
        args: options
            .gateway
            .leading_args
            .iter()
            .cloned()
            .chain(gateway_args.iter().cloned())
            .collect(),
        env: gateway_env.clone(),
        cpu: gateway_cpu,
        nofile: plan.nofile,
        stderr: Some(gateway_log.clone()),
    };
    let mut gateway = Proc::spawn(&gateway_launch, std::process::Stdio::null())?;
    let hop = if plan.hop {
        let port = procs::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let proc = Proc::spawn(
            &Launch {
                name: "hop",
                program: options.mock_program.clone(),
                args: vec![
                    "hop".into(),
                    "--listen".into(),
                    addr.to_string(),
                    "--upstream".into(),
                    mock_addr.to_string(),
                ],
                env: vec![(
                    "TOKIO_WORKER_THREADS".to_owned(),
                    options.gateway_workers.to_string(),
                )],
                cpu: gateway_cpu,
                nofile: plan.nofile,
                stderr: Some(options.log_dir.join("hop.log")),
            },
            std::process::Stdio::null(),
        )?;
        Some((proc, addr))
    } else {
        None
    };
    procs::wait_healthy(mock_addr, Duration::from_secs(10)).await?;
    if let Some((_, addr)) = &hop {
        procs::wait_healthy(*addr, Duration::from_secs(10)).await?;
    }
    procs::wait_healthy(gateway_addr, Duration::from_secs(20))
        .await
        .with_context(|| format!("gateway did not come up; see {}", gateway_log.display()))?;
    mock.check_alive()?;
    gateway.check_alive()?;
    // nginx gets the open-file limit this process got (the children's is the same): its
    // worker_connections follow from it.
    let nginx = if plan.nginx {
        let addr = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
        let settings = NginxSettings::new(addr, mock_addr, load.nofile);
        let config = nginx::config_text(&settings);
        let dir = options.log_dir.join("nginx");
        let proc = Nginx::start(
            &options.nginx_bin,
            &dir,
            &config,
            addr,
            gateway_cpu,
            plan.nofile,
        )
        .await
        .context("starting nginx")?;
        Some((proc, settings, config))
    } else {
        None
    };
    say(format!(
        "gateway pid {} on {gateway_addr} ({}), mock pid {} on {mock_addr} ({}){}, logs in {}",
        gateway.pid(),
        gateway_cpu.map_or("unpinned".into(), |c| format!("core {c}")),
        mock.pid(),
        load_cpu.map_or("unpinned".into(), |c| format!("core {c}")),
        nginx.as_ref().map_or(String::new(), |(n, _, _)| format!(
            ", nginx master {} worker {} on {}",
            n.master_pid(),
            n.worker_pid(),
            n.addr()
        )),
        options.log_dir.display()
    ));
    let nginx_report = match &nginx {
        Some((n, settings, config)) => Some(NginxReport {
            binary: options.nginx_bin.display().to_string(),
            version: nginx::version(&options.nginx_bin)?,
            command: format!(
                "{} -p <prefix>/ -c <prefix>/nginx.conf -e <prefix>/error.log",
                options.nginx_bin.display()
            ),
            master_process: true,
            measured:
                "worker process (the one that serves every request; the master only forks it)",
            worker_connections: settings.worker_connections,
            worker_rlimit_nofile: settings.nofile,
            worker_nofile_seen: n.worker_nofile(),
            master_rss_kib: n.master_sample().map(|s| s.rss_kib).unwrap_or(0),
            config: config.clone(),
        }),
        None => None,
    };

    let body = Bytes::from(wire::complete_request());
    let expect_len = wire::completion_reply().len();
    let target = |name: &'static str, addr: SocketAddr| Target {
        name,
        addr,
        body: body.clone(),
        expect_len,
        timeout: plan.request_timeout,
    };
    let hop_addr = hop.as_ref().map_or(mock_addr, |(_, addr)| *addr);
    let nginx_addr = nginx.as_ref().map_or(mock_addr, |(n, _, _)| n.addr());
    let (nginx, nginx_settings) = match nginx {
        Some((n, settings, _)) => (Some(n), Some(settings)),
        None => (None, None),
    };
    let mut ctx = Ctx {
        plan: plan.clone(),
        gateway,
        gateway_launch,
        mock,
        hop: hop.map(|(proc, _)| proc),
        nginx,
        nginx_settings,
        targets: [
            target("gateway", gateway_addr),
            target("direct", mock_addr),
            target("hop", hop_addr),
            target("nginx", nginx_addr),
        ],
        ticks: procs::clock_ticks() as f64,
        errors: 0,
    };

    let s = options.scenarios;
    let closed_loop_c1 = if s.c1 {
        scenario_c1(&mut ctx).await?
    } else {
        Compare::default()
    };
    let capacity = if s.open_loop || s.throughput {
        measure_capacity(&mut ctx).await?
    } else {
        Capacity::default()
    };
    let throughput = if s.throughput {
        scenario_throughput(&mut ctx, &capacity).await?
    } else {
        Throughput::default()
    };
    // "Direct capacity" for scenario 2 is the highest rate the direct path sustains in open
    // loop within the p99 limit; the closed-loop saturation figure is far above what any
    // open-loop client can offer without queueing (it batches), so fractions of it would
    // measure overload. Without the search, fall back to half the closed-loop figure.
    let open_loop = if s.open_loop {
        let (direct, gateway) = if s.throughput {
            (throughput.direct_max_rps, throughput.gateway_max_rps)
        } else {
            (capacity.direct_rps * 0.5, capacity.gateway_rps * 0.5)
        };
        let base = match options.base_rate {
            Some(rate) => rate,
            None if plan.fractions_of_slower => direct.min(gateway),
            None => direct,
        };
        scenario_open(&mut ctx, base).await?
    } else {
        Vec::new()
    };
    let streaming = if s.streaming {
        scenario_streaming(&mut ctx).await?
    } else {
        Streaming::default()
    };
    let idle = if s.idle {
        scenario_idle(&mut ctx, load.nofile).await?
    } else {
        Vec::new()
    };
    ctx.gateway.check_alive()?;
    ctx.mock.check_alive()?;
    if let Some(nginx) = ctx.nginx.as_mut() {
        nginx.check_alive()?;
    }

    let gateway_threads_seen = ctx.gateway.sample().map(|s| s.threads).unwrap_or(0);
    let mock_threads_seen = ctx.mock.sample().map(|s| s.threads).unwrap_or(0);
    // nginx flushes its access log buffer as its worker exits: stop it, then count.
    let nginx_access_lines = match ctx.nginx.as_mut() {
        Some(nginx) => {
            nginx.stop();
            Some(count_lines(&nginx.access_log(), None)?)
        }
        None => None,
    };
    let logging = Logging {
        gateway: GATEWAY_LOGGING.into(),
        nginx: plan.nginx.then(|| NGINX_LOGGING.into()),
        gateway_access_lines: count_lines(&gateway_log, Some(b"janus_gateway::access"))?,
        nginx_access_lines,
    };
    let goals = goals(
        &s,
        &closed_loop_c1,
        &throughput,
        &streaming,
        &idle,
        &ctx.plan,
    );
    let placement = Placement {
        pinned: gateway_cpu.is_some() && load.cpu.is_some(),
        gateway_cpu,
        load_cpu: load.cpu,
        // Relative to the working directory when inside it: a report names no machine path.
        gateway_bin: std::env::current_dir()
            .ok()
            .and_then(|dir| {
                options
                    .gateway
                    .program
                    .strip_prefix(dir)
                    .ok()
                    .map(|p| p.display().to_string())
            })
            .unwrap_or_else(|| options.gateway.program.display().to_string()),
        gateway_args: options
            .gateway
            .leading_args
            .iter()
            .cloned()
            .chain(gateway_args)
            .collect(),
        gateway_env,
        gateway_worker_threads: options.gateway_workers,
        gateway_threads_seen,
        mock_threads_seen,
        load_threads:
            "janus-perf: tokio current_thread runtime (1 thread) + 1 open-loop pacer thread".into(),
        load_nofile: load.nofile,
        clock_ticks: ctx.ticks as u64,
    };
    Ok(Report {
        harness: "janus-perf",
        started_unix,
        wall_seconds: started.elapsed().as_secs_f64(),
        machine: Machine::probe(),
        loadavg_start,
        loadavg_end: procs::loadavg(),
        placement,
        nginx: nginx_report,
        logging,
        plan,
        closed_loop_c1,
        capacity,
        open_loop,
        throughput,
        streaming,
        idle,
        goals,
        errors_total: ctx.errors,
    })
}

/// Lines of the file at `path` (those containing `needle`, when given).
fn count_lines(path: &std::path::Path, needle: Option<&[u8]>) -> anyhow::Result<u64> {
    use std::io::BufRead as _;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut count = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok(count);
        }
        if needle.is_none_or(|needle| memchr::memmem::find(&line, needle).is_some()) {
            count += 1;
        }
    }
}

fn failures(result: &LoadResult) -> u64 {
    result.errors + result.timeouts + result.late
}

fn log_run(what: &str, path: usize, result: &LoadResult, summary: &Summary) {
    say(format!(
        "{what} {}: {} ok, p50 {:.1} µs, p99 {:.1} µs, {:.0} req/s{}",
        PATH_NAMES[path],
        result.completed,
        summary.p50_us,
        summary.p99_us,
        result.rate(),
        match (&result.first_error, failures(result)) {
            (_, 0) => String::new(),
            (Some(e), n) => format!(", {n} failed (first: {e})"),
            (None, n) => format!(", {n} failed"),
        }
    ));
}

/// `a ÷ b` when both are positive (a ratio of added latencies or rates means nothing
/// otherwise).
fn ratio_of(a: f64, b: Option<f64>) -> Option<f64> {
    b.filter(|&b| b > 0.0 && a > 0.0).map(|b| a / b)
}

fn compare(rounds: [Vec<Summary>; PATHS], rates: [Vec<f64>; PATHS], errors: u64) -> Compare {
    let gateway = Summary::median_of(&rounds[GATEWAY]);
    let direct = Summary::median_of(&rounds[DIRECT]);
    let hop = (!rounds[HOP].is_empty()).then(|| Summary::median_of(&rounds[HOP]));
    let nginx = (!rounds[NGINX].is_empty()).then(|| Summary::median_of(&rounds[NGINX]));
    let [gateway_rates, direct_rates, hop_rates, nginx_rates] = rates;
    let [gateway_rounds, direct_rounds, hop_rounds, nginx_rounds] = rounds;
    let added_p50_us = gateway.p50_us - direct.p50_us;
    let added_p99_us = gateway.p99_us - direct.p99_us;
    let nginx_added_p50_us = nginx.map(|n| n.p50_us - direct.p50_us);
    let nginx_added_p99_us = nginx.map(|n| n.p99_us - direct.p99_us);
    Compare {
        rounds: gateway_rounds.len(),
        added_p50_us,
        added_p99_us,
        hop_added_p50_us: hop.map(|h| h.p50_us - direct.p50_us),
        hop_added_p99_us: hop.map(|h| h.p99_us - direct.p99_us),
        nginx_added_p50_us,
        nginx_added_p99_us,
        gateway_own_p50_us: hop.map(|h| gateway.p50_us - h.p50_us),
        nginx_own_p50_us: hop.zip(nginx).map(|(h, n)| n.p50_us - h.p50_us),
        added_p50_vs_nginx: ratio_of(added_p50_us, nginx_added_p50_us),
        added_p99_vs_nginx: ratio_of(added_p99_us, nginx_added_p99_us),
        gateway,
        direct,
        hop,
        nginx,
        gateway_rps: median(gateway_rates),
        direct_rps: median(direct_rates),
        hop_rps: (!hop_rates.is_empty()).then(|| median(hop_rates)),
        nginx_rps: (!nginx_rates.is_empty()).then(|| median(nginx_rates)),
        errors,
        gateway_rounds,
        direct_rounds,
        hop_rounds,
        nginx_rounds,
    }
}

/// `n` connections to each path's server (none for paths not in `paths`).
async fn conns_per_path(
    ctx: &Ctx,
    paths: &[usize],
    n: usize,
) -> anyhow::Result<[Vec<Conn>; PATHS]> {
    let mut conns: [Vec<Conn>; PATHS] = Default::default();
    for &path in paths {
        conns[path] = load::open_conns(ctx.targets[path].addr, n)
            .await
            .with_context(|| format!("connecting to {}", PATH_NAMES[path]))?;
    }
    Ok(conns)
}

async fn scenario_c1(ctx: &mut Ctx) -> anyhow::Result<Compare> {
    say("scenario 1: non-stream, concurrency 1, closed loop");
    let paths = ctx.paths();
    let mut conns = conns_per_path(ctx, &paths, 1).await?;
    let mut rounds: [Vec<Summary>; PATHS] = Default::default();
    let mut rates: [Vec<f64>; PATHS] = Default::default();
    let mut errors = 0;
    for r in 0..ctx.plan.warmup_rounds + ctx.plan.rounds {
        for path in order(r, &paths) {
            let (mut result, back) = load::closed_loop(
                &ctx.targets[path],
                std::mem::take(&mut conns[path]),
                ctx.plan.round,
            )
            .await;
            conns[path] = back;
            let summary = Summary::of_ns(&mut result.latency_ns);
            log_run(&format!("  round {r}"), path, &result, &summary);
            if r >= ctx.plan.warmup_rounds {
                rounds[path].push(summary);
                rates[path].push(result.rate());
                errors += failures(&result);
            }
        }
    }
    ctx.errors += errors;
    Ok(compare(rounds, rates, errors))
}

async fn measure_capacity(ctx: &mut Ctx) -> anyhow::Result<Capacity> {
    say("capacity: closed loop, saturating");
    let n = ctx.plan.capacity_conns;
    let mut paths = vec![GATEWAY, DIRECT];
    if ctx.nginx.is_some() {
        paths.push(NGINX);
    }
    let mut conns = conns_per_path(ctx, &paths, n).await?;
    let mut runs: [Vec<f64>; PATHS] = Default::default();
    // One unmeasured run per path first: connection pools fill, caches warm.
    for r in 0..ctx.plan.capacity_runs + 1 {
        for path in order(r, &paths) {
            let (mut result, back) = load::closed_loop(
                &ctx.targets[path],
                std::mem::take(&mut conns[path]),
                ctx.plan.capacity_run,
            )
            .await;
            conns[path] = back;
            let summary = Summary::of_ns(&mut result.latency_ns);
            log_run(&format!("  capacity run {r}"), path, &result, &summary);
            if r > 0 {
                runs[path].push(result.rate());
                ctx.errors += failures(&result);
            }
        }
    }
    let [gateway_runs, direct_runs, _, nginx_runs] = runs;
    Ok(Capacity {
        connections: n,
        direct_rps: median(direct_runs.clone()),
        gateway_rps: median(gateway_runs.clone()),
        nginx_rps: (!nginx_runs.is_empty()).then(|| median(nginx_runs.clone())),
        direct_runs,
        gateway_runs,
        nginx_runs,
    })
}

/// CPU ticks of the relay process of a path (gateway, hop or nginx's worker; none direct),
/// the mock and this process around a run.
struct CpuWindow {
    at_start: [ProcSample; 3],
}

/// CPU spent in a [`CpuWindow`] by the relay, the mock and the load generator:
/// nanoseconds (schedstat) for totals, clock ticks only for the user/kernel split.
#[derive(Debug, Clone, Copy, Default)]
struct Ticks {
    ns: [u64; 3],
    total: [u64; 3],
    user: [u64; 3],
}

impl Ticks {
    fn add(&mut self, other: Ticks) {
        for (mine, theirs) in self.ns.iter_mut().zip(other.ns) {
            *mine += theirs;
        }
        for (mine, theirs) in self.total.iter_mut().zip(other.total) {
            *mine += theirs;
        }
        for (mine, theirs) in self.user.iter_mut().zip(other.user) {
            *mine += theirs;
        }
    }
}

impl CpuWindow {
    fn samples(ctx: &Ctx, path: usize) -> anyhow::Result<[ProcSample; 3]> {
        Ok([
            ctx.relay_sample(path)?,
            ctx.mock.sample()?,
            ProcSample::of(std::process::id())?,
        ])
    }

    fn start(ctx: &Ctx, path: usize) -> anyhow::Result<CpuWindow> {
        Ok(CpuWindow {
            at_start: CpuWindow::samples(ctx, path)?,
        })
    }

    fn end(self, ctx: &Ctx, path: usize) -> anyhow::Result<Ticks> {
        let now = CpuWindow::samples(ctx, path)?;
        let mut ticks = Ticks::default();
        for (i, (now, then)) in now.iter().zip(&self.at_start).enumerate() {
            ticks.ns[i] = now.cpu_ns.saturating_sub(then.cpu_ns);
            ticks.total[i] = now.cpu_ticks.saturating_sub(then.cpu_ticks);
            ticks.user[i] = now.user_ticks.saturating_sub(then.user_ticks);
        }
        Ok(ticks)
    }
}

fn cpu_cost(ticks: Ticks, requests: u64) -> CpuCost {
    let per_1k = |ns: u64| {
        if requests == 0 {
            0.0
        } else {
            ns as f64 / 1e9 / requests as f64 * 1000.0
        }
    };
    let share = |i: usize| {
        if ticks.total[i] == 0 {
            0.0
        } else {
            ticks.user[i] as f64 / ticks.total[i] as f64
        }
    };
    let relay_s_per_1k = per_1k(ticks.ns[0]);
    let mock_s_per_1k = per_1k(ticks.ns[1]);
    CpuCost {
        requests,
        relay_s_per_1k,
        relay_user_share: share(0),
        mock_s_per_1k,
        mock_user_share: share(1),
        load_s_per_1k: per_1k(ticks.ns[2]),
        ratio: if mock_s_per_1k > 0.0 {
            relay_s_per_1k / mock_s_per_1k
        } else {
            0.0
        },
    }
}

async fn scenario_open(ctx: &mut Ctx, base: f64) -> anyhow::Result<Vec<OpenLoopRow>> {
    let paths = ctx.paths();
    let mut conns = conns_per_path(ctx, &paths, ctx.plan.open_conns).await?;
    let mut rows = Vec::new();
    for fraction in ctx.plan.fractions.clone() {
        let rate = (base * fraction).max(1.0);
        say(format!(
            "scenario 2: open loop at {:.0} % of {base:.0} req/s = {rate:.0} req/s",
            fraction * 100.0
        ));
        let mut rounds: [Vec<Summary>; PATHS] = Default::default();
        let mut service: [Vec<Summary>; PATHS] = Default::default();
        let mut rates: [Vec<f64>; PATHS] = Default::default();
        let mut ticks = [Ticks::default(); PATHS];
        let mut requests = [0u64; PATHS];
        let mut errors = 0;
        for r in 0..ctx.plan.warmup_rounds + ctx.plan.rounds {
            for path in order(r, &paths) {
                let window = CpuWindow::start(ctx, path)?;
                let (mut result, back) = load::open_loop(
                    &ctx.targets[path],
                    std::mem::take(&mut conns[path]),
                    rate,
                    ctx.plan.round,
                    ctx.plan.late_grace,
                )
                .await;
                let spent = window.end(ctx, path)?;
                conns[path] = back;
                let summary = Summary::of_ns(&mut result.latency_ns);
                log_run(&format!("  round {r}"), path, &result, &summary);
                if r >= ctx.plan.warmup_rounds {
                    rounds[path].push(summary);
                    service[path].push(Summary::of_ns(&mut result.service_ns));
                    rates[path].push(result.rate());
                    errors += failures(&result);
                    ticks[path].add(spent);
                    requests[path] += result.completed;
                }
            }
        }
        ctx.errors += errors;
        let has_hop = !rounds[HOP].is_empty();
        let has_nginx = !rounds[NGINX].is_empty();
        rows.push(OpenLoopRow {
            fraction,
            rate_rps: rate,
            service_gateway: Summary::median_of(&service[GATEWAY]),
            service_direct: Summary::median_of(&service[DIRECT]),
            service_hop: has_hop.then(|| Summary::median_of(&service[HOP])),
            service_nginx: has_nginx.then(|| Summary::median_of(&service[NGINX])),
            latency: compare(rounds, rates, errors),
            cpu_gateway: cpu_cost(ticks[GATEWAY], requests[GATEWAY]),
            cpu_direct: cpu_cost(ticks[DIRECT], requests[DIRECT]),
            cpu_hop: has_hop.then(|| cpu_cost(ticks[HOP], requests[HOP])),
            cpu_nginx: has_nginx.then(|| cpu_cost(ticks[NGINX], requests[NGINX])),
        });
    }
    Ok(rows)
}

async fn search_step(
    ctx: &Ctx,
    path: usize,
    conns: &mut Vec<Conn>,
    rate: f64,
) -> anyhow::Result<SearchStep> {
    let window = CpuWindow::start(ctx, path)?;
    let (mut result, back) = load::open_loop(
        &ctx.targets[path],
        std::mem::take(conns),
        rate,
        ctx.plan.search_step,
        ctx.plan.late_grace,
    )
    .await;
    let spent = window.end(ctx, path)?;
    *conns = back;
    let latency = Summary::of_ns(&mut result.latency_ns);
    log_run(&format!("  {rate:.0} req/s"), path, &result, &latency);
    let limit_us = ctx.plan.p99_limit.as_secs_f64() * 1e6;
    let step = SearchStep {
        path: PATH_NAMES[path],
        rate_rps: rate,
        achieved_rps: result.completed as f64 / ctx.plan.search_step.as_secs_f64(),
        failures: failures(&result),
        pass: failures(&result) == 0 && latency.p99_us < limit_us && latency.count > 0,
        latency,
        cpu: cpu_cost(spent, result.completed),
    };
    // Let any backlog drain before the next step.
    tokio::time::sleep(ctx.plan.search_pause).await;
    Ok(step)
}

/// Highest passing rate for one path: ramp from `search_start` × its closed-loop capacity up
/// (×1.25) or down (×0.6) until the outcome flips, then bisect.
async fn search(
    ctx: &Ctx,
    path: usize,
    capacity: f64,
    steps: &mut Vec<SearchStep>,
) -> anyhow::Result<(f64, Option<CpuCost>)> {
    let mut conns = load::open_conns(ctx.targets[path].addr, ctx.plan.open_conns).await?;
    let floor = (capacity * 0.01).max(1.0);
    let mut best: Option<(f64, CpuCost)> = None;
    let mut failed: Option<f64> = None;
    let mut rate = (capacity * ctx.plan.search_start).max(floor);
    for _ in 0..ctx.plan.search_max_steps {
        let step = search_step(ctx, path, &mut conns, rate).await?;
        let (pass, cpu) = (step.pass, step.cpu);
        steps.push(step);
        if pass {
            best = Some((rate, cpu));
            if failed.is_some() {
                break;
            }
            rate *= 1.25;
        } else {
            failed = Some(rate);
            if best.is_some() || rate <= floor {
                break;
            }
            rate = (rate * 0.6).max(floor);
        }
    }
    for _ in 0..ctx.plan.bisect_steps {
        let (Some((lo, _)), Some(hi)) = (best, failed) else {
            break;
        };
        if hi - lo < capacity * 0.02 {
            break;
        }
        let mid = (lo + hi) / 2.0;
        let step = search_step(ctx, path, &mut conns, mid).await?;
        let (pass, cpu) = (step.pass, step.cpu);
        steps.push(step);
        if pass {
            best = Some((mid, cpu));
        } else {
            failed = Some(mid);
        }
    }
    Ok(best.map_or((0.0, None), |(rate, cpu)| (rate, Some(cpu))))
}

async fn scenario_throughput(ctx: &mut Ctx, capacity: &Capacity) -> anyhow::Result<Throughput> {
    say(format!(
        "scenario 3: highest rate with p99 < {:?} and no errors",
        ctx.plan.p99_limit
    ));
    let mut steps = Vec::new();
    // Each path's search starts from its own closed-loop saturation rate.
    let (direct_max_rps, _) = search(ctx, DIRECT, capacity.direct_rps, &mut steps).await?;
    let (gateway_max_rps, cpu) = search(ctx, GATEWAY, capacity.gateway_rps, &mut steps).await?;
    let (nginx_max_rps, nginx_cpu) = match capacity.nginx_rps {
        Some(rps) if ctx.nginx.is_some() => {
            let (max, cpu) = search(ctx, NGINX, rps, &mut steps).await?;
            (Some(max), cpu)
        }
        _ => (None, None),
    };
    Ok(Throughput {
        p99_limit_ms: ctx.plan.p99_limit.as_secs_f64() * 1000.0,
        direct_max_rps,
        gateway_max_rps,
        nginx_max_rps,
        gateway_vs_direct: if direct_max_rps > 0.0 {
            gateway_max_rps / direct_max_rps
        } else {
            0.0
        },
        gateway_vs_nginx: ratio_of(gateway_max_rps, nginx_max_rps),
        cpu_at_max: cpu.unwrap_or_default(),
        nginx_cpu_at_max: nginx_cpu,
        steps,
    })
}

fn stream_side(rounds: &[StreamRound], summaries: &[[Summary; 3]]) -> StreamSide {
    let pick = |i: usize| Summary::median_of(&summaries.iter().map(|s| s[i]).collect::<Vec<_>>());
    StreamSide {
        ttft: pick(0),
        gap: pick(1),
        relay: pick(2),
        streams_ok: rounds.iter().map(|r| r.streams_ok).sum(),
        chunks: rounds.iter().map(|r| r.chunks).sum(),
        stalls: rounds.iter().map(|r| r.stalls).sum(),
        max_gap_ms: rounds.iter().map(|r| r.max_gap_ns).max().unwrap_or(0) as f64 / 1e6,
        errors: rounds.iter().map(|r| r.errors).sum(),
    }
}

async fn scenario_streaming(ctx: &mut Ctx) -> anyhow::Result<Streaming> {
    let plan = ctx.plan.stream;
    let n = ctx.plan.streams;
    say(format!(
        "scenario 4: streaming, {n} concurrent streams of {} chunks at {} ms",
        plan.chunks,
        plan.interval_us as f64 / 1000.0
    ));
    let paths = ctx.paths();
    let mut conns = conns_per_path(ctx, &paths, n).await?;
    // Starts spread evenly over one interval, so chunks of different streams interleave.
    let stagger = Duration::from_micros(plan.interval_us / n.max(1) as u64);
    let timeout =
        Duration::from_micros(plan.interval_us * u64::from(plan.chunks)) + Duration::from_secs(10);
    let mut rounds: [Vec<StreamRound>; PATHS] = Default::default();
    let mut summaries: [Vec<[Summary; 3]>; PATHS] = Default::default();
    let mut ticks = [Ticks::default(); PATHS];
    for r in 0..ctx.plan.warmup_rounds + ctx.plan.rounds {
        for path in order(r, &paths) {
            let window = CpuWindow::start(ctx, path)?;
            let (mut round, back) =
                stream::stream_round(std::mem::take(&mut conns[path]), plan, stagger, timeout)
                    .await;
            let spent = window.end(ctx, path)?;
            conns[path] = back;
            let summary = [
                Summary::of_ns(&mut round.ttft_ns),
                Summary::of_ns(&mut round.gap_ns),
                Summary::of_ns(&mut round.relay_ns),
            ];
            say(format!(
                "  round {r} {}: {} streams ok, TTFT p50 {:.1} p99 {:.1} µs, gap p99 {:.1} µs, relay p50 {:.1} p99 {:.1} µs, {} errors{}",
                PATH_NAMES[path],
                round.streams_ok,
                summary[0].p50_us,
                summary[0].p99_us,
                summary[1].p99_us,
                summary[2].p50_us,
                summary[2].p99_us,
                round.errors,
                round.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
            ));
            if r >= ctx.plan.warmup_rounds {
                ctx.errors += round.errors;
                ticks[path].add(spent);
                rounds[path].push(round);
                summaries[path].push(summary);
            }
        }
    }
    let gateway = stream_side(&rounds[GATEWAY], &summaries[GATEWAY]);
    let direct = stream_side(&rounds[DIRECT], &summaries[DIRECT]);
    let hop = (!rounds[HOP].is_empty()).then(|| stream_side(&rounds[HOP], &summaries[HOP]));
    let nginx = (!rounds[NGINX].is_empty()).then(|| stream_side(&rounds[NGINX], &summaries[NGINX]));
    let nginx_added = |f: fn(&StreamSide) -> f64| nginx.as_ref().map(|n| f(n) - f(&direct));
    // CPU per 1,000 chunks here, not per request.
    let chunk_cost = |path: usize, side: &StreamSide| cpu_cost(ticks[path], side.chunks);
    Ok(Streaming {
        streams_per_round: n,
        chunks: plan.chunks,
        interval_ms: plan.interval_us as f64 / 1000.0,
        rounds: ctx.plan.rounds,
        added_ttft_p50_us: gateway.ttft.p50_us - direct.ttft.p50_us,
        added_ttft_p99_us: gateway.ttft.p99_us - direct.ttft.p99_us,
        added_gap_p50_us: gateway.gap.p50_us - direct.gap.p50_us,
        added_gap_p99_us: gateway.gap.p99_us - direct.gap.p99_us,
        added_relay_p50_us: gateway.relay.p50_us - direct.relay.p50_us,
        added_relay_p99_us: gateway.relay.p99_us - direct.relay.p99_us,
        hop_added_ttft_p99_us: hop.as_ref().map(|h| h.ttft.p99_us - direct.ttft.p99_us),
        hop_added_gap_p99_us: hop.as_ref().map(|h| h.gap.p99_us - direct.gap.p99_us),
        hop_added_relay_p99_us: hop.as_ref().map(|h| h.relay.p99_us - direct.relay.p99_us),
        cpu_per_1k_chunks_gateway: chunk_cost(GATEWAY, &gateway),
        cpu_per_1k_chunks_hop: hop.as_ref().map(|h| chunk_cost(HOP, h)),
        nginx_added_ttft_p50_us: nginx_added(|s| s.ttft.p50_us),
        nginx_added_ttft_p99_us: nginx_added(|s| s.ttft.p99_us),
        nginx_added_gap_p50_us: nginx_added(|s| s.gap.p50_us),
        nginx_added_gap_p99_us: nginx_added(|s| s.gap.p99_us),
        nginx_added_relay_p50_us: nginx_added(|s| s.relay.p50_us),
        nginx_added_relay_p99_us: nginx_added(|s| s.relay.p99_us),
        cpu_per_1k_chunks_nginx: nginx.as_ref().map(|n| chunk_cost(NGINX, n)),
        nginx,
        gateway,
        direct,
        hop,
    })
}

async fn scenario_idle(ctx: &mut Ctx, load_nofile: u64) -> anyhow::Result<Vec<IdleRow>> {
    let mut rows = Vec::new();
    for wanted in ctx.plan.idle_counts.clone() {
        // Sockets: ours, one per stream; the relay's, two per stream (client and
        // competitor side). Keep a margin for listeners, the runtime and the pool. Both
        // relays run the same count, so the per-stream figures compare like with like.
        let gateway_nofile = procs::nofile_limits_of(&ctx.gateway.pid().to_string()).0;
        let ours = usize::try_from(load_nofile.saturating_sub(256)).unwrap_or(wanted);
        let gateway_fits = usize::try_from(gateway_nofile.saturating_sub(64) / 2).unwrap_or(wanted);
        let nginx_fits = match (&ctx.nginx, &ctx.nginx_settings) {
            (Some(nginx), Some(settings)) => {
                let by_limit = nginx.worker_nofile().saturating_sub(64) / 2;
                usize::try_from(by_limit.min(settings.stream_capacity())).unwrap_or(wanted)
            }
            _ => wanted,
        };
        let n = wanted.min(ours).min(gateway_fits).min(nginx_fits);
        let note = (n < wanted).then(|| {
            format!(
                "{n} of {wanted} streams: open-file limits are {load_nofile} here and {gateway_nofile} in the gateway (and nginx's worker), which needs two sockets per stream"
            )
        });
        if let Some(note) = &note {
            say(format!("  {note}"));
        }
        let gateway = idle_side(ctx, GATEWAY, n).await?;
        let nginx = if ctx.nginx.is_some() {
            Some(idle_side(ctx, NGINX, n).await?)
        } else {
            None
        };
        let per_stream_vs_nginx = ratio_of(
            gateway.rss_per_stream_kib,
            nginx.as_ref().map(|n| n.rss_per_stream_kib),
        );
        rows.push(IdleRow {
            requested: wanted,
            limit_note: note,
            streams: n,
            gateway,
            nginx,
            per_stream_vs_nginx,
        });
    }
    Ok(rows)
}

/// `n` idle streams through a freshly started relay of `path` (gateway or nginx): RSS
/// before, while held, and after they end.
async fn idle_side(ctx: &mut Ctx, path: usize, n: usize) -> anyhow::Result<IdleSide> {
    let name = PATH_NAMES[path];
    say(format!(
        "scenario 5: {n} idle streams through a freshly started {name}"
    ));
    // A fresh process per count: memory an allocator kept from an earlier step (or
    // scenario) would otherwise be reused and hide the growth.
    ctx.restart_relay(path).await?;
    let before = ctx.relay_sample(path)?;
    let mock_before = ctx.mock.sample()?;
    let set = IdleSet::open(
        ctx.targets[path].addr,
        n,
        ctx.plan.idle_open_concurrency,
        Duration::from_secs(60),
    )
    .await;
    let (opened, open_failed, open_time) = (set.opened, set.failed, set.open_time);
    if let Some(e) = &set.first_error {
        say(format!(
            "  {open_failed} streams failed to open (first: {e})"
        ));
    }
    tokio::time::sleep(ctx.plan.idle_hold).await;
    let held = ctx.relay_sample(path)?;
    let mock_held = ctx.mock.sample()?;
    let outcome = set.close().await;
    let closed = tokio::time::Instant::now();
    tokio::time::sleep(ctx.plan.idle_settle).await;
    let after = ctx.relay_sample(path)?;
    tokio::time::sleep_until(closed + ctx.plan.rss_return_wait).await;
    let back = ctx.relay_sample(path)?;
    let per_stream = |held: u64, before: u64| {
        if opened == 0 {
            0.0
        } else {
            (held as f64 - before as f64) / opened as f64
        }
    };
    // Failed opens are in `outcome.failed` too; add the streams that neither opened nor
    // failed before the open timeout.
    let errors = outcome.failed + n.saturating_sub(opened + open_failed) as u64;
    ctx.errors += errors;
    let side = IdleSide {
        opened,
        open_seconds: open_time.as_secs_f64(),
        rss_before_kib: before.rss_kib,
        rss_held_kib: held.rss_kib,
        rss_per_stream_kib: per_stream(held.rss_kib, before.rss_kib),
        rss_after_kib: after.rss_kib,
        rss_return_kib: back.rss_kib,
        rss_return_ratio: if before.rss_kib == 0 {
            0.0
        } else {
            back.rss_kib as f64 / before.rss_kib as f64
        },
        mock_rss_per_stream_kib: per_stream(mock_held.rss_kib, mock_before.rss_kib),
        max_gap_ms: outcome.max_gap_ns as f64 / 1e6,
        gaps_over_2s: outcome.gaps_over_2s,
        keepalives_per_stream: if outcome.streams == 0 {
            0.0
        } else {
            outcome.keepalives as f64 / outcome.streams as f64
        },
        errors,
    };
    say(format!(
        "  {name}: {} open in {:.1} s; RSS {} → {} KiB ({:.1} KiB/stream), after {} KiB, {:.1} s after {} KiB ({:.2}× before); max gap {:.0} ms, {} gaps > 2 s, {:.1} pings/stream",
        side.opened, side.open_seconds, side.rss_before_kib, side.rss_held_kib,
        side.rss_per_stream_kib, side.rss_after_kib, ctx.plan.rss_return_wait.as_secs_f64(),
        side.rss_return_kib, side.rss_return_ratio, side.max_gap_ms, side.gaps_over_2s,
        side.keepalives_per_stream
    ));
    Ok(side)
}

/// A goal "value ≤ target".
fn at_most(figure: String, value: f64, target: f64, unit: &'static str, basis: &str) -> Goal {
    Goal {
        target: format!("≤ {target:.1} {unit}{basis}"),
        figure,
        target_value: target,
        value,
        unit,
        met: value <= target,
    }
}

/// A goal "value ≥ target".
fn at_least(figure: String, value: f64, target: f64, unit: &'static str, basis: &str) -> Goal {
    Goal {
        target: format!("≥ {target:.1} {unit}{basis}"),
        figure,
        target_value: target,
        value,
        unit,
        met: value >= target,
    }
}

/// The goals of issue 17, each judged against nginx measured in the same run where the issue
/// says so. A relative goal whose nginx figure is missing is not judged (not listed).
fn goals(
    s: &Scenarios,
    c1: &Compare,
    throughput: &Throughput,
    streaming: &Streaming,
    idle: &[IdleRow],
    plan: &Plan,
) -> Vec<Goal> {
    let mut goals = Vec::new();
    if s.throughput && plan.nginx {
        // Unmeasurable (nginx found no passing rate) counts as 0, not met.
        goals.push(at_least(
            format!(
                "3. throughput at p99 < {} ms, gateway ÷ nginx",
                throughput.p99_limit_ms
            ),
            throughput.gateway_vs_nginx.unwrap_or(0.0),
            1.0,
            "×",
            "",
        ));
    }
    if s.c1 {
        if let (Some(p50), Some(p99)) = (c1.nginx_added_p50_us, c1.nginx_added_p99_us) {
            goals.push(at_most(
                "1. c=1 added p50 (gateway − direct)".into(),
                c1.added_p50_us,
                p50,
                "µs",
                " (nginx's)",
            ));
            goals.push(at_most(
                "1. c=1 added p99 (gateway − direct)".into(),
                c1.added_p99_us,
                p99,
                "µs",
                " (nginx's)",
            ));
        }
        if let Some(own) = c1.gateway_own_p50_us {
            goals.push(at_most(
                "1. c=1 gateway's own share at p50 (gateway − hop floor)".into(),
                own,
                15.0,
                "µs",
                "",
            ));
        }
    }
    if s.streaming {
        let shape = format!(
            "{}×{} ms, {} concurrent",
            plan.stream.chunks,
            plan.stream.interval_us / 1000,
            plan.streams
        );
        if let Some(ttft) = streaming.nginx_added_ttft_p99_us {
            goals.push(at_most(
                format!("4. streaming ({shape}) added TTFT p99"),
                streaming.added_ttft_p99_us,
                ttft + 100.0,
                "µs",
                " (nginx's + 100)",
            ));
        }
        if let Some(gap) = streaming.nginx_added_gap_p99_us {
            goals.push(at_most(
                "4. streaming added inter-chunk gap p99".into(),
                streaming.added_gap_p99_us,
                gap,
                "µs",
                " (nginx's)",
            ));
        }
    }
    for row in idle {
        if let Some(nginx) = &row.nginx {
            goals.push(at_most(
                format!("5. {} idle streams: RSS per stream", row.streams),
                row.gateway.rss_per_stream_kib,
                nginx.rss_per_stream_kib,
                "KiB",
                " (nginx's)",
            ));
        }
        goals.push(at_most(
            format!(
                "5. {} idle streams: longest client-side silence (keep-alives on time)",
                row.streams
            ),
            row.gateway.max_gap_ms,
            2000.0,
            "ms",
            "",
        ));
    }
    if let Some(&most) = plan.idle_counts.iter().max().filter(|_| !idle.is_empty()) {
        let held = idle.iter().map(|r| r.gateway.opened).max().unwrap_or(0);
        goals.push(at_least(
            "5. idle streams held at once through the gateway".into(),
            held as f64,
            most as f64,
            "streams",
            "",
        ));
    }
    for row in idle {
        goals.push(at_most(
            format!(
                "5. RSS {} s after {} idle streams end ÷ before them",
                plan.rss_return_wait.as_secs_f64(),
                row.streams
            ),
            row.gateway.rss_return_ratio,
            1.2,
            "×",
            "",
        ));
    }
    goals
}
