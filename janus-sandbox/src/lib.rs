//! `janus-sandbox` — a Sandy-compatible sandbox service on local Linux isolation.
//!
//! Competitors run untrusted agent work in sandboxes through the Sandy HTTP API
//! (contract.md §6). This service speaks that API on this machine: each sandbox gets its own
//! mount, PID, network (loopback only), UTS and IPC namespaces, runs commands as an
//! unprivileged uid without capabilities, and is held to memory, process and CPU limits by
//! cgroups. Production points the same clients at hosted Sandy via `SANDY_BASE_URL`.
//!
//! Map of the crate:
//! - `config`: [`Args`] (flags, env) → [`Config`].
//! - `api`: [`run`] — the HTTP server and its routes.
//! - `sandbox`: the manager — capacity, priority preemption, TTL, exec, files.
//! - `agent`: `agent/run` as an SSE stream with heartbeats.
//! - `isolation`: namespaces and cgroups via util-linux (`unshare`, `nsenter`, `setpriv`),
//!   process-tree kills.
//! - `holder`: PID 1 of a sandbox — builds its private root with mount system calls,
//!   brings up loopback, reaps; a hidden mode of this binary.
//! - `relay`: the hidden helper modes ([`helper_main`]): the holder, and crossing into a
//!   sandbox's network namespace (proxy, `--forward`) under `nsenter --net`.
//! - `workspace`: the files API's race-free access to a workspace (no symlink is ever
//!   followed, even if the sandbox swaps one in mid-operation).
//! - `error`: [`SandboxError`] → status and error envelope.

mod agent;
mod api;
mod config;
mod error;
mod holder;
pub mod image;
mod isolation;
mod relay;
mod sandbox;
pub mod service;
mod workspace;

pub use api::run;
pub use config::{parse_forward, Args, Config, IsolationMode, DEFAULT_AGENT_COMMAND, MAX_TTL};
pub use error::SandboxError;
pub use isolation::{full_isolation_available, Rlimits};
pub use relay::{helper_main, run_helper};
pub use sandbox::{sandbox_path, socket_base};

/// The crate's README, compiled and run as doctests so its examples cannot drift from the
/// code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
