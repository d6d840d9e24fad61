//! `janus-perf`: the harness driver (`full`, `smoke`), the mock competitor (`mock`) and an
//! in-package stand-in for the gateway binary (`gateway`, used by the smoke test).
// This is the CLI's output layer: the mock announces its address on stdout and the driver
// prints where the report went.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use janus_perf::{GatewayProgram, Plan, RunOptions, Scenarios};

#[derive(Debug, Parser)]
#[command(
    name = "janus-perf",
    version,
    about = "Side-by-side load harness: the Janus gateway against calling a mock competitor directly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The full run (~8 minutes): builds the release gateway, installs Debian's nginx when
    /// missing, pins both to one core and the mock and load generator to another, writes
    /// REPORT.md and report.json.
    Full(RunArgs),
    /// Every scenario for a few seconds, unpinned; proves the harness works (nginx must be
    /// installed: ./scripts/setup-test-deps).
    Smoke(RunArgs),
    /// Serve the mock competitor.
    Mock {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Print `LISTENING <addr>` on stdout once bound.
        #[arg(long)]
        announce: bool,
    },
    /// Serve the hop floor: a plain TCP relay to `--upstream`.
    Hop {
        /// Address to listen on.
        #[arg(long)]
        listen: String,
        /// Where to relay to.
        #[arg(long)]
        upstream: std::net::SocketAddr,
    },
    /// Run the gateway library exactly like the `janus-gateway` binary (same flags).
    #[command(hide = true)]
    Gateway {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Directory for report.json and REPORT.md [full: the perf crate; smoke: a temp dir]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Gateway binary to test [full: built with cargo; smoke: this program's `gateway`]
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// nginx binary [Debian's; the full run installs it when missing]
    #[arg(long, default_value = janus_perf::NGINX_BIN)]
    nginx_bin: PathBuf,
    /// Scenarios: c1,open,throughput,stream,idle or all
    #[arg(long, default_value = "all")]
    only: String,
    /// Measured rounds per path (overrides the preset)
    #[arg(long)]
    rounds: Option<usize>,
    /// Fixed base rate for scenario 2 (req/s) instead of the direct path's measured limit
    #[arg(long)]
    base_rate: Option<f64>,
    /// Concurrent streams per streaming round (overrides the preset)
    #[arg(long)]
    streams: Option<usize>,
    /// Pin with taskset (default: on for full, off for smoke)
    #[arg(long, overrides_with = "no_pin")]
    pin: bool,
    /// Do not pin
    #[arg(long)]
    no_pin: bool,
    /// Core for the gateway
    #[arg(long, default_value_t = 0)]
    gateway_cpu: usize,
    /// Core for the mock and the load generator
    #[arg(long, default_value_t = 1)]
    load_cpu: usize,
    /// TOKIO_WORKER_THREADS for the gateway
    #[arg(long, default_value_t = 1)]
    gateway_workers: usize,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Full(args) => drive(Plan::full(), args),
        Command::Smoke(args) => drive(Plan::smoke(), args),
        Command::Mock { listen, announce } => mock(&listen, announce),
        Command::Hop { listen, upstream } => hop(&listen, upstream),
        Command::Gateway { args } => return gateway(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("janus-perf: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn drive(mut plan: Plan, args: RunArgs) -> anyhow::Result<()> {
    let full = plan.mode == janus_perf::Mode::Full;
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    plan.rounds = args.rounds.unwrap_or(plan.rounds);
    plan.streams = args.streams.unwrap_or(plan.streams);
    let exe = std::env::current_exe()?;
    let gateway = match (args.gateway_bin, full) {
        (Some(program), _) => GatewayProgram {
            program,
            leading_args: Vec::new(),
        },
        (None, true) => GatewayProgram {
            program: janus_perf::build_release_gateway(&crate_dir.join(".."))?,
            leading_args: Vec::new(),
        },
        (None, false) => GatewayProgram {
            program: exe.clone(),
            leading_args: vec!["gateway".into()],
        },
    };
    if plan.nginx {
        // The full run installs a missing nginx; the smoke run (inside the tests, after
        // scripts/setup-test-deps) fails with how to install it.
        janus_perf::ensure_nginx(&args.nginx_bin, full)?;
    }
    let pin = (args.pin || (full && !args.no_pin)) && janus_perf::has_taskset();
    let pin = pin.then_some((args.gateway_cpu, args.load_cpu));
    let load = janus_perf::prepare_load_process(pin.map(|(_, l)| l), plan.nofile);
    let out = args.out.unwrap_or_else(|| {
        if full {
            crate_dir.clone()
        } else {
            std::env::temp_dir().join(format!("janus-perf-smoke-{}", std::process::id()))
        }
    });
    let log_dir = std::env::temp_dir().join(format!("janus-perf-logs-{}", std::process::id()));
    let options = RunOptions {
        plan,
        gateway,
        mock_program: exe,
        nginx_bin: args.nginx_bin,
        pin,
        gateway_workers: args.gateway_workers,
        scenarios: Scenarios::parse(&args.only)?,
        base_rate: args.base_rate,
        log_dir: log_dir.clone(),
    };
    // The load generator is one thread (plus the open-loop pacer): it shares its core with
    // the mock, and the report compares like with like.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(janus_perf::run(options, load))?;
    let files = janus_perf::write_report(&report, &out)?;
    if !full {
        // A smoke run that passed leaves nothing behind (it runs in every test command);
        // a failed one keeps its logs for the error's reader.
        let _ = std::fs::remove_dir_all(&log_dir);
    }
    for goal in &report.goals {
        let verdict = if goal.met { "met" } else { "MISSED" };
        eprintln!(
            "janus-perf: {verdict:>6}  {}: {:.1} {} (goal {})",
            goal.figure, goal.value, goal.unit, goal.target
        );
    }
    println!("{}", files.markdown.display());
    println!("{}", files.json.display());
    Ok(())
}

fn mock(listen: &str, announce: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        if announce {
            println!("LISTENING {}", listener.local_addr()?);
        }
        janus_perf::serve_mock(listener, janus_gateway::shutdown_signal()).await?;
        Ok(())
    })
}

fn hop(listen: &str, upstream: std::net::SocketAddr) -> anyhow::Result<()> {
    // The same runtime as the gateway: current-thread with one worker, else multi-thread
    // (TOKIO_WORKER_THREADS applies).
    let runtime = janus_http::runtime::server_runtime()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        janus_perf::serve_hop(listener, upstream, janus_gateway::shutdown_signal()).await?;
        Ok(())
    })
}

/// Mirrors `janus-gateway/src/main.rs`, so smoke runs need no second binary.
fn gateway(args: Vec<String>) -> ExitCode {
    let parsed =
        janus_gateway::Args::parse_from(std::iter::once("janus-gateway".to_owned()).chain(args));
    let config = match parsed.resolve() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("janus-gateway: {e:#}");
            return ExitCode::from(2);
        }
    };
    janus_gateway::init_logging(config.log_format);
    let runtime = match janus_http::runtime::server_runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("janus-gateway: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        janus_gateway::run(listener, config, janus_gateway::shutdown_signal()).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("janus-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}
