//! `egress-probe`: a competitor that answers each chat with a JSON report of what it can
//! reach and use from where it runs. Launched by the gateway's runner, it is the egress
//! and limits proof (`janus-cli/tests/cli/egress.rs`); run it under `janus up --launch` to
//! see what your own competitor will find inside its sandbox.
//!
//! The last user message is a JSON command:
//!
//! - `{"probe": "reach", "connect": ["127.0.0.1:PORT", …]}`: a TCP connect to each address
//!   (nothing is sent), the network interfaces (`/proc/net/dev`), the routes
//!   (`/proc/net/route`, `/proc/net/ipv6_route`), the listening sockets, whether a name
//!   resolves, and one platform inference call through `JANUS_PLATFORM_URL` with the
//!   request's grant.
//! - `{"probe": "memory", "mb": N}`: allocates and touches N MiB, then frees them.
//! - `{"probe": "fork", "count": N}`: starts up to N sleeping children, reports how many
//!   started before the first failure, then ends them.
//! - `{"probe": "spin", "threads": T, "ms": M}`: T threads spin for M ms of wall time;
//!   reports the CPU time the process got and its share of one core.
//!
//! It only ever connects to the addresses it is given and to its platform URL.

use std::time::{Duration, Instant};

use janus_competitor_sdk::janus_core::PlatformAccess;
use janus_competitor_sdk::{
    async_trait, ChatCompletionRequest, Competitor, CompetitorError, EventWriter, Platform,
    RequestContext, RunError,
};
use serde_json::{json, Value};

/// argv[1] of a child the fork probe starts: sleep, then exit.
const CHILD_FLAG: &str = "--egress-probe-child";

struct Probe;

#[async_trait]
impl Competitor for Probe {
    async fn handle(
        &self,
        request: ChatCompletionRequest,
        context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        let text = request.last_user_text().unwrap_or_default();
        let command: Value = serde_json::from_str(&text).map_err(|e| {
            CompetitorError::BadRequest(format!("the prompt must be a JSON probe command: {e}"))
        })?;
        let report = match command["probe"].as_str() {
            Some("reach") => reach(&command, &context).await,
            Some("memory") => {
                let mb = command["mb"].as_u64().unwrap_or(0);
                tokio::task::spawn_blocking(move || memory(mb))
                    .await
                    .map_err(|e| CompetitorError::Internal(e.to_string()))?
            }
            Some("fork") => {
                let count = command["count"].as_u64().unwrap_or(0);
                tokio::task::spawn_blocking(move || fork(count))
                    .await
                    .map_err(|e| CompetitorError::Internal(e.to_string()))?
            }
            Some("spin") => {
                let threads = command["threads"].as_u64().unwrap_or(1).clamp(1, 16);
                let ms = command["ms"].as_u64().unwrap_or(1000).min(10_000);
                tokio::task::spawn_blocking(move || spin(threads, ms))
                    .await
                    .map_err(|e| CompetitorError::Internal(e.to_string()))?
            }
            _ => {
                return Err(CompetitorError::BadRequest(
                    "probe must be one of reach, memory, fork, spin".into(),
                ))
            }
        };
        out.content(&report.to_string()).await?;
        Ok(())
    }
}

