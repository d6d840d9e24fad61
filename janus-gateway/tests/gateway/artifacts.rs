//! Artifacts through the gateway: capability links minted on one replica and downloaded
//! through another, ranges, expiry and tampering, the security headers, and a 200 MB file
//! streamed through the gateway binary with its memory measured from /proc.

use std::io::{Seek as _, SeekFrom, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use janus_competitor_sdk::{
    async_trait, publish_artifact, ArtifactDescriptor, ChatCompletionRequest, Competitor,
    CompetitorError, EventWriter, RequestContext,
};
use janus_gateway::signing::SigningKeys;
use janus_gateway::{CompetitorConfig, Config};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::support::*;

const KEY: &str = "artifact-test-key-0123456789abcdefghijklmnop";
const API_KEY: &str = "sk-artifacts";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "janus-gw-artifacts-{}-{name}-{}",
        std::process::id(),
        janus_core::random_hex(4)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn key_file(dir: &std::path::Path, key: &str) -> PathBuf {
    let path = dir.join("platform.keys");
    std::fs::write(&path, format!("# test key\n{key}\n")).unwrap();
    path
}

/// Deterministic bytes that are not all alike, so a misplaced range shows.
fn pseudo_random(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A real SDK competitor that publishes one large artifact (a hostile-looking HTML file,
/// to check it is served as an inert attachment) and links it in its content.
struct Publisher {
    bytes: Arc<Vec<u8>>,
}

#[async_trait]
impl Competitor for Publisher {
    async fn handle(
        &self,
        _request: ChatCompletionRequest,
        _context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let artifact =
            publish_artifact(self.bytes.to_vec(), "rapport été <1>.html", "text/html").await?;
        out.content(&format!("Here it is: [report]({})", artifact.url))
            .await?;
        out.artifact(artifact).await?;
        Ok(())
    }
}

struct SdkCompetitor {
    url: String,
    dir: PathBuf,
    _stop: oneshot::Sender<()>,
}

async fn start_publisher(bytes: Arc<Vec<u8>>) -> SdkCompetitor {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dir = temp_dir("store");
    let mut config = janus_competitor_sdk::ServeConfig::default();
    config.artifact_dir = dir.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(janus_competitor_sdk::serve(
        listener,
        Arc::new(Publisher { bytes }),
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    SdkCompetitor {
        url,
        dir,
        _stop: stop,
    }
}

fn competitor(id: &str, url: &str) -> CompetitorConfig {
    CompetitorConfig {
        id: id.to_owned(),
        url: url.to_owned(),
        timeout: None,
        max_concurrent_requests: None,
        description: None,
    }
}

/// A gateway replica: the shared key file, API keys on, its own address as public URL.
async fn replica(competitors: Vec<CompetitorConfig>, keys: &std::path::Path) -> (Gateway, Config) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = test_config(competitors);
    config.signing_keys = Some(SigningKeys::from_file(keys).unwrap());
    config.public_url = Some(format!("http://{addr}"));
    config.api_keys = Some(janus_http::ApiKeys::parse(API_KEY).unwrap());
    (Gateway::start_on(listener, config.clone()), config)
}

fn get(path: &str, range: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::get(path).header("host", "gateway");
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.body(Full::new(Bytes::new())).unwrap()
}

/// The path part of a URL on `origin`.
fn path_of<'a>(url: &'a str, origin: &str) -> &'a str {
    url.strip_prefix(origin)
        .unwrap_or_else(|| panic!("{url} is not under {origin}"))
}

/// The capability and artifact id of a gateway artifact path.
fn split(path: &str) -> (String, String) {
    let rest = path.strip_prefix("/v1/artifacts/").unwrap();
    let (token, id) = rest.split_once('/').unwrap();
    (token.to_owned(), id.to_owned())
}

async fn chat_through(addr: SocketAddr) -> (String, ArtifactDescriptor) {
    let mut request = chat_request(&plain_body("maker"));
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {API_KEY}").parse().unwrap(),
    );
    let reply = call(addr, request).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let message = reply.json()["choices"][0]["message"].clone();
    let artifact: ArtifactDescriptor =
        serde_json::from_value(message["artifacts"][0].clone()).unwrap();
    (message["content"].as_str().unwrap().to_owned(), artifact)
}

async fn raw(addr: SocketAddr, target: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn an_artifact_minted_through_one_replica_downloads_through_another() {
    let size = 3_000_000;
    let bytes = Arc::new(pseudo_random(size));
    let sdk = start_publisher(bytes.clone()).await;
    let dir = temp_dir("replicas");
    let keys = key_file(&dir, KEY);
    let (a, config_a) = replica(vec![competitor("maker", &sdk.url)], &keys).await;
    let (b, _) = replica(vec![competitor("maker", &sdk.url)], &keys).await;
    let origin_a = config_a.public_base();

    let (content, artifact) = chat_through(a.addr).await;
    // Gateway URLs from the start, in the descriptor and in the markdown link alike.
    let prefix = format!("{origin_a}/v1/artifacts/");
    assert!(artifact.url.starts_with(&prefix), "{}", artifact.url);
    assert!(artifact.url.ends_with(&format!("/{}", artifact.id)));
    assert!(
        content.contains(&format!("({})", artifact.url)),
        "{content}"
    );
    assert_eq!(artifact.size_bytes, size as u64);

    // The capability binds the competitor and expires after the configured TTL (3600 s).
    let path = path_of(&artifact.url, &origin_a).to_owned();
    let (token, _) = split(&path);
    let payload = URL_SAFE_NO_PAD
        .decode(token.split_once('.').unwrap().0)
        .unwrap();
    let payload = String::from_utf8(payload).unwrap();
    let fields: Vec<&str> = payload.split('|').collect();
    assert_eq!(fields[2], "maker", "{payload}");
    let expires: u64 = fields[1].parse().unwrap();
    let now = janus_core::unix_now();
    assert!(
        (now + 3595..=now + 3600).contains(&expires),
        "{expires} vs {now}"
    );

    // Through B, without an API key: the capability is the credential.
    let whole = call(b.addr, get(&path, None)).await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    let body = whole.bytes();
    assert_eq!(body.len(), size);
    assert_eq!(
        hex(&Sha256::digest(&body)),
        artifact.sha256.clone().unwrap()
    );
    assert!(body == *bytes);
    let h = &whole.headers;
    assert_eq!(h["content-type"], "text/html");
    assert_eq!(h["content-length"], size.to_string().as_str());
    assert_eq!(h["x-artifact-id"], artifact.id.as_str());
    assert_eq!(h["x-artifact-size"], size.to_string().as_str());
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "sandbox");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"rapport _t_ _1_.html\"; \
         filename*=UTF-8''rapport%20%C3%A9t%C3%A9%20%3C1%3E.html"
    );

    // One byte range, forwarded to the competitor: 206 and exactly those bytes.
    let part = call(b.addr, get(&path, Some("bytes=1000000-1000999"))).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers["content-range"],
        "bytes 1000000-1000999/3000000"
    );
    assert_eq!(part.headers["content-length"], "1000");
    assert_eq!(part.headers["x-artifact-size"], "3000000");
    assert_eq!(part.headers["content-security-policy"], "sandbox");
    assert_eq!(part.bytes(), bytes[1_000_000..1_001_000]);
    let tail = call(a.addr, get(&path, Some("bytes=-17"))).await;
    assert_eq!(tail.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes(), bytes[size - 17..]);
    let past = call(b.addr, get(&path, Some("bytes=3000000-"))).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.headers["content-range"], "bytes */3000000");
    assert_eq!(past.json()["error"]["code"], "range_not_satisfiable");

    // HEAD: the same headers, no body.
    let head = call(
        b.addr,
        Request::head(&path)
            .header("host", "gateway")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], size.to_string().as_str());
    assert_eq!(head.headers["x-artifact-id"], artifact.id.as_str());
    assert!(head.bytes().is_empty());

    // Same capability, an id nobody published: 404. Another method: 405.
    let unknown = call(
        b.addr,
        get(
            &format!("/v1/artifacts/{token}/artf_0123456789abcdef0123456789abcdef"),
            None,
        ),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], "artifact_not_found");
    let post = call(
        b.addr,
        Request::post(&path)
            .header("host", "gateway")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET, HEAD");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&sdk.dir);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn tampered_forged_and_expired_capabilities_are_refused() {
    let bytes = Arc::new(pseudo_random(1_200_000));
    let sdk = start_publisher(bytes).await;
    let dir = temp_dir("tamper");
    let keys = key_file(&dir, KEY);
    let (gateway, config) = replica(vec![competitor("maker", &sdk.url)], &keys).await;
    let (_, artifact) = chat_through(gateway.addr).await;
    let path = path_of(&artifact.url, &config.public_base()).to_owned();
    let (token, id) = split(&path);
    assert_eq!(call(gateway.addr, get(&path, None)).await.status, 200);

    let (payload, signature) = token.split_once('.').unwrap();
    let mut flipped = signature.as_bytes().to_vec();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let longer = URL_SAFE_NO_PAD.encode(b"a1|99999999999|maker");
    let other_key = SigningKeys::from_lines("another-key-that-is-long-enough-0123456789")
        .unwrap()
        .sign("artifact", b"a1|99999999999|maker");
    let grant = SigningKeys::from_lines(KEY)
        .unwrap()
        .sign("grant", b"a1|99999999999|maker");
    for (why, bad) in [
        ("signature altered", format!("{payload}.{flipped}")),
        ("payload altered", format!("{longer}.{signature}")),
        ("signed with another key", other_key),
        ("a grant is not a capability", grant),
        ("not a token", "hello".to_owned()),
    ] {
        let reply = call(
            gateway.addr,
            get(&format!("/v1/artifacts/{bad}/{id}"), None),
        )
        .await;
        assert_eq!(reply.status, 403, "{why}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], "invalid_capability", "{why}");
        assert!(!reply.text().contains(&bad), "{why}: the token is echoed");
    }

    // Correctly signed but expired: 404 (indistinguishable from an artifact that is gone).
    let signer = SigningKeys::from_lines(KEY).unwrap();
    let now = janus_core::unix_now();
    let expired = signer.sign("artifact", format!("a1|{}|maker", now - 1).as_bytes());
    let reply = call(
        gateway.addr,
        get(&format!("/v1/artifacts/{expired}/{id}"), None),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "artifact_not_found");
    // The same shape with a future expiry works, so the 404 above is the expiry.
    let fresh = signer.sign("artifact", format!("a1|{}|maker", now + 60).as_bytes());
    let reply = call(
        gateway.addr,
        get(&format!("/v1/artifacts/{fresh}/{id}"), None),
    )
    .await;
    assert_eq!(reply.status, 200);
    // A valid capability for a competitor this replica does not have: 404.
    let elsewhere = signer.sign("artifact", format!("a1|{}|ghost", now + 60).as_bytes());
    let reply = call(
        gateway.addr,
        get(&format!("/v1/artifacts/{elsewhere}/{id}"), None),
    )
    .await;
    assert_eq!(reply.status, 404);

    // Ids that try to leave the competitor's /artifacts/ never reach it.
    for target in [
        format!("/v1/artifacts/{token}/../../v1/models"),
        format!("/v1/artifacts/{token}/..%2f..%2fhealth"),
        format!("/v1/artifacts/{token}/{id}/../{id}"),
        format!("/v1/artifacts/{token}/%2e%2e/health"),
        format!("/v1/artifacts/{token}/"),
        format!("/v1/artifacts/{token}//etc/passwd"),
        format!("/v1/artifacts/{token}/ARTF_00"),
        format!("/v1/artifacts/{id}"),
    ] {
        let response = raw(gateway.addr, &target).await;
        let status = response.lines().next().unwrap_or_default().to_owned();
        assert!(
            status.starts_with("HTTP/1.1 404") || status.starts_with("HTTP/1.1 400"),
            "{target}: {status}"
        );
        assert!(!response.contains("\"status\":\"ok\""), "{target}");
    }
    drop(gateway);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&sdk.dir);
}

