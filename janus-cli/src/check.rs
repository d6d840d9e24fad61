//! `janus check`: the conformance kit (janus-client) with a table or JSON.

use std::process::ExitCode;

use janus_client::{run_checks, CheckOptions};

use crate::exit::{self, Failure};

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
    /// Command that starts the competitor first (split like a shell splits words, leading
    /// NAME=value words set its environment; no shell is run); it must be ready within 30 s,
    /// and its whole process group is ended afterwards
    #[arg(long, value_name = "CMD")]
    pub launch: Option<String>,
    /// The `model` sent in requests
    #[arg(long, default_value = "janus-conformance")]
    pub model: String,
}

/// Runs the kit: exit 0 when every required check passes, 1 when one fails, 3 when the
/// competitor cannot be reached (the run stops after that check).
pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if let Some(command) = &args.launch {
        janus_client::split_command(command)
            .map_err(|e| Failure::Usage(format!("--launch '{command}': {e}")))?;
    }
    let mut options = CheckOptions::new(args.url);
    options.timeout = args.timeout;
    options.launch = args.launch;
    options.model = args.model;
    let report = run_checks(options).await;
    let code = if report.unreachable {
        exit::UNREACHABLE
    } else if report.passed {
        0
    } else {
        exit::ANSWERED_ERROR
    };
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        if report.unreachable {
            let detail = report
                .checks
                .last()
                .map(|c| c.detail.clone())
                .unwrap_or_default();
            let message = format!("{} could not be reached: {detail}", report.target);
            if let (serde_json::Value::Object(map), serde_json::Value::Object(error)) =
                (&mut json, exit::json_error(&message, code))
            {
                map.extend(error);
            }
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(ExitCode::from(code))
}
