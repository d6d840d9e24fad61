//! `janus-perf` — what the Janus gateway costs, measured against calling the competitor
//! directly in the same run, and reported as ratios and differences.
//!
//! Map of the crate:
//! - `hop`: the hop floor, a plain TCP relay placed like the gateway.
//! - `mock`: the mock competitor (fixed ~1 KiB reply; paced, stamped SSE chunks; idle streams).
//! - `wire`: request bodies, the reply and chunk formats, the stamps the client reads back.
//! - `client`: one keep-alive HTTP/1.1 connection per worker and a timestamping SSE splitter.
//! - `load`: closed loop and coordinated-omission-free open loop.
//! - `stream`: the streaming client (TTFT, gaps, relay latency) and idle-stream holder.
//! - `nginx`: nginx as the fourth path (its config, install check, master and worker).
//! - `procs`: pinned child processes and `/proc` (CPU ticks, RSS, threads, machine).
//! - `plan`: the full and smoke presets; `run`: the scenarios; `report`: JSON and markdown.
//! - `setup`: building the release gateway and writing the report files.

mod client;
mod hop;
mod load;
mod mock;
mod nginx;
mod plan;
mod procs;
mod report;
mod run;
mod setup;
mod stats;
mod stream;
mod wire;

pub use client::{CallError, Conn, Event, SseSplitter};
pub use hop::serve as serve_hop;
pub use load::{closed_loop, open_conns, open_loop, LoadResult, Target};
pub use mock::{serve as serve_mock, ChunkBody, MockBody};
pub use nginx::{ensure_installed as ensure_nginx, DEFAULT_BIN as NGINX_BIN};
pub use plan::{Mode, Plan};
pub use procs::{has_taskset, Machine, ProcSample};
pub use report::Report;
pub use run::{prepare_load_process, run, GatewayProgram, LoadProcess, RunOptions, Scenarios};
pub use setup::{build_release_gateway, write_report, ReportFiles};
pub use stats::Summary;
pub use stream::{stream_round, IdleOutcome, IdleSet, StreamRound};
pub use wire::StreamPlan;
