//! `janus` — run the local Janus stack, chat through a gateway, and check competitors.
//!
//! Each subcommand turns its arguments into library objects (janus-gateway,
//! janus-competitor-sdk, janus-client) and calls them; this crate is wiring and output.
#![allow(clippy::print_stdout, clippy::print_stderr)] // the CLI's output layer

mod bench;
mod chat;
mod check;
mod exit;
mod info;
mod trace;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The gateway URL used when none is given.
pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:8000";

#[derive(Debug, Parser)]
#[command(
    name = "janus",
    version,
    about = "Janus: run the local stack, chat through a gateway, check competitors",
    after_help = "Exit codes: 0 ok; 1 the gateway or competitor answered with an error; \
2 usage or configuration error; 3 could not connect or timed out. With --json, a failure \
also prints one JSON error object on stdout.",
    long_about = "Janus: run the local stack, chat through a gateway, check competitors.\n\n\
Start here:\n  janus up                      # gateway on 127.0.0.1:8000 + the echo competitor\n  \
janus chat \"hello\"            # stream an answer through the gateway\n  \
janus check http://127.0.0.1:8080   # is a competitor contract-compliant?"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the gateway, the echo competitor and the sandbox service on localhost (Ctrl-C stops all).
    Up(Box<up::UpArgs>),
    /// Send a prompt through the gateway and stream the answer.
    Chat(chat::ChatArgs),
    /// List the gateway's models (its competitors).
    Models(info::GatewayArgs),
    /// Show the gateway's health and each competitor's readiness.
    Health(info::GatewayArgs),
    /// Check a competitor against the Janus contract (the conformance kit).
    Check(check::CheckArgs),
    /// Serve the echo competitor on its own (the one `janus up` embeds): a real process to
    /// launch in a sandbox or check with `janus check`.
    Echo(janus_competitor_sdk::Args),
    /// Rebuild one request's story (every hop, in order, with latencies) from the JSON logs.
    Trace(trace::TraceArgs),
    /// Benchmark a gateway or competitor: run suites, show and compare reports.
    Bench(bench::BenchArgs),
}

/// `janus echo`: the echo competitor alone, configured as any SDK competitor.
async fn serve_echo(args: janus_competitor_sdk::Args) -> anyhow::Result<ExitCode> {
    let echo = echo_competitor::Echo::from_env().map_err(exit::Failure::Usage)?;
    janus_competitor_sdk::run_with_args(echo, args).await?;
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    // The sandbox service runs this binary under `nsenter --net` as its relay helper.
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = janus_sandbox::run_helper(&raw).await {
        return code;
    }
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Up(_) => false,
        Command::Chat(args) => args.json,
        Command::Models(args) | Command::Health(args) => args.json,
        Command::Check(args) => args.json,
        Command::Trace(args) => args.json,
        Command::Echo(_) => false,
        Command::Bench(args) => matches!(&args.command, bench::BenchCommand::Run(run) if run.json),
    };
    let outcome = match cli.command {
        Command::Up(args) => up::run(*args).await,
        Command::Chat(args) => chat::run(args).await,
        Command::Models(args) => info::models(args).await,
        Command::Health(args) => info::health(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Trace(args) => trace::run(args),
        Command::Echo(args) => serve_echo(args).await,
        Command::Bench(args) => bench::run(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(error) => exit::report(&error, json),
    }
}
