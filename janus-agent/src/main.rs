//! `janus-agent`: reads its task from `JANUS_AGENT_*` variables, runs it, writes one JSON
//! line per step on stdout. Exit 0: finished; 1: stopped (budget, endpoint); 2: bad settings.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match janus_agent::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("janus-agent: {e}");
            return ExitCode::from(2);
        }
    };
    // Orphans of the model's commands reparent to us, so each command's leftovers can be
    // ended with it. Without it (an old kernel) only their direct descendants are.
    if let Err(e) = janus_agent::become_subreaper() {
        eprintln!("janus-agent: cannot become a child subreaper: {e}");
    }
    // One thread is plenty: the agent waits on the model or on one command at a time.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("janus-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(janus_agent::run(&config, std::io::stdout().lock())) {
        janus_agent::Outcome::Finished(_) => ExitCode::SUCCESS,
        janus_agent::Outcome::Stopped { .. } => ExitCode::FAILURE,
    }
}
