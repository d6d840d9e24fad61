//! The report: the reference runner's JSON fields plus Janus's (per-category breakdown,
//! seed, suite hash, partial flag, cost sources), the summary table, and comparisons.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::measure::CostSource;
use crate::score::{mean, Components, Evaluation, Targets, Weights};
use crate::suite::Category;

/// Stream timings of one task (the reference's `streaming_metrics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamingMetrics {
    /// Request → first content, reasoning or tool-call delta (the latency when none came).
    pub ttft_seconds: f64,
    /// False when no token ever arrived.
    pub first_token_received: bool,
    /// Largest gap between received lines, keep-alives included.
    pub max_gap_seconds: f64,
    /// Data events received.
    pub total_chunks: u32,
    /// Keep-alive comments received.
    pub keep_alive_count: u32,
    /// Request → end of stream.
    pub total_duration_seconds: f64,
}

/// One task's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskResult {
    /// The item's id.
    pub task_id: String,
    /// Its category.
    pub category: Category,
    /// The reference's task type (`chat_quality`, `coding`, …).
    pub task_type: String,
    /// The reference's benchmark group (`public_<category>`).
    pub benchmark: String,
    /// Passed: no error, and quality at least 0.5.
    pub success: bool,
    /// The answer.
    pub response_text: Option<String>,
    /// Why it failed (then every score is 0).
    pub error: Option<String>,
    /// Request → end.
    pub latency_seconds: f64,
    /// Stream timings.
    pub streaming_metrics: StreamingMetrics,
    /// Completion tokens per second of the whole task.
    pub tokens_per_second: Option<f64>,
    /// Prompt tokens (from `cost_source`).
    pub prompt_tokens: Option<u64>,
    /// Completion tokens.
    pub completion_tokens: Option<u64>,
    /// All tokens.
    pub total_tokens: Option<u64>,
    /// USD.
    pub cost_usd: Option<f64>,
    /// Sandbox seconds.
    pub sandbox_seconds: Option<f64>,
    /// Where the cost figures came from: `platform` (gateway-measured), `competitor` or `none`.
    pub cost_source: CostSource,
    /// 0–1.
    pub quality_score: f64,
    /// 0–1.
    pub speed_score: f64,
    /// 0–1.
    pub cost_score: f64,
    /// 0–1.
    pub streaming_score: f64,
    /// 0–1 (1 for tasks without images).
    pub multimodal_score: f64,
    /// This task's weighted composite, 0–100.
    pub composite_score: f64,
    /// The judge's grade (0–1), when a judge was used.
    pub judge_score: Option<f64>,
    /// How quality was reached.
    pub evaluation: Evaluation,
    /// Tool calls made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<Value>,
    /// Artifacts announced.
    pub artifact_count: usize,
    /// The competitor that answered (`X-Janus-Competitor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub competitor: Option<String>,
}

impl Default for TaskResult {
    fn default() -> TaskResult {
        TaskResult {
            task_id: String::new(),
            category: Category::Chat,
            task_type: String::new(),
            benchmark: String::new(),
            success: false,
            response_text: None,
            error: None,
            latency_seconds: 0.0,
            streaming_metrics: StreamingMetrics::default(),
            tokens_per_second: None,
            prompt_tokens: None,
            completion_tokens: None,
            total_tokens: None,
            cost_usd: None,
            sandbox_seconds: None,
            cost_source: CostSource::None,
            quality_score: 0.0,
            speed_score: 0.0,
            cost_score: 0.0,
            streaming_score: 0.0,
            multimodal_score: 0.0,
            composite_score: 0.0,
            judge_score: None,
            evaluation: Evaluation::default(),
            tool_calls: Vec::new(),
            artifact_count: 0,
            competitor: None,
        }
    }
}

impl TaskResult {
    /// The five components (0–1).
    pub fn components(&self) -> Components {
        Components {
            quality: self.quality_score,
            speed: self.speed_score,
            cost: self.cost_score,
            streaming: self.streaming_score,
            multimodal: self.multimodal_score,
        }
    }
}

