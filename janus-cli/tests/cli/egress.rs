//! The egress and limits proof of the competitor runner, rerunnable by any reviewer: a
//! competitor launched by `janus up` (full isolation, as CI runs) reports from inside its
//! sandbox what it can reach and use (`examples/egress-probe`):
//!
//! - the host's loopback services (the gateway's client port, the sandbox API, a listener
//!   of this test) all refuse it, while the platform URL it is told in
//!   `JANUS_PLATFORM_URL` works, with the request's grant, and the gateway injects the
//!   upstream key;
//! - its only interface is loopback, its only listening sockets its own port and the
//!   platform forward; there is no route and no resolver;
//! - a fork storm stays inside its pids limit, its CPU share is capped, and memory over
//!   its limit kills it — and the runner restarts it.
//!
//! Every address involved is on 127.0.0.1 (the host's, or the sandbox's own loopback).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::{authorization, http_double, interrupt, janus_up_with_config, printed_sandbox};

/// The probe binary, built beside `janus` by the workspace build.
fn probe_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_janus")).with_file_name("egress-probe");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace (cargo build --workspace), as ./scripts/test does",
        path.display()
    );
    path
}

/// A test double for the inference upstream: answers every call with one sentence and
/// records the Authorization header it was sent.
async fn fake_inference() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let url = http_double(move |headers, _| {
        record.lock().unwrap().push(authorization(headers));
        let body = json!({
            "id": "fake", "object": "chat.completion", "created": 0, "model": "probe",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong from the fake upstream"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}
        });
        ("application/json", body.to_string())
    })
    .await;
    (format!("{url}/v1"), seen)
}

/// A listener of this test on the host's loopback, counting the connections it gets.
async fn host_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (address, accepted)
}

/// One probe command through the gateway: the probe's JSON report, or the failure.
async fn probe(gateway: &str, command: Value) -> Result<Value, String> {
    let body = json!({
        "model": "probe",
        "messages": [{"role": "user", "content": command.to_string()}],
    });
    let reply = janus_client::HttpClient::default()
        .post_json(
            &format!("{gateway}/v1/chat/completions"),
            Bytes::from(body.to_string()),
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    if reply.status != 200 {
        return Err(format!("{}: {text}", reply.status));
    }
    let answer: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| format!("no content: {text}"))?;
    serde_json::from_str(content).map_err(|e| format!("{e}: {content}"))
}

