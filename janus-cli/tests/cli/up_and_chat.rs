//! `janus up`, then `janus chat`, `models` and `health` against it.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::{janus, janus_up};

#[tokio::test]
async fn up_then_chat_gets_the_echo_answer_with_a_verified_artifact() {
    let (mut up, url, sandbox) = janus_up(&["--competitor", "broken=http://127.0.0.1:1"]).await;

    // The sandbox service is up too.
    let sandy = janus_client::HttpClient::default();
    let created = sandy
        .post_json(
            &format!("{sandbox}/api/sandboxes"),
            bytes::Bytes::from_static(b"{}"),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let dir = std::env::temp_dir().join(format!("janus-cli-artifacts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let output = janus()
        .args(["chat", "--gateway", &url, "--save-artifacts"])
        .arg(&dir)
        .arg("hello janus, make me a file")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("hello janus, make me a file"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Artifacts:") && stdout.contains("echo.txt"),
        "{stdout}"
    );
    assert!(
        stderr.contains("[tool_start]"),
        "janus events are noted on stderr: {stderr}"
    );
    assert!(stderr.contains("sha256 verified"), "{stderr}");
    let saved = std::fs::read_to_string(dir.join("echo.txt")).unwrap();
    assert!(saved.contains("hello janus, make me a file"), "{saved}");

    // --hide-reasoning and the prompt from stdin.
    let mut child = janus()
        .args(["chat", "--gateway", &url, "--hide-reasoning", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .await
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success());
    // The prompt's trailing newline is trimmed: the echo repeats exactly "from stdin".
    assert_eq!(String::from_utf8_lossy(&output.stdout), "from stdin\n");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("Reading your last message"));

    // --json prints raw chunks, one per line.
    let output = janus()
        .args(["chat", "--gateway", &url, "--json", "hi"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(lines[0]["choices"][0]["delta"]["role"], "assistant");

    // --no-stream.
    let output = janus()
        .args(["chat", "--gateway", &url, "--no-stream", "plain please"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("plain please"));

    // An image goes out as a data: URL with the right MIME type.
    let image = dir.join("pixel.png");
    std::fs::write(&image, [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]).unwrap();
    let output = janus()
        .args(["chat", "--gateway", &url, "--image"])
        .arg(&image)
        .arg("what is this")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = janus()
        .args(["chat", "--gateway", &url, "--image", "notes.txt", "x"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown image type"));

    // An error event prints its message and exits non-zero.
    let output = janus()
        .args(["chat", "--gateway", &url, "--model", "broken", "x"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unreachable"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // models and health.
    let output = janus()
        .args(["models", "--gateway", &url])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["echo (default)", "broken"]
    );
    let output = janus()
        .args(["health", "--gateway", &url])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("echo: ready"), "{stdout}");
    assert!(stdout.contains("broken: NOT READY"), "{stdout}");
    assert_eq!(
        output.status.code(),
        Some(1),
        "health fails while a competitor is down"
    );

    // Ctrl-C stops everything cleanly.
    let pid = up.id().unwrap();
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(15), up.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "janus up exited with {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn chat_against_nothing_fails_with_one_clear_line() {
    let port = crate::free_port();
    let output = janus()
        .args([
            "chat",
            "--gateway",
            &format!("http://127.0.0.1:{port}"),
            "hi",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "could not connect: exit 3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("janus: "), "{stderr}");
}

#[tokio::test]
async fn up_serves_the_sandbox_through_the_platform_and_meters_it() {
    let (mut up, url, _sandbox) = janus_up(&[]).await;
    let output = janus()
        .args(["chat", "--gateway", &url, "--json"])
        .arg("count these five words: sandbox")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let chunks: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(
        content.contains("(A sandbox counted 5 words.)"),
        "{content}"
    );
    let platform = chunks
        .iter()
        .find_map(|c| c["usage"].get("platform"))
        .unwrap_or_else(|| panic!("no usage.platform in {stdout}"));
    assert_eq!(platform["by_service"]["sandbox"], 4, "{platform}");
    assert!(platform["sandbox_seconds"].as_f64().unwrap() > 0.0);
    let _ = up.kill().await;
}