/// One category's averages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CategorySummary {
    /// Tasks run.
    pub total_tasks: usize,
    /// Tasks passed.
    pub passed_tasks: usize,
    /// Tasks that errored or timed out.
    pub errored_tasks: usize,
    /// 0–100.
    pub composite_score: f64,
    /// 0–100.
    pub quality_score: f64,
    /// 0–100.
    pub speed_score: f64,
    /// 0–100.
    pub cost_score: f64,
    /// 0–100.
    pub streaming_score: f64,
    /// 0–100.
    pub multimodal_score: f64,
    /// Mean latency.
    pub avg_latency_seconds: f64,
    /// Mean TTFT.
    pub avg_ttft_seconds: f64,
}

/// The code sandbox a run used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxInfo {
    /// `embedded` or `external`.
    pub kind: String,
    /// `full`, `none` or `unknown` (an external service).
    pub isolation: String,
}

/// A run's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Random id of the run.
    pub run_id: String,
    /// The suite's name or path.
    pub suite: String,
    /// sha256 of the suite's bytes: two reports compare only on the same hash.
    pub suite_hash: String,
    /// The target's base URL.
    pub target_url: String,
    /// The `model` sent.
    pub model: String,
    /// Sampling seed.
    pub seed: u64,
    /// Sampled percentage of each category.
    pub subset_percent: u8,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub completed_at: String,
    /// True when the run was interrupted: only `results` were finished.
    pub partial: bool,
    /// Tasks the sample held (more than `total_tasks` when partial).
    pub planned_tasks: usize,
    /// 0–100.
    pub composite_score: f64,
    /// 0–100.
    pub quality_score: f64,
    /// 0–100.
    pub speed_score: f64,
    /// 0–100.
    pub cost_score: f64,
    /// 0–100.
    pub streaming_score: f64,
    /// 0–100 over multimodal tasks (100 when the run had none, as the reference does).
    pub multimodal_score: f64,
    /// Tasks finished.
    pub total_tasks: usize,
    /// Passed.
    pub passed_tasks: usize,
    /// Not passed.
    pub failed_tasks: usize,
    /// Errored or timed out (a subset of failed).
    pub errored_tasks: usize,
    /// Mean latency.
    pub avg_latency_seconds: f64,
    /// Median latency.
    pub p50_latency_seconds: f64,
    /// Mean TTFT over tasks that streamed a token.
    pub avg_ttft_seconds: Option<f64>,
    /// Largest gap of any task.
    pub max_gap_seconds: Option<f64>,
    /// Sum of `total_tokens`.
    pub total_tokens: u64,
    /// Sum of `cost_usd`.
    pub total_cost_usd: f64,
    /// Tasks whose cost came from each source.
    pub cost_sources: BTreeMap<String, usize>,
    /// Per task, sorted by id.
    pub results: Vec<TaskResult>,
    /// Percentages.
    pub weights: BTreeMap<String, u32>,
    /// Per category.
    pub categories: BTreeMap<String, CategorySummary>,
    /// The piecewise targets used.
    pub targets: Option<Targets>,
    /// The code sandbox.
    pub sandbox: Option<SandboxInfo>,
    /// The judge model, when one graded.
    pub judge_model: Option<String>,
    /// The bench's version.
    pub bench_version: String,
}

/// Ties the run's facts together for [`Report::build`].
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// Run id.
    pub run_id: String,
    /// Suite name.
    pub suite: String,
    /// Suite hash.
    pub suite_hash: String,
    /// Target URL.
    pub target_url: String,
    /// Model.
    pub model: String,
    /// Seed.
    pub seed: u64,
    /// Subset.
    pub subset_percent: u8,
    /// Start time.
    pub started_at: String,
    /// Tasks planned.
    pub planned_tasks: usize,
    /// Weights.
    pub weights: Weights,
    /// Targets.
    pub targets: Targets,
    /// Sandbox.
    pub sandbox: Option<SandboxInfo>,
    /// Judge model.
    pub judge_model: Option<String>,
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// Component averages (0–1) of `results`; the multimodal average covers multimodal tasks
/// only, 1 when there are none.
fn averages(results: &[&TaskResult]) -> Components {
    let avg = |f: fn(&TaskResult) -> f64| mean(&results.iter().map(|r| f(r)).collect::<Vec<_>>());
    let multimodal: Vec<f64> = results
        .iter()
        .filter(|r| r.category == Category::Multimodal)
        .map(|r| r.multimodal_score)
        .collect();
    Components {
        quality: avg(|r| r.quality_score),
        speed: avg(|r| r.speed_score),
        cost: avg(|r| r.cost_score),
        streaming: avg(|r| r.streaming_score),
        multimodal: if multimodal.is_empty() {
            1.0
        } else {
            mean(&multimodal)
        },
    }
}

