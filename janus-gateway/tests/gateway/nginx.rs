//! Horizontal scale behind a real load balancer: two `janus-gateway` binaries behind Debian's
//! nginx running the shipped `deploy/nginx/janus.conf` (only its `listen` line and upstream
//! `server` lines are replaced by loopback addresses), the echo example (an SDK competitor)
//! behind both. Everything listens on 127.0.0.1.
//!
//! nginx is required: a missing one fails the test with the command that installs it
//! (`./scripts/setup-test-deps`), never skips it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_competitor::Echo;
use http::Request;
use http_body_util::Full;
use serde_json::json;

use crate::support::*;

const NGINX: &str = "/usr/sbin/nginx";
/// The shipped config, relative to this crate.
const SHIPPED_CONF: &str = "../deploy/nginx/janus.conf";

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A scratch directory of this test (nginx's config, pid file, logs and temp paths, the
/// key file, the gateways' logs), removed and made afresh, and removed again at the end.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("janus-nginx-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An echo competitor served in-process by the SDK on 127.0.0.1; stops when dropped.
struct EchoServer {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn echo(slow_step: Duration, dir: &Path) -> EchoServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = janus_competitor_sdk::ServeConfig::default();
    config.artifact_dir = dir.join(format!("artifacts-{}", addr.port()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(janus_competitor_sdk::serve(
        listener,
        Arc::new(Echo::new(slow_step)),
        config,
        async {
            let _ = stopped.await;
        },
    ));
    EchoServer { addr, _stop: stop }
}

/// One `janus-gateway` replica: the real binary, killed (SIGKILL, by its pid) when dropped.
struct Replica {
    name: &'static str,
    addr: SocketAddr,
    child: tokio::process::Child,
    log: PathBuf,
}

impl Replica {
    async fn start(
        name: &'static str,
        dir: &Path,
        key_file: &Path,
        public_url: &str,
        competitors: &[(&str, SocketAddr)],
        extra: &[String],
    ) -> Replica {
        let addr = free_port();
        let log = dir.join(format!("gateway-{name}.log"));
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_janus-gateway"));
        for (key, _) in std::env::vars() {
            if key.starts_with("JANUS_") {
                command.env_remove(key);
            }
        }
        command
            .arg("--listen")
            .arg(addr.to_string())
            .args(["--log-format", "json", "--keepalive-interval", "1s"])
            // Short, so the forced drain phase (the error event) comes soon after SIGTERM.
            .args(["--shutdown-grace", "1s"])
            .arg("--platform-key-file")
            .arg(key_file)
            .args(["--public-url", public_url]);
        for (id, competitor) in competitors {
            command
                .arg("--competitor")
                .arg(format!("{id}=http://{competitor}"));
        }
        command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true);
        let mut replica = Replica {
            name,
            addr,
            child: command.spawn().unwrap(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = replica.child.try_wait().unwrap() {
                panic!(
                    "replica {name} exited ({status}) before serving:\n{}",
                    replica.log_text()
                );
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok()
                && call(addr, get("/health")).await.status == 200
            {
                return replica;
            }
            assert!(
                Instant::now() < deadline,
                "replica {name} on {addr} not ready in 15 s:\n{}",
                replica.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("the replica is running")
    }

    /// `janus_gateway_active_streams` on this replica, asked directly (not through nginx).
    async fn active_streams(&self) -> u64 {
        metric(
            &call(self.addr, get("/metrics")).await.text(),
            "janus_gateway_active_streams",
        )
    }

    /// Waits (at most 5 s) until this replica has sent a keep-alive: the slow stream is
    /// well under way, silent upstream and all, when the replica is then taken away.
    async fn relayed_a_keepalive(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = call(self.addr, get("/metrics")).await.text();
            if metric(&text, "janus_gateway_keepalives_total") >= 1 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} sent no keep-alive in 5 s",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Chat requests this replica answered, any outcome.
    async fn requests(&self) -> u64 {
        let text = call(self.addr, get("/metrics")).await.text();
        text.lines()
            .filter(|l| l.starts_with("janus_gateway_requests_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    /// Sends SIGTERM to this replica (our own child, by its pid).
    fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-s", "TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s TERM {} failed", self.pid());
    }

    /// Waits for the process to exit; panics after `limit`.
    async fn exited_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "replica {} still running {limit:?} after the signal:\n{}",
                self.name,
                self.log_text()
            ),
        }
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// nginx running `deploy/nginx/janus.conf` in front of `upstreams`, as one process
/// (`master_process off`, `daemon off`) so that killing its pid ends all of it. Its pid
/// file, logs and temp paths live in `dir`. Killed (SIGKILL, by pid) when dropped.
struct Nginx {
    addr: SocketAddr,
    child: std::process::Child,
    dir: PathBuf,
}

impl Nginx {
    async fn start(dir: &Path, addr: SocketAddr, upstreams: &[SocketAddr; 2]) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "nginx is missing at {NGINX}: run ./scripts/setup-test-deps (it installs Debian's nginx)"
        );
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_CONF))
                .unwrap();
        // Only the addresses change; every other line is the shipped one. Each replacement
        // must match exactly once, so the test fails if the shipped file drifts from it.
        let site = replace_once(
            &shipped,
            "    listen 80;\n",
            &format!("    listen {addr};\n"),
        );
        let site = replace_once(
            &site,
            "server gateway-a:8000 ",
            &format!("server {} ", upstreams[0]),
        );
        let site = replace_once(
            &site,
            "server gateway-b:8000 ",
            &format!("server {} ", upstreams[1]),
        );
        std::fs::write(dir.join("janus.conf"), site).unwrap();
        let d = dir.display();
        let main = format!(
            "master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             include {d}/janus.conf;\n\
             }}\n"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, main).unwrap();
        let child = std::process::Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut nginx = Nginx {
            addr,
            child,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}):\n{}", nginx.logs());
            }
            assert!(
                Instant::now() < deadline,
                "nginx not listening on {addr} in 10 s:\n{}",
                nginx.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nginx
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Our own child, by pid; one process (master_process off), so nothing is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{SHIPPED_CONF} must contain {from:?} exactly once"
    );
    text.replacen(from, to, 1)
}

fn get(path: &str) -> Request<Full<bytes::Bytes>> {
    Request::get(path)
        .header("host", "janus")
        .body(Full::new(bytes::Bytes::new()))
        .unwrap()
}

fn chat(model: &str, stream: bool, text: &str) -> Request<Full<bytes::Bytes>> {
    chat_request(&json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": text}]
    }))
}

