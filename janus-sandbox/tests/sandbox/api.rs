//! The API surface: lifecycle, files, errors, capacity and priorities. Runs with
//! `--isolation none` (no root needed) and, where it matters, with full isolation.

use std::time::Duration;

use serde_json::json;

use crate::{require_root, start};
use janus_sandbox::IsolationMode;

#[tokio::test]
async fn lifecycle_create_get_exec_terminate() {
    let service = start(IsolationMode::None, |_| {}).await;
    let created = service.post("/api/sandboxes", json!({"priority": 1, "ttl_seconds": 120, "expose_ports": [5173], "resources": {"cpu": 1, "memory_mb": 256, "disk_gb": 1}, "env": {"GREETING": "hi"}, "flavor": "default"})).await;
    assert_eq!(created.status, 201);
    let json = created.json().unwrap();
    let id = json["sandboxId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sbx_"));
    assert_eq!(json["sandbox_id"], id.as_str());
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["status"], "running");
    assert_eq!(json["url"], format!("{}/sandboxes/{id}", service.url));

    let got = service
        .get(&format!("/api/sandboxes/{id}"))
        .await
        .json()
        .unwrap();
    assert!(got["ttl_remaining"].as_u64().unwrap() > 100);
    let list = service.get("/api/sandboxes").await.json().unwrap();
    assert_eq!(list["sandboxes"].as_array().unwrap().len(), 1);

    let out = service
        .exec(&id, "echo \"$GREETING\"; echo oops >&2; exit 3")
        .await;
    assert_eq!(out["stdout"], "hi\n");
    assert_eq!(out["stderr"], "oops\n");
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["exitCode"], 3);
    assert_eq!(out["timed_out"], false);

    // Per-exec env and cwd.
    let response = service
        .post(&format!("/api/sandboxes/{id}/exec"), json!({"command": "mkdir -p sub && cd sub && pwd >/dev/null; echo $X", "env": {"X": "42"}}))
        .await;
    assert_eq!(response.json().unwrap()["stdout"], "42\n");

    let refreshed = service
        .post(
            &format!("/api/sandboxes/{id}/refresh"),
            json!({"ttl_seconds": 3000}),
        )
        .await;
    assert!(refreshed.json().unwrap()["ttl_remaining"].as_u64().unwrap() > 2900);

    assert_eq!(
        service
            .post(&format!("/api/sandboxes/{id}/terminate"), json!({}))
            .await
            .status,
        200
    );
    // Idempotent, and later calls say it is gone.
    assert_eq!(
        service
            .post(&format!("/api/sandboxes/{id}/terminate"), json!({}))
            .await
            .status,
        200
    );
    let late = service
        .post(
            &format!("/api/sandboxes/{id}/exec"),
            json!({"command": "true"}),
        )
        .await;
    assert_eq!(late.status, 409);
    assert_eq!(late.json().unwrap()["error"]["code"], "sandbox_terminated");
    assert_eq!(
        service
            .get(&format!("/api/sandboxes/{id}"))
            .await
            .json()
            .unwrap()["status"],
        "terminated"
    );
    let unknown = service.get("/api/sandboxes/sbx_nope").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json().unwrap()["error"]["code"],
        "sandbox_not_found"
    );
    assert!(
        !service.root.join(&id).exists(),
        "terminate left files behind"
    );
    service.stop().await;
}

#[tokio::test]
async fn output_is_capped_with_a_marker() {
    let service = start(IsolationMode::None, |c| c.max_output_bytes = 1000).await;
    let id = service.create(json!({})).await;
    let out = service
        .exec(&id, "head -c 5000 /dev/zero | tr '\\0' a")
        .await;
    let stdout = out["stdout"].as_str().unwrap();
    assert!(stdout.starts_with(&"a".repeat(1000)));
    assert!(
        stdout.ends_with("[output truncated: 4000 more bytes not shown]"),
        "{stdout}"
    );
    service.stop().await;
}