#[tokio::test]
async fn the_artifact_ttl_setting_bounds_the_capability_and_links_name_the_bound_port() {
    let sdk = start_publisher(Arc::new(pseudo_random(1_100_000))).await;
    let dir = temp_dir("ttl");
    let keys = key_file(&dir, KEY);
    let mut config = test_config(vec![competitor("maker", &sdk.url)]);
    config.signing_keys = Some(SigningKeys::from_file(&keys).unwrap());
    config.artifact_ttl = Duration::from_secs(120);
    // No public URL: links name the port actually bound, not the configured listen address.
    let gateway = Gateway::start(config).await;
    let reply = call(gateway.addr, chat_request(&plain_body("maker"))).await;
    let url = reply.json()["choices"][0]["message"]["artifacts"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (token, _) = split(path_of(&url, &format!("http://{}", gateway.addr)));
    let payload = URL_SAFE_NO_PAD
        .decode(token.split_once('.').unwrap().0)
        .unwrap();
    let expires: u64 = String::from_utf8(payload)
        .unwrap()
        .split('|')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let now = janus_core::unix_now();
    assert!(
        (now + 115..=now + 120).contains(&expires),
        "{expires} vs {now}"
    );
    drop(gateway);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&sdk.dir);
}

// ---- 200 MB through the gateway binary --------------------------------------------------