/// The stack: two echo competitors (`slow`, with the given slow step, and `echo`, quick),
/// two replicas sharing one key file, nginx in front.
struct Stack {
    dir: PathBuf,
    nginx: Nginx,
    replicas: Vec<Replica>,
    _slow: EchoServer,
    _quick: EchoServer,
}

impl Stack {
    async fn start(name: &str, slow_step: Duration) -> Stack {
        let dir = scratch(name);
        let slow = echo(slow_step, &dir).await;
        let quick = echo(Duration::from_millis(50), &dir).await;
        let key_file = dir.join("platform-keys");
        std::fs::write(
            &key_file,
            "a-shared-test-key-of-more-than-32-bytes-0123456789\n",
        )
        .unwrap();
        // Both replicas must exist before nginx so its upstream lines name real ports.
        let nginx_port = free_port();
        let public_url = format!("http://{nginx_port}");
        let competitors = [("echo", quick.addr), ("slow", slow.addr)];
        let a = Replica::start("a", &dir, &key_file, &public_url, &competitors, &[]).await;
        let b = Replica::start("b", &dir, &key_file, &public_url, &competitors, &[]).await;
        let nginx = Nginx::start(&dir, nginx_port, &[a.addr, b.addr]).await;
        Stack {
            dir,
            nginx,
            replicas: vec![a, b],
            _slow: slow,
            _quick: quick,
        }
    }

