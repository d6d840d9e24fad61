//! `janus-gateway`: parse configuration, bind, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use janus_gateway::{init_logging, run_with_platform, shutdown_signal, Args};

fn main() -> ExitCode {
    let runtime = match janus_http::runtime::server_runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("janus-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(serve())
}

async fn serve() -> ExitCode {
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
    // The platform listener is bound only when there is a platform service to serve.
    let mut config = config;
    let platform_listener = if config.platforms.is_empty() {
        None
    } else {
        match tokio::net::TcpListener::bind(config.platform_listen).await {
            Ok(listener) => {
                // Port 0 picks a free port: competitors are told the real one.
                if let Ok(addr) = listener.local_addr() {
                    config.platform_listen = addr;
                }
                Some(listener)
            }
            Err(e) => {
                eprintln!(
                    "janus-gateway: cannot listen on {} (--platform-listen): {e:#}",
                    config.platform_listen
                );
                return ExitCode::from(1);
            }
        }
    };
    let served = run_with_platform(listener, platform_listener, config, shutdown_signal()).await;
    // Spans of the last requests reach the collector before the process goes.
    janus_http::otel::flush(std::time::Duration::from_secs(2)).await;
    janus_http::runtime::flush_logs();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("janus-gateway: {e:#}");
            ExitCode::from(1)
        }
    }
}
