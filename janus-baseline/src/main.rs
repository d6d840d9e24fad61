//! `janus-baseline`: serves [`janus_baseline::Baseline`]. Settings are environment
//! variables (`JANUS_BASELINE_*`, `SANDY_BASE_URL`; see the README), plus the SDK's flags.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let baseline = match janus_baseline::Baseline::from_env() {
        Ok(baseline) => baseline,
        Err(e) => {
            eprintln!("janus-baseline: {e}");
            return ExitCode::from(2);
        }
    };
    match janus_competitor_sdk::run(baseline).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("janus-baseline: {e}");
            ExitCode::FAILURE
        }
    }
}
