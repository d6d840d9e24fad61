//! The echo competitor, served by the SDK, passes the conformance kit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use echo_competitor::Echo;
use janus_client::{run_checks, CheckOptions};
use janus_competitor_sdk::{serve, ServeConfig};

#[tokio::test]
async fn echo_passes_the_conformance_kit() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // A short slow step keeps the run quick; keep-alives still cover it.
    let echo = Arc::new(Echo::new(Duration::from_millis(300)));
    let server = tokio::spawn(serve(listener, echo, ServeConfig::default(), async {
        let _ = stopped.await;
    }));

    let mut options = CheckOptions::new(url);
    options.timeout = Duration::from_secs(10);
    let report = run_checks(options).await;
    let table = report.to_table();
    assert!(report.passed, "\n{table}");
    // The kit asks for a file; the echo rule must have produced an artifact to verify.
    let artifacts = report
        .checks
        .iter()
        .find(|c| c.name == "artifacts")
        .unwrap();
    assert!(!artifacts.detail.contains("no artifact"), "\n{table}");
    eprintln!("{table}");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