#[tokio::test]
async fn files_write_read_list_and_binary() {
    let service = start(IsolationMode::None, |_| {}).await;
    let id = service.create(json!({})).await;
    let write = service
        .post(
            &format!("/api/sandboxes/{id}/files/write"),
            json!({"path": "dir/a.txt", "content": "héllo"}),
        )
        .await;
    assert_eq!(
        write.status,
        200,
        "{}",
        String::from_utf8_lossy(&write.body)
    );
    let raw = service
        .get(&format!(
            "/api/sandboxes/{id}/files/read?path=/workspace/dir/a.txt"
        ))
        .await;
    assert_eq!(raw.status, 200);
    assert_eq!(&raw.body[..], "héllo".as_bytes());
    let binary: Vec<u8> = (0..=255u8).collect();
    let b64 = base64_encode(&binary);
    service
        .post(
            &format!("/api/sandboxes/{id}/files/write"),
            json!({"path": "bin.dat", "content": b64, "encoding": "base64"}),
        )
        .await;
    let json = service
        .get(&format!(
            "/api/sandboxes/{id}/files/read?path=bin.dat&encoding=base64"
        ))
        .await
        .json()
        .unwrap();
    assert_eq!(json["encoding"], "base64");
    assert_eq!(json["content"], b64.as_str());
    let list = service
        .get(&format!("/api/sandboxes/{id}/files/list?path=/workspace"))
        .await
        .json()
        .unwrap();
    let names: Vec<&str> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bin.dat", "dir"]);
    let missing = service
        .get(&format!("/api/sandboxes/{id}/files/read?path=nope.txt"))
        .await;
    assert_eq!(missing.status, 404);
    service.stop().await;
}

fn base64_encode(bytes: &[u8]) -> String {
    janus_core::data_url_encode("x/y", bytes)
        .trim_start_matches("data:x/y;base64,")
        .to_owned()
}

#[tokio::test]
async fn files_api_rejects_escapes() {
    let service = start(IsolationMode::None, |_| {}).await;
    let id = service.create(json!({})).await;
    service
        .exec(&id, "ln -s /etc etc-link; ln -s /etc/hostname host-link")
        .await;
    for path in [
        "../outside.txt",
        "/etc/passwd",
        "/workspace/../etc/passwd",
        "a/../../x",
        "etc-link/passwd",
        "host-link",
        "/workspacex/y",
    ] {
        let read = service
            .get(&format!(
                "/api/sandboxes/{id}/files/read?path={}",
                path.replace('/', "%2F")
            ))
            .await;
        assert_eq!(
            read.status,
            400,
            "read {path}: {}",
            String::from_utf8_lossy(&read.body)
        );
        assert_eq!(read.json().unwrap()["error"]["param"], "path");
        let write = service
            .post(
                &format!("/api/sandboxes/{id}/files/write"),
                json!({"path": path, "content": "x"}),
            )
            .await;
        assert_eq!(write.status, 400, "write {path}");
    }
    assert!(std::fs::read_to_string("/etc/hostname").is_ok_and(|h| h != "x"));
    service.stop().await;
}

