//! The harness's smoke mode inside the test command, so the harness never rots: every
//! scenario for a few seconds against the in-package gateway stand-in and Debian's nginx,
//! then a check that every figure was produced — sane positive numbers, zero errors. Goals
//! are not asserted: they are what the full run reports.
//!
//! nginx is required (./scripts/setup-test-deps installs it): without it the smoke run fails
//! with the command that installs it, and so does this test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn num(report: &Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("report has no number at {pointer}"))
}

fn positive(report: &Value, pointer: &str) {
    let value = num(report, pointer);
    assert!(
        value.is_finite() && value > 0.0,
        "{pointer} should be a positive number, got {value}"
    );
}

fn zero(report: &Value, pointer: &str) {
    assert_eq!(num(report, pointer), 0.0, "{pointer} should be zero");
}

fn latency_summary(report: &Value, pointer: &str) {
    for field in ["count", "p50_us", "p99_us", "max_us"] {
        positive(report, &format!("{pointer}/{field}"));
    }
    assert!(num(report, &format!("{pointer}/p99_us")) >= num(report, &format!("{pointer}/p50_us")));
}

#[test]
fn smoke_run_produces_every_figure() {
    let out = std::env::temp_dir().join(format!("janus-perf-smoke-test-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_janus-perf"))
        .arg("smoke")
        .arg("--out")
        .arg(&out)
        .output()
        .expect("janus-perf runs");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "smoke run failed:\n{log}");
    let report = read_report(&out);

    zero(&report, "/errors_total");

    let paths = ["gateway", "direct", "hop", "nginx"];
    for path in paths {
        latency_summary(&report, &format!("/closed_loop_c1/{path}"));
    }
    for pointer in [
        "/closed_loop_c1/nginx_added_p50_us",
        "/closed_loop_c1/nginx_added_p99_us",
        "/closed_loop_c1/gateway_own_p50_us",
        "/closed_loop_c1/nginx_own_p50_us",
    ] {
        assert!(num(&report, pointer).is_finite(), "{pointer}");
    }
    positive(&report, "/capacity/direct_rps");
    positive(&report, "/capacity/gateway_rps");
    positive(&report, "/capacity/nginx_rps");

    // nginx ran as configured by the harness, and the report carries its exact config.
    let version = report["nginx"]["version"].as_str().expect("nginx version");
    assert!(version.starts_with("nginx/"), "{version}");
    let config = report["nginx"]["config"].as_str().expect("nginx config");
    for line in [
        "worker_processes 1;",
        "daemon off;",
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        "escape=json",
        "buffer=64k",
    ] {
        assert!(
            config.contains(line),
            "nginx config lacks {line}:\n{config}"
        );
    }
    assert!(config.contains("listen 127.0.0.1:"), "{config}");
    // Both sides logged: one access line per request, gateway and nginx alike.
    positive(&report, "/logging/gateway_access_lines");
    positive(&report, "/logging/nginx_access_lines");

    let rows = report["open_loop"].as_array().expect("open_loop rows");
    assert_eq!(rows.len(), 3, "one row per offered fraction");
    for i in 0..rows.len() {
        let row = format!("/open_loop/{i}");
        positive(&report, &format!("{row}/rate_rps"));
        for path in paths {
            latency_summary(&report, &format!("{row}/latency/{path}"));
        }
        positive(&report, &format!("{row}/cpu_gateway/relay_s_per_1k"));
        positive(&report, &format!("{row}/cpu_nginx/relay_s_per_1k"));
        zero(&report, &format!("{row}/latency/errors"));
    }

    // The rate search ran on both paths and measured every step. Whether a step meets the
    // p99 limit depends on how loaded the machine is (the test command runs tests in
    // parallel), so the found maxima are only required to be numbers, never to be positive.
    let steps = report["throughput"]["steps"]
        .as_array()
        .expect("throughput steps");
    for path in ["direct", "gateway", "nginx"] {
        let mine: Vec<&Value> = steps.iter().filter(|s| s["path"] == path).collect();
        assert!(!mine.is_empty(), "the rate search never ran on {path}");
        for step in mine {
            assert!(step["rate_rps"].as_f64().is_some_and(|r| r > 0.0), "{step}");
            assert!(
                step["achieved_rps"].as_f64().is_some_and(|r| r > 0.0),
                "{step}"
            );
            assert!(
                step["latency"]["count"].as_f64().is_some_and(|c| c > 0.0),
                "{step}"
            );
            assert!(step["pass"].is_boolean(), "{step}");
        }
    }
    for pointer in [
        "/throughput/direct_max_rps",
        "/throughput/gateway_max_rps",
        "/throughput/nginx_max_rps",
        "/throughput/cpu_at_max/ratio",
    ] {
        let value = num(&report, pointer);
        assert!(value.is_finite() && value >= 0.0, "{pointer} = {value}");
    }

    let rounds = num(&report, "/plan/rounds");
    let streams = num(&report, "/plan/streams");
    let chunks = num(&report, "/plan/stream/chunks");
    for path in paths {
        let side = format!("/streaming/{path}");
        assert_eq!(
            num(&report, &format!("{side}/streams_ok")),
            rounds * streams,
            "{side}"
        );
        assert_eq!(
            num(&report, &format!("{side}/chunks")),
            rounds * streams * chunks,
            "{side}"
        );
        zero(&report, &format!("{side}/errors"));
        for figure in ["ttft", "gap", "relay"] {
            latency_summary(&report, &format!("{side}/{figure}"));
        }
    }

    let idle = report["idle"].as_array().expect("idle rows");
    assert_eq!(idle.len(), 3, "one row per idle-stream count");
    for i in 0..idle.len() {
        let streams = num(&report, &format!("/idle/{i}/streams"));
        for path in ["gateway", "nginx"] {
            let side = format!("/idle/{i}/{path}");
            assert_eq!(num(&report, &format!("{side}/opened")), streams, "{side}");
            for field in [
                "rss_before_kib",
                "rss_held_kib",
                "rss_after_kib",
                "rss_return_kib",
                "rss_return_ratio",
                "max_gap_ms",
            ] {
                positive(&report, &format!("{side}/{field}"));
            }
            assert!(num(&report, &format!("{side}/rss_per_stream_kib")).is_finite());
            zero(&report, &format!("{side}/errors"));
        }
        // Only the gateway sends keep-alives; nginx relays the mock's silence.
        let gateway = format!("/idle/{i}/gateway");
        assert!(
            num(&report, &format!("{gateway}/keepalives_per_stream")) >= 1.0,
            "{gateway}: keep-alives flow"
        );
        zero(&report, &format!("{gateway}/gaps_over_2s"));
    }

    // Throughput 1, c=1 3, streaming 2, per idle count 2, streams held 1, RSS return per
    // idle count 1.
    let goals = report["goals"].as_array().expect("goals");
    assert_eq!(goals.len(), 16, "every goal of the issue is judged");
    for goal in goals {
        assert!(goal["value"].as_f64().is_some_and(f64::is_finite), "{goal}");
        assert!(
            goal["target_value"].as_f64().is_some_and(f64::is_finite),
            "{goal}"
        );
    }
    let markdown = std::fs::read_to_string(out.join("REPORT.md")).expect("REPORT.md");
    for section in [
        "## Goals",
        "## 1.",
        "## 2.",
        "## 3.",
        "## 4.",
        "## 5.",
        "## nginx configuration",
        "```nginx",
    ] {
        assert!(markdown.contains(section), "REPORT.md lacks {section}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

fn read_report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("report.json is JSON")
}
