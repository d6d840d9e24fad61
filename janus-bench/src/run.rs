//! A run: sample the suite, run the tasks `concurrency` at a time, score each as it
//! finishes, report progress, and stop cleanly (with a partial report) when cancelled.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use http_body_util::Full;
use janus_http::{build_client_with, ClientOptions};
use serde_json::json;

use crate::code::{self, SandboxTarget};
use crate::judge::Judge;
use crate::measure::{observe, HttpClient, Observation, Target};
use crate::report::{Report, RunFacts, SandboxInfo, StreamingMetrics, TaskResult};
use crate::score::{self, Evaluation, Targets, Weights};
use crate::suite::{Category, Item, Suite};

/// A task passes when it did not error and its quality is at least this.
pub const PASS_QUALITY: f64 = 0.5;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The gateway or competitor.
    pub target: Target,
    /// The suite.
    pub suite: Suite,
    /// Sampling seed.
    pub seed: u64,
    /// Percentage of each category to run (1–100).
    pub subset_percent: u8,
    /// Tasks in flight at once.
    pub concurrency: usize,
    /// Composite weights.
    pub weights: Weights,
    /// Piecewise targets.
    pub targets: Targets,
    /// Where code answers run.
    pub sandbox: Option<SandboxTarget>,
    /// Described in the report.
    pub sandbox_info: Option<SandboxInfo>,
    /// The optional judge.
    pub judge: Option<Judge>,
}

/// Progress after one task.
#[derive(Debug)]
pub struct Update<'a> {
    /// Tasks finished.
    pub done: usize,
    /// Tasks planned.
    pub total: usize,
    /// Tasks passed so far.
    pub passed: usize,
    /// The composite over the finished tasks.
    pub composite: f64,
    /// Since the run started.
    pub elapsed: Duration,
    /// The task that just finished.
    pub last: &'a TaskResult,
}

