//! `janus bench` end to end: the real binary against SDK competitors behind a real gateway,
//! code answers in the sandbox the bench embeds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use janus_competitor_sdk::{
    async_trait, ChatCompletionRequest, Competitor, CompetitorError, EventWriter, RequestContext,
    ServeConfig, Usage,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::janus;

/// A competitor behind a gateway, both in this process; they stop when this drops.
struct Stack {
    gateway: String,
    _stop: watch::Sender<bool>,
}

async fn stack<C: Competitor>(competitor: C) -> Stack {
    let (stop, rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut serve = ServeConfig::default();
    serve.public_base_url = Some(format!("http://{addr}"));
    tokio::spawn(janus_competitor_sdk::serve(
        listener,
        Arc::new(competitor),
        serve,
        stopped(rx.clone()),
    ));
    let gateway_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", gateway_listener.local_addr().unwrap());
    let config = janus_gateway::Config::with_competitors(vec![janus_gateway::CompetitorConfig {
        id: "c".to_owned(),
        url: format!("http://{addr}"),
        timeout: None,
        max_concurrent_requests: None,
        description: None,
    }]);
    tokio::spawn(janus_gateway::run(gateway_listener, config, stopped(rx)));
    Stack {
        gateway,
        _stop: stop,
    }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "janus-bench-cli-{}-{}-{name}",
        std::process::id(),
        janus_core::random_hex(3)
    ))
}

/// Answers code questions with fixed code: right, wrong, or probing the host.
struct Coder {
    probe: String,
}

#[async_trait]
impl Competitor for Coder {
    async fn handle(
        &self,
        request: ChatCompletionRequest,
        _: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let question = request.last_user_text().unwrap_or_default();
        let code = if question.contains("add(") {
            "def add(a, b):\n    return a + b\n".to_owned()
        } else if question.contains("mul(") {
            "def mul(a, b):\n    return a + b\n".to_owned()
        } else if question.contains("spin(") {
            "def spin():\n    while True:\n        pass\n".to_owned()
        } else {
            self.probe.clone()
        };
        out.content(&format!("Here you go:\n```python\n{code}```\n"))
            .await?;
        out.usage(Usage::new(10, 30)).await?;
        Ok(())
    }
}

fn code_item(id: &str, question: &str, function: &str, cases: Value) -> String {
    json!({"id": id, "category": "code", "input": {"messages": [{"role": "user", "content": question}]},
           "expected": {"type": "code", "language": "python", "function_name": function, "test_cases": cases}})
    .to_string()
}

#[tokio::test]
async fn code_runs_in_the_sandbox_and_cannot_reach_the_host() {
    // A host file and a host socket the code will try to reach.
    let secret = temp("secret.txt");
    std::fs::write(&secret, "host secret").unwrap();
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let port = host.local_addr().unwrap().port();
    let probe = format!(
        "def probe():\n    found = []\n    try:\n        found.append(open({path:?}).read())\n    except Exception:\n        found.append('no-file')\n    import socket\n    try:\n        socket.create_connection(('127.0.0.1', {port}), timeout=2)\n        found.append('net')\n    except Exception:\n        found.append('no-net')\n    return ','.join(found)\n",
        path = secret.display().to_string()
    );
    let stack = stack(Coder { probe }).await;
    let suite = temp("code.jsonl");
    let lines = [
        code_item(
            "k1",
            "Write add(a, b).",
            "add",
            json!([{"input": [2, 3], "output": 5}, {"input": [-1, 1], "output": 0}]),
        ),
        code_item(
            "k2",
            "Write mul(a, b).",
            "mul",
            json!([{"input": [2, 3], "output": 6}, {"input": [2, 2], "output": 4}]),
        ),
        code_item(
            "k3",
            "Write probe().",
            "probe",
            json!([{"input": [], "output": "no-file,no-net"}]),
        ),
        code_item(
            "k4",
            "Write spin().",
            "spin",
            json!([{"input": [], "output": 1}]),
        ),
    ];
    std::fs::write(&suite, lines.join("\n")).unwrap();
    let out = temp("report.json");
    let output = janus()
        .args(["bench", "run", "--target", &stack.gateway, "--suite"])
        .arg(&suite)
        .args([
            "--require-isolation",
            "--code-timeout",
            "3s",
            "--concurrency",
            "2",
            "-o",
        ])
        .arg(&out)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let quality = |id: &str| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["task_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(quality("k1")["quality_score"], 1.0, "{}", quality("k1"));
    // 2 + 3 ≠ 6 but 2 + 2 = 4: one case of two.
    assert_eq!(quality("k2")["quality_score"], 0.5, "{}", quality("k2"));
    // The probe found neither the host's file nor its socket.
    assert_eq!(quality("k3")["quality_score"], 1.0, "{}", quality("k3"));
    let spin = quality("k4");
    assert_eq!(spin["quality_score"], 0.0);
    assert!(
        spin["evaluation"]["notes"][0]
            .as_str()
            .unwrap()
            .contains("ran past 3000 ms"),
        "{spin}"
    );
    assert_eq!(
        report["sandbox"],
        json!({"kind": "embedded", "isolation": "full"})
    );
    match host.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the host socket was reached from the sandbox: {other:?}"),
    }
    for path in [&secret, &suite, &out] {
        let _ = std::fs::remove_file(path);
    }
}

