//! The bench's own overhead per task: 200 chat tasks at concurrency 8 against the echo
//! competitor (no slow step), timed as a full `janus_bench::run` and as the same 200
//! requests sent and drained by a bare client; the difference over 200 is what sampling,
//! SSE measurement, scoring and the report add to each task. Median of 5 rounds.
//!
//! ```text
//! cargo run --release -p janus-bench --example overhead
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use janus_bench::{request_body, NoProgress, RunConfig, Suite, Target, Targets, Weights};
use janus_competitor_sdk::ServeConfig;

const TASKS: usize = 200;
const CONCURRENCY: usize = 8;
const ROUNDS: usize = 5;

fn suite() -> Suite {
    let lines: Vec<String> = (0..TASKS)
        .map(|i| {
            serde_json::json!({"id": format!("t{i:03}"), "category": "chat",
                "input": {"messages": [{"role": "user", "content": format!("question number {i}: what is the answer to everything, please say 42")}]},
                "expected": {"contains": ["42"], "min_length": 10}})
            .to_string()
        })
        .collect();
    Suite::parse("overhead", &[("overhead", &lines.join("\n"))]).unwrap()
}

async fn bare(client: &janus_bench::HttpClient, url: &str, suite: &Suite) -> Duration {
    let started = Instant::now();
    futures_util::stream::iter(suite.items.iter())
        .map(|item| async move {
            let body = request_body(item, "echo").to_string();
            let request = http::Request::post(format!("{url}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let response = client.request(request).await.unwrap();
            response.into_body().collect().await.unwrap();
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let echo = echo_competitor::Echo::new(Duration::ZERO);
    tokio::spawn(janus_competitor_sdk::serve(
        listener,
        Arc::new(echo),
        ServeConfig::default(),
        std::future::pending(),
    ));
    let suite = suite();
    let client = janus_bench::client_for(CONCURRENCY);
    let config = RunConfig {
        target: Target {
            base_url: url.clone(),
            model: "echo".to_owned(),
            api_key: None,
            timeout: Duration::from_secs(30),
        },
        suite: suite.clone(),
        seed: 42,
        subset_percent: 100,
        concurrency: CONCURRENCY,
        weights: Weights::default(),
        targets: Targets::default(),
        sandbox: None,
        sandbox_info: None,
        judge: None,
    };
    // Warm both paths (connections, allocator) before timing.
    bare(&client, &url, &suite).await;
    let _ = janus_bench::run(config.clone(), &mut NoProgress, std::future::pending()).await;
    let (mut bench_times, mut bare_times) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let report =
            janus_bench::run(config.clone(), &mut NoProgress, std::future::pending()).await;
        let _json = report.to_json();
        bench_times.push(started.elapsed());
        assert_eq!((report.total_tasks, report.errored_tasks), (TASKS, 0));
        bare_times.push(bare(&client, &url, &suite).await);
    }
    let (b, r) = (median(bench_times), median(bare_times));
    // Signed: within noise the bare side can be the slower one.
    let overhead = (b.as_secs_f64() - r.as_secs_f64()) * 1000.0 / TASKS as f64;
    println!("tasks {TASKS}, concurrency {CONCURRENCY}, rounds {ROUNDS} (medians)");
    println!(
        "janus_bench::run + report JSON: {:.1} ms",
        b.as_secs_f64() * 1000.0
    );
    println!(
        "bare requests, bodies drained:  {:.1} ms",
        r.as_secs_f64() * 1000.0
    );
    println!("bench overhead per task:        {overhead:+.3} ms (target < 1 ms)");
    println!(
        "whole run per task (echo, gateway-free, concurrency {CONCURRENCY}): {:.3} ms",
        b.as_secs_f64() * 1000.0 / TASKS as f64
    );
}
