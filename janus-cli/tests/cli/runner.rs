//! The competitor runner end to end: `janus up` with a `[[competitor]]` that has a
//! `command` and a `rootfs` launches it in a sandbox (full isolation, as CI runs), routes
//! chats to it through the sandbox, logs its output tagged with its id, restarts it after a
//! crash (counted in metrics) and ends it with the stack.

use std::path::Path;
use std::time::Duration;

use crate::{interrupt, janus, janus_up_with_config, printed_sandbox};

async fn get_json(url: &str) -> serde_json::Value {
    let reply = janus_client::HttpClient::default()
        .get(url, Duration::from_secs(10))
        .await
        .unwrap();
    serde_json::from_slice(&reply.body).unwrap()
}

async fn metrics(gateway: &str) -> String {
    let reply = janus_client::HttpClient::default()
        .get(&format!("{gateway}/metrics"), Duration::from_secs(10))
        .await
        .unwrap();
    String::from_utf8_lossy(&reply.body).into_owned()
}

#[tokio::test]
async fn a_launched_competitor_answers_is_logged_restarts_after_a_crash_and_stops_with_the_stack() {
    if let Err(why) = janus_sandbox::full_isolation_available() {
        panic!("the runner test needs full isolation (root, util-linux), as CI has: {why}");
    }
    let dir = std::env::temp_dir().join(format!("janus-cli-runner-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let image = dir.join("images").join("echo");
    let janus_binary = Path::new(env!("CARGO_BIN_EXE_janus"));
    // At a path of its own: the build may sit under /tmp, which a sandbox mounts over.
    let janus_inside = Path::new("/app/janus");
    janus_sandbox::image::image_with_binaries_at(&image, &[(janus_binary, janus_inside)]).unwrap();
    let config = dir.join("janus.toml");
    std::fs::write(
        &config,
        format!(
            "[[competitor]]\nid = \"mine\"\ncommand = [\"{}\", \"echo\"]\nrootfs = \"{}\"\nresources = {{ memory_mb = 256, pids = 64 }}\n",
            janus_inside.display(),
            image.display()
        ),
    )
    .unwrap();
    let logs = dir.join("logs");
    let (mut up, gateway, printed) = janus_up_with_config(&config, &logs, &[]).await;
    let sandbox = printed_sandbox(&printed);

    let chat = |prompt: &'static str| {
        let gateway = gateway.clone();
        async move {
            janus()
                .args([
                    "chat",
                    "--gateway",
                    &gateway,
                    "--model",
                    "mine",
                    "--no-stream",
                    prompt,
                ])
                .output()
                .await
                .unwrap()
        }
    };
    // Ready within the runner's 30 s; the chat goes to the launched echo, through its sandbox.
    let mut answered = None;
    for _ in 0..150 {
        let output = chat("hello from the runner test").await;
        if output.status.success() {
            answered = Some(output);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answered = answered.expect("the launched competitor never answered");
    let stdout = String::from_utf8_lossy(&answered.stdout);
    assert!(stdout.starts_with("hello from the runner test"), "{stdout}");
    // An author checks the build exactly as the platform runs it: through the gateway.
    let checked = janus()
        .args(["check", &gateway, "--model", "mine", "--timeout", "60s"])
        .output()
        .await
        .unwrap();
    assert!(
        checked.status.success(),
        "janus check of the launched competitor failed:\n{}\n{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let described = get_json(&format!("{sandbox}/api/sandboxes")).await;
    let mine = described["sandboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["flavor"] == "competitor:mine")
        .unwrap_or_else(|| panic!("no sandbox for the launched competitor: {described}"))
        .clone();
    assert_eq!(mine["preemptable"], false);
    assert_eq!(mine["resources"]["memory_mb"], 256);
    assert_eq!(mine["service"]["running"], true, "{mine}");
    let id = mine["id"].as_str().unwrap().to_owned();

    // A crash: the service is killed from inside its own sandbox (shell builtins only: the
    // image has nothing else). The runner restarts it in place and counts it.
    let kill = janus_client::HttpClient::default()
        .post_json(
            &format!("{sandbox}/api/sandboxes/{id}/exec"),
            bytes::Bytes::from(
                serde_json::json!({"command": "for d in /proc/[0-9]*; do read c < $d/comm; if [ \"$c\" = janus ]; then kill -9 ${d#/proc/}; fi; done 2>/dev/null; true"})
                    .to_string(),
            ),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(kill.status, 200, "{}", String::from_utf8_lossy(&kill.body));
    let mut restarted = false;
    for _ in 0..100 {
        if metrics(&gateway)
            .await
            .contains("janus_gateway_competitor_restarts_total{competitor=\"mine\"} 1")
        {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        restarted,
        "no restart counted:\n{}",
        metrics(&gateway).await
    );
    let mut again = false;
    for _ in 0..100 {
        if chat("after the crash").await.status.success() {
            again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again, "the restarted competitor never answered");

    assert!(interrupt(&mut up).await.success());
    // Its output reached the gateway's log, tagged with its id.
    let mut log = String::new();
    for entry in std::fs::read_dir(&logs).unwrap().flatten() {
        log.push_str(&std::fs::read_to_string(entry.path()).unwrap());
    }
    let tagged = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "competitor output" && l["competitor"] == "mine")
        .count();
    assert!(
        tagged >= 2,
        "the competitor's output is not in the gateway log:\n{log}"
    );
    assert!(log.contains("competitor restarted"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
