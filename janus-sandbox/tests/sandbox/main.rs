//! The sandbox service over real sockets. Isolation tests need root (CI runs as root); they
//! fail, never skip, without it unless JANUS_SANDBOX_TESTS_NONROOT=skip is set by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod agent;
mod api;
mod hostile;
mod isolation;
mod network;
mod service;

use std::time::Duration;

use bytes::Bytes;
use janus_client::{FullResponse, HttpClient};
use janus_sandbox::{Config, IsolationMode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

#[derive(Debug)]
pub struct Service {
    pub url: String,
    pub root: std::path::PathBuf,
    pub client: HttpClient,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Service {
    /// Stops the service (which terminates every sandbox) and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }

    pub async fn post(&self, path: &str, body: Value) -> FullResponse {
        self.client
            .post_json(
                &format!("{}{path}", self.url),
                Bytes::from(body.to_string()),
                Duration::from_secs(30),
            )
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> FullResponse {
        self.client
            .get(&format!("{}{path}", self.url), Duration::from_secs(30))
            .await
            .unwrap()
    }

    /// Creates a sandbox and returns its id.
    pub async fn create(&self, body: Value) -> String {
        let response = self.post("/api/sandboxes", body).await;
        assert_eq!(
            response.status,
            201,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        response.json().unwrap()["sandboxId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn exec(&self, id: &str, command: &str) -> Value {
        let response = self
            .post(
                &format!("/api/sandboxes/{id}/exec"),
                json!({"command": command, "timeoutMs": 20000}),
            )
            .await;
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        response.json().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Fails unless full isolation is available (root, util-linux), the way CI runs; skips only
/// when a developer sets JANUS_SANDBOX_TESTS_NONROOT=skip by hand.
pub fn require_root() -> bool {
    let Err(why) = janus_sandbox::full_isolation_available() else {
        return true;
    };
    if std::env::var("JANUS_SANDBOX_TESTS_NONROOT").as_deref() == Ok("skip") {
        eprintln!("skipping an isolation test ({why}): JANUS_SANDBOX_TESTS_NONROOT=skip");
        return false;
    }
    panic!(
        "isolation tests need full isolation, which is unavailable: {why}. CI runs as root; \
         set JANUS_SANDBOX_TESTS_NONROOT=skip to skip them on a developer machine"
    );
}

pub async fn start(isolation: IsolationMode, tweak: impl FnOnce(&mut Config)) -> Service {
    let root =
        std::env::temp_dir().join(format!("janus-sandbox-test-{}", janus_core::random_hex(6)));
    let mut config = Config::new(root.clone(), isolation);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    config.public_url = url.clone();
    // The holder and relay helpers are modes of the service binary, not of this test.
    config.helper_binary = env!("CARGO_BIN_EXE_janus-sandbox").into();
    tweak(&mut config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(janus_sandbox::run(listener, config, async move {
        let _ = stopped.await;
    }));
    Service {
        url,
        root,
        client: HttpClient::default(),
        stop: Some(stop),
        task: Some(task),
    }
}
