//! `cargo bench -p janus-sandbox`: create-to-ready and exec round trip, over real HTTP.
//! Full isolation when run as root (as CI and the machine here are), else none, stated.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use janus_client::HttpClient;
use janus_sandbox::{full_isolation_available, Config, IsolationMode};
use serde_json::json;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let isolation = if full_isolation_available().is_ok() {
        IsolationMode::Full
    } else {
        IsolationMode::None
    };
    let root = std::env::temp_dir().join(format!("janus-sandbox-bench-{}", std::process::id()));
    let mut config = Config::new(root, isolation);
    config.max_sandboxes = 64;
    config.helper_binary = env!("CARGO_BIN_EXE_janus-sandbox").into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    config.public_url = url.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(janus_sandbox::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let client = HttpClient::default();
    let post = |path: String, body: serde_json::Value| {
        let client = client.clone();
        let url = format!("{url}{path}");
        async move {
            client
                .post_json(&url, Bytes::from(body.to_string()), Duration::from_secs(30))
                .await
                .unwrap()
        }
    };

    let mut creates = Vec::new();
    let mut create_only = Vec::new();
    let mut execs = Vec::new();
    for round in 0..20 {
        let started = Instant::now();
        let created = post("/api/sandboxes".into(), json!({})).await;
        let create_elapsed = started.elapsed();
        // Ready means a command runs: create, then the first exec.
        let id = created.json().unwrap()["id"].as_str().unwrap().to_owned();
        let first = post(
            format!("/api/sandboxes/{id}/exec"),
            json!({"command": "true"}),
        )
        .await;
        assert_eq!(first.status, 200);
        if round > 1 {
            creates.push(started.elapsed());
            create_only.push(create_elapsed);
        }
        for _ in 0..10 {
            let started = Instant::now();
            let out = post(
                format!("/api/sandboxes/{id}/exec"),
                json!({"command": "true"}),
            )
            .await;
            assert_eq!(out.json().unwrap()["exit_code"], 0);
            execs.push(started.elapsed());
        }
        post(format!("/api/sandboxes/{id}/terminate"), json!({})).await;
    }
    println!(
        "janus-sandbox bench, isolation: {isolation:?}, {} creates, {} execs",
        creates.len(),
        execs.len()
    );
    println!(
        "create-to-ready (create + first exec): p50 {:.1} ms, p90 {:.1} ms",
        ms(percentile(&mut creates, 0.5)),
        ms(percentile(&mut creates, 0.9))
    );
    println!(
        "create alone (201 answered): p50 {:.1} ms, p90 {:.1} ms",
        ms(percentile(&mut create_only, 0.5)),
        ms(percentile(&mut create_only, 0.9))
    );
    println!(
        "exec `true` round trip: p50 {:.1} ms, p90 {:.1} ms",
        ms(percentile(&mut execs, 0.5)),
        ms(percentile(&mut execs, 0.9))
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
