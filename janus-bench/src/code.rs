//! Code answers: the answer's code block is run against the item's test cases inside a
//! sandbox (the Sandy API, contract §6) — never in the bench process. One sandbox per task,
//! terminated afterwards; the sandbox has no network beyond its own loopback and sees none
//! of the host's files outside the read-only system folders.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt as _, Full, Limited};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::measure::HttpClient;
use crate::score::Evaluation;
use crate::suite::Expected;

/// Where code runs.
#[derive(Debug, Clone)]
pub struct SandboxTarget {
    /// Base URL of a Sandy-compatible service.
    pub url: String,
    /// Its bearer key, if it needs one.
    pub api_key: Option<String>,
    /// Bound on one test run (`--code-timeout`).
    pub exec_timeout: Duration,
}

/// The Python harness: loads `solution.py`, calls the function on every case and prints one
/// marked JSON line. The marker is random per run so the answer's own output cannot be
/// taken for the result.
const HARNESS: &str = r#"import json, sys
marker, name = sys.argv[1], sys.argv[2]
cases = json.load(open("cases.json"))
ns = {"__name__": "solution"}
try:
    exec(compile(open("solution.py").read(), "solution.py", "exec"), ns)
except BaseException as e:
    print("\n" + marker + json.dumps({"load_error": repr(e)}))
    sys.exit(0)
fn = ns.get(name)
if not callable(fn):
    print("\n" + marker + json.dumps({"load_error": "no function named " + name}))
    sys.exit(0)
results = []
for args in cases:
    try:
        results.append({"ok": True, "output": fn(*args)})
    except BaseException as e:
        results.append({"ok": False, "error": repr(e)})
print("\n" + marker + json.dumps({"results": results}, default=repr))
"#;

/// The code to run: the first fenced block (```python, ```py or bare), else the whole
/// answer when it defines a function; `None` when there is no code.
pub fn extract_code(answer: &str) -> Option<String> {
    let mut rest = answer;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let newline = after.find('\n')?;
        let lang = after[..newline].trim().to_lowercase();
        let body = &after[newline + 1..];
        let end = body.find("```").unwrap_or(body.len());
        if lang.is_empty() || lang == "python" || lang == "py" || lang == "python3" {
            return Some(body[..end].to_owned());
        }
        rest = &body[end.min(body.len())..];
        rest = rest.strip_prefix("```").unwrap_or(rest);
    }
    answer.contains("def ").then(|| answer.to_owned())
}

fn infer_function(code: &str) -> Option<String> {
    let at = code.find("def ")?;
    let name: String = code[at + 4..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Equal as test outputs: numbers within 1e-6 (so 32 equals 32.0), lists and objects
/// element by element, everything else exactly.
pub fn outputs_equal(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => match (e.as_f64(), a.as_f64()) {
            (Some(e), Some(a)) => (e - a).abs() < 1e-6,
            _ => e == a,
        },
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| outputs_equal(e, a))
        }
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|av| outputs_equal(v, av)))
        }
        _ => expected == actual,
    }
}

/// What a code evaluation needs from the sandbox, and the sandbox seconds it used.
#[derive(Debug)]
pub struct CodeOutcome {
    /// The verdict (`tests` = cases passed over cases).
    pub evaluation: Evaluation,
    /// Set when the sandbox itself failed (then the task cannot be scored).
    pub infrastructure_error: Option<String>,
}

/// Scores a code answer. Sandbox trouble is reported as an infrastructure error, never
/// blamed on the answer.
pub async fn evaluate(
    client: &HttpClient,
    sandbox: Option<&SandboxTarget>,
    answer: &str,
    expected: &Expected,
) -> CodeOutcome {
    let verdict = |evaluation| CodeOutcome {
        evaluation,
        infrastructure_error: None,
    };
    if answer.trim().is_empty() {
        return verdict(Evaluation::zero("empty answer"));
    }
    if let Some(language) = &expected.language {
        if !language.eq_ignore_ascii_case("python") {
            return verdict(Evaluation::zero(format!(
                "language {language} is not supported (only python runs)"
            )));
        }
    }
    let Some(code) = extract_code(answer) else {
        return verdict(Evaluation::zero("no code block in the answer"));
    };
    let Some(function) = expected
        .function_name
        .clone()
        .or_else(|| infer_function(&code))
    else {
        return verdict(Evaluation::zero("no function to call"));
    };
    if !function
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return verdict(Evaluation::zero(format!(
            "function name {function:?} is not a Python identifier"
        )));
    }
    if expected.test_cases.is_empty() {
        return verdict(Evaluation::zero("the item has no test cases"));
    }
    let Some(sandbox) = sandbox else {
        return CodeOutcome {
            evaluation: Evaluation::zero("no sandbox to run code in"),
            infrastructure_error: Some(
                "code answers need a sandbox (--sandbox-url, or the embedded one)".to_owned(),
            ),
        };
    };
    match run_cases(client, sandbox, &code, &function, expected).await {
        Ok(evaluation) => verdict(evaluation),
        Err(error) => CodeOutcome {
            evaluation: Evaluation::zero(format!("sandbox: {error}")),
            infrastructure_error: Some(format!("sandbox: {error}")),
        },
    }
}

