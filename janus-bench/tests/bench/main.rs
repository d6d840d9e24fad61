//! janus-bench over real sockets: SDK competitors behind a real gateway on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod runs;
mod stall;
mod suites;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use janus_bench::{RunConfig, Suite, Target, Targets, Weights};
use janus_competitor_sdk::{Competitor, ServeConfig};
use janus_gateway::{CompetitorConfig, Config};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A competitor (id `c`) behind a gateway; both stop when this drops.
#[derive(Debug)]
pub struct Stack {
    pub gateway: String,
    stop: watch::Sender<bool>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

pub async fn stack<C: Competitor>(competitor: C) -> Stack {
    let (stop, rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (listener, addr) = bind().await;
    let url = format!("http://{addr}");
    let mut serve = ServeConfig::default();
    serve.public_base_url = Some(url.clone());
    tokio::spawn(janus_competitor_sdk::serve(
        listener,
        Arc::new(competitor),
        serve,
        stopped(rx.clone()),
    ));
    let (gateway_listener, gateway_addr) = bind().await;
    let config = Config::with_competitors(vec![CompetitorConfig {
        id: "c".to_owned(),
        url,
        timeout: None,
        max_concurrent_requests: None,
        description: None,
    }]);
    tokio::spawn(janus_gateway::run(gateway_listener, config, stopped(rx)));
    Stack {
        gateway: format!("http://{gateway_addr}"),
        stop,
    }
}

/// A run config against `url` with no sandbox and no judge.
pub fn config(url: &str, suite: Suite) -> RunConfig {
    RunConfig {
        target: Target {
            base_url: url.to_owned(),
            model: "c".to_owned(),
            api_key: None,
            timeout: Duration::from_secs(20),
        },
        suite,
        seed: 42,
        subset_percent: 100,
        concurrency: 4,
        weights: Weights::default(),
        targets: Targets::default(),
        sandbox: None,
        sandbox_info: None,
        judge: None,
    }
}

/// A suite from JSONL text.
pub fn suite(text: &str) -> Suite {
    Suite::parse("inline", &[("inline", text)]).unwrap()
}

/// A run bounded so a hang fails the test instead of stalling it.
pub async fn run(config: RunConfig) -> janus_bench::Report {
    tokio::time::timeout(
        Duration::from_secs(60),
        janus_bench::run(config, &mut janus_bench::NoProgress, std::future::pending()),
    )
    .await
    .expect("the run finished within 60 s")
}
