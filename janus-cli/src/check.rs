//! `janus check`: the conformance kit (janus-client) with a table or JSON.

use std::process::ExitCode;

use janus_client::{run_checks, CheckOptions};

/// Arguments of `janus check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Base URL of the competitor, e.g. http://127.0.0.1:8080
    pub url: String,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Longest wait for any one request
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Shell command that starts the competitor first; it must be ready within 30 s
    #[arg(long, value_name = "CMD")]
    pub launch: Option<String>,
    /// The `model` sent in requests
    #[arg(long, default_value = "janus-conformance")]
    pub model: String,
}

/// Runs the kit; exit 0 only when every required check passes.
pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut options = CheckOptions::new(args.url);
    options.timeout = args.timeout;
    options.launch = args.launch;
    options.model = args.model;
    let report = run_checks(options).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
