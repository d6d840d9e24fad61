//! End-to-end tests of the `janus` command through real processes and sockets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    missing_docs
)]

mod baseline;
mod broken;
mod check;
mod exits;
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

/// Runs `janus up` and waits until it prints its URLs: (child, gateway URL, sandbox URL).
pub async fn janus_up(extra: &[&str]) -> (tokio::process::Child, String, String) {
    let (child, url, sandbox, _) = janus_up_printing(extra, &[]).await;
    (child, url, sandbox)
}

/// [`janus_up`] with extra environment, also returning what it printed.
pub async fn janus_up_printing(
    extra: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, String, String, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = janus()
        .arg("up")
        .args(["--listen", &listen, "--sandbox-listen", "127.0.0.1:0"])
        .args(extra)
        .env("ECHO_SLOW_STEP_MS", "300")
        .env("JANUS_LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
    let url = format!("http://{listen}");
    assert!(
        printed.contains(&format!("gateway      {url}")),
        "{printed}"
    );
    assert!(printed.contains("curl -N"), "{printed}");
    assert!(printed.contains("janus chat --gateway"), "{printed}");
    let sandbox = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("sandboxes    "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no sandbox line in:\n{printed}"))
        .to_owned();
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url, sandbox, printed)
}