/// Polls the probe until it answers `command` (it is launching, or restarting).
async fn probe_when_ready(gateway: &str, command: Value) -> Value {
    let mut last = String::new();
    for _ in 0..150 {
        match probe(gateway, command.clone()).await {
            Ok(report) => return report,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the probe never answered: {last}");
}

/// The probe's restart count (absent from /metrics before its first restart).
async fn restarts(gateway: &str) -> u64 {
    let reply = janus_client::HttpClient::default()
        .get(&format!("{gateway}/metrics"), Duration::from_secs(10))
        .await
        .unwrap();
    String::from_utf8_lossy(&reply.body)
        .lines()
        .find_map(|l| {
            l.strip_prefix("janus_gateway_competitor_restarts_total{competitor=\"probe\"} ")
        })
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_launched_competitor_reaches_only_the_platform_and_stays_inside_its_limits() {
    if let Err(why) = janus_sandbox::full_isolation_available() {
        panic!("the egress proof needs full isolation (root, util-linux), as CI has: {why}");
    }
    let dir = std::env::temp_dir().join(format!("janus-cli-egress-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let image = dir.join("images").join("probe");
    let probe_bin = probe_binary();
    // At a path of its own: the build may sit under /tmp, which a sandbox mounts over.
    let probe_inside = Path::new("/app/egress-probe");
    janus_sandbox::image::image_with_binaries_at(&image, &[(probe_bin.as_path(), probe_inside)])
        .unwrap();
    let (inference, upstream_auth) = fake_inference().await;
    let (listener, accepted) = host_listener().await;
    let config = dir.join("janus.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[platform]]
name = "inference"
url = "{inference}"
secret_env = "EGRESS_TEST_INFERENCE_KEY"

[[competitor]]
id = "probe"
command = ["{probe}"]
rootfs = "{image}"
resources = {{ cpu = 0.5, memory_mb = 96, pids = 32 }}
"#,
            probe = probe_inside.display(),
            image = image.display(),
        ),
    )
    .unwrap();
    let logs = dir.join("logs");
    let (mut up, gateway, printed) = janus_up_with_config(
        &config,
        &logs,
        &[("EGRESS_TEST_INFERENCE_KEY", "sk-egress-secret")],
    )
    .await;
    let sandbox = printed_sandbox(&printed);
    let platform = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("platform     "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no platform line in:\n{printed}"))
        .to_owned();
    let platform_address = authority(&platform);
    let gateway_address = authority(&gateway);
    let sandbox_address = authority(&sandbox);

    // Reach: the host's loopback services refuse; the platform works.
    let report = probe_when_ready(
        &gateway,
        json!({"probe": "reach", "connect": [gateway_address, sandbox_address, listener, platform_address]}),
    )
    .await;
    for address in [&gateway_address, &sandbox_address, &listener] {
        let outcome = report["connect"][address].as_str().unwrap();
        assert!(
            outcome.starts_with("failed"),
            "{address} is reachable from inside: {report}"
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the test listener was reached"
    );
    assert_eq!(
        report["connect"][&platform_address], "connected",
        "the platform forward is not reachable: {report}"
    );
    assert_eq!(report["platform_url"], platform.as_str(), "{report}");
    assert_eq!(report["platform"]["ok"], true, "{report}");
    assert_eq!(
        report["platform"]["answer"], "pong from the fake upstream",
        "{report}"
    );
    assert_eq!(
        upstream_auth.lock().unwrap().as_slice(),
        ["Bearer sk-egress-secret".to_owned()],
        "the gateway injects the key; the grant never reaches the upstream"
    );
    assert_eq!(report["interfaces"], json!(["lo"]), "{report}");
    assert_eq!(report["routes_v4"], json!([]), "{report}");
    assert_eq!(report["routes_v6"], json!([]), "{report}");
    let platform_port = platform_address.rsplit(':').next().unwrap();
    let mut listening: Vec<String> = report["listening"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    listening.sort();
    let mut expected = vec![
        "127.0.0.1:8080".to_owned(),
        format!("127.0.0.1:{platform_port}"),
    ];
    expected.sort();
    assert_eq!(listening, expected, "{report}");
    assert!(
        report["resolve"].as_str().unwrap().starts_with("failed"),
        "a name resolved inside: {report}"
    );

    // A fork storm stays inside the pids limit, and the competitor survives it.
    let forked = probe(&gateway, json!({"probe": "fork", "count": 200}))
        .await
        .unwrap();
    let spawned = forked["spawned"].as_u64().unwrap();
    assert!(spawned < 32, "{forked}");
    assert!(forked["error"].is_string(), "{forked}");

    // CPU: two spinning threads get at most about half a core.
    let spun = probe(&gateway, json!({"probe": "spin", "threads": 2, "ms": 2000}))
        .await
        .unwrap();
    let share = spun["share"].as_f64().unwrap();
    eprintln!("egress proof: fork storm started {spawned} of 200 children under pids = 32; two spinning threads got {share:.2} of a core under cpu = 0.5");
    assert!(share <= 0.65, "CPU is not capped at 0.5: {spun}");
    assert!(share > 0.05, "the spin did not run: {spun}");

    // Memory over the limit kills it; the runner restarts it.
    assert_eq!(restarts(&gateway).await, 0);
    let killed = probe(&gateway, json!({"probe": "memory", "mb": 400})).await;
    // A clear error at once: the request that killed it is not replayed (that would kill
    // it again), and the message says what happened.
    let killed = killed.expect_err("allocating 400 MiB under 96 MiB survived");
    assert!(killed.starts_with("502"), "{killed}");
    assert!(
        killed.contains("closed the connection without answering"),
        "{killed}"
    );
    let mut restarted = false;
    for _ in 0..100 {
        if restarts(&gateway).await == 1 {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        restarted,
        "no restart counted: {}",
        restarts(&gateway).await
    );
    let again = probe_when_ready(&gateway, json!({"probe": "memory", "mb": 16})).await;
    assert_eq!(again["allocated_mb"], 16, "{again}");

    assert!(interrupt(&mut up).await.success());
    let _ = std::fs::remove_dir_all(&dir);
}
