//! `janus check` passes the echo competitor and fails broken ones, naming the check.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::broken::{Broken, Defect};
use crate::janus;

async fn check(url: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let output = janus()
        .args(["check", url, "--json", "--timeout", "20s"])
        .args(extra)
        .output()
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code(), report)
}

fn failed(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap(),
                c["detail"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn the_echo_competitor_passes_every_check() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let echo = echo_competitor::Echo::new(Duration::from_millis(2500));
    tokio::spawn(janus_competitor_sdk::serve(
        listener,
        Arc::new(echo),
        janus_competitor_sdk::ServeConfig::default(),
        std::future::pending::<()>(),
    ));
    let (code, report) = check(&url, &[]).await;
    assert_eq!(failed(&report), Vec::<String>::new());
    assert_eq!(code, Some(0));
    assert_eq!(report["passed"], true);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "health",
        "non_stream_shape",
        "stream_shape",
        "include_usage",
        "keepalive_gap",
        "reasoning_content",
        "artifacts",
        "malformed_request",
        "concurrency",
    ] {
        assert!(names.contains(&name), "missing check {name}: {names:?}");
    }
    // The 2.5 s slow step made the SDK send keep-alives, and the gap check counted them.
    let gap = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "keepalive_gap")
        .unwrap();
    assert!(
        gap["detail"]
            .as_str()
            .unwrap()
            .contains("keep-alive comments"),
        "{gap}"
    );
    assert!(
        !gap["detail"].as_str().unwrap().contains("(0 keep-alive"),
        "{gap}"
    );
}

#[tokio::test]
async fn launch_starts_the_competitor_and_waits_for_readiness() {
    let port = crate::free_port();
    let url = format!("http://127.0.0.1:{port}");
    // `janus up` serves the echo competitor on a fixed port: a real process to launch.
    let command = format!(
        "ECHO_SLOW_STEP_MS=300 {} up --no-sandbox --listen 127.0.0.1:{} --echo-listen 127.0.0.1:{port}",
        env!("CARGO_BIN_EXE_janus"),
        crate::free_port()
    );
    let (code, report) = check(&url, &["--launch", &command]).await;
    assert_eq!(failed(&report), Vec::<String>::new());
    assert_eq!(code, Some(0));
    assert_eq!(report["checks"][0]["name"], "launch_ready");
}

#[tokio::test]
async fn broken_competitors_fail_the_right_check() {
    let cases = [
        (Defect::NoDone, "stream_shape"),
        (Defect::SilentGap, "keepalive_gap"),
        (Defect::UsageNull, "non_stream_shape"),
        (Defect::WrongSha256, "artifacts"),
        (Defect::NoHealth, "health"),
        (Defect::Serial, "concurrency"),
        (Defect::NoNullables, "stream_shape"),
        (Defect::NoNullables, "non_stream_shape"),
    ];
    let runs = cases.iter().map(|(defect, expected)| async move {
        let broken = Broken::start(*defect).await;
        let (code, report) = check(&broken.url(), &[]).await;
        (defect, expected, code, report)
    });
    for (defect, expected, code, report) in futures_util::future::join_all(runs).await {
        let failed = failed(&report);
        assert_eq!(code, Some(1), "{defect:?} passed: {report}");
        assert_eq!(report["passed"], false);
        assert!(
            failed
                .iter()
                .any(|f| f.starts_with(&format!("{expected}:"))),
            "{defect:?} should fail {expected}; failed: {failed:?}"
        );
    }
}
