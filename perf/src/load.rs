//! Non-streaming load: closed loop (each worker sends its next request when the last one is
//! done) and open loop (requests are due at fixed times whether or not earlier ones finished).
//!
//! Open loop follows wrk2: a pacer thread releases request `i` at `start + i / rate` with
//! `thread::sleep` precision (tens of µs, where tokio's timer rounds to whole milliseconds),
//! idle workers take released requests in order, and latency is measured from the
//! *intended* send time. When the server falls behind, requests wait for a worker and that
//! wait is counted, so coordinated omission cannot hide the tail.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Mutex;

use crate::client::{CallError, Conn};

/// Where requests go and what they carry.
#[derive(Debug, Clone)]
pub struct Target {
    /// `gateway` or `direct`.
    pub name: &'static str,
    /// The server's address.
    pub addr: SocketAddr,
    /// The request body.
    pub body: Bytes,
    /// Length of the mock's reply, checked on every response.
    pub expect_len: usize,
    /// Longest a request may take before it counts as timed out.
    pub timeout: Duration,
}

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Latency of each successful request: from the intended send time in open loop, from
    /// the actual send in closed loop.
    pub latency_ns: Vec<u64>,
    /// From the actual send to the last byte (open loop; equals `latency_ns` in closed loop).
    pub service_ns: Vec<u64>,
    /// Requests that completed with the expected reply.
    pub completed: u64,
    /// Connection failures, non-200 statuses and wrong bodies.
    pub errors: u64,
    /// Requests that took longer than the target's timeout.
    pub timeouts: u64,
    /// Open loop: requests never sent because the run's hard stop had passed.
    pub late: u64,
    /// The first error, for the log.
    pub first_error: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl LoadResult {
    fn merge(&mut self, other: LoadResult) {
        self.latency_ns.extend(other.latency_ns);
        self.service_ns.extend(other.service_ns);
        self.completed += other.completed;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.late += other.late;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn record(&mut self, outcome: Result<Result<usize, CallError>, tokio::time::error::Elapsed>) {
        match outcome {
            Ok(Ok(_)) => self.completed += 1,
            Ok(Err(e)) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
            }
            Err(_) => {
                self.timeouts += 1;
                self.first_error
                    .get_or_insert_with(|| CallError::Timeout.to_string());
            }
        }
    }

    /// Completed requests per second of wall time.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.completed as f64 / secs
        } else {
            0.0
        }
    }
}

/// Opens `n` connections to `addr`.
pub async fn open_conns(addr: SocketAddr, n: usize) -> Result<Vec<Conn>, CallError> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::open(addr).await?);
    }
    Ok(conns)
}

/// Replaces a broken connection, retrying briefly; `None` if the server stays unreachable.
async fn revive(conn: Conn) -> Option<Conn> {
    if conn.is_usable() {
        return Some(conn);
    }
    let addr = conn.addr();
    for _ in 0..50 {
        if let Ok(fresh) = Conn::open(addr).await {
            return Some(fresh);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Closed loop: every connection sends back to back for `duration`.
pub async fn closed_loop(
    target: &Target,
    conns: Vec<Conn>,
    duration: Duration,
) -> (LoadResult, Vec<Conn>) {
    let start = Instant::now();
    let stop = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for conn in conns {
        let target = target.clone();
        tasks.spawn(async move {
            let mut result = LoadResult::default();
            let mut conn = Some(conn);
            while Instant::now() < stop {
                let Some(mut c) = conn.take() else { break };
                let sent = Instant::now();
                let outcome = tokio::time::timeout(
                    target.timeout,
                    c.complete(target.body.clone(), target.expect_len),
                )
                .await;
                let ok = matches!(outcome, Ok(Ok(_)));
                if ok {
                    let ns = nanos(sent.elapsed());
                    result.latency_ns.push(ns);
                    result.service_ns.push(ns);
                }
                result.record(outcome);
                conn = if ok {
                    Some(c)
                } else {
                    revive_after_error(c).await
                };
            }
            (result, conn)
        });
    }
    collect(tasks, start).await
}

/// After a failed or timed-out call the connection may be mid-request: start afresh.
async fn revive_after_error(conn: Conn) -> Option<Conn> {
    let addr = conn.addr();
    drop(conn);
    match Conn::open(addr).await {
        Ok(fresh) => Some(fresh),
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Conn::open(addr).await.ok()
        }
    }
}

async fn collect(
    mut tasks: tokio::task::JoinSet<(LoadResult, Option<Conn>)>,
    start: Instant,
) -> (LoadResult, Vec<Conn>) {
    let mut total = LoadResult::default();
    let mut conns = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((result, conn)) = joined {
            total.merge(result);
            if let Some(conn) = conn {
                conns.push(conn);
            }
        }
    }
    total.elapsed = start.elapsed();
    (total, conns)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Open loop at `rate` requests per second for `duration`, over `conns` connections.
/// Requests not sent by `duration + grace` are counted as late instead of sent.
pub async fn open_loop(
    target: &Target,
    conns: Vec<Conn>,
    rate: f64,
    duration: Duration,
    grace: Duration,
) -> (LoadResult, Vec<Conn>) {
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let start = Instant::now() + Duration::from_millis(2);
    let hard_stop = start + duration + grace;
    // The pacer is a plain thread: it sleeps with nanosleep precision and never blocks the
    // runtime. It ends after `total` sends, or early if the workers are gone.
    let pacer = std::thread::Builder::new()
        .name("perf-pacer".into())
        .spawn(move || {
            for i in 0..total {
                let intended = start + Duration::from_secs_f64(i as f64 / rate);
                let now = Instant::now();
                if intended > now {
                    std::thread::sleep(intended - now);
                }
                if tx.send(intended).is_err() {
                    break;
                }
            }
        });
    if pacer.is_err() {
        let result = LoadResult {
            errors: 1,
            first_error: Some("cannot start the pacer thread".into()),
            ..LoadResult::default()
        };
        return (result, conns);
    }
    let rx = Arc::new(Mutex::new(rx));
    let mut tasks = tokio::task::JoinSet::new();
    for conn in conns {
        let target = target.clone();
        let rx = rx.clone();
        tasks.spawn(async move {
            let mut result = LoadResult::default();
            let mut conn = Some(conn);
            loop {
                // The fair mutex hands released requests to idle workers in order.
                let next = rx.lock().await.recv().await;
                let Some(intended) = next else { break };
                if Instant::now() > hard_stop {
                    result.late += 1;
                    continue;
                }
                let Some(c) = conn.take() else {
                    result.errors += 1;
                    continue;
                };
                let Some(mut c) = revive(c).await else {
                    result.errors += 1;
                    result
                        .first_error
                        .get_or_insert_with(|| "server unreachable".into());
                    continue;
                };
                let sent = Instant::now();
                let outcome = tokio::time::timeout(
                    target.timeout,
                    c.complete(target.body.clone(), target.expect_len),
                )
                .await;
                let ok = matches!(outcome, Ok(Ok(_)));
                if ok {
                    let done = Instant::now();
                    result.latency_ns.push(nanos(done - intended));
                    result.service_ns.push(nanos(done - sent));
                }
                result.record(outcome);
                conn = if ok {
                    Some(c)
                } else {
                    revive_after_error(c).await
                };
            }
            (result, conn)
        });
    }
    collect(tasks, start).await
}
