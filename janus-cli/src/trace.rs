//! `janus trace`: one request's hops, rebuilt from the components' JSON logs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use janus_client::trace::{build, default_log_dir, log_files, TraceError};

use crate::exit::Failure;

/// `janus trace ID [--logs FILE|DIR ...] [--json]`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// A request id (`X-Request-Id`, printed by `janus chat`) or a 32-hex trace id
    pub id: String,
    /// Log files or directories of them (`*.log`, `*.jsonl`); repeatable [default: where `janus up` writes, see `janus up --log-dir`]
    #[arg(long = "logs", value_name = "FILE|DIR")]
    pub logs: Vec<PathBuf>,
    /// Print the timeline as JSON
    #[arg(long)]
    pub json: bool,
}

/// Prints the timeline; exit 1 when a hop failed or is missing.
pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let paths = if args.logs.is_empty() {
        vec![default_log_dir()]
    } else {
        args.logs.clone()
    };
    let files = log_files(&paths).map_err(|e| Failure::Usage(e.to_string()))?;
    if files.is_empty() {
        return Err(Failure::Usage(format!(
            "no log files (*.log, *.jsonl) in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let trace = build(&args.id, &files).map_err(|e| match e {
        TraceError::NotFound { .. } => Failure::Answered(e.to_string()),
        other => Failure::Usage(other.to_string()),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
    } else {
        print!("{}", trace.to_text());
    }
    let failed = trace.hops.iter().any(hop_failed) || !trace.missing.is_empty();
    Ok(if failed {
        ExitCode::from(crate::exit::ANSWERED_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

fn hop_failed(hop: &janus_client::trace::Hop) -> bool {
    hop.failed || hop.children.iter().any(hop_failed)
}
