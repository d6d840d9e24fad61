//! `janus-bench` — the benchmark runner: it runs suites against a gateway or a competitor
//! and scores quality, speed, cost, streaming continuity and multimodal ability into one
//! composite (contract §7), the way the platform ranks competitors.
//!
//! Map of the crate:
//! - `suite`: [`Suite`] — JSONL items in the reference runner's format ([`Item`],
//!   [`Expected`]), the shipped `public/train` and `public/dev`, `private/test` from
//!   [`PRIVATE_DIR_ENV`], the suite hash, deterministic per-category sampling.
//! - `measure`: [`observe`] — one streamed request, timed from the raw SSE lines
//!   (TTFT, total latency, max gap with keep-alives, chunks, usage and its [`CostSource`]).
//! - `score`: the piecewise [`Targets`], [`Weights`] and the quality rules per category.
//! - `code`: code answers run against test cases in a sandbox ([`SandboxTarget`],
//!   [`EmbeddedSandbox`]), never in this process.
//! - `artifacts`: agentic files verified by sha256 and size, content checked.
//! - `judge`: the optional LLM [`Judge`].
//! - `run`: [`run`] — sampling, concurrency, [`Progress`], cancellation → partial report.
//! - `report`: [`Report`] (JSON), the summary table and [`Comparison`].
//! - `html`: [`render_html`], one self-contained page.
//! - `images`: [`Canvas`], the PNG drawing the multimodal items are generated with.

mod artifacts;
mod code;
mod html;
mod images;
mod judge;
mod measure;
mod report;
mod run;
mod score;
mod suite;

pub use code::{extract_code, outputs_equal, EmbeddedSandbox, SandboxTarget};
pub use html::render as render_html;
pub use images::{colour, Canvas, Rgb, COLOURS};
pub use judge::{parse_score as parse_judge_score, Judge};
pub use measure::{
    observe, request_body, CostSource, HttpClient, Observation, Target, ToolCall, UsageFigures,
};
pub use report::{
    CategorySummary, Comparison, Report, RunFacts, SandboxInfo, StreamingMetrics, TaskDelta,
    TaskResult,
};
pub use run::{
    client_for, probe, run, NoProgress, Progress, RunConfig, RunError, Update, PASS_QUALITY,
};
pub use score::{piecewise, Components, Evaluation, Targets, Weights, WeightsError};
pub use suite::{
    Category, Expected, ExpectedArtifact, Item, Suite, SuiteError, TestCase, PRIVATE_DIR_ENV,
    SUITE_NAMES,
};

/// The crate's README, compiled as doctests so its examples cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