/// Where progress goes (a bar, lines, nothing).
pub trait Progress: Send {
    /// The run starts with `total` tasks.
    fn started(&mut self, total: usize) {
        let _ = total;
    }
    /// A task finished.
    fn finished(&mut self, update: &Update<'_>) {
        let _ = update;
    }
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The target did not answer `GET /health` at all.
    #[error("cannot reach the target {url}: {reason}")]
    Unreachable {
        /// The health URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Shared by every task of a run.
struct Shared {
    client: HttpClient,
    config: RunConfig,
    run_id: String,
}

/// The client a run uses: pooled, with room for every task in flight.
pub fn client_for(concurrency: usize) -> HttpClient {
    let mut options = ClientOptions::new(Duration::from_secs(5));
    options.pool_max_idle_per_host = concurrency.max(8);
    build_client_with::<Full<bytes::Bytes>>(options)
}

/// Checks that the target answers `GET /health` (any status: only reachability counts
/// here; the tasks tell the rest).
pub async fn probe(client: &HttpClient, base_url: &str) -> Result<(), RunError> {
    let url = format!("{}/health", base_url.trim_end_matches('/'));
    let unreachable = |reason: String| RunError::Unreachable {
        url: url.clone(),
        reason,
    };
    let request = http::Request::get(&url)
        .body(Full::new(bytes::Bytes::new()))
        .map_err(|e| unreachable(format!("bad url: {e}")))?;
    match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
        Err(_) => Err(unreachable("no answer within 10 s".to_owned())),
        Ok(Err(e)) => Err(unreachable(janus_core::error_chain(&e))),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Runs the sampled suite. Finishes every task, or stops when `cancel` resolves: tasks in
/// flight are dropped (their connections closed) and the report is marked partial.
pub async fn run(
    config: RunConfig,
    progress: &mut dyn Progress,
    cancel: impl Future<Output = ()>,
) -> Report {
    let items = config.suite.sample(config.subset_percent, config.seed);
    let total = items.len();
    let run_id = janus_core::random_hex(4);
    let facts = RunFacts {
        run_id: run_id.clone(),
        suite: config.suite.name.clone(),
        suite_hash: config.suite.hash.clone(),
        target_url: config.target.base_url.clone(),
        model: config.target.model.clone(),
        seed: config.seed,
        subset_percent: config.subset_percent,
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        planned_tasks: total,
        weights: config.weights,
        targets: config.targets,
        sandbox: config.sandbox_info.clone(),
        judge_model: config.judge.as_ref().map(|j| j.model.clone()),
    };
    let shared = Shared {
        client: client_for(config.concurrency),
        run_id,
        config,
    };
    let started = Instant::now();
    progress.started(total);
    let mut results: Vec<TaskResult> = Vec::with_capacity(total);
    let mut tasks = futures_util::stream::iter(items.iter())
        .map(|item| score_task(&shared, item))
        .buffer_unordered(shared.config.concurrency.max(1));
    let mut cancel = std::pin::pin!(cancel);
    let mut partial = false;
    loop {
        tokio::select! {
            // Finished tasks first, so a cancel racing the last task loses nothing.
            biased;
            next = tasks.next() => {
                let Some(result) = next else { break };
                results.push(result);
                let passed = results.iter().filter(|r| r.success).count();
                let composite = running_composite(&results, &shared.config.weights);
                if let Some(last) = results.last() {
                    progress.finished(&Update {
                        done: results.len(),
                        total,
                        passed,
                        composite,
                        elapsed: started.elapsed(),
                        last,
                    });
                }
            }
            () = &mut cancel => {
                partial = true;
                break;
            }
        }
    }
    drop(tasks);
    Report::build(facts, results, partial)
}

fn running_composite(results: &[TaskResult], weights: &Weights) -> f64 {
    let all: Vec<&TaskResult> = results.iter().collect();
    let c = score::Components {
        quality: score::mean(&all.iter().map(|r| r.quality_score).collect::<Vec<_>>()),
        speed: score::mean(&all.iter().map(|r| r.speed_score).collect::<Vec<_>>()),
        cost: score::mean(&all.iter().map(|r| r.cost_score).collect::<Vec<_>>()),
        streaming: score::mean(&all.iter().map(|r| r.streaming_score).collect::<Vec<_>>()),
        multimodal: {
            let m: Vec<f64> = all
                .iter()
                .filter(|r| r.category == Category::Multimodal)
                .map(|r| r.multimodal_score)
                .collect();
            if m.is_empty() {
                1.0
            } else {
                score::mean(&m)
            }
        },
    };
    weights.composite(&c)
}

/// Runs, measures and scores one item.
async fn score_task(shared: &Shared, item: &Item) -> TaskResult {
    let config = &shared.config;
    let observation = observe(&shared.client, &config.target, item, &shared.run_id).await;
    let mut result = base_result(item, &observation);
    if observation.error.is_some() {
        return result;
    }
    let (evaluation, infrastructure_error) = quality(shared, item, &observation).await;
    if let Some(error) = infrastructure_error {
        result.error = Some(format!("could not score: {error}"));
        result.evaluation = evaluation;
        return result;
    }
    let mut evaluation = evaluation;
    let judged = matches!(
        item.category,
        Category::Chat | Category::Research | Category::Multimodal
    );
    if let (Some(judge), true) = (
        &config.judge,
        judged && !observation.content.trim().is_empty(),
    ) {
        match judge
            .grade(&shared.client, item, &observation.content)
            .await
        {
            Ok(grade) => {
                result.judge_score = Some(grade);
                evaluation = score::blend_judge(&evaluation, grade);
            }
            Err(e) => evaluation.notes.push(format!("judge: {e}")),
        }
    }
    let targets = &config.targets;
    let (usage, _) = observation.cost_figures();
    result.quality_score = evaluation.score.clamp(0.0, 1.0);
    result.speed_score = score::speed(
        targets,
        observation.latency,
        observation.ttft,
        result.tokens_per_second,
    );
    result.cost_score = score::cost(targets, &usage);
    result.streaming_score = score::streaming(
        targets,
        observation.ttft,
        observation.max_gap,
        observation.chunks,
    );
    result.multimodal_score = if item.category == Category::Multimodal {
        // The facts about the image: the `contains` part when the item lists them.
        evaluation
            .components
            .get("contains")
            .copied()
            .unwrap_or(evaluation.score)
    } else {
        1.0
    };
    result.success = result.quality_score >= PASS_QUALITY;
    result.composite_score = config.weights.composite(&result.components());
    result.evaluation = evaluation;
    result
}

/// The result before quality: identity, timings and usage; every score 0.
fn base_result(item: &Item, o: &Observation) -> TaskResult {
    let (usage, source) = o.cost_figures();
    let latency = o.latency.as_secs_f64();
    let tokens_per_second = o
        .competitor_usage
        .completion_tokens
        .filter(|_| latency > 0.0)
        .map(|t| t as f64 / latency);
    TaskResult {
        task_id: item.id.clone(),
        category: item.category,
        task_type: item.category.task_type().to_owned(),
        benchmark: format!("public_{}", item.category),
        success: false,
        response_text: (!o.content.is_empty()).then(|| o.content.clone()),
        error: o.error.clone(),
        latency_seconds: latency,
        streaming_metrics: StreamingMetrics {
            ttft_seconds: o.ttft.map_or(latency, |t| t.as_secs_f64()),
            first_token_received: o.ttft.is_some(),
            max_gap_seconds: o.max_gap.as_secs_f64(),
            total_chunks: o.chunks,
            keep_alive_count: o.keep_alives,
            total_duration_seconds: latency,
        },
        tokens_per_second,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.total_tokens,
        cost_usd: usage.cost_usd,
        sandbox_seconds: usage.sandbox_seconds,
        cost_source: source,
        tool_calls: o
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "function": c.function, "arguments": c.arguments}))
            .collect(),
        artifact_count: o.artifacts.len(),
        competitor: o.competitor.clone(),
        ..TaskResult::default()
    }
}