impl Report {
    /// Aggregates finished results into a report.
    pub fn build(facts: RunFacts, mut results: Vec<TaskResult>, partial: bool) -> Report {
        results.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        let all: Vec<&TaskResult> = results.iter().collect();
        let c = averages(&all);
        let mut categories = BTreeMap::new();
        for category in Category::ALL {
            let group: Vec<&TaskResult> =
                results.iter().filter(|r| r.category == category).collect();
            if group.is_empty() {
                continue;
            }
            let gc = averages(&group);
            categories.insert(
                category.as_str().to_owned(),
                CategorySummary {
                    total_tasks: group.len(),
                    passed_tasks: group.iter().filter(|r| r.success).count(),
                    errored_tasks: group.iter().filter(|r| r.error.is_some()).count(),
                    composite_score: facts.weights.composite(&gc),
                    quality_score: gc.quality * 100.0,
                    speed_score: gc.speed * 100.0,
                    cost_score: gc.cost * 100.0,
                    streaming_score: gc.streaming * 100.0,
                    multimodal_score: gc.multimodal * 100.0,
                    avg_latency_seconds: mean(
                        &group.iter().map(|r| r.latency_seconds).collect::<Vec<_>>(),
                    ),
                    avg_ttft_seconds: mean(
                        &group
                            .iter()
                            .map(|r| r.streaming_metrics.ttft_seconds)
                            .collect::<Vec<_>>(),
                    ),
                },
            );
        }
        let mut latencies: Vec<f64> = results.iter().map(|r| r.latency_seconds).collect();
        let ttfts: Vec<f64> = results
            .iter()
            .filter(|r| r.streaming_metrics.first_token_received)
            .map(|r| r.streaming_metrics.ttft_seconds)
            .collect();
        let mut cost_sources = BTreeMap::new();
        for r in &results {
            let key = match r.cost_source {
                CostSource::Platform => "platform",
                CostSource::Competitor => "competitor",
                CostSource::None => "none",
            };
            *cost_sources.entry(key.to_owned()).or_insert(0) += 1;
        }
        let w = facts.weights;
        let passed = results.iter().filter(|r| r.success).count();
        Report {
            run_id: facts.run_id,
            suite: facts.suite,
            suite_hash: facts.suite_hash,
            target_url: facts.target_url,
            model: facts.model,
            seed: facts.seed,
            subset_percent: facts.subset_percent,
            started_at: facts.started_at,
            completed_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string(),
            partial,
            planned_tasks: facts.planned_tasks,
            composite_score: w.composite(&c),
            quality_score: c.quality * 100.0,
            speed_score: c.speed * 100.0,
            cost_score: c.cost * 100.0,
            streaming_score: c.streaming * 100.0,
            multimodal_score: c.multimodal * 100.0,
            total_tasks: results.len(),
            passed_tasks: passed,
            failed_tasks: results.len() - passed,
            errored_tasks: results.iter().filter(|r| r.error.is_some()).count(),
            avg_latency_seconds: mean(&latencies),
            p50_latency_seconds: median(&mut latencies),
            avg_ttft_seconds: (!ttfts.is_empty()).then(|| mean(&ttfts)),
            max_gap_seconds: results
                .iter()
                .map(|r| r.streaming_metrics.max_gap_seconds)
                .reduce(f64::max),
            total_tokens: results.iter().filter_map(|r| r.total_tokens).sum(),
            total_cost_usd: results
                .iter()
                .filter_map(|r| r.cost_usd)
                .fold(0.0, |a, b| a + b),
            cost_sources,
            results,
            weights: BTreeMap::from([
                ("quality".to_owned(), w.quality),
                ("speed".to_owned(), w.speed),
                ("cost".to_owned(), w.cost),
                ("streaming".to_owned(), w.streaming),
                ("multimodal".to_owned(), w.multimodal),
            ]),
            categories,
            targets: Some(facts.targets),
            sandbox: facts.sandbox,
            judge_model: facts.judge_model,
            bench_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Reads a report written by [`Report::to_json`] (reference reports load too; fields
    /// they lack take defaults).
    pub fn from_json(text: &str) -> Result<Report, String> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| format!("not a bench report: {} at {}", e.inner(), e.path()))
    }

    /// The summary as a plain-text table.
    pub fn summary_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "suite {} ({}…)  target {}  model {}  seed {}  subset {}%{}",
            self.suite,
            self.suite_hash.get(..12).unwrap_or(&self.suite_hash),
            self.target_url,
            self.model,
            self.seed,
            self.subset_percent,
            if self.partial {
                "  PARTIAL (interrupted)"
            } else {
                ""
            }
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<12} {:>7} {:>7}", "component", "score", "weight");
        for (name, score) in [
            ("quality", self.quality_score),
            ("speed", self.speed_score),
            ("cost", self.cost_score),
            ("streaming", self.streaming_score),
            ("multimodal", self.multimodal_score),
        ] {
            let weight = self.weights.get(name).copied().unwrap_or(0);
            let _ = writeln!(out, "{name:<12} {score:>7.1} {weight:>6}%");
        }
        let _ = writeln!(out, "{:<12} {:>7.1}", "COMPOSITE", self.composite_score);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<11} {:>5} {:>6} {:>6} {:>9} {:>8} {:>7} {:>9}",
            "category", "tasks", "passed", "errors", "composite", "quality", "avg s", "avg ttft"
        );
        for (name, c) in &self.categories {
            let _ = writeln!(
                out,
                "{name:<11} {:>5} {:>6} {:>6} {:>9.1} {:>8.1} {:>7.2} {:>9.2}",
                c.total_tasks,
                c.passed_tasks,
                c.errored_tasks,
                c.composite_score,
                c.quality_score,
                c.avg_latency_seconds,
                c.avg_ttft_seconds
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "tasks {} (passed {}, failed {}, errors {}{})  latency avg {:.2} s p50 {:.2} s  ttft avg {}  max gap {}  tokens {}  cost ${:.4}",
            self.total_tasks,
            self.passed_tasks,
            self.failed_tasks,
            // Counted from the results: reports of the reference runner lack the field.
            self.results.iter().filter(|r| r.error.is_some()).count(),
            if self.partial { format!(", of {} planned", self.planned_tasks) } else { String::new() },
            self.avg_latency_seconds,
            self.p50_latency_seconds,
            self.avg_ttft_seconds.map_or("-".to_owned(), |t| format!("{t:.2} s")),
            self.max_gap_seconds.map_or("-".to_owned(), |t| format!("{t:.2} s")),
            self.total_tokens,
            self.total_cost_usd
        );
        let errors: Vec<&TaskResult> = self.results.iter().filter(|r| r.error.is_some()).collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "\nerrors:");
            for r in errors.iter().take(20) {
                let _ = writeln!(out, "  {}: {}", r.task_id, r.error.as_deref().unwrap_or(""));
            }
            if errors.len() > 20 {
                let _ = writeln!(out, "  … {} more in the report", errors.len() - 20);
            }
        }
        out
    }
}

