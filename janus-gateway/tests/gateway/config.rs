//! Configuration: precedence, validation with exit code 2, and `--help`.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser;
use janus_gateway::Args;

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_janus-gateway"));
    for (key, _) in std::env::vars() {
        if key.starts_with("JANUS_") {
            command.env_remove(key);
        }
    }
    command
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("janus-gw-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

#[test]
fn flags_override_the_file_and_file_options_apply_by_id() {
    let file = temp_file(
        "precedence",
        r#"
listen = "127.0.0.1:9001"
keepalive_interval = "1s"
request_timeout = "60s"
api_keys = ["from-file"]
artifact_ttl = "10m"

[[competitor]]
id = "a"
url = "http://127.0.0.1:7001"
timeout = "12s"
max_concurrent_requests = 3
description = "alpha"

[[competitor]]
id = "b"
url = "http://127.0.0.1:7002"
"#,
    );
    let args = Args::try_parse_from([
        "janus-gateway",
        "--config",
        file.to_str().unwrap(),
        "--keepalive-interval",
        "500ms",
        "--competitor",
        "a=http://127.0.0.1:7100/",
    ])
    .unwrap();
    let config = args.resolve().unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:9001");
    assert_eq!(config.keepalive_interval, Duration::from_millis(500));
    assert_eq!(config.request_timeout, Duration::from_secs(60));
    assert_eq!(config.artifact_ttl, Duration::from_secs(600));
    assert_eq!(config.api_keys.as_ref().map(|k| k.len()), Some(1));
    // The flag's competitor list wins; the file's options for "a" still apply.
    assert_eq!(config.competitors.len(), 1);
    let a = &config.competitors[0];
    assert_eq!(a.url, "http://127.0.0.1:7100");
    assert_eq!(a.timeout, Some(Duration::from_secs(12)));
    assert_eq!(a.max_concurrent_requests, Some(3));
    assert_eq!(a.description.as_deref(), Some("alpha"));
    assert_eq!(config.default_competitor, "a");

    // Without flag competitors the file's list is used, in order.
    let args = Args::try_parse_from(["janus-gateway", "--config", file.to_str().unwrap()]).unwrap();
    let config = args.resolve().unwrap();
    let ids: Vec<&str> = config.competitors.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    remove(&file);
}

fn remove(file: &std::path::Path) {
    if let Some(dir) = file.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let args =
        Args::try_parse_from(["janus-gateway", "--competitor", "x=http://127.0.0.1:1"]).unwrap();
    let config = args.resolve().unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8000");
    assert_eq!(config.keepalive_interval, Duration::from_millis(1500));
    assert_eq!(config.request_timeout, Duration::from_secs(300));
    assert_eq!(config.connect_timeout, Duration::from_secs(5));
    assert_eq!(config.max_body_bytes, 10 * 1024 * 1024);
    assert_eq!(config.serve.shutdown_grace, Duration::from_secs(30));
    assert!(config.api_keys.is_none());
    assert_eq!(config.retry.max_attempts, 6);
    assert_eq!(config.retry.initial_backoff, Duration::from_secs(2));
    assert_eq!(config.retry.max_backoff, Duration::from_secs(15));
    assert_eq!(config.artifact_ttl, Duration::from_secs(3600));
}

#[test]
fn invalid_settings_exit_2_naming_the_setting() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "--competitor"),
        (&["--competitor", "no-equals"], "--competitor"),
        (&["--competitor", "a=ftp://x"], "--competitor"),
        (
            &["--competitor", "a=http://x", "--competitor", "a=http://y"],
            "listed twice",
        ),
        (
            &["--competitor", "a=http://x", "--default-competitor", "zz"],
            "--default-competitor",
        ),
        (
            &["--competitor", "a=http://x", "--keepalive-interval", "3s"],
            "--keepalive-interval",
        ),
        (
            &["--competitor", "a=http://x", "--request-timeout", "soon"],
            "--request-timeout",
        ),
        (
            &["--competitor", "a=http://x", "--listen", "nowhere"],
            "--listen",
        ),
        (
            &["--competitor", "a=http://x", "--max-body-bytes", "0"],
            "--max-body-bytes",
        ),
        (
            &["--competitor", "a=http://x", "--log-format", "xml"],
            "--log-format",
        ),
        (
            &["--competitor", "a=http://x", "--api-keys", ","],
            "--api-keys",
        ),
        (
            &["--competitor", "a=http://x", "--api-keys", " "],
            "--api-keys",
        ),
        (
            &["--competitor", "a=http://x", "--max-response-bytes", "0"],
            "--max-response-bytes",
        ),
        (
            &[
                "--competitor",
                "a=http://x",
                "--header-read-timeout",
                "soon",
            ],
            "--header-read-timeout",
        ),
        (
            &["--competitor", "a=http://x", "--public-url", "ftp://x"],
            "--public-url",
        ),
        (
            &[
                "--competitor",
                "a=http://x",
                "--platform-key-file",
                "/nonexistent/keys",
            ],
            "--platform-key-file",
        ),
        (
            &["--competitor", "a=http://x", "--artifact-ttl", "0s"],
            "--artifact-ttl",
        ),
        (
            &["--config", "/nonexistent/janus.toml"],
            "/nonexistent/janus.toml",
        ),
    ];
    for (args, needle) in cases {
        let output = binary().args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected '{needle}' in: {stderr}"
        );
    }
    let bad_file = temp_file("unknown-key", "listen = \"127.0.0.1:1\"\nlisten_port = 3\n");
    let output = binary()
        .args(["--config", bad_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("listen_port"));
    remove(&bad_file);
}

