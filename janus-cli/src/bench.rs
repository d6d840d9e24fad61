//! `janus bench`: run a suite against a gateway or competitor, list suites, show and
//! compare reports. The work is janus-bench's; this is flags, progress and output.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use janus_bench::{
    Category, Comparison, EmbeddedSandbox, Judge, Progress, Report, RunConfig, SandboxInfo,
    SandboxTarget, Suite, Target, Targets, Update, Weights,
};

use crate::exit::Failure;

/// `janus bench` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Run a suite and write its report.
    Run(Box<RunArgs>),
    /// List the suites with their item counts per category.
    #[command(alias = "list-suites")]
    List,
    /// Print a saved report's summary.
    Show {
        /// The report (JSON).
        file: PathBuf,
    },
    /// Compare two reports: per component, per category and per task (B − A).
    Compare {
        /// The baseline report.
        a: PathBuf,
        /// The report compared against it.
        b: PathBuf,
        /// Task rows shown at most.
        #[arg(long, default_value_t = 30)]
        limit: usize,
    },
}

/// Arguments of `janus bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// A duration: `300s`, `1.5s`, `2m`, or plain seconds (`300`, the reference's spelling).
fn duration(value: &str) -> Result<Duration, String> {
    if let Ok(seconds) = value.trim().parse::<f64>() {
        if seconds > 0.0 && seconds.is_finite() {
            return Ok(Duration::from_secs_f64(seconds));
        }
        return Err(format!("'{value}' must be greater than zero"));
    }
    janus_http::parse_duration(value, "duration").map_err(|e| e.to_string())
}

fn percent(value: &str) -> Result<u8, String> {
    let number = value.trim().trim_end_matches('%');
    match number.parse::<u8>() {
        Ok(p) if (1..=100).contains(&p) => Ok(p),
        _ => Err(format!("'{value}' is not a percentage from 1 to 100")),
    }
}

fn positive(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{value}' is not a positive number")),
    }
}

/// Arguments of `janus bench run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Gateway or competitor base URL
    #[arg(long, short = 't', env = "JANUS_BENCH_TARGET", default_value = crate::DEFAULT_GATEWAY)]
    pub target: String,
    /// Suite: public/train, public/dev, private/test (from JANUS_BENCH_PRIVATE_DIR), or a .jsonl file or folder
    #[arg(long, short = 's', default_value = "public/dev")]
    pub suite: String,
    /// The `model` sent (the gateway routes a competitor id; anything else goes to its default)
    #[arg(long, short = 'm', env = "JANUS_BENCH_MODEL", default_value = "janus")]
    pub model: String,
    /// Sampling seed: the same seed picks the same tasks
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Percentage of each category to run (at least one task each)
    #[arg(long, default_value = "100", value_parser = percent)]
    pub subset: u8,
    /// Tasks in flight at once
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Bound on each task (300s, or 300 for seconds)
    #[arg(long, default_value = "300s", value_parser = duration)]
    pub timeout: Duration,
    /// Composite weights quality,speed,cost,streaming,multimodal; must sum to 100
    #[arg(long, default_value = "45,20,15,10,10")]
    pub weights: String,
    /// Where the JSON report goes (default bench-<run id>.json)
    #[arg(long, short = 'o', visible_alias = "output")]
    pub out: Option<PathBuf>,
    /// Also write the report as one self-contained HTML page
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Print the JSON report on stdout instead of the summary table
    #[arg(long)]
    pub json: bool,
    /// API key for the target (sent as Authorization: Bearer)
    #[arg(long, env = "JANUS_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A Sandy-compatible sandbox service for code answers (default: an embedded one on loopback)
    #[arg(long, env = "JANUS_BENCH_SANDBOX_URL")]
    pub sandbox_url: Option<String>,
    /// Its API key
    #[arg(long, env = "SANDY_API_KEY", hide_env_values = true)]
    pub sandbox_key: Option<String>,
    /// Refuse to run code answers without full sandbox isolation (root on Linux)
    #[arg(long)]
    pub require_isolation: bool,
    /// Bound on running one code answer's test cases
    #[arg(long, default_value = "20s", value_parser = duration)]
    pub code_timeout: Duration,
    /// An OpenAI-compatible endpoint (http) that grades chat, research and multimodal answers
    #[arg(long, env = "JANUS_BENCH_JUDGE_URL")]
    pub judge_url: Option<String>,
    /// The judge's model
    #[arg(long, env = "JANUS_BENCH_JUDGE_MODEL", default_value = "gpt-4o")]
    pub judge_model: String,
    /// Latency at which speed is full
    #[arg(long, default_value = "8s", value_parser = duration)]
    pub target_latency: Duration,
    /// Time to first token at which speed and streaming are full
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub target_ttft: Duration,
    /// Tokens per second at which speed is full
    #[arg(long, default_value = "10", value_parser = positive)]
    pub target_tps: f64,
    /// Tokens per task at which cost is full
    #[arg(long, default_value = "1000", value_parser = positive)]
    pub target_tokens: f64,
    /// USD per task at which cost is full
    #[arg(long, default_value = "0.01", value_parser = positive)]
    pub target_usd: f64,
    /// Sandbox seconds per task at which cost is full
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub target_sandbox: Duration,
    /// Largest gap between stream lines at which streaming is full
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub target_max_gap: Duration,
}

