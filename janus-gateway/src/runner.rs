//! The competitor runner: competitors the gateway launches instead of addresses.
//!
//! Each launched competitor runs in a sandbox created through the Sandy API (janus-sandbox
//! locally; the same calls drive a hosted Sandy that offers them): its `command` is the
//! sandbox's long-running service, with the limits asked for (`resources`), optionally an
//! unpacked image as its read-only root (`rootfs`), plain `env` values only. The gateway
//! reaches it through the sandbox's proxy route, so its base URL is
//! `<sandbox>/api/sandboxes/<id>/proxy/<port>` for as long as the sandbox lives; the only
//! endpoints it can reach are the ones the sandbox service forwards in (the platform).
//!
//! A supervisor per competitor streams its output into this gateway's log (tagged with the
//! competitor id), restarts it in the same sandbox when it exits — with a capped,
//! doubling backoff, counted in `janus_competitor_restarts_total` — keeps the sandbox's TTL
//! refreshed, and terminates the sandbox when the gateway stops.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::config::{CompetitorConfig, LaunchSpec};
use crate::metrics::Metrics;

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// How long a launched competitor has to answer `/health` before it is reported down.
pub const READY_WITHIN: Duration = Duration::from_secs(30);
/// First restart backoff; doubles up to [`MAX_BACKOFF`], and starts over after a run that
/// lasted longer than [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Sandbox TTL asked for, and how often it is refreshed.
const TTL_SECONDS: u64 = 3600;
const REFRESH_EVERY: Duration = Duration::from_secs(600);

/// A launched competitor.
#[derive(Debug, Clone)]
pub struct Launched {
    /// Competitor id.
    pub id: String,
    /// The sandbox it runs in.
    pub sandbox_id: String,
    /// Where the gateway reaches it (the sandbox's proxy route).
    pub url: String,
}

/// Why a launch failed; the message names the competitor and what the sandbox said.
#[derive(Debug, thiserror::Error)]
#[error("cannot launch competitor '{id}': {reason}")]
pub struct LaunchError {
    id: String,
    reason: String,
}

async fn call(
    client: &Client,
    method: http::Method,
    url: &str,
    body: Option<Value>,
) -> Result<(http::StatusCode, Bytes), String> {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(
            body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
        ))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .map_err(|_| "the sandbox service did not answer within 30 s".to_owned())?
        .map_err(|e| janus_core::error_chain(&e))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// The Sandy create call for `spec`; `platform_url` is announced in `JANUS_PLATFORM_URL`.
