//! The Sandy client against the real janus-sandbox service, and a fake Sandy that checks
//! retries, tolerant parsing and header propagation.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use janus_competitor_sdk::{
    AgentEvent, AgentRequest, CompetitorEvent, CreateOptions, EventWriter, SandboxSession,
    SandyClient, WriterClosed,
};

async fn sandbox_service(agent_command: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let root = std::env::temp_dir().join(format!(
        "janus-sdk-sandy-{}",
        janus_competitor_sdk::janus_core::random_hex(6)
    ));
    let mut config = janus_sandbox::Config::new(root, janus_sandbox::IsolationMode::None);
    config.agent_command = agent_command.to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    config.public_url = url.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(janus_sandbox::run(listener, config, async move {
        let _ = stopped.await;
    }));
    (url, stop)
}

#[derive(Default)]
struct Recorder(Vec<CompetitorEvent>);

#[janus_competitor_sdk::async_trait]
impl EventWriter for Recorder {
    async fn send(&mut self, event: CompetitorEvent) -> Result<(), WriterClosed> {
        self.0.push(event);
        Ok(())
    }
}

#[tokio::test]
async fn client_drives_the_sandbox_service() {
    let (url, _stop) =
        sandbox_service("echo \"agent got $JANUS_AGENT_PROMPT\"; sleep 1.5; echo finished").await;
    let client = SandyClient::new(&url, None).with_request_id("req-sandy-1");
    let mut out = Recorder::default();
    let session = SandboxSession::start(client.clone(), &CreateOptions::default(), &mut out)
        .await
        .unwrap();
    let id = session.info.id.clone();
    assert!(session.info.url.as_deref().unwrap().ends_with(&id));

    let output = client
        .exec(&id, "echo hello; exit 4", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(output.stdout, "hello\n");
    assert_eq!(output.exit_code, 4);

    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    client
        .write_file(&id, "/workspace/artifacts/data.bin", &binary)
        .await
        .unwrap();
    assert_eq!(
        client
            .read_file(&id, "/workspace/artifacts/data.bin")
            .await
            .unwrap(),
        binary
    );
    let big = vec![b'z'; 1_200_000];
    client
        .write_file(&id, "/workspace/artifacts/big.txt", &big)
        .await
        .unwrap();

    let artifacts = session.collect_artifacts().await.unwrap();
    assert_eq!(artifacts.len(), 2);
    let small = artifacts
        .iter()
        .find(|a| a.display_name.as_deref() == Some("data.bin"))
        .unwrap();
    assert!(small.url.starts_with("data:"));
    let bytes = janus_competitor_sdk::janus_core::data_url_decode(&small.url)
        .unwrap()
        .bytes;
    small.verify(&bytes).unwrap();
    let large = artifacts
        .iter()
        .find(|a| a.display_name.as_deref() == Some("big.txt"))
        .unwrap();
    assert_eq!(large.url, format!("{url}/sandboxes/{id}/artifacts/big.txt"));
    let fetched = janus_client::HttpClient::default()
        .get(&large.url, Duration::from_secs(10))
        .await
        .unwrap();
    large.verify(&fetched.body).unwrap();

    let mut events = client
        .agent_run(
            &id,
            &AgentRequest {
                agent: "a".into(),
                prompt: "do it".into(),
                max_duration_seconds: 30,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(event) = events.next().await.unwrap() {
        seen.push(event);
    }
    assert!(
        matches!(seen.first(), Some(AgentEvent::Status(_))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&AgentEvent::Output("agent got do it\n".into())),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|e| matches!(e, AgentEvent::Heartbeat(_))),
        "{seen:?}"
    );
    assert!(
        matches!(
            seen.last(),
            Some(AgentEvent::Complete {
                success: true,
                exit_code: 0,
                ..
            })
        ),
        "{seen:?}"
    );

    session.finish(&mut out).await.unwrap();
    // Terminating again is fine: 200/204/404 all mean gone.
    client.terminate(&id).await.unwrap();
    let kinds: Vec<String> = out
        .0
        .iter()
        .filter_map(|e| match e {
            CompetitorEvent::Janus(j) => Some(j.event.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["sandbox_start", "sandbox_end"]);
    assert!(out
        .0
        .iter()
        .any(|e| matches!(e, CompetitorEvent::Reasoning(r) if r.contains("Starting a sandbox"))));
}

#[tokio::test]
async fn create_retries_503_and_parses_tolerantly() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    {
        let (calls, seen) = (calls.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (calls, seen) = (calls.clone(), seen.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let (calls, seen) = (calls.clone(), seen.clone());
                            async move {
                                seen.lock().unwrap().push((
                                    request.uri().path().to_owned(),
                                    request
                                        .headers()
                                        .get("authorization")
                                        .map(|v| v.to_str().unwrap().to_owned()),
                                    request
                                        .headers()
                                        .get("x-request-id")
                                        .map(|v| v.to_str().unwrap().to_owned()),
                                ));
                                let n = calls.fetch_add(1, Ordering::SeqCst);
                                let (status, body) = match (request.uri().path(), n) {
                                    ("/api/sandboxes", 0) => (503, "{\"error\":\"warming\"}"),
                                    ("/api/sandboxes", _) => {
                                        (201, "{\"id\":\"legacy-7\",\"url\":\"http://x\"}")
                                    }
                                    (_, _) => {
                                        (200, "{\"stdout\":\"ok\",\"stderr\":\"\",\"exitCode\":0}")
                                    }
                                };
                                Ok::<_, Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    let client = SandyClient::new(&url, Some("secret".into())).with_request_id("req-42");
    let started = std::time::Instant::now();
    let info = client.create(&CreateOptions::default()).await.unwrap();
    assert_eq!(info.id, "legacy-7");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the retry waits 1 s"
    );
    let output = client
        .exec(&info.id, "true", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(output.exit_code, 0, "exitCode is accepted");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for (_, auth, request_id) in &seen {
        assert_eq!(auth.as_deref(), Some("Bearer secret"));
        assert_eq!(request_id.as_deref(), Some("req-42"));
    }
}

/// A competitor whose handler works in a sandbox: writes an artifact of `size` bytes, runs
/// `command`, then collects and finishes (`?` on Sandy errors: `From<SandyError>`).
struct SandboxWorker {
    sandy: SandyClient,
    size: usize,
    command: &'static str,
}

#[janus_competitor_sdk::async_trait]
impl janus_competitor_sdk::Competitor for SandboxWorker {
    async fn handle(
        &self,
        _request: janus_competitor_sdk::ChatCompletionRequest,
        context: janus_competitor_sdk::RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), janus_competitor_sdk::CompetitorError> {
        let client = self.sandy.with_request_id(&context.request_id);
        let session = SandboxSession::start(client, &CreateOptions::default(), out).await?;
        session
            .write_file("artifacts/big.bin", &vec![b'q'; self.size])
            .await?;
        assert_eq!(
            session.read_file("artifacts/big.bin").await?.len(),
            self.size
        );
        let output = session.exec(self.command, Duration::from_secs(60)).await?;
        out.content(&output.stdout).await?;
        for artifact in session.collect_artifacts().await? {
            out.artifact(artifact).await?;
        }
        session.finish(out).await?;
        Ok(())
    }
}

async fn serve_worker(worker: SandboxWorker) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(janus_competitor_sdk::serve(
        listener,
        Arc::new(worker),
        janus_competitor_sdk::ServeConfig::default(),
        std::future::pending::<()>(),
    ));
    url
}

fn stream_request() -> Bytes {
    Bytes::from(
        serde_json::json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "work"}]})
            .to_string(),
    )
}

/// Regression (issue 11): a large sandbox artifact got the sandbox's URL, and `finish` then
/// terminated the sandbox, so the client's download answered 409.
#[tokio::test]
async fn large_sandbox_artifacts_stay_downloadable_after_finish() {
    let (sandy, _stop) = sandbox_service("true").await;
    let url = serve_worker(SandboxWorker {
        sandy: SandyClient::new(&sandy, None),
        size: 1_200_000,
        command: "echo done",
    })
    .await;
    let client = janus_client::HttpClient::default();
    let mut stream = client
        .post_stream(
            &format!("{url}/v1/chat/completions"),
            stream_request(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let mut artifacts = Vec::new();
    let mut ended = false;
    while let Some(item) = stream.next(Duration::from_secs(20)).await.unwrap() {
        let janus_competitor_sdk::janus_core::sse::SseItem::Event(event) = item.item else {
            continue;
        };
        if event.data == "[DONE]" {
            continue;
        }
        let chunk: serde_json::Value = serde_json::from_str(&event.data).unwrap();
        assert!(chunk.get("error").is_none(), "{chunk}");
        let janus = &chunk["choices"][0]["delta"]["janus"];
        if let Ok(event) = serde_json::from_value::<janus_competitor_sdk::JanusEvent>(janus.clone())
        {
            ended |= event.event == "sandbox_end";
            artifacts.extend(event.artifact_items());
        }
    }
    assert!(ended, "no sandbox_end");
    assert_eq!(artifacts.len(), 1);
    let artifact = &artifacts[0];
    assert!(
        artifact.url.starts_with(&format!("{url}/artifacts/")),
        "{}",
        artifact.url
    );
    // The sandbox is gone; the copy in the competitor's store is not.
    let fetched = client
        .get(&artifact.url, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(fetched.status, 200);
    artifact.verify(&fetched.body).unwrap();
    let listed = client
        .get(&format!("{sandy}/api/sandboxes"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(listed.json().unwrap()["sandboxes"], serde_json::json!([]));
}

/// Through a gateway, a large sandbox artifact is linked under the gateway's artifact base
/// (the copy in the competitor's store is what the gateway streams).
#[tokio::test]
async fn large_sandbox_artifacts_get_the_gateway_base() {
    let (sandy, _stop) = sandbox_service("true").await;
    let url = serve_worker(SandboxWorker {
        sandy: SandyClient::new(&sandy, None),
        size: 1_200_000,
        command: "echo done",
    })
    .await;
    let base = "http://127.0.0.1:1/v1/artifacts/capability/";
    let request = http::Request::post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("x-janus-artifact-base", base)
        .body(Full::new(Bytes::from(
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "work"}]})
                .to_string(),
        )))
        .unwrap();
    let reply = crate::support::send(request).await;
    assert_eq!(reply.status, 200);
    let artifact: janus_competitor_sdk::ArtifactDescriptor =
        serde_json::from_value(reply.json()["choices"][0]["message"]["artifacts"][0].clone())
            .unwrap();
    assert_eq!(artifact.url, format!("{base}{}", artifact.id));
    let fetched = crate::support::get(&format!("{url}/artifacts/{}", artifact.id)).await;
    assert_eq!(fetched.status, 200);
    artifact.verify(&fetched.body).unwrap();
}

/// Regression (issue 11): a session dropped without `finish` (client gone mid-exec, the
/// handler cancelled) left its sandbox running until its TTL.
#[tokio::test]
async fn twenty_disconnects_mid_exec_leave_no_sandbox_running() {
    let (sandy, _stop) = sandbox_service("true").await;
    let url = serve_worker(SandboxWorker {
        sandy: SandyClient::new(&sandy, None),
        size: 10,
        command: "sleep 3",
    })
    .await;
    let client = janus_client::HttpClient::default();
    let list = || async {
        let listed = client
            .get(&format!("{sandy}/api/sandboxes"), Duration::from_secs(5))
            .await
            .unwrap();
        listed.json().unwrap()["sandboxes"]
            .as_array()
            .unwrap()
            .len()
    };
    let mut started = 0;
    for _ in 0..20 {
        let mut stream = client
            .post_stream(
                &format!("{url}/v1/chat/completions"),
                stream_request(),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        // Read until the sandbox exists, then hang up while the handler waits on its exec.
        while let Some(item) = stream.next(Duration::from_secs(10)).await.unwrap() {
            if let janus_competitor_sdk::janus_core::sse::SseItem::Event(event) = item.item {
                if event.data.contains("sandbox_start") {
                    started += 1;
                    break;
                }
            }
        }
        drop(stream);
    }
    assert_eq!(started, 20);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut running = list().await;
    while running > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        running = list().await;
    }
    assert_eq!(running, 0, "sandboxes still running after 20 disconnects");
}