async fn run_cases(
    client: &HttpClient,
    sandbox: &SandboxTarget,
    code: &str,
    function: &str,
    expected: &Expected,
) -> Result<Evaluation, String> {
    let api = SandyCalls { client, sandbox };
    let created = api
        .post(
            "/api/sandboxes",
            json!({
                "ttl_seconds": sandbox.exec_timeout.as_secs() + 60,
                // Benchmark runs are the least important work a sandbox service has.
                "priority": 3,
                "preemptable": true,
                "resources": {"memory_mb": 256},
            }),
        )
        .await?;
    let id = ["sandboxId", "sandbox_id", "id"]
        .iter()
        .find_map(|k| created.get(*k).and_then(Value::as_str))
        .ok_or_else(|| format!("create answered without an id: {created}"))?
        .to_owned();
    let result = run_in(&api, &id, code, function, expected).await;
    // Terminate whatever happened; a failure here only leaves a sandbox to its TTL.
    if let Err(e) = api
        .post(&format!("/api/sandboxes/{id}/terminate"), json!({}))
        .await
    {
        tracing::warn!(sandbox = %id, error = %e, "could not terminate a bench sandbox");
    }
    result
}

async fn run_in(
    api: &SandyCalls<'_>,
    id: &str,
    code: &str,
    function: &str,
    expected: &Expected,
) -> Result<Evaluation, String> {
    let cases: Vec<&Vec<Value>> = expected.test_cases.iter().map(|c| &c.input).collect();
    for (path, content) in [
        ("/workspace/solution.py", code.to_owned()),
        ("/workspace/harness.py", HARNESS.to_owned()),
        (
            "/workspace/cases.json",
            serde_json::to_string(&cases).unwrap_or_default(),
        ),
    ] {
        api.post(
            &format!("/api/sandboxes/{id}/files/write"),
            json!({"path": path, "content": content}),
        )
        .await?;
    }
    let marker = format!("JANUS-BENCH-{}:", janus_core::random_hex(12));
    let exec = api
        .post(
            &format!("/api/sandboxes/{id}/exec"),
            json!({
                // Relative paths: the command runs in /workspace.
                "command": format!("python3 harness.py '{marker}' '{function}'"),
                "timeoutMs": api.sandbox.exec_timeout.as_millis() as u64,
            }),
        )
        .await?;
    let stdout = exec.get("stdout").and_then(Value::as_str).unwrap_or("");
    let stderr = exec.get("stderr").and_then(Value::as_str).unwrap_or("");
    if exec.get("timed_out").and_then(Value::as_bool) == Some(true) {
        return Ok(Evaluation::zero(format!(
            "the code ran past {} ms",
            api.sandbox.exec_timeout.as_millis()
        )));
    }
    let Some(line) = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(marker.as_str()))
    else {
        let exit = exec
            .get("exit_code")
            .or_else(|| exec.get("exitCode"))
            .cloned()
            .unwrap_or(Value::Null);
        return Ok(Evaluation::zero(format!(
            "the harness printed no result (exit {exit}): {}",
            stderr.chars().take(400).collect::<String>()
        )));
    };
    let report: Value = serde_json::from_str(line).map_err(|e| format!("harness output: {e}"))?;
    if let Some(error) = report.get("load_error").and_then(Value::as_str) {
        return Ok(Evaluation::zero(format!("the code did not load: {error}")));
    }
    let results = report
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut evaluation = Evaluation::default();
    let mut passed = 0usize;
    for (i, case) in expected.test_cases.iter().enumerate() {
        let result = results.get(i);
        let ok = result.and_then(|r| r.get("ok")).and_then(Value::as_bool) == Some(true);
        let output = result.and_then(|r| r.get("output")).unwrap_or(&Value::Null);
        if ok && outputs_equal(&case.output, output) {
            passed += 1;
        } else if let Some(error) = result.and_then(|r| r.get("error")).and_then(Value::as_str) {
            evaluation.notes.push(format!("case {i}: raised {error}"));
        } else {
            evaluation
                .notes
                .push(format!("case {i}: expected {}, got {output}", case.output));
        }
    }
    evaluation.add("tests", passed as f64 / expected.test_cases.len() as f64);
    Ok(evaluation)
}