fn create_body(spec: &LaunchSpec, platform_url: Option<&str>) -> Value {
    let mut env: serde_json::Map<String, Value> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    // Where an SDK competitor listens unless its command says otherwise.
    env.entry("JANUS_LISTEN")
        .or_insert_with(|| Value::String(format!("127.0.0.1:{}", spec.port)));
    // The gateway's word on where its platform is wins over the config's.
    if let Some(url) = platform_url {
        env.insert("JANUS_PLATFORM_URL".into(), Value::String(url.to_owned()));
    }
    let mut resources = serde_json::Map::new();
    if let Some(cpu) = spec.resources.cpu {
        resources.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = spec.resources.memory_mb {
        resources.insert("memory_mb".into(), json!(memory));
    }
    if let Some(pids) = spec.resources.pids {
        resources.insert("pids".into(), json!(pids));
    }
    if let Some(disk) = spec.resources.disk_mb {
        resources.insert("disk_mb".into(), json!(disk));
    }
    let mut body = json!({
        "command": spec.command,
        "env": env,
        "resources": resources,
        "ttl_seconds": TTL_SECONDS,
        // A launched competitor is never preempted for other work.
        "preemptable": false,
        "priority": 0,
        "flavor": format!("competitor:{}", spec.id),
    });
    if let (Some(rootfs), Value::Object(map)) = (&spec.rootfs, &mut body) {
        map.insert("rootfs".into(), Value::String(rootfs.display().to_string()));
    }
    body
}

/// Creates each competitor's sandbox (its command starts at once) and returns where the
/// gateway reaches them. On a failure the sandboxes already created are terminated.
pub async fn launch(
    client: &Client,
    sandbox_url: &str,
    specs: &[LaunchSpec],
    platform_url: Option<&str>,
) -> Result<Vec<Launched>, LaunchError> {
    let mut launched: Vec<Launched> = Vec::new();
    for spec in specs {
        let fail = |reason: String| LaunchError {
            id: spec.id.clone(),
            reason,
        };
        let created = call(
            client,
            http::Method::POST,
            &format!("{sandbox_url}/api/sandboxes"),
            Some(create_body(spec, platform_url)),
        )
        .await;
        let sandbox_id = match created {
            Ok((status, body)) if status == http::StatusCode::CREATED => {
                serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["sandboxId"].as_str().map(str::to_owned))
                    .ok_or_else(|| fail("the sandbox service answered without a sandboxId".into()))
            }
            Ok((status, body)) => Err(fail(format!(
                "the sandbox service answered {status}: {}",
                String::from_utf8_lossy(&body)
            ))),
            Err(reason) => Err(fail(reason)),
        };
        let sandbox_id = match sandbox_id {
            Ok(id) => id,
            Err(error) => {
                terminate_all(client, sandbox_url, &launched).await;
                return Err(error);
            }
        };
        tracing::info!(competitor = %spec.id, sandbox = %sandbox_id, "competitor launched");
        launched.push(Launched {
            id: spec.id.clone(),
            url: format!(
                "{sandbox_url}/api/sandboxes/{sandbox_id}/proxy/{}",
                spec.port
            ),
            sandbox_id,
        });
    }
    Ok(launched)
}

/// The competitor entries the gateway routes to for `launched`.
pub fn competitor_configs(launched: &[Launched], specs: &[LaunchSpec]) -> Vec<CompetitorConfig> {
    launched
        .iter()
        .map(|l| {
            let spec = specs.iter().find(|s| s.id == l.id);
            CompetitorConfig {
                id: l.id.clone(),
                url: l.url.clone(),
                timeout: spec.and_then(|s| s.timeout),
                max_concurrent_requests: spec.and_then(|s| s.max_concurrent_requests),
                description: spec.and_then(|s| s.description.clone()),
            }
        })
        .collect()
}

async fn terminate_all(client: &Client, sandbox_url: &str, launched: &[Launched]) {
    for l in launched {
        let url = format!("{sandbox_url}/api/sandboxes/{}", l.sandbox_id);
        match call(client, http::Method::DELETE, &url, None).await {
            Ok((status, _)) if status.is_success() => {
                tracing::info!(competitor = %l.id, sandbox = %l.sandbox_id, "competitor stopped");
            }
            Ok((status, _)) => {
                tracing::warn!(competitor = %l.id, %status, "could not terminate the competitor's sandbox")
            }
            Err(reason) => {
                tracing::warn!(competitor = %l.id, %reason, "could not terminate the competitor's sandbox")
            }
        }
    }
}

/// Supervises `launched` until `stop` turns true, then terminates their sandboxes.
pub async fn supervise(
    client: Client,
    sandbox_url: String,
    launched: Vec<Launched>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = Vec::new();
    for competitor in &launched {
        tasks.push(tokio::spawn(supervise_one(
            client.clone(),
            sandbox_url.clone(),
            competitor.clone(),
            metrics.clone(),
        )));
    }
    let _ = stop.wait_for(|stop| *stop).await;
    for task in &tasks {
        task.abort();
    }
    terminate_all(&client, &sandbox_url, &launched).await;
}

