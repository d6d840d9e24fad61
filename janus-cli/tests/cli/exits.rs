//! Exit codes, `--json` failures, `janus up`'s configuration errors and clean exit, the
//! user's `echo` entry, and `janus check --launch` leaving nothing behind (issue 11).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::broken::{Broken, Defect};
use crate::{free_port, interrupt, janus, printed_sandbox, spawn_up};

#[tokio::test]
async fn up_configuration_errors_exit_2_naming_the_flag_before_anything_starts() {
    let output = janus()
        .args(["up", "--no-sandbox", "--competitor", "no-equals-sign"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--competitor"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().map(|a| (taken, a)).unwrap();
    let output = janus()
        .args(["up", "--no-sandbox", "--listen", &taken.1.to_string()])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");

    // The sandbox port is taken: nothing starts, not even the gateway on its free port.
    let gateway_port = free_port();
    let output = janus()
        .args(["up", "--listen", &format!("127.0.0.1:{gateway_port}")])
        .args(["--sandbox-listen", &taken.1.to_string()])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--sandbox-listen"), "{stderr}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", gateway_port)).is_err(),
        "the gateway is still listening after a failed start"
    );
    drop(taken);

    // Usage errors are 2 as well.
    let output = janus()
        .args(["chat", "--no-such-flag"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test]
async fn with_json_a_failure_prints_one_json_error_object_on_stdout() {
    let url = format!("http://127.0.0.1:{}", free_port());
    for args in [
        vec!["chat", "--json", "--gateway", url.as_str(), "hi"],
        vec!["models", "--json", "--gateway", url.as_str()],
    ] {
        let output = janus().args(&args).output().await.unwrap();
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stdout}");
        let error: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{error}"
        );
    }
}

async fn up_with_piped_stderr(extra: &[&str]) -> (tokio::process::Child, String, String) {
    spawn_up(extra, Stdio::piped()).await
}

#[tokio::test]
async fn the_users_echo_entry_wins_and_models_marks_the_default() {
    let mine = Broken::start(Defect::NoNullables).await;
    let (mut up, url, _) = up_with_piped_stderr(&[
        "--no-sandbox",
        "--competitor",
        &format!("echo={}", mine.url()),
    ])
    .await;
    let output = janus()
        .args([
            "chat",
            "--gateway",
            &url,
            "--no-stream",
            "a prompt the echo would repeat",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("hi") && !stdout.contains("would repeat"),
        "the embedded echo answered instead of the user's: {stdout}"
    );
    let output = janus()
        .args(["models", "--gateway", &url])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    let echo_line = stdout.lines().find(|l| l.starts_with("echo")).unwrap();
    assert!(echo_line.contains("(default)"), "{stdout}");
    assert_eq!(stdout.matches("(default)").count(), 1, "{stdout}");
    assert!(interrupt(&mut up).await.success());
}

#[tokio::test]
async fn up_logs_json_when_stderr_is_no_terminal_and_removes_its_sandbox_root() {
    let (mut up, url, printed) = up_with_piped_stderr(&[]).await;
    let sandbox = printed_sandbox(&printed);
    // A sandbox puts something in the root, so its removal is worth checking.
    let created = janus_client::HttpClient::default()
        .post_json(
            &format!("{sandbox}/api/sandboxes"),
            bytes::Bytes::from_static(b"{}"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let root = std::env::temp_dir().join(format!("janus-up-sandboxes-{}", up.id().unwrap()));
    assert!(root.is_dir(), "no sandbox root at {}", root.display());
    let output = janus()
        .args(["chat", "--gateway", &url, "hello"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let mut stderr = up.stderr.take().unwrap();
    assert!(interrupt(&mut up).await.success());
    let mut logs = String::new();
    stderr.read_to_string(&mut logs).await.unwrap();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "janus up logged nothing");
    for line in &lines {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
    assert!(
        !root.exists(),
        "the sandbox root {} outlived janus up",
        root.display()
    );
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only its parent's wait is missing.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn check_launch_leaves_no_process_behind() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("janus-cli-launch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("sleeper.pid");
    // The launched command starts a grandchild of its own, as a real competitor's start
    // script might; the whole process group must go when the check ends.
    let script = dir.join("start.sh");
    std::fs::write(
        &script,
        format!(
            "sleep 600 &\necho $! > '{}'\nexec '{}' up --no-sandbox --listen 127.0.0.1:{} --echo-listen 127.0.0.1:{port}\n",
            pid_file.display(),
            env!("CARGO_BIN_EXE_janus"),
            free_port()
        ),
    )
    .unwrap();
    let output = janus()
        .args(["check", &url, "--json", "--launch"])
        .arg(format!("sh {}", script.display()))
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let sleeper: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if !alive(sleeper) && std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the launched process group outlived janus check");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn check_against_nothing_stops_after_health_with_one_message() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let output = janus().args(["check", &url]).output().await.unwrap();
    assert_eq!(output.status.code(), Some(3));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        all.matches("Connection refused").count(),
        1,
        "the connection error must be told once:\n{all}"
    );
    assert!(all.contains("no further checks were run"), "{all}");
    let output = janus()
        .args(["check", &url, "--json"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "only the health check ran: {report}");
}
