//! `janus-agent`: a small tool-calling agent that runs **inside** a sandbox as its agent
//! command (Sandy's `agent/run` starts it with the `JANUS_AGENT_*` variables).
//!
//! It sends the task to an OpenAI-compatible endpoint with the tools `shell`, `read_file`,
//! `write_file`, `list_files`, `web_search` (only when `JANUS_AGENT_SEARCH_URL` is set) and
//! `finish(answer)`, runs the tool calls the model asks for, and repeats until the model
//! finishes or a budget (steps, time) runs out. Every event is one JSON line on stdout,
//! which the baseline competitor turns into reasoning and `tool_start` / `tool_end` events:
//!
//! ```text
//! {"type":"start","model":"m","max_steps":20,"time_budget_s":240}
//! {"type":"thinking","step":1,"text":"I will write the script first."}
//! {"type":"tool_call","step":1,"id":"call_1","tool":"shell","input":{"command":"python3 make.py"}}
//! {"type":"tool_result","step":1,"id":"call_1","tool":"shell","ok":true,"summary":"exit 0: done","duration_ms":41}
//! {"type":"final","answer":"Made data.csv.","usage":{"prompt_tokens":310,"completion_tokens":52},"elapsed_ms":912}
//! {"type":"error","code":"step_budget","message":"…","usage":{…},"elapsed_ms":…}
//! ```
//!
//! The last line is always `final` (exit code 0) or `error` (exit code 1; `code` is
//! `step_budget`, `time_budget` or `inference`). A configuration error exits 2 with a
//! message on stderr.
//!
//! Modules: `config` (the settings), `llm` (one chat call), `tools` (the tools), `run` (the
//! loop and its step log).

mod config;
mod llm;
mod run;
mod tools;

pub use config::{Config, DEFAULT_SYSTEM_PROMPT};
pub use llm::{Llm, Turn};
pub use run::{run, Outcome};
pub use tools::{become_subreaper, definitions, truncate, ToolOutcome, Tools};
