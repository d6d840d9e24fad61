//! End-to-end tests of the `janus` command through real processes and sockets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    missing_docs
)]

mod baseline;
mod bench;
mod broken;
mod check;
mod egress;
mod exits;
mod runner;
mod trace;
mod up_and_chat;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// The `janus` binary with no JANUS_* settings inherited.
pub fn janus() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_janus"));
    for (key, _) in std::env::vars() {
        if key.starts_with("JANUS_") || key.starts_with("ECHO_") {
            command.env_remove(key);
        }
    }
    command.kill_on_drop(true);
    command
}

/// A free port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `janus up --listen <free port> ARGS` with `ECHO_SLOW_STEP_MS=300` and stdout read
/// up to its "Ctrl-C" line (then drained so the child never blocks on a full pipe):
/// (child, gateway URL, what it printed). `stderr` is the caller's choice.
pub async fn spawn_up(args: &[&str], stderr: Stdio) -> (tokio::process::Child, String, String) {
    spawn_up_env(args, &[], stderr).await
}

/// [`spawn_up`] with extra environment.
pub async fn spawn_up_env(
    args: &[&str],
    env: &[(&str, &str)],
    stderr: Stdio,
) -> (tokio::process::Child, String, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = janus()
        .args(["up", "--listen", &listen])
        // Parallel tests must not fight over the platform's default port.
        .args(["--platform-listen", "127.0.0.1:0"])
        .args(args)
        .env("ECHO_SLOW_STEP_MS", "300")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.starts_with("Ctrl-C") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "janus up did not come up; printed:\n{printed}"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{listen}"), printed)
}

/// The sandbox service URL `janus up` printed.
pub fn printed_sandbox(printed: &str) -> String {
    printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("sandboxes    "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no sandbox line in:\n{printed}"))
        .to_owned()
}

/// SIGINT to our own child, by pid, then its exit status within 15 s.
pub async fn interrupt(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("janus up exits on Ctrl-C")
        .unwrap()
}

/// `janus up` with the sandbox service on a free port and JSON logs, checked for the lines
/// it must print: (child, gateway URL, sandbox URL).
pub async fn janus_up(extra: &[&str]) -> (tokio::process::Child, String, String) {
    let args = [&["--sandbox-listen", "127.0.0.1:0"], extra].concat();
    let (child, url, printed) = spawn_up(&args, Stdio::null()).await;
    assert!(
        printed.contains(&format!("gateway      {url}")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("chat UI      {url}/")),
        "{printed}"
    );
    assert!(printed.contains("curl -N"), "{printed}");
    assert!(printed.contains("janus chat --gateway"), "{printed}");
    let sandbox = printed_sandbox(&printed);
    (child, url, sandbox)
}

/// [`janus_up`] with extra environment, also returning what it printed:
/// (child, gateway URL, sandbox URL, printed).
pub async fn janus_up_printing(
    extra: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, String, String, String) {
    let args = [&["--sandbox-listen", "127.0.0.1:0"], extra].concat();
    let (child, url, printed) = spawn_up_env(&args, env, Stdio::null()).await;
    let sandbox = printed_sandbox(&printed);
    (child, url, sandbox, printed)
}

/// `janus up` running the competitors of a config file (launched ones included), with its
/// log under `logs` and fast health probes: (child, gateway URL, what it printed).
pub async fn janus_up_with_config(
    config: &std::path::Path,
    logs: &std::path::Path,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String, String) {
    spawn_up_env(
        &[
            "--sandbox-listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
            "--log-dir",
            logs.to_str().unwrap(),
            "--health-interval",
            "200ms",
        ],
        env,
        Stdio::null(),
    )
    .await
}

/// A test double on 127.0.0.1:0 for an HTTP upstream outside the project (an inference
/// API): every request's headers and body go to `answer`, which returns the content type
/// and body of a 200. Returns `http://ADDR`.
pub async fn http_double<F>(answer: F) -> String
where
    F: Fn(&http::HeaderMap, &[u8]) -> (&'static str, String) + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let answer = answer.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = http_body_util::BodyExt::collect(body)
                                .await
                                .unwrap()
                                .to_bytes();
                            let (content_type, reply) = answer(&parts.headers, &body);
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("content-type", content_type)
                                    .body(http_body_util::Full::new(bytes::Bytes::from(reply)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

/// The Authorization header of a request, or "".
pub fn authorization(headers: &http::HeaderMap) -> String {
    headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}
