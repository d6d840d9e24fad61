//! The chat UI: its HTTP surface (content types, caching, CSP, `--no-ui`) checked over a
//! socket, then the page itself driven in Debian's Chromium by `tests/ui/run.mjs`
//! (playwright-core) against the real `janus-gateway` binary and an SDK competitor scripted
//! per prompt. Chromium and node are required: a missing one fails the test, never skips it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use janus_competitor_sdk::{
    async_trait, publish_artifact, ChatCompletionRequest, Competitor as SdkCompetitor,
    CompetitorError, EventWriter, JanusEvent, Message, RequestContext,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::*;

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "gateway")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The `src`/`href` values of `assets/…` in the page.
fn asset_paths(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|piece| piece.starts_with("assets/"))
        .map(|piece| format!("/{piece}"))
        .collect()
}

#[tokio::test]
async fn the_page_and_its_assets_have_types_caching_and_a_strict_csp() {
    let competitor = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let mut config = test_config(vec![competitor.config("a")]);
    // The page needs no key even when the API does: it asks for one itself.
    config.api_keys = Some(janus_http::ApiKeys::parse("sk-1").unwrap());
    let gateway = Gateway::start(config).await;

    let page = call(gateway.addr, get("/")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers["cache-control"], "no-cache");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("http"),
        "{csp}"
    );
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    let html = page.text();
    assert!(!html.contains("{{"), "unresolved asset placeholder");

    let assets = asset_paths(&html);
    assert_eq!(assets.len(), 3, "{assets:?}");
    for path in &assets {
        let asset = call(gateway.addr, get(path)).await;
        assert_eq!(asset.status, 200, "{path}");
        let expected = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(asset.headers["content-type"], expected, "{path}");
        assert_eq!(
            asset.headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(asset.headers.contains_key("content-security-policy"));
        // The name carries the hash of the bytes served.
        let hash = path.rsplit('.').nth(1).unwrap();
        let digest: String = Sha256::digest(asset.bytes())[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hash, digest, "{path}");
    }

    // Revalidation of the page by its ETag.
    let etag = page.headers["etag"].clone();
    let again = call(
        gateway.addr,
        Request::get("/")
            .header("host", "gateway")
            .header("if-none-match", etag)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.bytes().is_empty());

    let head = call(
        gateway.addr,
        Request::head("/")
            .header("host", "gateway")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.bytes().is_empty());
    assert_eq!(head.headers["content-type"], "text/html; charset=utf-8");

    let missing = call(gateway.addr, get("/assets/app.000000000000.js")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "not_found");
    let post = call(
        gateway.addr,
        Request::post("/")
            .header("host", "gateway")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET, HEAD");
    // The API itself still needs the key.
    assert_eq!(call(gateway.addr, get("/v1/models")).await.status, 401);
}

#[tokio::test]
async fn no_ui_turns_the_page_into_a_404() {
    let competitor = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let mut config = test_config(vec![competitor.config("a")]);
    config.ui = false;
    let gateway = Gateway::start(config).await;
    for path in ["/", "/index.html", "/assets/app.js"] {
        let response = call(gateway.addr, get(path)).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.json()["error"]["type"], "invalid_request_error");
    }
}