struct SandyCalls<'a> {
    client: &'a HttpClient,
    sandbox: &'a SandboxTarget,
}

impl SandyCalls<'_> {
    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.sandbox.url.trim_end_matches('/'));
        let mut builder = Request::post(&url).header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = &self.sandbox.api_key {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = builder
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        // The exec waits for the code; everything else is quick.
        let bound = self.sandbox.exec_timeout + Duration::from_secs(15);
        let response = tokio::time::timeout(bound, self.client.request(request))
            .await
            .map_err(|_| format!("POST {url} did not answer within {} s", bound.as_secs()))?
            .map_err(|e| format!("POST {url}: {}", janus_core::error_chain(&e)))?;
        let status = response.status();
        let bytes =
            tokio::time::timeout(bound, Limited::new(response.into_body(), 4 << 20).collect())
                .await
                .map_err(|_| format!("POST {url}: the body did not arrive in time"))?
                .map_err(|e| format!("POST {url}: {e}"))?
                .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "POST {path} answered {}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("POST {path}: not JSON: {e}"))
    }
}

/// A sandbox service the bench runs itself, in this process, on a loopback port (the same
/// service `janus up` embeds). Code still runs in separate, isolated processes.
#[derive(Debug)]
pub struct EmbeddedSandbox {
    /// Its base URL.
    pub url: String,
    /// `full` or `none`.
    pub isolation: &'static str,
    root: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl EmbeddedSandbox {
    /// Starts the service on `127.0.0.1:0`: full isolation when available (root on Linux),
    /// else none with a warning — unless `require_full` says a run must not go ahead
    /// without it. `helper_binary` is a binary that routes the sandbox's hidden helper modes
    /// (`janus` does; see janus-sandbox's README); `None` means this process's binary.
    pub async fn start(
        require_full: bool,
        helper_binary: Option<PathBuf>,
    ) -> Result<EmbeddedSandbox, String> {
        use janus_sandbox::IsolationMode;
        let isolation = match janus_sandbox::full_isolation_available() {
            Ok(()) => IsolationMode::Full,
            Err(why) if require_full => {
                return Err(format!("sandbox isolation is unavailable: {why}"))
            }
            Err(why) => {
                tracing::warn!(%why, "sandbox isolation unavailable: code answers run WITHOUT isolation");
                IsolationMode::None
            }
        };
        let root =
            std::env::temp_dir().join(format!("janus-bench-sandbox-{}", janus_core::random_hex(6)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot bind the embedded sandbox service: {e}"))?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let mut config = janus_sandbox::Config::new(root.clone(), isolation);
        config.public_url = url.clone();
        if let Some(helper) = helper_binary {
            config.helper_binary = helper;
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(janus_sandbox::run(listener, config, async move {
            let _ = stopped.await;
        }));
        Ok(EmbeddedSandbox {
            url,
            isolation: match isolation {
                IsolationMode::Full => "full",
                IsolationMode::None => "none",
            },
            root,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops the service (terminating its sandboxes) and removes its folder.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Drop for EmbeddedSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn code_blocks_are_found() {
        let answer =
            "Here:\n```rust\nfn x() {}\n```\nand\n```python\ndef f(x):\n    return x\n```\n";
        assert_eq!(extract_code(answer).unwrap(), "def f(x):\n    return x\n");
        assert_eq!(
            extract_code("def g(): return 1").unwrap(),
            "def g(): return 1"
        );
        assert_eq!(extract_code("no code here"), None);
        assert_eq!(infer_function("import x\ndef my_fn(a):").unwrap(), "my_fn");
    }

    #[test]
    fn outputs_compare_numerically() {
        assert!(outputs_equal(&json!(32), &json!(32.0)));
        assert!(outputs_equal(&json!([1, 2.5]), &json!([1.0, 2.5000000001])));
        assert!(!outputs_equal(&json!(true), &json!(1)));
        assert!(!outputs_equal(&json!("a"), &json!("b")));
    }
}