/// Quality by category; the second value is set when scoring itself failed (sandbox down).
async fn quality(shared: &Shared, item: &Item, o: &Observation) -> (Evaluation, Option<String>) {
    let expected = &item.expected;
    match item.category {
        Category::Chat | Category::Multimodal => {
            (score::text_quality(&o.content, expected, o.latency), None)
        }
        Category::Research => (
            score::research_quality(&o.content, expected, o.latency),
            None,
        ),
        Category::Code => {
            let outcome = code::evaluate(
                &shared.client,
                shared.config.sandbox.as_ref(),
                &o.content,
                expected,
            )
            .await;
            (outcome.evaluation, outcome.infrastructure_error)
        }
        Category::Agentic => {
            let tools = score::tool_quality(expected, item.expected_call.as_ref(), &o.tool_calls);
            let files = if expected.artifacts.is_empty() {
                None
            } else {
                Some(
                    crate::artifacts::evaluate(
                        &shared.client,
                        &o.artifacts,
                        &expected.artifacts,
                        Duration::from_secs(30),
                    )
                    .await,
                )
            };
            if tools.is_none() && files.is_none() {
                return (score::text_quality(&o.content, expected, o.latency), None);
            }
            let mut evaluation = Evaluation::default();
            for part in [tools, files].into_iter().flatten() {
                for (name, value) in part.components {
                    evaluation.add(&name, value);
                }
                evaluation.notes.extend(part.notes);
            }
            // Words the answer must say count beside the tool call or files.
            let lower = o.content.to_lowercase();
            for (name, needles) in [
                ("contains", &expected.contains),
                ("must_cover", &expected.must_cover),
            ] {
                if !needles.is_empty() {
                    let found = needles
                        .iter()
                        .filter(|n| lower.contains(&n.to_lowercase()))
                        .count();
                    evaluation.add(name, found as f64 / needles.len() as f64);
                }
            }
            (evaluation, None)
        }
    }
}
