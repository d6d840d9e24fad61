//! `janus check` (the conformance kit) passes the baseline.

use std::time::Duration;

use janus_client::{run_checks, CheckOptions};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn janus_check_passes_the_baseline() {
    let llm = FakeLlm::start(|request| {
        if !is_agent(request) {
            return FakeReply::Sse {
                events: content_stream(&["Hello", " from", " the", " baseline."]),
                gated: false,
            };
        }
        match steps_done(request) {
            0 => tool_call(
                0,
                "write_file",
                json!({"path": "artifacts/conformance.txt", "content": "hello from janus\n"}),
            ),
            _ => tool_call(1, "finish", json!({"answer": "Saved conformance.txt."})),
        }
    })
    .await;
    let stack = Stack::start(llm, StackOptions::default()).await;
    let mut options = CheckOptions::new(&stack.baseline);
    options.timeout = Duration::from_secs(60);
    let report = run_checks(options).await;
    println!("{}", report.to_table());
    assert!(
        report.checks.iter().all(|c| c.passed),
        "{}",
        report.to_table()
    );
    assert!(report.checks.len() >= 8, "{}", report.to_table());
}
