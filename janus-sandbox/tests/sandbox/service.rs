//! Sandboxes created with a `command` (launched competitors): the service's output kept and
//! streamed, its exit recorded (the memory limit named), and the per-sandbox limits a
//! runner asks for — `resources.pids`, `resources.disk_mb`, a read-only `rootfs`.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{require_root, start};
use janus_sandbox::IsolationMode;

async fn wait_exited(service: &crate::Service, id: &str) -> Value {
    for _ in 0..200 {
        let described = service.get(&format!("/api/sandboxes/{id}")).await;
        let json: Value = serde_json::from_slice(&described.body).unwrap();
        if json["service"]["running"] == false {
            return json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the service of {id} never exited");
}

fn lines(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_services_output_is_kept_and_followed_until_it_exits() {
    let service = start(IsolationMode::None, |_| {}).await;
    let id = service
        .create(json!({"command": ["/bin/sh", "-c", "echo started; echo 'it''s' >&2; sleep 0.3; echo last; exit 3"]}))
        .await;
    let described: Value =
        serde_json::from_slice(&service.get(&format!("/api/sandboxes/{id}")).await.body).unwrap();
    assert_eq!(described["service"]["command"][0], "/bin/sh", "{described}");

    // Following from the start gets every line in order, then the exit, then the end.
    let followed = service
        .get(&format!("/api/sandboxes/{id}/logs?follow=true"))
        .await;
    assert_eq!(followed.status, 200);
    assert_eq!(followed.headers["content-type"], "application/x-ndjson");
    let followed = lines(&followed.body);
    let texts: Vec<(&str, &str)> = followed
        .iter()
        .map(|l| (l["stream"].as_str().unwrap(), l["line"].as_str().unwrap()))
        .collect();
    assert!(texts.contains(&("stdout", "started")), "{texts:?}");
    assert!(texts.contains(&("stderr", "its")), "{texts:?}");
    assert_eq!(texts.last(), Some(&("exit", "exited with 3")), "{texts:?}");
    let pos = |t: &str| texts.iter().position(|(_, l)| *l == t).unwrap();
    assert!(pos("started") < pos("last"));

    let done = wait_exited(&service, &id).await;
    assert_eq!(done["service"]["exit_code"], 3);
    assert_eq!(done["service"]["oom_killed"], false);
    // Without follow: the kept lines, the exit included.
    let kept = lines(&service.get(&format!("/api/sandboxes/{id}/logs")).await.body);
    assert_eq!(kept.len(), followed.len());

    // It restarts in the same sandbox, counted; a running one is not restarted.
    let restarted = service
        .post(&format!("/api/sandboxes/{id}/service/restart"), json!({}))
        .await;
    assert_eq!(restarted.status, 200);
    let restarted: Value = serde_json::from_slice(&restarted.body).unwrap();
    assert_eq!(restarted["service"]["restarts"], 1, "{restarted}");
    assert_eq!(restarted["id"], id.as_str());
    let again = service
        .post(&format!("/api/sandboxes/{id}/service/restart"), json!({}))
        .await;
    assert_eq!(again.status, 409);
    let done = wait_exited(&service, &id).await;
    assert_eq!(done["service"]["exit_code"], 3);

    // A sandbox without a command has no logs; bad commands are refused by name.
    let plain = service.create(json!({})).await;
    assert_eq!(
        service
            .get(&format!("/api/sandboxes/{plain}/logs"))
            .await
            .status,
        400
    );
    for (bad, param) in [
        (json!({"command": "echo hi"}), "command"),
        (json!({"command": []}), "command"),
        (json!({"command": ["ok", ""]}), "command[1]"),
        (json!({"resources": {"pids": 0}}), "resources.pids"),
        (json!({"resources": {"disk_mb": 0}}), "resources.disk_mb"),
        (json!({"rootfs": "/"}), "rootfs"),
    ] {
        let refused = service.post("/api/sandboxes", bad.clone()).await;
        assert_eq!(refused.status, 400, "{bad}");
        let error: Value = serde_json::from_slice(&refused.body).unwrap();
        assert_eq!(error["error"]["param"], param, "{bad}: {error}");
    }
}

#[tokio::test]
async fn the_memory_limit_kills_the_service_and_says_so() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |_| {}).await;
    let id = service
        .create(json!({
            "resources": {"memory_mb": 64},
            "command": ["python3", "-c", "a = bytearray(256 * 1024 * 1024); import time; time.sleep(60)"],
        }))
        .await;
    let done = wait_exited(&service, &id).await;
    assert_eq!(done["service"]["oom_killed"], true, "{done}");
    assert_eq!(done["service"]["exit_code"], 137, "{done}");
    let kept = lines(&service.get(&format!("/api/sandboxes/{id}/logs")).await.body);
    assert_eq!(
        kept.last().unwrap()["line"],
        "exited with 137 (memory limit)"
    );
}

#[tokio::test]
async fn pids_and_disk_limits_bind_per_sandbox() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |_| {}).await;
    let id = service
        .create(json!({"resources": {"pids": 16, "disk_mb": 4}}))
        .await;
    let described: Value =
        serde_json::from_slice(&service.get(&format!("/api/sandboxes/{id}")).await.body).unwrap();
    assert_eq!(described["resources"]["pids"], 16);
    assert_eq!(described["resources"]["disk_mb"], 4);
    // A fork storm stays inside the limit.
    let storm = service
        .exec(
            &id,
            // The storm runs in a subshell (a shell whose fork fails gives up), and is
            // counted with builtins only: at the limit nothing more can fork.
            "(i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); done) 2>/dev/null; set -- /proc/[0-9]*; echo $#",
        )
        .await;
    let count: u64 = storm["stdout"]
        .as_str()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{storm}"));
    assert!(count <= 16 + 2, "{count} processes with pids 16: {storm}");
    assert!(count >= 8, "the storm did not fork at all: {storm}");
    // /workspace holds 4 MiB.
    let fill = service
        .exec(
            &id,
            "dd if=/dev/zero of=/workspace/big bs=1M count=10 2>&1; stat -c %s /workspace/big",
        )
        .await;
    let out = fill["stdout"].as_str().unwrap();
    assert!(out.contains("No space left"), "{fill}");
    let size: u64 = out.lines().last().unwrap().trim().parse().unwrap();
    assert!(size <= 4 * 1024 * 1024, "{size}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(mounts.contains(&id), "the sized /workspace is a mount");
    let done = service
        .post(&format!("/api/sandboxes/{id}/terminate"), json!({}))
        .await;
    assert_eq!(done.status, 200);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&id),
        "the sized /workspace outlived its sandbox"
    );
}