#[test]
fn no_ui_is_a_flag_and_a_file_key() {
    use clap::Parser;
    let base = ["janus-gateway", "--competitor", "a=http://127.0.0.1:1"];
    let parse = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        janus_gateway::Args::try_parse_from(args).unwrap()
    };
    assert!(parse(&[]).resolve().unwrap().ui);
    assert!(!parse(&["--no-ui"]).resolve().unwrap().ui);
    assert!(parse(&["--no-ui=false"]).resolve().unwrap().ui);
    let dir = std::env::temp_dir().join(format!("janus-ui-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, "no_ui = true\n").unwrap();
    assert!(
        !parse(&["--config", file.to_str().unwrap()])
            .resolve()
            .unwrap()
            .ui
    );
    // The flag wins over the file.
    assert!(
        parse(&["--config", file.to_str().unwrap(), "--no-ui=false"])
            .resolve()
            .unwrap()
            .ui
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_janus-gateway"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("--no-ui") && help.contains("JANUS_NO_UI"),
        "{help}"
    );
}

#[tokio::test]
async fn janus_no_ui_in_the_environment_turns_the_binary_s_page_off() {
    let competitor = Competitor::start(|_, _| Script::json(200, COMPLETION)).await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let (_off, off) = start_gateway(
        competitor.addr,
        &[],
        &[("JANUS_NO_UI", "1")],
        &dir.join("ui-env-off.log"),
    )
    .await;
    let (_on, on) = start_gateway(competitor.addr, &[], &[], &dir.join("ui-env-on.log")).await;
    let addr = |url: &str| url.trim_start_matches("http://").parse().unwrap();
    assert_eq!(call(addr(&off), get("/")).await.status, 404);
    assert_eq!(call(addr(&on), get("/")).await.status, 200);
}

// ---------------------------------------------------------------------------------------
// The browser test.

/// What the scripted competitor saw, for assertions after the browser is done.
#[derive(Debug, Default)]
struct Seen {
    /// `data:` URLs of image parts in last user messages.
    images: Mutex<Vec<String>>,
    /// Stalled handlers dropped before they finished (the client pressed Stop).
    cancelled: AtomicUsize,
    /// Stalled handlers that ran to the end (must stay 0).
    stalls_completed: AtomicUsize,
    /// Requests asking to fail; the first fails, the retry succeeds.
    failures: AtomicUsize,
    /// Model ids requested, in order.
    models: Mutex<Vec<String>>,
}

/// Counts a stalled handler that is dropped before it finishes.
struct CancelGuard(Arc<Seen>, bool);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The scripted SDK competitor: what it does depends on words in the last user message.
struct Scripted {
    seen: Arc<Seen>,
    artifact: Vec<u8>,
    /// Over the 1,000,000-byte data: limit: linked through the gateway's capability route.
    big: Vec<u8>,
    png: Vec<u8>,
}

const XSS_CONTENT: &str = concat!(
    "Payloads follow.\n\n",
    "<img src=x onerror=\"window.__pwned='img'\">\n\n",
    "<script>window.__pwned='script'</script>\n\n",
    "<svg onload=\"window.__pwned='svg'\"></svg>\n\n",
    "[click me](javascript:window.__pwned='link') and ![pic](javascript:window.__pwned='src')\n\n",
    "| a | b |\n|---|---|\n| <img src=x onerror=\"window.__pwned='cell'\"> | <b onmouseover=\"window.__pwned='b'\">bold</b> |\n\n",
    "```html\n<script>window.__pwned='code'</script>\n```\n",
);

#[async_trait]
impl SdkCompetitor for Scripted {
    async fn handle(
        &self,
        request: ChatCompletionRequest,
        _context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let text = request.last_user_text().unwrap_or_default();
        self.seen
            .models
            .lock()
            .unwrap()
            .push(request.model.to_string());
        let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));
        if text.contains("stream demo") {
            out.reasoning("Reading the question.\n").await?;
            out.janus(JanusEvent::new(
                JanusEvent::TOOL_START,
                json!({"tool": "search", "input": {"q": "janus"}}),
            ))
            .await?;
            pause(100).await;
            out.reasoning("Found 2 sources.\n").await?;
            out.janus(JanusEvent::new(
                JanusEvent::TOOL_END,
                json!({"tool": "search", "ok": true, "duration_ms": 100}),
            ))
            .await?;
            out.janus(JanusEvent::new(
                JanusEvent::SANDBOX_START,
                json!({"sandbox_id": "sbx_demo"}),
            ))
            .await?;
            out.janus(JanusEvent::new(
                JanusEvent::SANDBOX_END,
                json!({"sandbox_id": "sbx_demo", "exit_code": 0}),
            ))
            .await?;
            // Silence: only keep-alives arrive, and the page says it is working. Long
            // enough for the browser to look at the live panel on a loaded machine.
            if !text.contains("quick") {
                pause(3000).await;
            }
            let answer = format!(
                "# Answer\n\nModel **{}** says: here is a *table*.\n\n| name | value |\n|:--|--:|\n| alpha | 1 |\n| beta | 2 |\n\n```rust\nfn main() {{ println!(\"hi\"); }}\n```\n\n- one\n- two\n",
                request.model
            );
            for piece in answer.as_bytes().chunks(12) {
                out.content(std::str::from_utf8(piece).unwrap_or("?"))
                    .await?;
                pause(15).await;
            }
        } else if text.contains("make artifacts") {
            out.content("Here are your files.").await?;
            let bin = publish_artifact(
                self.artifact.clone(),
                "data.bin",
                "application/octet-stream",
            )
            .await
            .map_err(|e| CompetitorError::Internal(e.to_string()))?;
            out.artifact(bin).await?;
            let png = publish_artifact(self.png.clone(), "dot.png", "image/png")
                .await
                .map_err(|e| CompetitorError::Internal(e.to_string()))?;
            out.artifact(png).await?;
            let big = publish_artifact(self.big.clone(), "big.bin", "application/octet-stream")
                .await
                .map_err(|e| CompetitorError::Internal(e.to_string()))?;
            out.artifact(big).await?;
        } else if text.contains("look at this") {
            let images: Vec<String> = request
                .messages
                .iter()
                .rev()
                .find_map(|m| match m {
                    Message::User { content, .. } => Some(
                        content
                            .image_urls()
                            .into_iter()
                            .map(str::to_owned)
                            .collect(),
                    ),
                    _ => None,
                })
                .unwrap_or_default();
            let reply = match images.first() {
                Some(url) => {
                    let bytes = decode_data_url(url);
                    format!(
                        "image part: yes, {} bytes, sha256 {}",
                        bytes.len(),
                        hex(&Sha256::digest(&bytes))
                    )
                }
                None => "image part: no".to_owned(),
            };
            self.seen.images.lock().unwrap().extend(images);
            out.content(&reply).await?;
        } else if text.contains("stall") {
            out.reasoning("Starting a long job.\n").await?;
            let mut guard = CancelGuard(self.seen.clone(), false);
            // Long enough that only Stop can end it within the test.
            pause(30_000).await;
            guard.1 = true;
            self.seen.stalls_completed.fetch_add(1, Ordering::SeqCst);
            out.content("finished the long job").await?;
        } else if text.contains("hang on") {
            // Ended by the test killing the gateway under it (a lost connection).
            out.reasoning("Hanging on.\n").await?;
            pause(30_000).await;
        } else if text.contains("please fail") {
            if self.seen.failures.fetch_add(1, Ordering::SeqCst) == 0 {
                out.content("Partial answer…").await?;
                return Err(CompetitorError::Internal("the tool crashed".into()));
            }
            out.content("Recovered on retry.").await?;
        } else if text.contains("xss") {
            out.reasoning("<img src=x onerror=\"window.__pwned='reasoning'\">\n")
                .await?;
            out.janus(JanusEvent::new(
                JanusEvent::ARTIFACTS,
                json!({"items": [{
                    "id": "artf_00",
                    "type": "file",
                    "mime_type": "text/html",
                    "display_name": "<img src=x onerror=\"window.__pwned='name'\">",
                    "size_bytes": 1,
                    "url": "javascript:window.__pwned='artifact'"
                }]}),
            ))
            .await?;
            out.content(XSS_CONTENT).await?;
        } else {
            out.content(&format!("You said: {text}")).await?;
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_data_url(url: &str) -> Vec<u8> {
    let (_, payload) = url.split_once(";base64,").expect("a base64 data: URL");
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .unwrap()
}

/// A `width`×`height` RGB PNG (a colour gradient), encoded with stored deflate blocks so
/// the test needs no image library.
fn png(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend([(x * 255 / width) as u8, (y * 255 / height) as u8, 160]);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend(*block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A child process killed (by its pid) when dropped, so a failing assertion never leaves a
/// gateway behind.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts the `janus-gateway` binary on a free loopback port and waits for `/health`.
async fn start_gateway(
    competitor: SocketAddr,
    extra: &[&str],
    envs: &[(&str, &str)],
    log: &Path,
) -> (Child, String) {
    let addr = free_port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_janus-gateway"));
    for (key, _) in std::env::vars() {
        if key.starts_with("JANUS_") {
            command.env_remove(key);
        }
    }
    command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--competitor")
        .arg(format!("ui=http://{competitor}"))
        .arg("--competitor")
        .arg(format!("other=http://{competitor}"))
        .args(["--keepalive-interval", "400ms", "--log-format", "json"])
        .args(extra)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true);
    let child = Child(command.spawn().unwrap());
    let url = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let health = call(addr, get("/health")).await;
            if health.status == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "gateway on {addr} not ready: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, url)
}

fn require(path: &str, what: &str) {
    assert!(
        Path::new(path).exists(),
        "{what} is missing at {path}: run ./scripts/setup-test-deps (it installs it)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_ui_works_in_a_real_browser() {
    require("/usr/bin/chromium", "Debian's chromium");
    let ui_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    assert!(
        ui_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run ./scripts/setup-test-deps",
        ui_dir.display()
    );
    let node = which("node").expect("node is required for the UI browser test");

    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-test");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();

    let seen = Arc::new(Seen::default());
    // Bytes that are not text, so a download that re-encodes them would not match.
    let artifact: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let big: Vec<u8> = (0..1_200_000u32).map(|i| (i * 11 + i / 17) as u8).collect();
    let dot = png(48, 48);
    let upload = png(64, 40);
    std::fs::write(work.join("upload.png"), &upload).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let competitor_addr = listener.local_addr().unwrap();
    let mut serve = janus_competitor_sdk::ServeConfig::default();
    serve.keepalive_interval = Duration::from_millis(300);
    serve.artifact_dir = work.join("artifacts");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(janus_competitor_sdk::serve(
        listener,
        Arc::new(Scripted {
            seen: seen.clone(),
            artifact: artifact.clone(),
            big: big.clone(),
            png: dot,
        }),
        serve,
        async {
            let _ = stop_rx.await;
        },
    ));

    let (open, open_url) = start_gateway(competitor_addr, &[], &[], &work.join("open.log")).await;
    let (_keyed, keyed_url) = start_gateway(
        competitor_addr,
        &["--api-keys", "sk-ui-test", "--strict-models"],
        &[],
        &work.join("keyed.log"),
    )
    .await;

    let started = Instant::now();
    let mut command = tokio::process::Command::new(node);
    command
        .arg(ui_dir.join("run.mjs"))
        .current_dir(&ui_dir)
        .env("JANUS_UI_URL", &open_url)
        .env("JANUS_UI_KEYED_URL", &keyed_url)
        // The last scenario kills this gateway (started by this test) to lose a connection.
        .env("JANUS_UI_OPEN_PID", open.0.id().unwrap().to_string())
        .env("JANUS_UI_KEY", "sk-ui-test")
        .env("JANUS_UI_SCREENSHOTS", &screenshots)
        .env("JANUS_UI_UPLOAD", work.join("upload.png"))
        .env("JANUS_UI_UPLOAD_SHA256", hex(&Sha256::digest(&upload)))
        .env("JANUS_UI_ARTIFACT_SHA256", hex(&Sha256::digest(&artifact)))
        .env("JANUS_UI_BIG_SHA256", hex(&Sha256::digest(&big)))
        .env("JANUS_UI_DOWNLOADS", work.join("downloads"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Killed (by its pid) if the test gives up on it. Chromium, which Playwright starts
        // in a process group of its own, exits by itself when node is gone: its DevTools
        // pipe to node closes (checked by hand with SIGKILL on node).
        .kill_on_drop(true);
    let child = command.spawn().unwrap();
    let pid = child.id();
    let output =
        match tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await {
            Ok(output) => output.unwrap(),
            Err(_) => panic!("the browser script (pid {pid:?}) ran over 120 s"),
        };
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let logs = || {
        format!(
            "--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- gateway log (tail)\n{}",
            tail(&work.join("open.log"), 20)
        )
    };
    assert!(
        output.status.success(),
        "browser script failed:\n{}",
        logs()
    );
    for scenario in [
        "markdown renderer edge cases",
        "streams with a live reasoning panel",
        "copy button copies the code",
        "artifact download matches sha256",
        "uploaded image reaches the competitor",
        "upload limits are explained",
        "stop ends the stream",
        "injected html and script stay inert",
        "error event shown with retry",
        "keyboard: enter sends, shift+enter is a new line",
        "conversations survive a reload",
        "competitor picker remembered per conversation",
        "api key prompt works",
        "http error shown with retry",
        "phone width and dark mode",
        "lost connection shown with retry",
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("ok - {scenario}")),
            "scenario '{scenario}' did not pass:\n{}",
            logs()
        );
    }

    // What the competitor saw: the uploaded image, byte for byte.
    let images = seen.images.lock().unwrap().clone();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(decode_data_url(&images[0]), upload);
    assert!(images[0].starts_with("data:image/png;base64,"));
    // Stop reached the competitor: its handler was dropped, not run to the end.
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.cancelled.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen.cancelled.load(Ordering::SeqCst),
        1,
        "stop did not cancel the handler"
    );
    assert_eq!(seen.stalls_completed.load(Ordering::SeqCst), 0);
    // The retry after the error event was a second request.
    assert_eq!(seen.failures.load(Ordering::SeqCst), 2);
    let models = seen.models.lock().unwrap().clone();
    assert!(models.iter().any(|m| m == "other"), "{models:?}");
    // Bounded by the script's own 90 s watchdog; about 10 s on an idle machine.
    eprintln!("browser scenarios took {elapsed:?}");

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}
