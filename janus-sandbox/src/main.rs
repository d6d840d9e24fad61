//! `janus-sandbox`: parse flags, check isolation, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use janus_sandbox::{full_isolation_available, run, Args, IsolationMode};

#[tokio::main]
async fn main() -> ExitCode {
    // Hidden helper modes, run by the service itself under `nsenter --net`.
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = janus_sandbox::run_helper(&raw).await {
        return code;
    }
    let args = Args::parse();
    let listen = args.listen;
    let config = match args.resolve() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("janus-sandbox: {e}");
            return ExitCode::from(2);
        }
    };
    janus_http::init_logging(config.log_format);
    match config.isolation {
        IsolationMode::Full => {
            if let Err(why) = full_isolation_available() {
                eprintln!("janus-sandbox: {why}; refusing to start (use --isolation none to run without isolation)");
                return ExitCode::from(2);
            }
        }
        IsolationMode::None => {
            tracing::warn!("--isolation none: sandboxes are plain directories and processes; NOTHING is isolated");
        }
    }
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("janus-sandbox: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    let served = run(listener, config, janus_http::shutdown_signal()).await;
    // Spans of the last requests reach the collector before the process goes.
    janus_http::otel::flush(std::time::Duration::from_secs(2)).await;
    janus_http::runtime::flush_logs();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("janus-sandbox: {e}");
            ExitCode::from(1)
        }
    }
}
