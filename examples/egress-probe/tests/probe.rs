//! The probe on its own, outside any sandbox: it answers reach and fork probes with
//! what the host gives it, and refuses a prompt that is not a probe. (Inside a sandbox,
//! `janus-cli/tests/cli/egress.rs` is its real use.) Cargo builds the binary for this
//! test, which is also what puts it beside `janus` for that one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn probe(url: &str, prompt: &str) -> (u16, Value) {
    let body = json!({"model": "probe", "messages": [{"role": "user", "content": prompt}]});
    let reply = janus_client::HttpClient::default()
        .post_json(
            &format!("{url}/v1/chat/completions"),
            Bytes::from(body.to_string()),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    (
        reply.status.as_u16(),
        serde_json::from_slice(&reply.body).unwrap(),
    )
}

#[tokio::test]
async fn the_probe_reports_what_it_can_reach_and_refuses_other_prompts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_egress-probe"))
            .env("JANUS_LISTEN", format!("127.0.0.1:{port}"))
            .env_remove("JANUS_PLATFORM_URL")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = janus_client::HttpClient::default();
    let mut up = false;
    for _ in 0..100 {
        if client
            .get(&format!("{url}/health"), Duration::from_secs(2))
            .await
            .is_ok_and(|r| r.status == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the probe never became healthy");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().to_string();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let command = json!({"probe": "reach", "connect": [open, closed]}).to_string();
    let (status, answer) = probe(&url, &command).await;
    assert_eq!(status, 200, "{answer}");
    let report: Value =
        serde_json::from_str(answer["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(report["connect"][&open], "connected", "{report}");
    assert!(
        report["connect"][&closed]
            .as_str()
            .unwrap()
            .starts_with("failed"),
        "{report}"
    );
    assert!(
        report["interfaces"]
            .as_array()
            .unwrap()
            .contains(&json!("lo")),
        "{report}"
    );
    assert_eq!(report["platform"]["ok"], false, "{report}");
    assert_eq!(
        report["platform"]["error"], "JANUS_PLATFORM_URL is not set",
        "{report}"
    );

    let (status, answer) = probe(&url, r#"{"probe": "fork", "count": 3}"#).await;
    assert_eq!(status, 200, "{answer}");
    let forked: Value =
        serde_json::from_str(answer["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(forked["spawned"], 3, "{forked}");

    let (status, answer) = probe(&url, "hello").await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON probe command"),
        "{answer}"
    );
}
