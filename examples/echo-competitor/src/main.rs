//! `echo-competitor`: serves [`echo_competitor::Echo`] (see its docs for what it does).
//!
//! Configuration is by environment: `ECHO_SLOW_STEP_MS`, plus the SDK's `JANUS_LISTEN` /
//! `PORT`, `JANUS_PUBLIC_URL`, … (`echo-competitor --help` lists them).
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use echo_competitor::Echo;

#[tokio::main]
async fn main() -> ExitCode {
    let echo = match Echo::from_env() {
        Ok(echo) => echo,
        Err(e) => {
            eprintln!("echo-competitor: {e}");
            return ExitCode::from(2);
        }
    };
    match janus_competitor_sdk::run(echo).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-competitor: {e}");
            ExitCode::FAILURE
        }
    }
}