#[test]
fn a_bad_worker_count_exits_2_naming_it() {
    for bad in ["0", "many"] {
        let output = binary()
            .args(["--competitor", "a=http://127.0.0.1:9"])
            .env("TOKIO_WORKER_THREADS", bad)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("TOKIO_WORKER_THREADS"), "{bad}: {stderr}");
    }
}

#[test]
fn env_overrides_the_file_and_the_binary_serves() {
    // The file names a port that is taken; the environment's free port must win.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let file = temp_file(
        "env",
        &format!(
            "listen = \"{}\"\n[[competitor]]\nid = \"a\"\nurl = \"http://127.0.0.1:1\"\n",
            taken.local_addr().unwrap()
        ),
    );
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = binary()
        .args(["--config", file.to_str().unwrap()])
        .env("JANUS_LISTEN", free.to_string())
        .env("JANUS_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut served = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(free).is_ok() {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM: the binary drains and exits 0.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(served, "gateway never listened on {free}: {stderr}");
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );
    let listening = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "gateway listening")
        .unwrap_or_else(|| panic!("no JSON 'gateway listening' line in: {stderr}"));
    assert_eq!(listening["listen"], free.to_string());
    remove(&file);
}

#[test]
fn help_lists_every_setting_with_env_and_default() {
    let output = binary().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--listen",
        "JANUS_LISTEN",
        "127.0.0.1:8000",
        "--competitor",
        "JANUS_COMPETITORS",
        "--default-competitor",
        "JANUS_DEFAULT_COMPETITOR",
        "--config",
        "JANUS_CONFIG",
        "--keepalive-interval",
        "JANUS_KEEPALIVE_INTERVAL",
        "1.5s",
        "--request-timeout",
        "JANUS_REQUEST_TIMEOUT",
        "300s",
        "--connect-timeout",
        "5s",
        "--max-body-bytes",
        "JANUS_MAX_BODY_BYTES",
        "10485760",
        "--shutdown-grace",
        "30s",
        "--api-keys",
        "JANUS_API_KEYS",
        "--log-format",
        "JANUS_LOG_FORMAT",
        "--platform",
        "JANUS_PLATFORMS",
        "--platform-listen",
        "127.0.0.1:8001",
        "--platform-public-url",
        "JANUS_PLATFORM_PUBLIC_URL",
        "--artifact-ttl",
        "JANUS_ARTIFACT_TTL",
        "3600s",
    ] {
        assert!(help.contains(needle), "--help lacks '{needle}':\n{help}");
    }
}

