//! Proofs of isolation, from inside a sandbox (root only; CI is root).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{require_root, start};
use janus_sandbox::IsolationMode;

#[tokio::test]
async fn a_sandbox_sees_only_itself_and_cannot_reach_the_host() {
    if !require_root() {
        return;
    }
    // A server on the host's loopback that the sandbox must not reach.
    let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = host.local_addr().unwrap().port();
    let service = start(IsolationMode::Full, |_| {}).await;
    let id = service.create(json!({})).await;

    let out = service.exec(&id, "ps -e -o pid=,comm=").await;
    let processes: Vec<&str> = out["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .map(str::trim)
        .collect();
    // PID 1 (the reaping shell), its sleep, and this exec: nothing of the host.
    assert_eq!(processes[0], "1 sh", "{processes:?}");
    assert!(processes.len() <= 4, "{processes:?}");
    for process in &processes {
        let name = process.split_whitespace().nth(1).unwrap_or("");
        assert!(
            ["sh", "sleep", "ps"].contains(&name),
            "a foreign process is visible: {processes:?}"
        );
    }

    let probe = format!(
        "python3 -c 'import socket,sys\ns=socket.socket(); s.settimeout(2)\ntry:\n  s.connect((\"127.0.0.1\", {port})); print(\"connected\")\nexcept OSError as e: print(\"refused\", e)'"
    );
    let out = service.exec(&id, &probe).await;
    assert!(
        out["stdout"].as_str().unwrap().starts_with("refused"),
        "{out}"
    );
    let out = service
        .exec(&id, "ls /sys/class/net 2>/dev/null || cat /proc/net/dev")
        .await;
    let devices = out["stdout"].as_str().unwrap();
    assert!(
        devices.contains("lo") && !devices.contains("eth"),
        "{devices}"
    );

    let out = service
        .exec(
            &id,
            "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status",
        )
        .await;
    let text = out["stdout"].as_str().unwrap();
    assert!(text.starts_with("65534\n"), "{text}");
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    drop(host);
    service.stop().await;
}

#[tokio::test]
async fn writes_outside_workspace_and_tmp_fail() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |_| {}).await;
    let id = service.create(json!({})).await;
    for (target, ok) in [
        ("/workspace/ok", true),
        ("/tmp/ok", true),
        ("/etc/janus-escape", false),
        ("/janus-escape", false),
        ("/usr/janus-escape", false),
    ] {
        let out = service.exec(&id, &format!("echo x > {target}")).await;
        assert_eq!(out["exit_code"] == 0, ok, "{target}: {out}");
    }
    assert!(!std::path::Path::new("/etc/janus-escape").exists());
    assert!(!std::path::Path::new("/janus-escape").exists());
    // The workspace is the host directory under --root.
    assert!(service.root.join(&id).join("workspace/ok").exists());
    service.stop().await;
}

#[tokio::test]
async fn memory_and_process_limits_hold() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |c| c.pids = 32).await;
    let id = service
        .create(json!({"resources": {"memory_mb": 64}}))
        .await;
    let out = service
        .exec(
            &id,
            "python3 -c 'x = bytearray(200 * 1024 * 1024); print(len(x))'",
        )
        .await;
    assert_eq!(out["exit_code"], 137, "{out}");
    assert_eq!(out["oom_killed"], true, "{out}");
    assert_eq!(out["stdout"], "");

    let storm = service
        .post(
            &format!("/api/sandboxes/{id}/exec"),
            json!({"command": "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; echo all-started", "timeoutMs": 10000}),
        )
        .await
        .json()
        .unwrap();
    assert_ne!(
        storm["stdout"], "all-started\n",
        "100 processes started under a limit of 32"
    );
    assert!(
        storm["stderr"].as_str().unwrap().contains("fork"),
        "{storm}"
    );
    let current = ["pids", ""]
        .iter()
        .find_map(|c| {
            std::fs::read_to_string(
                std::path::Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join("janus-sandbox")
                    .join(&id)
                    .join("pids.current"),
            )
            .ok()
        })
        .unwrap();
    assert!(
        current.trim().parse::<u64>().unwrap() <= 32,
        "pids.current {current}"
    );
    // The service still answers and the sandbox still works after the storm is killed.
    let _ = service
        .post(&format!("/api/sandboxes/{id}/terminate"), json!({}))
        .await;
    let id = service.create(json!({})).await;
    assert_eq!(service.exec(&id, "echo alive").await["stdout"], "alive\n");
    service.stop().await;
}

#[tokio::test]
async fn an_exec_timeout_kills_a_tree_that_ignores_sigterm() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |_| {}).await;
    let id = service.create(json!({})).await;
    let started = Instant::now();
    let out = service
        .post(
            &format!("/api/sandboxes/{id}/exec"),
            json!({"command": "trap '' TERM; sh -c \"trap '' TERM; sleep 100\" & sleep 100", "timeoutMs": 500}),
        )
        .await
        .json()
        .unwrap();
    assert_eq!(out["timed_out"], true, "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let ps = service.exec(&id, "ps -e -o comm=").await;
    let names = ps["stdout"].as_str().unwrap();
    assert_eq!(
        names.matches("sleep").count(),
        1,
        "only the holder's sleep may remain: {names}"
    );
    service.stop().await;
}

/// Host processes whose command line mentions this service's state directory (holders).
fn holders_of(root: &std::path::Path) -> usize {
    let root = root.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&root))
        })
        .count()
}

/// Cgroup directories left for these sandboxes.
fn cgroups_of(ids: &[String]) -> Vec<std::path::PathBuf> {
    let mut left = Vec::new();
    for controller in ["memory", "pids", "cpu", ""] {
        for id in ids {
            let dir = std::path::Path::new("/sys/fs/cgroup")
                .join(controller)
                .join("janus-sandbox")
                .join(id);
            if dir.exists() {
                left.push(dir);
            }
        }
    }
    left
}

#[tokio::test]
async fn a_hundred_cycles_leave_nothing_behind() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |_| {}).await;
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let mut ids = Vec::new();
    for i in 0..100 {
        let id = service.create(json!({})).await;
        let out = service
            .exec(
                &id,
                &format!("echo {i} > /workspace/n; cat /workspace/n; sleep 30 &"),
            )
            .await;
        assert_eq!(out["stdout"], format!("{i}\n"));
        let done = service
            .post(&format!("/api/sandboxes/{id}/terminate"), json!({}))
            .await;
        assert_eq!(done.status, 200);
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Namespaces end with their last process, so no process left means no namespace left.
    assert_eq!(
        holders_of(&service.root),
        0,
        "sandbox processes left behind"
    );
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(
        mounts_after.lines().count(),
        mounts_before,
        "mounts left behind"
    );
    assert!(!mounts_after.contains(&service.root.display().to_string()));
    assert_eq!(
        cgroups_of(&ids),
        Vec::<std::path::PathBuf>::new(),
        "cgroups left behind"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&service.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "state left behind: {leftovers:?}");
    service.stop().await;
}