async fn supervise_one(
    client: Client,
    sandbox_url: String,
    competitor: Launched,
    metrics: Arc<Metrics>,
) {
    let sandbox = format!("{sandbox_url}/api/sandboxes/{}", competitor.sandbox_id);
    let refresher = {
        let client = client.clone();
        let url = format!("{sandbox}/refresh");
        let id = competitor.id.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(REFRESH_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(reason) = call(
                    &client,
                    http::Method::POST,
                    &url,
                    Some(json!({"ttl_seconds": TTL_SECONDS})),
                )
                .await
                {
                    tracing::warn!(competitor = %id, %reason, "could not refresh the competitor's sandbox");
                }
            }
        })
    };
    tokio::spawn(report_readiness(client.clone(), competitor.clone()));
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = tokio::time::Instant::now();
        let exit = follow_logs(&client, &sandbox, &competitor.id).await;
        match exit {
            Follow::Exited(outcome) => {
                tracing::warn!(competitor = %competitor.id, %outcome, "competitor exited");
            }
            Follow::Gone(reason) => {
                tracing::error!(competitor = %competitor.id, %reason, "competitor's sandbox is gone; not restarting");
                break;
            }
        }
        if started.elapsed() > MAX_BACKOFF {
            backoff = FIRST_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        match call(
            &client,
            http::Method::POST,
            &format!("{sandbox}/service/restart"),
            Some(json!({})),
        )
        .await
        {
            Ok((status, _)) if status.is_success() => {
                metrics.competitor_restarted(&competitor.id);
                tracing::info!(competitor = %competitor.id, "competitor restarted");
            }
            Ok((status, body)) => {
                tracing::error!(competitor = %competitor.id, %status, answer = %String::from_utf8_lossy(&body), "could not restart the competitor");
                if status == http::StatusCode::NOT_FOUND || status == http::StatusCode::CONFLICT {
                    break;
                }
            }
            Err(reason) => {
                tracing::error!(competitor = %competitor.id, %reason, "could not restart the competitor");
            }
        }
    }
    refresher.abort();
}

/// Logs when the competitor first answers `/health`, or warns that it did not within
/// [`READY_WITHIN`] (the gateway's health probes report it down meanwhile, with the reason).
async fn report_readiness(client: Client, competitor: Launched) {
    let started = tokio::time::Instant::now();
    let url = format!("{}/health", competitor.url);
    let mut last = String::new();
    while started.elapsed() < READY_WITHIN {
        match call(&client, http::Method::GET, &url, None).await {
            Ok((status, _)) if status.is_success() => {
                tracing::info!(
                    competitor = %competitor.id,
                    ready_ms = started.elapsed().as_millis() as u64,
                    "launched competitor ready"
                );
                return;
            }
            Ok((status, _)) => last = format!("/health answered {status}"),
            Err(reason) => last = reason,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!(competitor = %competitor.id, reason = %last, "launched competitor not ready within 30 s");
}

enum Follow {
    /// The command exited (the service's own words).
    Exited(String),
    /// The sandbox no longer answers for it.
    Gone(String),
}

/// Streams the competitor's output into this log until it exits.
async fn follow_logs(client: &Client, sandbox: &str, id: &str) -> Follow {
    let request = match http::Request::get(format!("{sandbox}/logs?follow=true"))
        .body(Full::new(Bytes::new()))
    {
        Ok(request) => request,
        Err(e) => return Follow::Gone(e.to_string()),
    };
    let response = match client.request(request).await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => return Follow::Gone(format!("logs answered {}", response.status())),
        Err(e) => return Follow::Gone(janus_core::error_chain(&e)),
    };
    let mut body = response.into_body();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pending.extend_from_slice(&data);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let Ok(record) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    let stream = record["stream"].as_str().unwrap_or("");
                    let text = record["line"].as_str().unwrap_or("");
                    if stream == "exit" {
                        return Follow::Exited(text.to_owned());
                    }
                    tracing::info!(competitor = %id, stream, line = %text, "competitor output");
                }
            }
            Some(Err(e)) => return Follow::Gone(janus_core::error_chain(&e)),
            // Ended without an exit record: the sandbox went away.
            None => return Follow::Gone("the log stream ended".to_owned()),
        }
    }
}