/// What the network looks like from here.
async fn reach(command: &Value, context: &RequestContext) -> Value {
    let mut connect = serde_json::Map::new();
    for address in command["connect"].as_array().into_iter().flatten() {
        let Some(address) = address.as_str() else {
            continue;
        };
        let outcome = match tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            Ok(Ok(_)) => "connected".to_owned(),
            Ok(Err(e)) => format!("failed: {e}"),
            Err(_) => "failed: timed out".to_owned(),
        };
        connect.insert(address.to_owned(), Value::String(outcome));
    }
    let platform_url = std::env::var("JANUS_PLATFORM_URL").ok();
    let platform = match (&platform_url, &context.platform) {
        (Some(url), Some(access)) => {
            let platform = Platform::new(
                PlatformAccess::new(url.clone(), access.grant().to_owned()),
                &context.request_id,
            );
            match platform
                .chat(&json!({"model": "probe", "messages": [{"role": "user", "content": "ping"}]}))
                .await
            {
                Ok(answer) => {
                    json!({"ok": true, "answer": answer["choices"][0]["message"]["content"]})
                }
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            }
        }
        (None, _) => json!({"ok": false, "error": "JANUS_PLATFORM_URL is not set"}),
        (_, None) => json!({"ok": false, "error": "the request carries no platform grant"}),
    };
    let resolve = match tokio::net::lookup_host("janus-egress-probe.invalid:80").await {
        Ok(addresses) => format!("resolved: {:?}", addresses.collect::<Vec<_>>()),
        Err(e) => format!("failed: {e}"),
    };
    json!({
        "platform_url": platform_url,
        "platform": platform,
        "connect": connect,
        "interfaces": interfaces(),
        "routes_v4": routes_v4(),
        "routes_v6": routes_v6(),
        "listening": listening(),
        "resolve": resolve,
    })
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Interface names of this network namespace.
fn interfaces() -> Vec<String> {
    read("/proc/net/dev")
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// IPv4 routes: `device destination/mask` per entry.
fn routes_v4() -> Vec<String> {
    read("/proc/net/route")
        .lines()
        .skip(1)
        .map(|line| {
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// IPv6 routes that do not go through the loopback interface.
fn routes_v6() -> Vec<String> {
    read("/proc/net/ipv6_route")
        .lines()
        .filter(|line| line.split_whitespace().last() != Some("lo"))
        .map(str::to_owned)
        .collect()
}

/// Listening TCP sockets, as `address:port` (IPv4, hex decoded).
fn listening() -> Vec<String> {
    read("/proc/net/tcp")
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // State 0A is LISTEN.
            if fields.get(3) != Some(&"0A") {
                return None;
            }
            let (address, port) = fields.get(1)?.split_once(':')?;
            let address = u32::from_str_radix(address, 16).ok()?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(format!(
                "{}:{port}",
                std::net::Ipv4Addr::from(u32::from_be(address))
            ))
        })
        .collect()
}

/// Allocates and touches `mb` MiB, one page at a time.
fn memory(mb: u64) -> Value {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mb {
        let mut block = vec![0u8; 1 << 20];
        for byte in block.iter_mut().step_by(4096) {
            *byte = 1;
        }
        blocks.push(block);
    }
    let touched = blocks.len();
    drop(blocks);
    json!({"allocated_mb": touched})
}

/// Starts up to `count` sleeping children; ends them before answering.
fn fork(count: u64) -> Value {
    let mut children = Vec::new();
    let mut error = None;
    for _ in 0..count {
        match std::process::Command::new("/proc/self/exe")
            .arg(CHILD_FLAG)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(child) => children.push(child),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let spawned = children.len();
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    json!({"spawned": spawned, "error": error})
}

/// This thread's time on a CPU so far, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `threads` threads spin for `ms` of wall time; each reads its own CPU time before it
/// ends (a finished thread leaves `/proc/self/task`).
fn spin(threads: u64, ms: u64) -> Value {
    let started = Instant::now();
    let until = started + Duration::from_millis(ms);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let before = thread_cpu_ns();
                let mut x = 0u64;
                while Instant::now() < until {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                thread_cpu_ns().saturating_sub(before)
            })
        })
        .collect();
    let cpu: u64 = workers.into_iter().filter_map(|w| w.join().ok()).sum();
    let wall = started.elapsed();
    json!({
        "threads": threads,
        "wall_ms": wall.as_millis() as u64,
        "cpu_ms": cpu / 1_000_000,
        "share": cpu as f64 / wall.as_nanos().max(1) as f64,
    })
}

fn main() -> Result<(), RunError> {
    // A fork-probe child is one process and one pid: no runtime, no threads.
    if std::env::args().nth(1).as_deref() == Some(CHILD_FLAG) {
        std::thread::sleep(Duration::from_secs(60));
        return Ok(());
    }
    serve()
}

#[tokio::main]
async fn serve() -> Result<(), RunError> {
    janus_competitor_sdk::run(Probe).await
}