#[tokio::test]
async fn bad_input_gets_precise_errors() {
    let service = start(IsolationMode::None, |c| {
        c.api_keys = Some(janus_http::ApiKeys::parse("k").unwrap());
        c.max_body_bytes = 4096;
    })
    .await;
    let unauthorized = service.post("/api/sandboxes", json!({})).await;
    assert_eq!(unauthorized.status, 401);
    let keyed = janus_client::HttpClient::new(Some("k".into()));
    let post = |path: &str, body: serde_json::Value| {
        let url = format!("{}{path}", service.url);
        let keyed = keyed.clone();
        async move {
            keyed
                .post_json(
                    &url,
                    bytes::Bytes::from(body.to_string()),
                    Duration::from_secs(10),
                )
                .await
                .unwrap()
        }
    };
    for (body, param) in [
        (json!({"ttl_seconds": 99999}), "ttl_seconds"),
        (json!({"ttl_seconds": 0}), "ttl_seconds"),
        (json!({"priority": "URGENT"}), "priority"),
        (json!({"priority": 101}), "priority"),
        (json!({"priority": -1}), "priority"),
        (json!({"priority": 2.5}), "priority"),
        (json!({"priority": true}), "priority"),
        (json!({"preemptable": "yes"}), "preemptable"),
        (
            json!({"resources": {"memory_mb": 1}}),
            "resources.memory_mb",
        ),
        (json!({"expose_ports": [0]}), "expose_ports[0]"),
        (json!({"env": {"A": [1]}}), "env"),
    ] {
        let response = post("/api/sandboxes", body.clone()).await;
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(response.json().unwrap()["error"]["param"], param, "{body}");
    }
    // Regression (issue 11): Sandy's only rule is "smaller is more important"; 5 was
    // rejected with "must be 1-3".
    for (priority, expected) in [
        (json!(0), 0),
        (json!(5), 5),
        (json!(100), 100),
        (json!("high"), 1),
        (json!("NORMAL"), 2),
        (json!("LOW"), 3),
    ] {
        let created = post("/api/sandboxes", json!({"priority": priority})).await;
        assert_eq!(created.status, 201, "{priority}");
        let created = created.json().unwrap();
        assert_eq!(created["priority"], expected, "{priority}");
        let id = created["id"].as_str().unwrap();
        post(&format!("/api/sandboxes/{id}/terminate"), json!({})).await;
    }
    let id = post("/api/sandboxes", json!({})).await.json().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let no_command = post(
        &format!("/api/sandboxes/{id}/exec"),
        json!({"timeoutMs": 5}),
    )
    .await;
    assert_eq!(no_command.status, 400);
    assert_eq!(no_command.json().unwrap()["error"]["param"], "command");
    let not_json = keyed
        .post_json(
            &format!("{}/api/sandboxes/{id}/exec", service.url),
            bytes::Bytes::from_static(b"{nope"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(not_json.status, 400);
    let huge = post(
        &format!("/api/sandboxes/{id}/files/write"),
        json!({"path": "big", "content": "x".repeat(5000)}),
    )
    .await;
    assert_eq!(huge.status, 413);
    let unknown = post(&format!("/api/sandboxes/{id}/nothing"), json!({})).await;
    assert_eq!(unknown.status, 404);
    service.stop().await;
}

#[tokio::test]
async fn ttl_expiry_reaps_and_the_id_then_answers_404() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |_| {}).await;
    let id = service.create(json!({"ttl_seconds": 1})).await;
    service
        .exec(&id, "sleep 60 >/dev/null 2>&1 & trap '' TERM; exit 0")
        .await;
    assert!(crate::isolation::processes_of(std::slice::from_ref(&id)).len() >= 3);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let response = service.get(&format!("/api/sandboxes/{id}")).await;
    assert_eq!(response.status, 404);
    let exec = service
        .post(
            &format!("/api/sandboxes/{id}/exec"),
            json!({"command": "true"}),
        )
        .await;
    assert_eq!(exec.status, 404);
    assert!(!service.root.join(&id).exists());
    // The whole tree went with it.
    assert_eq!(
        crate::isolation::processes_of(std::slice::from_ref(&id)),
        Vec::<String>::new()
    );
    service.stop().await;
}

#[tokio::test]
async fn capacity_answers_429_and_preemption_frees_a_low_priority_sandbox() {
    if !require_root() {
        return;
    }
    let service = start(IsolationMode::Full, |c| c.max_sandboxes = 2).await;
    let bench = service
        .create(json!({"priority": 3, "preemptable": true}))
        .await;
    let interactive = service.create(json!({"priority": 1})).await;
    // Full; equal priority never preempts and nothing more important can be stopped.
    let refused = service
        .post(
            "/api/sandboxes",
            json!({"priority": "LOW", "preemptable": true}),
        )
        .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json().unwrap()["error"]["code"], "at_capacity");
    // A NORMAL request may preempt the LOW preemptable one.
    let normal = service.create(json!({"priority": "NORMAL"})).await;
    let gone = service
        .post(
            &format!("/api/sandboxes/{bench}/exec"),
            json!({"command": "true"}),
        )
        .await;
    assert_eq!(gone.status, 409, "the preempted sandbox is terminated");
    // Now two non-preemptable sandboxes: even HIGH gets 429.
    let high = service
        .post("/api/sandboxes", json!({"priority": "HIGH"}))
        .await;
    assert_eq!(high.status, 429);
    assert_eq!(
        service.exec(&interactive, "echo ok").await["stdout"],
        "ok\n"
    );
    assert_eq!(service.exec(&normal, "echo ok").await["stdout"], "ok\n");
    service.stop().await;
}
