//! `agent/run`: runs the configured agent command in a sandbox and streams what it does as
//! SSE — `status`, `output` lines, `heartbeat{elapsed}` at least every second of silence,
//! `error`, and always a final `complete{success, exitCode, duration}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::sandbox::{kill_and_reap, Manager, Sandbox, Spawned};

/// Silence after which a heartbeat goes out (the contract's gap limit is 2 s).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// What the client asked for.
#[derive(Debug, Clone)]
pub struct AgentRun {
    /// Agent name (passed on as `JANUS_AGENT_NAME`).
    pub agent: String,
    /// Model (`JANUS_AGENT_MODEL`).
    pub model: String,
    /// The prompt (`JANUS_AGENT_PROMPT`, and `/workspace/.janus/prompt.txt`).
    pub prompt: String,
    /// Optional system prompt (`JANUS_AGENT_SYSTEM_PROMPT`).
    pub system_prompt: Option<String>,
    /// Optional API base URL (`JANUS_AGENT_API_BASE_URL`).
    pub api_base_url: Option<String>,
    /// Longest run.
    pub max_duration: Duration,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

fn event(value: Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// The SSE body of an agent run; the run stops (its process tree killed) when the client
/// goes away, on `agent/cancel`, or at `max_duration`.
pub async fn run(
    manager: Arc<Manager>,
    sandbox: Arc<Sandbox>,
    request: AgentRun,
) -> Result<UnsyncBoxBody<Bytes, Infallible>, crate::SandboxError> {
    let mut env = request.env.clone();
    env.push(("JANUS_AGENT_PROMPT".into(), request.prompt.clone()));
    env.push(("JANUS_AGENT_MODEL".into(), request.model.clone()));
    env.push(("JANUS_AGENT_NAME".into(), request.agent.clone()));
    if let Some(system) = &request.system_prompt {
        env.push(("JANUS_AGENT_SYSTEM_PROMPT".into(), system.clone()));
    }
    if let Some(base) = &request.api_base_url {
        env.push(("JANUS_AGENT_API_BASE_URL".into(), base.clone()));
    }
    manager
        .write_file(&sandbox, ".janus/prompt.txt", request.prompt.as_bytes())
        .await?;
    let command = manager.config().agent_command.clone();
    let spawned = manager.spawn(&sandbox, &command, None, &env).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(drive(sandbox, spawned, request, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    Ok(StreamBody::new(stream).boxed_unsync())
}

async fn drive(
    sandbox: Arc<Sandbox>,
    spawned: Spawned,
    request: AgentRun,
    tx: mpsc::Sender<Bytes>,
) {
    let Spawned {
        mut child,
        cgroups,
        pgid,
    } = spawned;
    let started = Instant::now();
    let cancel = sandbox.agent_cancel.clone();
    let (lines_tx, mut lines) = mpsc::channel::<String>(256);
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let lines_tx = lines_tx.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if lines_tx.send(line).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(lines_tx);
    let mut last_sent = Instant::now();
    let send = |tx: &mpsc::Sender<Bytes>, value: Value| {
        let tx = tx.clone();
        async move { tx.send(event(value)).await.is_ok() }
    };
    if !send(
        &tx,
        json!({"type": "status", "message": format!("agent '{}' started", request.agent)}),
    )
    .await
    {
        kill_and_reap(&mut child, &cgroups, pgid).await;
        return;
    }
    let deadline = tokio::time::sleep(request.max_duration);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut lines_open = true;
    let outcome: Result<i32, String> = loop {
        tokio::select! {
            line = lines.recv(), if lines_open => match line {
                Some(line) => {
                    if !send(&tx, json!({"type": "output", "text": format!("{line}\n")})).await {
                        kill_and_reap(&mut child, &cgroups, pgid).await;
                        return;
                    }
                    last_sent = Instant::now();
                }
                None => lines_open = false,
            },
            status = child.wait() => {
                // Let the last lines arrive, briefly: a background process may hold the pipes.
                let grace = tokio::time::sleep(Duration::from_millis(200));
                tokio::pin!(grace);
                while lines_open {
                    tokio::select! {
                        line = lines.recv() => match line {
                            Some(line) => { let _ = send(&tx, json!({"type": "output", "text": format!("{line}\n")})).await; }
                            None => lines_open = false,
                        },
                        () = &mut grace => break,
                    }
                }
                use std::os::unix::process::ExitStatusExt;
                break Ok(status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))).unwrap_or(-1));
            }
            () = &mut deadline => {
                kill_and_reap(&mut child, &cgroups, pgid).await;
                break Err(format!("the agent ran past its {} s limit and was stopped", request.max_duration.as_secs()));
            }
            () = cancel.notified() => {
                kill_and_reap(&mut child, &cgroups, pgid).await;
                break Err("the agent run was cancelled".to_owned());
            }
            _ = ticker.tick() => {
                if last_sent.elapsed() >= HEARTBEAT {
                    if !send(&tx, json!({"type": "heartbeat", "elapsed": started.elapsed().as_secs_f64()})).await {
                        kill_and_reap(&mut child, &cgroups, pgid).await;
                        return;
                    }
                    last_sent = Instant::now();
                }
            }
        }
    };
    let duration = started.elapsed().as_secs_f64();
    crate::isolation::release_exec_cgroups(&cgroups).await;
    match outcome {
        Ok(code) => {
            let _ = send(&tx, json!({"type": "complete", "success": code == 0, "exitCode": code, "duration": duration})).await;
        }
        Err(message) => {
            let _ = send(&tx, json!({"type": "error", "error": message})).await;
            let _ = send(
                &tx,
                json!({"type": "complete", "success": false, "exitCode": -1, "duration": duration}),
            )
            .await;
        }
    }
}
