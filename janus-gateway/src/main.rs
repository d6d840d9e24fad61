//! `janus-gateway`: parse configuration, bind, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use janus_gateway::{init_logging, run, shutdown_signal, Args};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Args::parse().resolve() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("janus-gateway: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("janus-gateway: cannot listen on {}: {e:#}", config.listen);
            return ExitCode::from(1);
        }
    };
    let served = run(listener, config, shutdown_signal()).await;
    // Spans of the last requests reach the collector before the process goes.
    janus_http::otel::flush(std::time::Duration::from_secs(2)).await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("janus-gateway: {e:#}");
            ExitCode::from(1)
        }
    }
}