#[tokio::test]
async fn a_run_writes_json_and_html_and_show_and_compare_read_them() {
    let stack = stack(echo_competitor::Echo::new(Duration::ZERO)).await;
    let (a, b, html) = (temp("a.json"), temp("b.json"), temp("a.html"));
    for (out, spelling) in [(&a, "--out"), (&b, "--output")] {
        let output = janus()
            .args([
                "bench",
                "run",
                "--target",
                &stack.gateway,
                "--suite",
                "public/dev",
            ])
            .args([
                "--subset",
                "20",
                "--seed",
                "7",
                "--timeout",
                "300",
                "--concurrency",
                "4",
            ])
            .args(["--html"])
            .arg(&html)
            .arg(spelling)
            .arg(out)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("COMPOSITE"), "{stdout}");
        assert!(stdout.contains("multimodal"), "{stdout}");
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    assert_eq!(report["total_tasks"], 10); // 20 % of 10 per category
    assert_eq!(report["seed"], 7);
    assert_eq!(report["partial"], false);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.starts_with("<!doctype html>") && page.matches("<svg").count() >= 4,
        "{page}"
    );
    assert!(!page.contains("<script") && !page.contains("src=\"http"));
    let show = janus()
        .args(["bench", "show"])
        .arg(&a)
        .output()
        .await
        .unwrap();
    assert_eq!(show.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&show.stdout).contains("COMPOSITE"));
    let compare = janus()
        .args(["bench", "compare"])
        .arg(&a)
        .arg(&b)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&compare.stdout);
    assert_eq!(compare.status.code(), Some(0));
    assert!(
        text.contains("composite") && text.contains("tasks in both: 10"),
        "{text}"
    );
    let list = janus()
        .args(["bench", "list-suites"])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("public/train      100"));
    let bad = janus()
        .args(["bench", "show"])
        .arg(&html)
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    for path in [&a, &b, &html] {
        let _ = std::fs::remove_file(path);
    }
}

#[tokio::test]
async fn bad_settings_exit_2_and_an_unreachable_target_exits_3() {
    let weights = janus()
        .args(["bench", "run", "--weights", "40,20,15,15,5"])
        .output()
        .await
        .unwrap();
    assert_eq!(weights.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&weights.stderr).contains("must sum to 100, they sum to 95"));
    // A port that was just free: nothing listens there.
    let port = crate::free_port();
    let down = janus()
        .args([
            "bench",
            "run",
            "--target",
            &format!("http://127.0.0.1:{port}"),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(
        down.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let subset = janus()
        .args(["bench", "run", "--subset", "0"])
        .output()
        .await
        .unwrap();
    assert_eq!(subset.status.code(), Some(2));
}

/// Answers the first question at once and never answers the others.
struct FirstOnly;

#[async_trait]
impl Competitor for FirstOnly {
    async fn handle(
        &self,
        request: ChatCompletionRequest,
        _: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        if !request
            .last_user_text()
            .unwrap_or_default()
            .contains("first")
        {
            std::future::pending::<()>().await;
        }
        out.content("the first answer").await?;
        Ok(())
    }
}

#[tokio::test]
async fn ctrl_c_writes_a_partial_report() {
    let stack = stack(FirstOnly).await;
    let suite = temp("stall.jsonl");
    let lines: Vec<String> = ["a first", "b second", "c third"]
        .iter()
        .map(|q| json!({"id": q.split(' ').next().unwrap(), "category": "chat", "input": {"messages": [{"role": "user", "content": q}]}, "expected": {"contains": ["answer"]}}).to_string())
        .collect();
    std::fs::write(&suite, lines.join("\n")).unwrap();
    let out = temp("partial.json");
    let mut child = janus()
        .args(["bench", "run", "--target", &stack.gateway, "--suite"])
        .arg(&suite)
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The first task is done when its progress line appears; then interrupt.
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("[1/3] a pass") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(seen, Ok(true)),
        "no progress line for the first task"
    );
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("janus bench stopped after SIGINT")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["partial"], true);
    assert_eq!(
        (
            report["total_tasks"].as_u64(),
            report["planned_tasks"].as_u64()
        ),
        (Some(1), Some(3))
    );
    assert_eq!(report["results"][0]["task_id"], "a");
    for path in [&suite, &out] {
        let _ = std::fs::remove_file(path);
    }
}