/// One task present in both reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDelta {
    /// Task id.
    pub task_id: String,
    /// Composite in A and B (0–100).
    pub composite: (f64, f64),
    /// Quality in A and B (0–1).
    pub quality: (f64, f64),
    /// Passed in A and B.
    pub passed: (bool, bool),
}

/// B against A.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// `(component, A, B)` on 0–100, composite first.
    pub components: Vec<(String, f64, f64)>,
    /// `(category, A composite, B composite)`.
    pub categories: Vec<(String, f64, f64)>,
    /// Tasks in both, sorted by how much they changed (largest first).
    pub tasks: Vec<TaskDelta>,
    /// Task ids only in A.
    pub only_in_a: Vec<String>,
    /// Task ids only in B.
    pub only_in_b: Vec<String>,
    /// Set when the suites differ (the comparison is then of different questions).
    pub warning: Option<String>,
}

impl Comparison {
    /// Compares `b` against `a`.
    pub fn new(a: &Report, b: &Report) -> Comparison {
        let components = [
            ("composite", a.composite_score, b.composite_score),
            ("quality", a.quality_score, b.quality_score),
            ("speed", a.speed_score, b.speed_score),
            ("cost", a.cost_score, b.cost_score),
            ("streaming", a.streaming_score, b.streaming_score),
            ("multimodal", a.multimodal_score, b.multimodal_score),
        ]
        .into_iter()
        .map(|(n, x, y)| (n.to_owned(), x, y))
        .collect();
        let mut names: Vec<&String> = a.categories.keys().chain(b.categories.keys()).collect();
        names.sort();
        names.dedup();
        let categories = names
            .into_iter()
            .map(|n| {
                let get = |r: &Report| r.categories.get(n).map_or(0.0, |c| c.composite_score);
                (n.clone(), get(a), get(b))
            })
            .collect();
        let by_id: BTreeMap<&str, &TaskResult> =
            b.results.iter().map(|r| (r.task_id.as_str(), r)).collect();
        let mut tasks: Vec<TaskDelta> = a
            .results
            .iter()
            .filter_map(|x| {
                by_id.get(x.task_id.as_str()).map(|y| TaskDelta {
                    task_id: x.task_id.clone(),
                    composite: (x.composite_score, y.composite_score),
                    quality: (x.quality_score, y.quality_score),
                    passed: (x.success, y.success),
                })
            })
            .collect();
        tasks.sort_by(|p, q| {
            let dp = (p.composite.1 - p.composite.0).abs();
            let dq = (q.composite.1 - q.composite.0).abs();
            dq.total_cmp(&dp).then_with(|| p.task_id.cmp(&q.task_id))
        });
        let in_a: std::collections::BTreeSet<&str> =
            a.results.iter().map(|r| r.task_id.as_str()).collect();
        let only_in_a = a
            .results
            .iter()
            .filter(|r| !by_id.contains_key(r.task_id.as_str()))
            .map(|r| r.task_id.clone())
            .collect();
        let only_in_b = b
            .results
            .iter()
            .filter(|r| !in_a.contains(r.task_id.as_str()))
            .map(|r| r.task_id.clone())
            .collect();
        let warning = (a.suite_hash != b.suite_hash).then(|| {
            format!(
                "the reports ran different suites ({} {} vs {} {})",
                a.suite,
                a.suite_hash.get(..12).unwrap_or(""),
                b.suite,
                b.suite_hash.get(..12).unwrap_or("")
            )
        });
        Comparison {
            components,
            categories,
            tasks,
            only_in_a,
            only_in_b,
            warning,
        }
    }

