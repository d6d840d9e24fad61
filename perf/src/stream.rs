//! The streaming client: TTFT, every inter-chunk gap, per-chunk relay latency (the mock's
//! send stamp against our receive time, same host, same clock), chunk counts and stalls; and
//! the idle-stream holder that watches keep-alives on thousands of silent streams.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{watch, Notify, Semaphore};

use crate::client::{CallError, Conn, Event, SseSplitter};
use crate::wire::{self, StreamPlan};

/// What one round of concurrent streams measured.
#[derive(Debug, Clone, Default)]
pub struct StreamRound {
    /// Request sent → first content chunk, per stream.
    pub ttft_ns: Vec<u64>,
    /// Gap between consecutive content chunks.
    pub gap_ns: Vec<u64>,
    /// Mock's send stamp → our receipt, per content chunk.
    pub relay_ns: Vec<u64>,
    /// Streams that delivered every chunk, the usage chunk and `[DONE]`.
    pub streams_ok: u64,
    /// Content chunks received.
    pub chunks: u64,
    /// Gaps between any two events longer than twice the chunk interval.
    pub stalls: u64,
    /// Longest gap between any two events, any stream.
    pub max_gap_ns: u64,
    /// Streams that failed or came back incomplete.
    pub errors: u64,
    /// The first error.
    pub first_error: Option<String>,
}

impl StreamRound {
    fn merge(&mut self, other: StreamRound) {
        self.ttft_ns.extend(other.ttft_ns);
        self.gap_ns.extend(other.gap_ns);
        self.relay_ns.extend(other.relay_ns);
        self.streams_ok += other.streams_ok;
        self.chunks += other.chunks;
        self.stalls += other.stalls;
        self.max_gap_ns = self.max_gap_ns.max(other.max_gap_ns);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs one stream per connection, starting them `stagger` apart, and waits for all.
pub async fn stream_round(
    conns: Vec<Conn>,
    plan: StreamPlan,
    stagger: Duration,
    timeout: Duration,
) -> (StreamRound, Vec<Conn>) {
    let body = Bytes::from(wire::stream_request(&plan, true));
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, conn) in conns.into_iter().enumerate() {
        let body = body.clone();
        let at = start + stagger * u32::try_from(i).unwrap_or(u32::MAX);
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            let mut round = StreamRound::default();
            let mut conn = conn;
            let outcome = tokio::time::timeout(timeout, one_stream(&mut conn, body, plan)).await;
            let ok = match outcome {
                Ok(Ok(stream)) => {
                    round.merge(stream);
                    true
                }
                Ok(Err(e)) => {
                    round.errors += 1;
                    round.first_error = Some(e.to_string());
                    false
                }
                Err(_) => {
                    round.errors += 1;
                    round.first_error = Some("stream timed out".into());
                    false
                }
            };
            let conn = if ok && conn.is_usable() {
                Some(conn)
            } else {
                Conn::open(conn.addr()).await.ok()
            };
            (round, conn)
        });
    }
    let mut total = StreamRound::default();
    let mut back = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((round, conn)) = joined {
            total.merge(round);
            back.extend(conn);
        }
    }
    (total, back)
}

async fn one_stream(
    conn: &mut Conn,
    body: Bytes,
    plan: StreamPlan,
) -> Result<StreamRound, CallError> {
    let mut round = StreamRound::default();
    let sent = Instant::now();
    let response = conn.stream(body).await?;
    let mut body: Incoming = response.into_body();
    let stall = Duration::from_micros(plan.interval_us * 2);
    let mut splitter = SseSplitter::default();
    let mut events = Vec::new();
    let mut last_event = Instant::now();
    let mut last_content: Option<Instant> = None;
    let (mut contents, mut usage, mut done) = (0u32, false, false);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CallError::Io(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let now = Instant::now();
        let wall = wire::wall_ns();
        splitter.feed(&data, &mut events);
        for event in events.drain(..) {
            let gap = now - last_event;
            last_event = now;
            round.max_gap_ns = round.max_gap_ns.max(nanos(gap));
            if gap > stall {
                round.stalls += 1;
            }
            match event {
                Event::Comment => {}
                Event::Done => done = true,
                Event::Error => return Err(CallError::Body("error event in the stream".into())),
                Event::Chunk { seq, sent_ns } => {
                    if seq == 0 {
                        continue;
                    }
                    if seq > u64::from(plan.chunks) {
                        usage = true;
                        continue;
                    }
                    contents += 1;
                    round.chunks += 1;
                    round.relay_ns.push(wall.saturating_sub(sent_ns));
                    match last_content {
                        None => round.ttft_ns.push(nanos(now - sent)),
                        Some(previous) => round.gap_ns.push(nanos(now - previous)),
                    }
                    last_content = Some(now);
                }
            }
        }
    }
    if contents != plan.chunks || !usage || !done || splitter.pending() != 0 {
        return Err(CallError::Body(format!(
            "incomplete stream: {contents}/{} chunks, usage {usage}, [DONE] {done}",
            plan.chunks
        )));
    }
    round.streams_ok = 1;
    Ok(round)
}