#[tokio::test]
async fn a_rootfs_is_the_read_only_root_and_only_allowed_ones_are_taken() {
    if !require_root() {
        return;
    }
    let images = std::env::temp_dir().join(format!(
        "janus-sandbox-images-{}",
        janus_core::random_hex(6)
    ));
    let image = images.join("tiny");
    // A tiny image: a shell, setpriv (every command enters through it), cat, their
    // libraries, and a marker file the host does not have.
    janus_sandbox::image::image_from_binaries(&image, &[Path::new("/bin/cat")]).unwrap();
    std::fs::write(image.join("etc/janus-image"), "tiny image\n").unwrap();
    let allowed = images.clone();
    let service = start(IsolationMode::Full, move |c| {
        c.allow_rootfs = vec![allowed.canonicalize().unwrap()];
    })
    .await;
    let id = service
        .create(json!({"rootfs": image.display().to_string()}))
        .await;
    let out = service
        .exec(
            &id,
            "cat /etc/janus-image; test -e /usr/bin/python3 && echo host || echo image-only",
        )
        .await;
    assert_eq!(out["stdout"], "tiny image\nimage-only\n", "{out}");
    let out = service
        .exec(&id, "echo x > /etc/janus-image 2>&1 || echo read-only")
        .await;
    assert!(
        out["stdout"].as_str().unwrap().contains("read-only"),
        "{out}"
    );

    // Outside the allowed directory, or through a symlink out of it: refused.
    let outside = std::env::temp_dir();
    let refused = service
        .post(
            "/api/sandboxes",
            json!({"rootfs": outside.display().to_string()}),
        )
        .await;
    assert_eq!(refused.status, 400);
    std::os::unix::fs::symlink("/", images.join("escape")).unwrap();
    let refused = service
        .post(
            "/api/sandboxes",
            json!({"rootfs": images.join("escape").display().to_string()}),
        )
        .await;
    assert_eq!(refused.status, 400);
    let _ = std::fs::remove_dir_all(&images);
}