    /// As a plain-text table (`limit` task rows at most).
    pub fn table(&self, limit: usize) -> String {
        let mut out = String::new();
        if let Some(w) = &self.warning {
            let _ = writeln!(out, "warning: {w}\n");
        }
        let _ = writeln!(
            out,
            "{:<12} {:>7} {:>7} {:>8}",
            "component", "A", "B", "B-A"
        );
        for (n, a, b) in &self.components {
            let _ = writeln!(out, "{n:<12} {a:>7.1} {b:>7.1} {:>+8.1}", b - a);
        }
        let _ = writeln!(
            out,
            "\n{:<12} {:>7} {:>7} {:>8}",
            "category", "A", "B", "B-A"
        );
        for (n, a, b) in &self.categories {
            let _ = writeln!(out, "{n:<12} {a:>7.1} {b:>7.1} {:>+8.1}", b - a);
        }
        let changed: Vec<&TaskDelta> = self
            .tasks
            .iter()
            .filter(|t| (t.composite.1 - t.composite.0).abs() >= 0.05 || t.passed.0 != t.passed.1)
            .collect();
        let _ = writeln!(
            out,
            "\ntasks in both: {}, changed: {}",
            self.tasks.len(),
            changed.len()
        );
        if !changed.is_empty() {
            let _ = writeln!(
                out,
                "{:<28} {:>7} {:>7} {:>8} {:>9}",
                "task", "A", "B", "B-A", "quality"
            );
            for t in changed.iter().take(limit) {
                let pass = |p: bool| if p { "pass" } else { "fail" };
                let _ = writeln!(
                    out,
                    "{:<28} {:>7.1} {:>7.1} {:>+8.1} {:>4}→{}",
                    t.task_id,
                    t.composite.0,
                    t.composite.1,
                    t.composite.1 - t.composite.0,
                    pass(t.passed.0),
                    pass(t.passed.1)
                );
            }
        }
        if !self.only_in_a.is_empty() {
            let _ = writeln!(out, "only in A: {}", self.only_in_a.join(", "));
        }
        if !self.only_in_b.is_empty() {
            let _ = writeln!(out, "only in B: {}", self.only_in_b.join(", "));
        }
        out
    }
}