const BIG: u64 = 200 * 1024 * 1024;
const BIG_ID: &str = "artf_00000000000000000000000000000b16";
/// Written into the otherwise sparse (all-zero) file, so position errors show.
const MARKERS: [(u64, &[u8]); 3] = [
    (0, b"JANUS-START"),
    (BIG / 2 + 12_345, b"JANUS-MIDDLE"),
    (BIG - 9, b"JANUS-END"),
];

/// Test double for a competitor serving one big stored file (the SDK would need the
/// 200 MB in memory to publish it): chat answers JSON and records the artifact base it was
/// given; `/artifacts/<BIG_ID>` streams the file from disk in 64 KiB pieces.
struct FileServer {
    addr: SocketAddr,
    bases: Arc<Mutex<Vec<String>>>,
    _stop: oneshot::Sender<()>,
}

type DoubleBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

fn file_body(path: PathBuf) -> DoubleBody {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    std::thread::spawn(move || {
        use std::io::Read as _;
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut piece = vec![0u8; 64 * 1024];
            match file.read(&mut piece) {
                Ok(0) => return,
                Ok(n) => {
                    piece.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(piece))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let frames = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece.map(Frame::data), rx))
    });
    StreamBody::new(frames).boxed_unsync()
}

async fn start_file_server(path: PathBuf) -> FileServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bases = Arc::new(Mutex::new(Vec::new()));
    let (stop, mut stopped) = oneshot::channel::<()>();
    let seen = bases.clone();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = &mut stopped => return,
            };
            let seen = seen.clone();
            let path = path.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let seen = seen.clone();
                    let path = path.clone();
                    async move {
                        let empty = || {
                            Full::new(Bytes::new())
                                .map_err(|n| match n {})
                                .boxed_unsync()
                        };
                        let mut response = Response::new(empty());
                        match request.uri().path() {
                            "/v1/chat/completions" => {
                                if let Some(base) = request.headers().get("x-janus-artifact-base") {
                                    seen.lock().unwrap().push(base.to_str().unwrap().to_owned());
                                }
                                *response.body_mut() =
                                    Full::new(Bytes::from_static(COMPLETION.as_bytes()))
                                        .map_err(|n| match n {})
                                        .boxed_unsync();
                                response
                                    .headers_mut()
                                    .insert("content-type", "application/json".parse().unwrap());
                            }
                            p if p == format!("/artifacts/{BIG_ID}") => {
                                if request.method() == http::Method::GET {
                                    *response.body_mut() = file_body(path);
                                }
                                let h = response.headers_mut();
                                h.insert(
                                    "content-type",
                                    "application/octet-stream".parse().unwrap(),
                                );
                                h.insert("content-length", BIG.into());
                                h.insert("x-artifact-size", BIG.into());
                                h.insert(
                                    "content-disposition",
                                    "attachment; filename=\"big.bin\"".parse().unwrap(),
                                );
                            }
                            "/health" => {}
                            _ => *response.status_mut() = StatusCode::NOT_FOUND,
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    FileServer {
        addr,
        bases,
        _stop: stop,
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Kills the gateway child (by its pid) when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_200_mb_artifact_streams_through_the_gateway_in_bounded_memory() {
    tokio::time::timeout(Duration::from_secs(180), two_hundred_megabytes())
        .await
        .expect("the 200 MB download took over 180 s");
}

async fn two_hundred_megabytes() {
    let dir = temp_dir("big");
    let file = dir.join(BIG_ID);
    {
        // Sparse: set_len allocates nothing; only the markers are written.
        let mut f = std::fs::File::create(&file).unwrap();
        f.set_len(BIG).unwrap();
        for (at, marker) in MARKERS {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(marker).unwrap();
        }
    }
    let competitor = start_file_server(file).await;
    let keys = key_file(&dir, KEY);
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_janus-gateway"));
    for (key, _) in std::env::vars() {
        if key.starts_with("JANUS_") {
            command.env_remove(key);
        }
    }
    let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
    let child = Child(
        command
            .args(["--listen", &addr.to_string()])
            .args(["--competitor", &format!("big=http://{}", competitor.addr)])
            .arg("--platform-key-file")
            .arg(&keys)
            .args(["--public-url", &format!("http://{addr}")])
            .env("JANUS_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "gateway never listened: {}",
            std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let reply = call(addr, chat_request(&plain_body("big"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let base = competitor.bases.lock().unwrap().last().cloned().unwrap();
    let path = format!("{}{BIG_ID}", path_of(&base, &format!("http://{addr}")));
    // Warm the artifact path (HEAD) so the baseline includes its code and connections.
    let head = call(
        addr,
        Request::head(&path)
            .header("host", "gateway")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], BIG.to_string().as_str());

    let (rss_before, hwm_before) = memory_kib(pid);
    let (response, _connection) = open(addr, get(&path, None)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        BIG.to_string().as_str()
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let mut body = response.into_body();
    let mut received: u64 = 0;
    let mut seen: Vec<Vec<u8>> = MARKERS.iter().map(|(_, m)| vec![0; m.len()]).collect();
    let mut peak_during = 0;
    let mut frames: u64 = 0;
    // Read and drop each frame: the test never holds the file either.
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame())
        .await
        .expect("download stalled for 30 s")
    {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        let (start, end) = (received, received + data.len() as u64);
        for ((at, marker), copy) in MARKERS.iter().zip(seen.iter_mut()) {
            let (m_start, m_end) = (*at, at + marker.len() as u64);
            let (from, to) = (start.max(m_start), end.min(m_end));
            if from < to {
                copy[(from - m_start) as usize..(to - m_start) as usize]
                    .copy_from_slice(&data[(from - start) as usize..(to - start) as usize]);
            }
        }
        received = end;
        frames += 1;
        if frames % 4096 == 0 {
            peak_during = peak_during.max(memory_kib(pid).0);
        }
    }
    let (rss_after, hwm_after) = memory_kib(pid);
    assert_eq!(received, BIG);
    for ((_, marker), copy) in MARKERS.iter().zip(&seen) {
        assert_eq!(copy.as_slice(), *marker);
    }
    // The peak after, against the resident size before: any transient buffering shows.
    let growth_kib = hwm_after.saturating_sub(rss_before);
    eprintln!(
        "200 MB download: {frames} frames in {:.1?}; gateway VmRSS {rss_before} -> \
         {rss_after} KiB (peak sampled {peak_during} KiB), VmHWM {hwm_before} -> {hwm_after} \
         KiB, growth {growth_kib} KiB",
        started.elapsed()
    );
    assert!(
        growth_kib < 20 * 1024,
        "gateway memory grew by {growth_kib} KiB streaming 200 MB \
         (VmRSS before {rss_before}, VmHWM after {hwm_after})"
    );
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_chat_request_carries_the_gateways_base_never_the_clients() {
    let sse = format!("{}data: [DONE]\n\n", chunk("hi"));
    let a = crate::support::Competitor::start(move |_, _| Script::sse(vec![send(&sse)])).await;
    let gateway = Gateway::start(test_config(vec![a.config("a")])).await;
    for body in [stream_body("a"), plain_body("a")] {
        let mut request = chat_request(&body);
        // A client cannot choose where a competitor's links point.
        request.headers_mut().insert(
            "x-janus-artifact-base",
            "http://elsewhere.example/".parse().unwrap(),
        );
        call(gateway.addr, request).await;
    }
    let requests = a.requests();
    assert_eq!(requests.len(), 2);
    let prefix = format!("http://{}/v1/artifacts/", gateway.addr);
    for request in &requests {
        let bases: Vec<_> = request
            .headers
            .get_all("x-janus-artifact-base")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(bases.len(), 1, "{bases:?}");
        assert!(
            bases[0].starts_with(&prefix) && bases[0].ends_with('/'),
            "{}",
            bases[0]
        );
    }
}
