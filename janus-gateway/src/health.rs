//! Background `/health` probes of every competitor.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde::Serialize;

use crate::config::CompetitorConfig;
use crate::metrics::Metrics;
use crate::upstream::{error_chain, HttpClient};

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The last probe result of one competitor.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// Competitor id.
    pub id: String,
    /// Whether `/health` answered 2xx.
    pub ready: bool,
    /// RFC 3339 time of the probe, absent before the first one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    /// Why it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Probe round trip in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// Readiness of all competitors, updated by [`spawn_probes`].
#[derive(Debug, Default)]
pub struct HealthState {
    by_id: RwLock<HashMap<String, Readiness>>,
}

impl HealthState {
    /// All competitors in configuration order.
    pub fn snapshot(&self, order: &[CompetitorConfig]) -> Vec<Readiness> {
        let map = self
            .by_id
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        order
            .iter()
            .map(|c| {
                map.get(&c.id).cloned().unwrap_or(Readiness {
                    id: c.id.clone(),
                    ready: false,
                    checked_at: None,
                    error: Some("not probed yet".to_owned()),
                    latency_ms: None,
                })
            })
            .collect()
    }

    fn set(&self, readiness: Readiness) {
        let mut map = self
            .by_id
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.insert(readiness.id.clone(), readiness);
    }
}

/// Probes one competitor once.
async fn probe(client: &HttpClient, competitor: &CompetitorConfig) -> Readiness {
    let started = std::time::Instant::now();
    let url = format!("{}{}", competitor.url, janus_core::contract::HEALTH_PATH);
    let outcome = match Request::get(url).body(Full::new(Bytes::new())) {
        Ok(request) => match tokio::time::timeout(PROBE_TIMEOUT, client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(format!("/health answered {}", response.status())),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err(format!("/health did not answer within {PROBE_TIMEOUT:?}")),
        },
        Err(e) => Err(e.to_string()),
    };
    Readiness {
        id: competitor.id.clone(),
        ready: outcome.is_ok(),
        checked_at: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
        error: outcome.err(),
        latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
    }
}

/// Starts one probe loop per competitor; they stop when `stop` resolves.
pub fn spawn_probes(
    client: HttpClient,
    competitors: Vec<CompetitorConfig>,
    interval: Duration,
    state: Arc<HealthState>,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    for competitor in competitors {
        let client = client.clone();
        let state = state.clone();
        let metrics = metrics.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stop.changed() => return,
                }
                let readiness = probe(&client, &competitor).await;
                metrics.set_competitor_up(&competitor.id, readiness.ready);
                if !readiness.ready {
                    tracing::debug!(competitor = %competitor.id, error = ?readiness.error, "competitor not ready");
                }
                state.set(readiness);
            }
        });
    }
}