    /// Starts a slow stream through nginx and returns it (still running) with the index of
    /// the replica that serves it, found by asking each replica's /metrics directly.
    async fn slow_stream_in_flight(&self) -> (tokio::task::JoinHandle<Timed>, usize) {
        let nginx = self.nginx.addr;
        let stream = tokio::spawn(async move { call(nginx, chat("slow", true, "hello")).await });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut serving = Vec::new();
            for (i, replica) in self.replicas.iter().enumerate() {
                if replica.active_streams().await == 1 {
                    serving.push(i);
                }
            }
            if let [one] = serving[..] {
                return (stream, one);
            }
            assert!(
                Instant::now() < deadline,
                "no single replica relays the slow stream after 10 s (serving: {serving:?}):\n{}",
                self.nginx.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `n` quick non-streaming requests through nginx; each must succeed.
    async fn quick_requests_succeed(&self, n: usize) {
        for i in 0..n {
            let text = format!("after the loss {i}");
            let response = call(self.nginx.addr, chat("echo", false, &text)).await;
            assert_eq!(
                response.status,
                200,
                "request {i} through nginx after losing a replica: {}\n{}",
                response.text(),
                self.nginx.logs()
            );
            let content = response.json()["choices"][0]["message"]["content"].clone();
            assert_eq!(content, json!(text));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `data:` payloads parsed as JSON (all but `[DONE]`).
fn json_events(response: &Timed) -> Vec<serde_json::Value> {
    response
        .data_events()
        .iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn content_of(response: &Timed) -> String {
    json_events(response)
        .iter()
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_through_nginx_keep_every_gap_under_2s_on_both_replicas() {
    // A 3 s slow step: silent upstream for longer than the 2 s contract, so only keep-alive
    // pings that nginx passes on at once can keep the gaps short.
    let stack = Stack::start("gaps", Duration::from_secs(3)).await;
    let nginx = stack.nginx.addr;
    let streams: Vec<_> = (0..4)
        .map(|i| {
            tokio::spawn(async move {
                call(nginx, chat("slow", true, &format!("stream number {i}"))).await
            })
        })
        .collect();
    for (i, stream) in streams.into_iter().enumerate() {
        let response = tokio::time::timeout(Duration::from_secs(30), stream)
            .await
            .expect("stream through nginx finished within 30 s")
            .unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.headers["content-type"], "text/event-stream");
        assert!(response.error.is_none(), "{:?}", response.error);
        assert!(
            response.max_gap() < Duration::from_secs(2),
            "stream {i}: a gap of {:?} through nginx",
            response.max_gap()
        );
        assert!(
            response.comments().iter().any(|c| c.trim() == "ping"),
            "stream {i}: no keep-alive reached the client through nginx: {:?}",
            response.comments()
        );
        assert_eq!(content_of(&response), format!("stream number {i}"));
        assert_eq!(
            response.data_events().last().map(String::as_str),
            Some("[DONE]")
        );
    }
    // nginx spread them: each replica answered some.
    for replica in &stack.replicas {
        assert!(
            replica.requests().await >= 1,
            "replica {} answered nothing behind nginx",
            replica.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_sigterm_ends_its_streams_with_an_error_event_and_the_other_replica_serves() {
    let mut stack = Stack::start("sigterm", Duration::from_secs(60)).await;
    let (stream, victim) = stack.slow_stream_in_flight().await;
    stack.replicas[victim].relayed_a_keepalive().await;
    let signalled = Instant::now();
    stack.replicas[victim].terminate();

    let response = tokio::time::timeout(Duration::from_secs(10), stream)
        .await
        .expect("the in-flight stream ended within 10 s of SIGTERM (no hang)")
        .unwrap();
    let ended = signalled.elapsed();
    // --shutdown-grace 1s, then the forced phase writes the error event.
    assert!(
        ended < Duration::from_secs(5),
        "stream ended {ended:?} after SIGTERM"
    );
    assert_eq!(response.status, 200);
    assert!(
        response.error.is_none(),
        "the stream was cut, not ended: {:?}",
        response.error
    );
    let events = response.data_events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let error = json_events(&response)
        .into_iter()
        .find(|e| e.get("error").is_some())
        .unwrap_or_else(|| panic!("no error event before [DONE]: {events:?}"));
    assert_eq!(error["error"]["code"], "shutting_down", "{error}");
    assert!(
        response.max_gap() < Duration::from_secs(2),
        "gap {:?}",
        response.max_gap()
    );

    let status = stack.replicas[victim]
        .exited_within(Duration::from_secs(10))
        .await;
    assert!(status.success(), "a drained replica exits 0, got {status}");
    let survivor = &stack.replicas[1 - victim];
    let before = survivor.requests().await;
    stack.quick_requests_succeed(4).await;
    assert_eq!(
        survivor.requests().await - before,
        4,
        "every request after the loss went to replica {}",
        survivor.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_sigkill_leaves_nginx_only_a_truncated_stream_and_the_other_replica_serves() {
    // A killed process writes nothing more: nginx sees the upstream connection close in the
    // middle of a chunked body and can only close the client's connection the same way. So
    // the client gets a truncated stream — no error event, no [DONE] — never a clean end it
    // could mistake for a complete answer. (The error event needs SIGTERM; see above.)
    let mut stack = Stack::start("sigkill", Duration::from_secs(60)).await;
    let (stream, victim) = stack.slow_stream_in_flight().await;
    stack.replicas[victim].relayed_a_keepalive().await;
    stack.replicas[victim].child.start_kill().unwrap();

    let response = tokio::time::timeout(Duration::from_secs(10), stream)
        .await
        .expect("the in-flight stream ended within 10 s of SIGKILL (no hang)")
        .unwrap();
    assert_eq!(response.status, 200);
    assert!(
        !response.frames.is_empty(),
        "the stream had started before the kill"
    );
    assert!(
        response.error.is_some(),
        "the client must see the body end early, not a complete response: {}",
        response.text()
    );
    let events = response.data_events();
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    assert!(
        !json_events(&response)
            .iter()
            .any(|e| e.get("error").is_some()),
        "nobody could have written an error event: {events:?}"
    );

    let status = stack.replicas[victim]
        .exited_within(Duration::from_secs(10))
        .await;
    assert!(!status.success(), "SIGKILL, got {status}");
    let survivor = &stack.replicas[1 - victim];
    let before = survivor.requests().await;
    stack.quick_requests_succeed(4).await;
    assert_eq!(survivor.requests().await - before, 4);
}

/// An SDK competitor that publishes one artifact too large for a `data:` URL, so it is
/// served through the gateway under the capability base the gateway sent.
struct Publisher {
    bytes: Arc<Vec<u8>>,
}

#[janus_competitor_sdk::async_trait]
impl janus_competitor_sdk::Competitor for Publisher {
    async fn handle(
        &self,
        _request: janus_competitor_sdk::ChatCompletionRequest,
        _context: janus_competitor_sdk::RequestContext,
        out: &mut dyn janus_competitor_sdk::EventWriter,
    ) -> Result<(), janus_competitor_sdk::CompetitorError> {
        let artifact = janus_competitor_sdk::publish_artifact(
            self.bytes.to_vec(),
            "report.bin",
            "application/octet-stream",
        )
        .await?;
        out.content("attached").await?;
        out.artifact(artifact).await?;
        Ok(())
    }
}

/// Replica-sharing proof of what one replica mints: a platform grant and an artifact
/// capability made by one replica verify on the other (one key file, stateless tokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_and_a_platform_grant_minted_by_one_replica_work_on_the_other() {
    let dir = scratch("minted");
    // The artifact: 1.5 MB of varied bytes (over the 1,000,000-byte data: URL limit).
    let bytes: Arc<Vec<u8>> = Arc::new((0..1_500_000u32).map(|i| (i * 31 + i / 7) as u8).collect());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maker = listener.local_addr().unwrap();
    let mut serve = janus_competitor_sdk::ServeConfig::default();
    serve.artifact_dir = dir.join("published");
    let (_stop_maker, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(janus_competitor_sdk::serve(
        listener,
        Arc::new(Publisher {
            bytes: bytes.clone(),
        }),
        serve,
        async {
            let _ = stopped.await;
        },
    ));
    // The grant: a scripted competitor records the headers the gateway sends it.
    let granted =
        Competitor::start(|_, _| Script::sse(vec![send(chunk("ok")), send("data: [DONE]\n\n")]))
            .await;
    // A platform upstream (kind search: no secret, GET allowed) that records what reaches it.
    let search = Competitor::start(|_, _| Script::json(200, r#"{"results":[]}"#)).await;

    let key_file = dir.join("platform-keys");
    std::fs::write(
        &key_file,
        "a-shared-test-key-of-more-than-32-bytes-0123456789\n",
    )
    .unwrap();
    let nginx_port = free_port();
    let public_url = format!("http://{nginx_port}");
    let competitors = [("maker", maker), ("grant", granted.addr)];
    let mut replicas = Vec::new();
    let mut platform = Vec::new();
    for name in ["a", "b"] {
        let listen = free_port();
        let extra = [
            "--platform".to_owned(),
            format!("search={}", search.url()),
            "--platform-listen".to_owned(),
            listen.to_string(),
        ];
        replicas
            .push(Replica::start(name, &dir, &key_file, &public_url, &competitors, &extra).await);
        platform.push(listen);
    }
    let nginx = Nginx::start(&dir, nginx_port, &[replicas[0].addr, replicas[1].addr]).await;

    // Which replica served a request through nginx: the one whose request count rose.
    async fn served_by(replicas: &[Replica], before: &[u64]) -> usize {
        let mut rose = Vec::new();
        for (i, replica) in replicas.iter().enumerate() {
            if replica.requests().await > before[i] {
                rose.push(i);
            }
        }
        assert_eq!(rose.len(), 1, "exactly one replica served it: {rose:?}");
        rose[0]
    }
    async fn counts(replicas: &[Replica]) -> Vec<u64> {
        let mut out = Vec::new();
        for replica in replicas {
            out.push(replica.requests().await);
        }
        out
    }

    // An artifact minted on one replica, fetched from the other and through nginx.
    let before = counts(&replicas).await;
    let reply = call(nginx.addr, chat("maker", false, "make me a file")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let minter = served_by(&replicas, &before).await;
    let url = reply.json()["choices"][0]["message"]["artifacts"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url
        .strip_prefix(&public_url)
        .unwrap_or_else(|| panic!("{url} is not under the public URL {public_url}"))
        .to_owned();
    assert!(path.starts_with("/v1/artifacts/"), "{path}");
    let other = &replicas[1 - minter];
    let direct = call(other.addr, get(&path)).await;
    assert_eq!(direct.status, 200, "replica {} refused {path}", other.name);
    assert!(
        direct.bytes() == *bytes,
        "the bytes differ through the other replica"
    );
    for _ in 0..2 {
        // Round robin: of two downloads through nginx, at least one lands on the other.
        let through = call(nginx.addr, get(&path)).await;
        assert_eq!(through.status, 200);
        assert!(through.bytes() == *bytes);
    }

    // A platform grant minted on one replica, spent on the other's platform listener.
    let before = counts(&replicas).await;
    let reply = call(nginx.addr, chat("grant", true, "a grant please")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let minter = served_by(&replicas, &before).await;
    let headers = granted.requests().last().unwrap().headers.clone();
    let grant = headers["x-janus-platform-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let other = platform[1 - minter];
    let request = Request::get("/platform/search/api/search?q=janus")
        .header("host", "platform")
        .header("authorization", format!("Bearer {grant}"))
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    let answer = call(other, request).await;
    assert_eq!(
        answer.status,
        200,
        "a grant minted by replica {} refused by the other: {}",
        replicas[minter].name,
        answer.text()
    );
    let upstream = search.requests();
    assert_eq!(upstream.len(), 1);
    assert!(
        !upstream[0]
            .headers
            .get_all("authorization")
            .iter()
            .any(|v| v.to_str().unwrap_or_default().contains(&grant)),
        "the grant must not reach the upstream"
    );
    // A forged grant is refused there too, so the 200 above was the signature's doing.
    let forged = Request::get("/platform/search/api/search?q=janus")
        .header("host", "platform")
        .header("authorization", format!("Bearer {grant}x"))
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(call(other, forged).await.status, 401);
    let _ = std::fs::remove_dir_all(&dir);
}
