//! The gateway against hostile clients and hostile competitors (issue 10): trace headers
//! checked before they are forwarded, duplicate keys refused, deep competitor documents
//! refused, the auth policy of /metrics and /health, peak memory for a 10 MB body.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::failures::assert_stream_error;
use crate::support::*;

#[tokio::test]
async fn invalid_trace_context_and_oversized_correlation_ids_are_not_forwarded() {
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let gateway = Gateway::start(test_config(vec![a.config("a")])).await;
    let bad_traceparent = "00-00000000000000000000000000000000-b7ad6b7169203331-01";
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-correlation-id", "c".repeat(129))
        .header("x-request-id", "has spaces in it")
        .header("traceparent", bad_traceparent)
        .header("tracestate", "vendor=1")
        .body(Full::new(Bytes::from(plain_body("a").to_string())))
        .unwrap();
    let response = call(gateway.addr, request).await;
    assert_eq!(response.status, 200);
    let seen = &a.requests()[0].headers;
    assert!(seen.get("x-correlation-id").is_none(), "{seen:?}");
    let forwarded_id = seen["x-request-id"].to_str().unwrap();
    assert!(forwarded_id.starts_with("chatcmpl-"), "{forwarded_id}");
    assert_eq!(response.headers["x-request-id"], forwarded_id);
    // The gateway started a trace of its own instead of forwarding the invalid one, and
    // the tracestate that belonged to it went with it.
    let traceparent = seen["traceparent"].to_str().unwrap();
    assert_ne!(traceparent, bad_traceparent);
    assert!(
        janus_http::valid_traceparent(traceparent.as_bytes()),
        "{traceparent}"
    );
    assert!(seen.get("tracestate").is_none(), "{seen:?}");

    // A valid correlation id and an oversized tracestate: the first is kept, the second dropped.
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-correlation-id", "corr.ok:1")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("tracestate", format!("v={}", "x".repeat(600)))
        .body(Full::new(Bytes::from(plain_body("a").to_string())))
        .unwrap();
    assert_eq!(call(gateway.addr, request).await.status, 200);
    let seen = &a.requests()[1].headers;
    assert_eq!(seen["x-correlation-id"], "corr.ok:1");
    assert!(seen.get("tracestate").is_none(), "{seen:?}");
}