/// Per-stream observations of an idle stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdleStats {
    /// Longest silence the client saw, including the one before the stream was closed.
    pub max_gap_ns: u64,
    /// Silences longer than 2 s.
    pub gaps_over_2s: u64,
    /// Keep-alive comments received.
    pub keepalives: u64,
    /// The stream failed (open error, early end, error event).
    pub failed: bool,
}

/// Many open idle streams, each watched by its own task until [`IdleSet::close`].
#[derive(Debug)]
pub struct IdleSet {
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<IdleStats>,
    /// Streams whose response headers arrived.
    pub opened: usize,
    /// Streams that could not be opened.
    pub failed: usize,
    /// How long opening took.
    pub open_time: Duration,
    /// The first error while opening.
    pub first_error: Option<String>,
}

/// Outcome of a closed [`IdleSet`].
#[derive(Debug, Clone, Copy, Default)]
pub struct IdleOutcome {
    /// Largest gap over all streams.
    pub max_gap_ns: u64,
    /// Gaps over 2 s, all streams.
    pub gaps_over_2s: u64,
    /// Keep-alives received, all streams.
    pub keepalives: u64,
    /// Streams that failed while held.
    pub failed: u64,
    /// Streams watched.
    pub streams: u64,
}

impl IdleSet {
    /// Opens `n` idle streams to `addr`, at most `concurrency` opening at once, and returns
    /// once every one has its response headers or has failed (or `open_timeout` passed).
    pub async fn open(
        addr: SocketAddr,
        n: usize,
        concurrency: usize,
        open_timeout: Duration,
    ) -> IdleSet {
        let plan = StreamPlan {
            chunks: 0,
            interval_us: 0,
            idle: true,
            hold_ms: 120_000,
        };
        let body = Bytes::from(wire::stream_request(&plan, false));
        let (stop, stop_rx) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        let opened = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
        let progress = Arc::new(Notify::new());
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (body, gate, opened, failed, first_error, progress, mut stop_rx) = (
                body.clone(),
                gate.clone(),
                opened.clone(),
                failed.clone(),
                first_error.clone(),
                progress.clone(),
                stop_rx.clone(),
            );
            tasks.spawn(async move {
                let mut stats = IdleStats::default();
                let permit = gate.acquire_owned().await;
                let response = async {
                    let mut conn = Conn::open(addr).await?;
                    let response = conn.stream(body).await?;
                    Ok::<_, CallError>((conn, response))
                }
                .await;
                drop(permit);
                let (_conn, response) = match response {
                    Ok(ok) => ok,
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert_with(|| e.to_string());
                        }
                        progress.notify_one();
                        stats.failed = true;
                        return stats;
                    }
                };
                opened.fetch_add(1, Ordering::Relaxed);
                progress.notify_one();
                watch_idle(response.into_body(), &mut stop_rx, &mut stats).await;
                stats
            });
        }
        let deadline = tokio::time::Instant::now() + open_timeout;
        while opened.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
            if tokio::time::timeout_at(deadline, progress.notified())
                .await
                .is_err()
            {
                break;
            }
        }
        let first_error = first_error.lock().ok().and_then(|slot| slot.clone());
        IdleSet {
            stop,
            tasks,
            opened: opened.load(Ordering::Relaxed),
            failed: failed.load(Ordering::Relaxed),
            open_time: started.elapsed(),
            first_error,
        }
    }

    /// Closes every stream (dropping the connections) and sums what the watchers saw.
    pub async fn close(mut self) -> IdleOutcome {
        let _ = self.stop.send(true);
        let mut outcome = IdleOutcome::default();
        while let Some(joined) = self.tasks.join_next().await {
            let Ok(stats) = joined else {
                outcome.failed += 1;
                continue;
            };
            outcome.streams += 1;
            outcome.max_gap_ns = outcome.max_gap_ns.max(stats.max_gap_ns);
            outcome.gaps_over_2s += stats.gaps_over_2s;
            outcome.keepalives += stats.keepalives;
            outcome.failed += u64::from(stats.failed);
        }
        outcome
    }
}

async fn watch_idle(mut body: Incoming, stop: &mut watch::Receiver<bool>, stats: &mut IdleStats) {
    let limit = Duration::from_secs(2);
    let mut splitter = SseSplitter::default();
    let mut events = Vec::new();
    let mut last = Instant::now();
    let note_gap = |stats: &mut IdleStats, now: Instant, last: Instant| {
        let gap = now - last;
        stats.max_gap_ns = stats.max_gap_ns.max(nanos(gap));
        if gap > limit {
            stats.gaps_over_2s += 1;
        }
    };
    loop {
        tokio::select! {
            frame = body.frame() => {
                let now = Instant::now();
                let data = match frame {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(_) => continue,
                    },
                    _ => {
                        // The stream ended or broke while it should have stayed open.
                        stats.failed = true;
                        note_gap(stats, now, last);
                        return;
                    }
                };
                splitter.feed(&data, &mut events);
                for event in events.drain(..) {
                    note_gap(stats, now, last);
                    last = now;
                    match event {
                        Event::Comment => stats.keepalives += 1,
                        _ => stats.failed = true,
                    }
                }
            }
            _ = stop.wait_for(|stop| *stop) => {
                // The silence up to the moment we hang up counts too.
                note_gap(stats, Instant::now(), last);
                return;
            }
        }
    }
}