#[test]
fn platform_settings_from_flags_file_and_env_secrets() {
    let secret_file = temp_file("platform-secret", "file-secret-value\n");
    let file = temp_file(
        "platform",
        &format!(
            r#"
platform_listen = "127.0.0.1:9801"

[[competitor]]
id = "a"
url = "http://127.0.0.1:7001"
budget_calls = 7
budget_sandbox_seconds = 30.5

[[platform]]
name = "inference"
secret_env = "JANUS_TEST_PLATFORM_SECRET_NEVER_SET_ELSEWHERE"
timeout = "20s"
max_request_bytes = 1000
price = {{ prompt_per_million = 0.5, completion_per_million = 1.5 }}

[[platform]]
name = "web"
kind = "search"
url = "http://127.0.0.1:7300/api"
secret_file = "{}"
header = "x-api-key"
scheme = ""
allow = ["GET /api/search"]
"#,
            secret_file.display()
        ),
    );
    std::env::set_var(
        "JANUS_TEST_PLATFORM_SECRET_NEVER_SET_ELSEWHERE",
        "env-secret",
    );
    let args = Args::try_parse_from([
        "janus-gateway",
        "--config",
        file.to_str().unwrap(),
        "--platform",
        "inference=http://127.0.0.1:7200/v1/",
        "--platform",
        "sandbox=http://127.0.0.1:7400",
    ])
    .unwrap();
    let config = args.resolve().unwrap();
    assert_eq!(config.platform_listen.to_string(), "127.0.0.1:9801");
    assert_eq!(config.platform_base(), "http://127.0.0.1:9801/platform");
    let names: Vec<&str> = config.platforms.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["inference", "sandbox", "web"]);
    let inference = &config.platforms[0];
    assert_eq!(inference.kind, janus_gateway::PlatformKind::Inference);
    assert_eq!(inference.url, "http://127.0.0.1:7200/v1");
    assert_eq!(inference.secret.as_ref().unwrap().expose(), "env-secret");
    assert_eq!(inference.header, "authorization");
    assert_eq!(inference.scheme, "Bearer");
    assert_eq!(inference.timeout, Duration::from_secs(20));
    assert_eq!(inference.max_request_bytes, 1000);
    assert_eq!(inference.price.completion_per_million, 1.5);
    assert!(
        !format!("{config:?}").contains("env-secret"),
        "Debug never shows a secret"
    );
    let sandbox = &config.platforms[1];
    assert_eq!(sandbox.kind, janus_gateway::PlatformKind::Sandbox);
    assert!(sandbox.secret.is_none());
    let web = &config.platforms[2];
    assert_eq!(web.kind, janus_gateway::PlatformKind::Search);
    assert_eq!(web.secret.as_ref().unwrap().expose(), "file-secret-value");
    assert_eq!(web.header, "x-api-key");
    assert_eq!(web.allow.len(), 1);
    let budget = config.budget("a");
    assert_eq!((budget.calls, budget.sandbox_seconds), (7, 30.5));
    assert_eq!(budget.inference_tokens, 200_000);
    let default = config.budget("other");
    assert_eq!(
        (
            default.calls,
            default.inference_tokens,
            default.sandboxes,
            default.sandbox_seconds
        ),
        (100, 200_000, 4, 600.0)
    );
    remove(&file);
    remove(&secret_file);

    let defaults = Args::try_parse_from(["janus-gateway", "--competitor", "x=http://127.0.0.1:1"])
        .unwrap()
        .resolve()
        .unwrap();
    assert_eq!(defaults.platform_listen.to_string(), "127.0.0.1:8001");
    assert!(defaults.platforms.is_empty());
}

#[test]
fn platform_misconfiguration_exits_2() {
    let cases = [
        (
            "inline",
            "[[platform]]\nname = \"inference\"\nurl = \"http://127.0.0.1:1\"\nsecret = \"sk-inline-text\"\n",
            "secret_env",
        ),
        (
            "unset-env",
            "[[platform]]\nname = \"inference\"\nurl = \"http://127.0.0.1:1\"\nsecret_env = \"JANUS_NO_SUCH_VARIABLE_EVER\"\n",
            "JANUS_NO_SUCH_VARIABLE_EVER",
        ),
        (
            "no-kind",
            "[[platform]]\nname = \"thing\"\nurl = \"http://127.0.0.1:1\"\n",
            "platform.kind",
        ),
        (
            "bad-allow",
            "[[platform]]\nname = \"search\"\nurl = \"http://127.0.0.1:1\"\nallow = [\"GET nowhere\"]\n",
            "platform.allow",
        ),
    ];
    for (name, text, needle) in cases {
        let file = temp_file(
            name,
            &format!("[[competitor]]\nid = \"a\"\nurl = \"http://127.0.0.1:1\"\n{text}"),
        );
        let output = binary()
            .args(["--config", file.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{name}: expected '{needle}' in {stderr}"
        );
        assert!(
            !stderr.contains("sk-inline-text"),
            "the secret is never echoed"
        );
        remove(&file);
    }
    let output = binary()
        .args([
            "--competitor",
            "a=http://127.0.0.1:1",
            "--platform",
            "inference=https://127.0.0.1:1/v1",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--platform"));
}