#[tokio::test]
async fn duplicate_top_level_keys_are_refused_and_uninspected_objects_pass_untouched() {
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let gateway = Gateway::start(test_config(vec![a.config("a")])).await;
    let messages = r#"[{"role":"user","content":"hi"}]"#;
    for (body, param) in [
        (
            format!(r#"{{"model":"a","temperature":5,"temperature":1,"messages":{messages}}}"#),
            "temperature",
        ),
        (
            format!(r#"{{"model":"a","messages":{messages},"messages":{messages}}}"#),
            "messages",
        ),
    ] {
        let request = Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = call(gateway.addr, request).await;
        assert_eq!(response.status, 400, "{}", response.text());
        assert_eq!(response.json()["error"]["code"], "duplicate_key");
        assert_eq!(response.json()["error"]["param"], param);
    }
    assert!(
        a.requests().is_empty(),
        "a refused request reached a competitor"
    );

    // An extension object the gateway does not inspect is forwarded byte for byte.
    let extension = r#"{"b" :1,"b":2,  "deep":[[[]]]}"#;
    let body = format!(r#"{{"model":"a","messages":{messages},"x_vendor":{extension}}}"#);
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    assert_eq!(call(gateway.addr, request).await.status, 200);
    assert_eq!(a.requests()[0].body, Bytes::from(body));
}

#[tokio::test]
async fn a_deeply_nested_competitor_document_is_an_error_not_relayed() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let plain = deep.clone();
    let competitor = Competitor::start(move |_, _| Script::json(200, &plain)).await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let response = call(gateway.addr, chat_request(&plain_body("a"))).await;
    assert_eq!(response.status, 502);
    assert_eq!(response.json()["error"]["code"], "upstream_invalid");

    // In a stream: just past the limit of 128 is already refused, within an event.
    let event = format!("data: {{\"a\":{}{}}}\n\n", "[".repeat(130), "]".repeat(130));
    let competitor =
        Competitor::start(move |_, _| Script::sse(vec![send(chunk("ok")), send(&event)])).await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let streamed = call(gateway.addr, chat_request(&stream_body("a"))).await;
    assert_stream_error(&streamed, "upstream_invalid");
    let events = streamed.data_events();
    assert_eq!(events.len(), 3, "only ok, the error and [DONE]: {events:?}");

    // 100 levels are fine.
    let event = format!("data: {{\"a\":{}{}}}\n\n", "[".repeat(100), "]".repeat(100));
    let competitor =
        Competitor::start(move |_, _| Script::sse(vec![send(&event), send("data: [DONE]\n\n")]))
            .await;
    let gateway = Gateway::start(test_config(vec![competitor.config("a")])).await;
    let streamed = call(gateway.addr, chat_request(&stream_body("a"))).await;
    assert_eq!(streamed.data_events().len(), 2, "{}", streamed.text());
}

#[tokio::test]
async fn keys_guard_metrics_and_health_details_and_the_scheme_is_case_insensitive() {
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let mut config = test_config(vec![a.config("a")]);
    config.api_keys = Some(janus_http::ApiKeys::parse("k1").unwrap());
    let gateway = Gateway::start(config).await;
    let get = |path: &'static str, auth: Option<&'static str>| {
        let mut request = Request::get(path);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        call(gateway.addr, request.body(Full::new(Bytes::new())).unwrap())
    };
    assert_eq!(get("/metrics", None).await.status, 401);
    assert_eq!(get("/metrics", Some("Bearer nope")).await.status, 401);
    assert_eq!(get("/metrics", Some("BEARER k1")).await.status, 200);
    let open = get("/health", None).await;
    assert_eq!(open.status, 200);
    assert_eq!(open.json()["status"], "ok");
    assert!(
        open.json().get("competitors").is_none(),
        "competitor details without a key: {}",
        open.text()
    );
    let detailed = get("/health", Some("bearer k1")).await;
    assert_eq!(
        detailed.json()["competitors"][0]["id"],
        "a",
        "{}",
        detailed.text()
    );

    // Two Authorization headers are refused even when one is right.
    let request = Request::post("/v1/chat/completions")
        .header("authorization", "Bearer k1")
        .header("authorization", "Bearer k2")
        .body(Full::new(Bytes::from(plain_body("a").to_string())))
        .unwrap();
    assert_eq!(call(gateway.addr, request).await.status, 401);
    assert!(a.requests().is_empty());
}

/// The gateway binary as a child on a free loopback port, in front of `competitor_url`.
struct GatewayChild {
    child: Child,
    addr: std::net::SocketAddr,
}

impl GatewayChild {
    async fn start(competitor_url: &str) -> GatewayChild {
        Self::start_with(competitor_url, &[]).await
    }

    async fn start_with(competitor_url: &str, extra: &[&str]) -> GatewayChild {
        Self::start_with_workers(competitor_url, extra, None).await
    }

    /// With `TOKIO_WORKER_THREADS` set (1 runs the current-thread runtime).
    async fn start_with_workers(
        competitor_url: &str,
        extra: &[&str],
        workers: Option<&str>,
    ) -> GatewayChild {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_janus-gateway"));
        for (key, _) in std::env::vars() {
            if key.starts_with("JANUS_") {
                command.env_remove(key);
            }
        }
        if let Some(workers) = workers {
            command.env("TOKIO_WORKER_THREADS", workers);
        }
        let child = command
            .args(["--listen", &port.to_string()])
            .args(["--competitor", &format!("a={competitor_url}")])
            .args(["--log-format", "json"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(port).is_ok()
        })
        .await;
        assert!(up, "the gateway child never listened on {port}");
        GatewayChild { child, addr: port }
    }

    /// A `VmHWM` / `VmRSS` figure of the child, in bytes.
    fn status_bytes(&self, field: &str) -> u64 {
        let mut text = String::new();
        std::fs::File::open(format!("/proc/{}/status", self.child.id()))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in /proc status"));
        let kib: u64 = line
            .trim_start_matches(field)
            .trim_start_matches(':')
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kib * 1024
    }
}

impl Drop for GatewayChild {
    fn drop(&mut self) {
        // Our own child, by pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn peak_memory_for_a_10_mb_body_of_tiny_values_stays_under_three_times_the_body() {
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let gateway = GatewayChild::start(&a.url()).await;
    // Warm up: one ordinary request so lazily built state is not counted as the body's.
    let warm = call(gateway.addr, chat_request(&plain_body("a"))).await;
    assert_eq!(warm.status, 200);
    let before = gateway.status_bytes("VmRSS");

    // 10 MB of the smallest JSON values there are: a tree parser needs ~30x the body.
    // (10 MB is just under the default 10 MiB body limit.)
    let zeros = "0,".repeat(5_100_000);
    let body = format!(
        r#"{{"model":"a","messages":[{{"role":"user","content":"hi"}}],"x_values":[{zeros}0]}}"#
    );
    let size = body.len() as u64;
    assert!(size > 10_000_000 && size < 10 * 1024 * 1024);
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = call(gateway.addr, request).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(a.requests()[1].body.len() as u64, size);
    let peak = gateway.status_bytes("VmHWM");
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 3 * size,
        "peak RSS grew by {growth} bytes for a {size}-byte body (limit 3x)"
    );
    eprintln!(
        "10 MB body: RSS before {before} B, peak {peak} B, growth {:.2}x the body",
        growth as f64 / size as f64
    );
}

#[tokio::test]
async fn slowloris_and_the_connection_cap_against_the_gateway() {
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let mut config = test_config(vec![a.config("a")]);
    config.serve.header_read_timeout = Duration::from_millis(600);
    let gateway = Gateway::start(config.clone()).await;
    janus_http::probe::slowloris(gateway.addr, 200, Duration::from_millis(600), "/health")
        .await
        .unwrap();
    config.serve.header_read_timeout = Duration::from_secs(30);
    config.serve.max_connections = 6;
    let gateway = Gateway::start(config).await;
    janus_http::probe::connection_cap(gateway.addr, 6, "/health", "/v1/chat/completions")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_body_trickled_past_the_request_timeout_gets_408() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let mut config = test_config(vec![a.config("a")]);
    config.request_timeout = Duration::from_millis(800);
    let gateway = Gateway::start(config).await;
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    // The answer must come at the deadline, while bytes are still arriving.
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(3), reader.read(&mut answer));
    let trickling = tokio::spawn(trickle);
    let read = read.await;
    trickling.abort();
    let n = read.expect("an answer within 3 s").unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_millis(2000));
    assert!(a.requests().is_empty());
}

#[tokio::test]
async fn sigterm_with_stalled_connections_exits_well_inside_the_grace_period() {
    // On both runtimes the binary can run: current-thread (one worker) and multi-thread.
    for workers in ["1", "2"] {
        sigterm_with_stalled_connections(workers).await;
    }
}

async fn sigterm_with_stalled_connections(workers: &str) {
    let a = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let mut gateway =
        GatewayChild::start_with_workers(&a.url(), &["--shutdown-grace", "20s"], Some(workers))
            .await;
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
        use tokio::io::AsyncWriteExt as _;
        stream.write_all(b"POST /v1/chat/comp").await.unwrap();
        stalled.push(stream);
    }
    assert_eq!(
        call(gateway.addr, chat_request(&plain_body("a")))
            .await
            .status,
        200
    );
    let started = std::time::Instant::now();
    // Our own child, by pid.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &gateway.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = eventually(Duration::from_secs(10), || {
        matches!(gateway.child.try_wait(), Ok(Some(_)))
    })
    .await;
    assert!(exited, "the gateway did not exit");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "exit took {:?} with a 20 s grace period ({workers} workers)",
        started.elapsed()
    );
    drop(stalled);
}
