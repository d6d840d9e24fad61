//! `janus_client::trace` on hand-written log lines: the gateway's access line expanded into
//! its steps, hops linked by parent span, a missing competitor log flagged, a failed hop
//! marked, lines of other requests ignored.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use janus_client::trace::{build, log_files};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn write(name: &str, lines: &[String]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("janus-trace-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("all.log"), lines.join("\n")).unwrap();
    std::fs::write(dir.join("ignored.txt"), "not a log").unwrap();
    dir
}

fn gateway_line(ts: &str, outcome: &str, status: u16) -> String {
    format!(
        r#"{{"timestamp":"{ts}","level":"INFO","target":"janus_gateway::access","component":"gateway","request_id":"req-1","trace_id":"{TRACE}","span_id":"aaaaaaaaaaaaaaaa","competitor":"echo","status":{status},"upstream_ms":2.0,"ttft_ms":3.0,"duration_ms":10.0,"outcome":"{outcome}","message":"request finished"}}"#
    )
}

fn competitor_line(ts: &str, message: &str) -> String {
    format!(
        r#"{{"timestamp":"{ts}","level":"INFO","target":"sdk","component":"competitor","request_id":"req-1","trace_id":"{TRACE}","span_id":"bbbbbbbbbbbbbbbb","parent_span_id":"aaaaaaaaaaaaaaaa","message":"{message}"}}"#
    )
}

#[test]
fn hops_link_by_parent_span_and_the_access_line_becomes_steps() {
    let dir = write(
        "linked",
        &[
            "plain text from some tool".to_owned(),
            competitor_line("2026-12-02T10:00:00.002000Z", "request started"),
            competitor_line("2026-12-02T10:00:00.009000Z", "request finished"),
            gateway_line("2026-12-02T10:00:00.010000Z", "ok", 200),
            r#"{"timestamp":"2026-12-02T10:00:01Z","level":"INFO","request_id":"other","trace_id":"ffffffffffffffffffffffffffffffff","message":"x"}"#.to_owned(),
        ],
    );
    let files = log_files(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(files.len(), 1, "only *.log and *.jsonl are read");
    let trace = build("req-1", &files).unwrap();
    assert_eq!(trace.lines_read, 4);
    assert_eq!(trace.lines_matched, 3);
    assert_eq!(trace.trace_ids, [TRACE]);
    assert!(trace.missing.is_empty(), "{:?}", trace.missing);
    assert_eq!(trace.hops.len(), 1);
    let gateway = &trace.hops[0];
    let steps: Vec<&str> = gateway.events.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(
        steps,
        ["accepted", "competitor answered", "first byte", "end"]
    );
    // Accepted 10 ms before its line: the trace's origin.
    assert!(gateway.events[0].offset_ms.abs() < 0.001);
    assert!((gateway.events[1].offset_ms - 2.0).abs() < 0.01);
    assert!((gateway.duration_ms - 10.0).abs() < 0.01);
    assert_eq!(gateway.children.len(), 1);
    assert_eq!(gateway.children[0].component, "competitor");
    assert!(!gateway.failed);
    let text = trace.to_text();
    assert!(text.contains("• gateway [echo] request req-1"), "{text}");
    // Found by trace id too.
    assert_eq!(build(TRACE, &files).unwrap().lines_matched, 3);
    assert!(build("nobody", &files).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_competitor_log_and_a_failed_hop_are_flagged() {
    let dir = write(
        "missing",
        &[gateway_line(
            "2026-12-02T10:00:00.010000Z",
            "upstream_reset",
            200,
        )],
    );
    let files = log_files(std::slice::from_ref(&dir)).unwrap();
    let trace = build("req-1", &files).unwrap();
    assert_eq!(trace.missing.len(), 1, "{:?}", trace.missing);
    assert!(trace.missing[0].contains("competitor 'echo'"));
    assert!(trace.hops[0].failed);
    let text = trace.to_text();
    assert!(text.contains("← failed here"), "{text}");
    assert!(text.contains("! missing:"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