/// Runs a `janus bench` subcommand.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Run(run) => run_suite(*run).await,
        BenchCommand::List => list(),
        BenchCommand::Show { file } => {
            let report = read_report(&file)?;
            print!("{}", report.summary_table());
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Compare { a, b, limit } => {
            let comparison = Comparison::new(&read_report(&a)?, &read_report(&b)?);
            print!("{}", comparison.table(limit));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_report(path: &PathBuf) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    Report::from_json(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())).into())
}

fn list() -> anyhow::Result<ExitCode> {
    let header: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    println!("{:<14} {:>6} {}", "suite", "items", header.join(" "));
    for name in janus_bench::SUITE_NAMES {
        match Suite::load(name) {
            Ok(suite) => {
                let counts: Vec<String> = suite
                    .counts()
                    .iter()
                    .map(|(c, n)| format!("{:>w$}", n, w = c.as_str().len()))
                    .collect();
                println!("{name:<14} {:>6} {}", suite.items.len(), counts.join(" "));
            }
            Err(e) => println!("{name:<14} {:>6} ({e})", "-"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A bar on a terminal, plain lines otherwise; both on stderr.
struct Bar {
    terminal: bool,
}

impl Progress for Bar {
    fn started(&mut self, total: usize) {
        eprintln!("janus bench: {total} tasks");
    }

    fn finished(&mut self, u: &Update<'_>) {
        let per_task = u.elapsed.as_secs_f64() / u.done.max(1) as f64;
        let eta = per_task * (u.total - u.done) as f64;
        let status = if u.last.error.is_some() {
            "ERROR"
        } else if u.last.success {
            "pass"
        } else {
            "fail"
        };
        if self.terminal {
            let width = 30;
            let filled = width * u.done / u.total.max(1);
            eprint!(
                "\r[{}{}] {}/{} passes {} composite {:.1} ETA {:.0}s   ",
                "#".repeat(filled),
                "-".repeat(width - filled),
                u.done,
                u.total,
                u.passed,
                u.composite,
                eta
            );
            if u.done == u.total {
                eprintln!();
            }
        } else {
            eprintln!(
                "[{}/{}] {} {status} composite {:.1} passes {} eta {:.0}s",
                u.done, u.total, u.last.task_id, u.composite, u.passed, eta
            );
        }
        let _ = std::io::stderr().flush();
    }
}

async fn run_suite(args: RunArgs) -> anyhow::Result<ExitCode> {
    let weights = Weights::parse(&args.weights).map_err(|e| Failure::Usage(e.to_string()))?;
    let suite = Suite::load(&args.suite).map_err(|e| Failure::Usage(e.to_string()))?;
    if !args.target.starts_with("http://") {
        return Err(Failure::Usage(format!(
            "--target {}: only http:// URLs are supported",
            args.target
        ))
        .into());
    }
    let client = janus_bench::client_for(usize::from(args.concurrency));
    janus_bench::probe(&client, &args.target)
        .await
        .map_err(|e| Unreachable(e.to_string()))?;
    let has_code = suite
        .sample(args.subset, args.seed)
        .iter()
        .any(|i| i.category == Category::Code);
    // The embedded service only starts when sampled code needs it; `janus` routes the
    // sandbox's helper modes (main.rs), so this binary serves as its helper.
    let mut embedded = None;
    let (sandbox, sandbox_info) = match (&args.sandbox_url, has_code) {
        (Some(url), _) => (
            Some(url.clone()),
            Some(SandboxInfo {
                kind: "external".to_owned(),
                isolation: "unknown".to_owned(),
            }),
        ),
        (None, true) => {
            let service = EmbeddedSandbox::start(args.require_isolation, None)
                .await
                .map_err(|e| Failure::Usage(format!("embedded sandbox: {e}")))?;
            if service.isolation != "full" {
                eprintln!("janus bench: WARNING: code answers run WITHOUT sandbox isolation (needs root on Linux)");
            }
            let info = SandboxInfo {
                kind: "embedded".to_owned(),
                isolation: service.isolation.to_owned(),
            };
            let url = service.url.clone();
            embedded = Some(service);
            (Some(url), Some(info))
        }
        (None, false) => (None, None),
    };
    let judge_key = std::env::var("JANUS_BENCH_JUDGE_API_KEY").ok();
    let config = RunConfig {
        target: Target {
            base_url: args.target.clone(),
            model: args.model.clone(),
            api_key: args.api_key.clone(),
            timeout: args.timeout,
        },
        suite,
        seed: args.seed,
        subset_percent: args.subset,
        concurrency: usize::from(args.concurrency),
        weights,
        targets: Targets {
            latency_seconds: args.target_latency.as_secs_f64(),
            ttft_seconds: args.target_ttft.as_secs_f64(),
            tokens_per_second: args.target_tps,
            tokens: args.target_tokens,
            cost_usd: args.target_usd,
            sandbox_seconds: args.target_sandbox.as_secs_f64(),
            max_gap_seconds: args.target_max_gap.as_secs_f64(),
        },
        sandbox: sandbox.map(|url| SandboxTarget {
            url,
            api_key: args.sandbox_key.clone(),
            exec_timeout: args.code_timeout,
        }),
        sandbox_info,
        judge: args.judge_url.as_ref().map(|url| Judge {
            url: url.clone(),
            model: args.judge_model.clone(),
            api_key: judge_key,
            timeout: Duration::from_secs(120),
        }),
    };
    let mut bar = Bar {
        terminal: std::io::stderr().is_terminal(),
    };
    let report = janus_bench::run(config, &mut bar, janus_http::shutdown_signal()).await;
    if let Some(service) = embedded {
        service.stop().await;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("bench-{}.json", report.run_id)));
    std::fs::write(&out, report.to_json())
        .with_context(|| format!("cannot write the report to {}", out.display()))?;
    if let Some(html) = &args.html {
        std::fs::write(html, janus_bench::render_html(&report))
            .with_context(|| format!("cannot write the HTML report to {}", html.display()))?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.summary_table());
    }
    eprintln!("janus bench: report written to {}", out.display());
    if report.partial {
        eprintln!(
            "janus bench: interrupted: the report is partial ({} of {} tasks)",
            report.total_tasks, report.planned_tasks
        );
        return Ok(ExitCode::from(crate::exit::ANSWERED_ERROR));
    }
    Ok(ExitCode::SUCCESS)
}

/// The target could not be reached at all (exit 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);
