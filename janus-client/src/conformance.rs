//! The competitor conformance kit: checks a running competitor against the contract
//! (contract.md §2, §4, §5) and reports each check as pass or fail with a reason.
//!
//! How the kit keeps a competitor busy: the `keepalive_gap` and `reasoning_content` checks
//! send a research-style prompt with `"metadata": {"janus_check": "slow"}`. A competitor
//! that works on it for several seconds must keep the stream alive — intermediate
//! `reasoning_content` chunks or `: ping` comments — so that no gap between two things the
//! client receives exceeds 2 s; comments count. The artifact check asks for a file
//! ("make me a file …") and verifies every artifact returned.

use std::time::{Duration, Instant};

use bytes::Bytes;
use janus_core::contract::{
    CHAT_COMPLETIONS_PATH, HEALTH_PATH, MAX_GAP, MIN_CONCURRENCY, READINESS_TIMEOUT, TTFB_TARGET,
};
use janus_core::sse::{SseItem, DONE_DATA};
use janus_core::{data_url_decode, ArtifactDescriptor, JanusEvent};
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::{ClientError, EventStream, HttpClient};

/// What to check and how.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Base URL of the competitor, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Longest wait for any one request.
    pub timeout: Duration,
    /// A command that starts the competitor (split like a shell splits words, no shell is
    /// run; see [`split_command`](crate::split_command)); it must become ready within 30 s.
    pub launch: Option<String>,
    /// `model` sent in requests.
    pub model: String,
}

impl CheckOptions {
    /// Options with a 60 s timeout and no launch command.
    pub fn new(url: impl Into<String>) -> Self {
        CheckOptions {
            url: url.into().trim_end_matches('/').to_owned(),
            timeout: Duration::from_secs(60),
            launch: None,
            model: "janus-conformance".to_owned(),
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Check name.
    pub name: &'static str,
    /// Passed?
    pub passed: bool,
    /// Whether the overall result depends on it.
    pub required: bool,
    /// Why it passed or failed.
    pub detail: String,
    /// How long it took.
    pub duration_ms: f64,
}

/// All checks.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The competitor checked.
    pub target: String,
    /// True when every required check passed.
    pub passed: bool,
    /// True when the competitor could not be reached (or, launched, never became ready):
    /// the run stopped there, so `checks` ends with the check that found out.
    pub unreachable: bool,
    /// The checks, in order.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// A human-readable table.
    pub fn to_table(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!("{:<width$}  RESULT  DETAIL\n", "CHECK");
        for check in &self.checks {
            let result = if check.passed { "pass" } else { "FAIL" };
            out.push_str(&format!(
                "{:<width$}  {result:<6}  {}\n",
                check.name, check.detail
            ));
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| !c.passed && c.required)
            .count();
        if self.unreachable {
            out.push_str(&format!(
                "\n{} could not be reached: no further checks were run\n",
                self.target
            ));
        } else if failed == 0 {
            out.push_str(&format!(
                "\n{} conforms: {} checks passed\n",
                self.target,
                self.checks.len()
            ));
        } else {
            out.push_str(&format!(
                "\n{} does not conform: {failed} required check(s) failed\n",
                self.target
            ));
        }
        out
    }
}

type Outcome = Result<String, String>;

struct Kit {
    options: CheckOptions,
    client: HttpClient,
    checks: Vec<CheckResult>,
}

/// Runs every check against the competitor.
pub async fn run_checks(options: CheckOptions) -> Report {
    let mut kit = Kit {
        client: HttpClient::new(None),
        options,
        checks: Vec::new(),
    };
    // Held for the whole run; its whole process group is ended afterwards (or on drop).
    let mut launched = None;
    if let Some(command) = kit.options.launch.clone() {
        let started = Instant::now();
        let outcome = match crate::Launched::start(&command) {
            Ok(child) => {
                let outcome = kit.wait_ready(&child).await;
                launched = Some(child);
                outcome
            }
            Err(e) => Err(e),
        };
        let ready = outcome.is_ok();
        kit.record("launch_ready", true, started, outcome);
        if !ready {
            return kit.stop(launched, true).await;
        }
    }
    let health_started = Instant::now();
    let health = kit.health().await;
    let reached = !matches!(&health, Err((_, true)));
    kit.record("health", true, health_started, health.map_err(|(e, _)| e));
    if !reached {
        // Every other check would fail with the same connection error.
        return kit.stop(launched, true).await;
    }
    kit.timed("non_stream_shape", Kit::non_stream_shape).await;
    kit.timed("stream_shape", |kit| Box::pin(kit.stream_shape(false)))
        .await;
    kit.timed("include_usage", |kit| Box::pin(kit.stream_shape(true)))
        .await;
    let slow_started = Instant::now();
    let (gap, reasoning) = kit.slow_stream().await;
    kit.record("keepalive_gap", true, slow_started, gap);
    kit.record("reasoning_content", true, slow_started, reasoning);
    kit.timed("artifacts", Kit::artifacts).await;
    kit.timed("malformed_request", Kit::malformed_request).await;
    kit.timed("concurrency", Kit::concurrency).await;
    kit.stop(launched, false).await
}

type CheckFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>>;

impl Kit {
    /// Ends a launched competitor's whole process group and builds the report.
    async fn stop(self, launched: Option<crate::Launched>, unreachable: bool) -> Report {
        if let Some(launched) = launched {
            launched.stop(Duration::from_secs(3)).await;
        }
        let passed = !unreachable && self.checks.iter().all(|c| c.passed || !c.required);
        Report {
            target: self.options.url.clone(),
            passed,
            unreachable,
            checks: self.checks,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.options.url)
    }

    fn record(&mut self, name: &'static str, required: bool, started: Instant, outcome: Outcome) {
        let (passed, detail) = match outcome {
            Ok(detail) => (true, detail),
            Err(detail) => (false, detail),
        };
        self.checks.push(CheckResult {
            name,
            passed,
            required,
            detail,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
    }

    async fn timed(
        &mut self,
        name: &'static str,
        check: impl for<'a> FnOnce(&'a Kit) -> CheckFuture<'a>,
    ) {
        let started = Instant::now();
        let outcome = check(self).await;
        self.record(name, true, started, outcome);
    }

    fn body(&self, stream: bool, include_usage: bool, prompt: &str, extra: Value) -> Bytes {
        let mut body = json!({
            "model": self.options.model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": stream,
        });
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        if let (Value::Object(map), Value::Object(more)) = (&mut body, extra) {
            map.extend(more);
        }
        Bytes::from(body.to_string())
    }

    async fn wait_ready(&self, launched: &crate::Launched) -> Outcome {
        let started = Instant::now();
        while started.elapsed() < READINESS_TIMEOUT {
            if launched.has_exited() {
                return Err(format!(
                    "the launched command exited after {:.1} s without becoming ready",
                    started.elapsed().as_secs_f64()
                ));
            }
            if let Ok(response) = self
                .client
                .get(&self.url(HEALTH_PATH), Duration::from_secs(1))
                .await
            {
                if response.status.is_success() {
                    return Ok(format!(
                        "ready after {:.1} s",
                        started.elapsed().as_secs_f64()
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "/health did not answer 200 within {} s",
            READINESS_TIMEOUT.as_secs()
        ))
    }

    /// The error says whether the competitor was unreachable.
    async fn health(&self) -> Result<String, (String, bool)> {
        let response = self
            .client
            .get(&self.url(HEALTH_PATH), Duration::from_secs(5))
            .await
            .map_err(|e| (e.to_string(), e.is_unreachable()))?;
        self.health_body(response).map_err(|e| (e, false))
    }

    fn health_body(&self, response: crate::FullResponse) -> Outcome {
        if !response.status.is_success() {
            return Err(format!("GET /health answered {}", response.status));
        }
        let json = response.json().ok_or("GET /health did not answer JSON")?;
        match json.get("status").and_then(Value::as_str) {
            Some("ok") => Ok("GET /health answered status ok".to_owned()),
            other => Err(format!("GET /health status is {other:?}, expected \"ok\"")),
        }
    }

    fn non_stream_shape(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let body = self.body(false, false, "Say hello.", json!({}));
            let response = self
                .client
                .post_json(&self.url(CHAT_COMPLETIONS_PATH), body, self.options.timeout)
                .await
                .map_err(|e| e.to_string())?;
            if response.status != 200 {
                return Err(format!(
                    "answered {}: {}",
                    response.status,
                    summary(&response.body)
                ));
            }
            let json = response.json().ok_or("the body is not JSON")?;
            expect(
                json.get("object") == Some(&json!("chat.completion")),
                "object is not \"chat.completion\"",
            )?;
            expect(
                json.get("id").is_some_and(Value::is_string),
                "id is missing",
            )?;
            let choices = json
                .get("choices")
                .and_then(Value::as_array)
                .ok_or("choices is not an array")?;
            let first = choices.first().ok_or("choices is empty")?;
            expect(
                first["message"]["role"] == "assistant",
                "choices[0].message.role is not \"assistant\"",
            )?;
            expect(
                first.get("finish_reason").is_some_and(Value::is_string),
                "choices[0].finish_reason is missing",
            )?;
            for (i, choice) in choices.iter().enumerate() {
                required_nullable(choice, "logprobs", &format!("choices[{i}]"))?;
                required_nullable(
                    &choice["message"],
                    "refusal",
                    &format!("choices[{i}].message"),
                )?;
            }
            check_usage_not_null(&json)?;
            Ok(format!("chat.completion with {} choice(s)", choices.len()))
        })
    }

    async fn open_stream(&self, body: Bytes) -> Result<EventStream, String> {
        let stream = self
            .client
            .post_stream(&self.url(CHAT_COMPLETIONS_PATH), body, self.options.timeout)
            .await
            .map_err(|e| e.to_string())?;
        if stream.status != 200 {
            return Err(format!("answered {}", stream.status));
        }
        let content_type = stream
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("text/event-stream") {
            return Err(format!(
                "content-type is '{content_type}', expected text/event-stream"
            ));
        }
        Ok(stream)
    }

    /// Reads a whole stream, checking its shape as it goes.
    async fn read_stream(&self, mut stream: EventStream) -> Result<StreamSummary, String> {
        let mut summary = StreamSummary::default();
        let mut last_at = stream.head_at;
        summary.max_gap = stream.head_at;
        loop {
            let item = match stream.next(self.options.timeout).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(ClientError::Timeout { after, .. }) => {
                    return Err(format!(
                        "the stream went silent for {after:?} without ending"
                    ))
                }
                Err(e) => return Err(e.to_string()),
            };
            summary.first_item_at.get_or_insert(item.at);
            summary.last_item_at = Some(item.at);
            summary.max_gap = summary.max_gap.max(item.at.saturating_sub(last_at));
            last_at = item.at;
            if summary.done {
                return Err(format!("{} arrived after [DONE]", describe(&item.item)));
            }
            match item.item {
                SseItem::Comment(_) => summary.comments += 1,
                SseItem::Event(event) if event.data.trim() == DONE_DATA => summary.done = true,
                SseItem::Event(event) => summary.chunk(&event.data)?,
            }
        }
        summary.duration = stream.started.elapsed();
        if !summary.done {
            return Err("the stream ended without data: [DONE]".to_owned());
        }
        Ok(summary)
    }

    async fn stream_shape(&self, include_usage: bool) -> Outcome {
        let body = self.body(true, include_usage, "Say hello.", json!({}));
        let summary = self.read_stream(self.open_stream(body).await?).await?;
        expect(summary.chunks > 0, "no chunks before [DONE]")?;
        expect(
            summary.role_first,
            "the first chunk has no delta.role \"assistant\"",
        )?;
        let finish_at = summary
            .finish_at
            .ok_or("no chunk carries a finish_reason")?;
        if include_usage {
            let usage_at = summary
                .usage_at
                .ok_or("include_usage was asked but no chunk with choices: [] and usage came")?;
            expect(
                usage_at > finish_at,
                "the usage chunk came before the finish_reason chunk",
            )?;
            expect(summary.usage_chunks == 1, "more than one usage chunk")?;
            Ok(format!(
                "{} chunks, usage chunk last, one [DONE]",
                summary.chunks
            ))
        } else {
            expect(
                summary.usage_chunks == 0,
                "a usage chunk came although include_usage was not asked",
            )?;
            let first_byte = summary.first_item_at.unwrap_or_default();
            Ok(format!(
                "{} chunks, role first, finish_reason, one [DONE], nothing after; first byte after {:.2} s (target {} s)",
                summary.chunks,
                first_byte.as_secs_f64(),
                TTFB_TARGET.as_secs()
            ))
        }
    }

    /// One slow request: the largest gap, and whether reasoning came.
    async fn slow_stream(&self) -> (Outcome, Outcome) {
        let body = self.body(
            true,
            false,
            "Research this thoroughly, step by step, and report what you find: how do keep-alive comments keep server-sent event streams open through proxies?",
            json!({"metadata": {"janus_check": "slow"}}),
        );
        let summary = match self.open_stream(body).await {
            Ok(stream) => self.read_stream(stream).await,
            Err(e) => Err(e),
        };
        let summary = match summary {
            Ok(summary) => summary,
            Err(e) => return (Err(e.clone()), Err(e)),
        };
        let gap = if summary.max_gap <= MAX_GAP {
            Ok(format!(
                "max gap {:.2} s over {:.1} s ({} keep-alive comments)",
                summary.max_gap.as_secs_f64(),
                summary.duration.as_secs_f64(),
                summary.comments
            ))
        } else {
            Err(format!(
                "a gap of {:.2} s between events (limit 2 s) over {:.1} s",
                summary.max_gap.as_secs_f64(),
                summary.duration.as_secs_f64()
            ))
        };
        let reasoning = if summary.reasoning_chunks > 0 {
            Ok(format!(
                "{} reasoning_content chunk(s)",
                summary.reasoning_chunks
            ))
        } else {
            Err("no reasoning_content while working on a multi-step request".to_owned())
        };
        (gap, reasoning)
    }

    fn artifacts(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let body = self.body(
                true,
                false,
                "Please make me a file named conformance.txt that says hello from janus.",
                json!({}),
            );
            let summary = self.read_stream(self.open_stream(body).await?).await?;
            if summary.artifacts.is_empty() {
                return Err("no artifact came back for a request that asks for a file".to_owned());
            }
            for artifact in &summary.artifacts {
                let bytes = fetch_artifact(&self.client, artifact, self.options.timeout).await?;
                artifact.verify(&bytes).map_err(|e| {
                    format!(
                        "artifact {} ({}): {e}",
                        artifact.id,
                        artifact.url.chars().take(40).collect::<String>()
                    )
                })?;
            }
            Ok(format!(
                "{} artifact(s) verified (sha256, size)",
                summary.artifacts.len()
            ))
        })
    }

    fn malformed_request(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            for (body, what) in [
                (Bytes::from_static(b"{not json"), "a body that is not JSON"),
                (
                    Bytes::from(json!({"model": self.options.model, "messages": []}).to_string()),
                    "empty messages",
                ),
            ] {
                let response = self
                    .client
                    .post_json(&self.url(CHAT_COMPLETIONS_PATH), body, self.options.timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                if response.status != 400 {
                    return Err(format!("{what} got {}, expected 400", response.status));
                }
                let json = response
                    .json()
                    .ok_or_else(|| format!("{what}: the 400 body is not JSON"))?;
                let error = json
                    .get("error")
                    .ok_or_else(|| format!("{what}: no error envelope"))?;
                expect(
                    error.get("message").is_some_and(Value::is_string),
                    "error.message missing",
                )?;
                expect(
                    error.get("type").is_some_and(Value::is_string),
                    "error.type missing",
                )?;
            }
            Ok("400 with an error envelope for bad JSON and empty messages".to_owned())
        })
    }

    fn concurrency(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            // The contract's minimum: MIN_CONCURRENCY requests served at the same time.
            let intervals =
                futures_util::future::join_all((0..MIN_CONCURRENCY).map(|_| self.busy_interval()))
                    .await
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()?;
            let latest_start = intervals.iter().map(|i| i.0).max();
            let earliest_end = intervals.iter().map(|i| i.1).min();
            let overlap = match (latest_start, earliest_end) {
                (Some(start), Some(end)) => end.saturating_duration_since(start),
                _ => Duration::ZERO,
            };
            // A server that takes requests one at a time may still show a sliver of
            // overlap from scheduling; real concurrency overlaps for most of the work.
            if overlap >= Duration::from_millis(50) {
                Ok(format!(
                    "{MIN_CONCURRENCY} requests overlapped for {:.2} s",
                    overlap.as_secs_f64()
                ))
            } else {
                Err(format!(
                    "{MIN_CONCURRENCY} concurrent requests did not overlap: requests are served one at a time"
                ))
            }
        })
    }

    /// One slow streaming request: from its first item to its last.
    async fn busy_interval(&self) -> Result<(Instant, Instant), String> {
        let body = self.body(
            true,
            false,
            "Research step by step: why do event streams need keep-alives?",
            json!({"metadata": {"janus_check": "slow"}}),
        );
        let stream = self.open_stream(body).await?;
        let started = stream.started;
        let summary = self.read_stream(stream).await?;
        let first = summary.first_item_at.unwrap_or(summary.duration);
        let last = summary.last_item_at.unwrap_or(summary.duration);
        Ok((started + first, started + last))
    }
}

/// The bytes behind an artifact's URL: decoded `data:` or fetched over http.
pub async fn fetch_artifact(
    client: &HttpClient,
    artifact: &ArtifactDescriptor,
    timeout: Duration,
) -> Result<Bytes, String> {
    if artifact.url.starts_with("data:") {
        return data_url_decode(&artifact.url)
            .map(|d| Bytes::from(d.bytes))
            .map_err(|e| format!("artifact {}: {e}", artifact.id));
    }
    let response = client
        .get(&artifact.url, timeout)
        .await
        .map_err(|e| format!("artifact {}: {e}", artifact.id))?;
    if !response.status.is_success() {
        return Err(format!(
            "artifact {}: GET {} answered {}",
            artifact.id, artifact.url, response.status
        ));
    }
    Ok(response.body)
}

fn expect(condition: bool, message: &str) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(message.to_owned())
    }
}

fn summary(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(160)])
        .trim()
        .to_owned()
}

fn describe(item: &SseItem) -> String {
    match item {
        SseItem::Comment(text) => format!("a comment ': {text}'"),
        SseItem::Event(event) => format!(
            "an event '{}'",
            event.data.chars().take(60).collect::<String>()
        ),
    }
}

/// A field OpenAI's spec marks required and nullable: present, `null` when it has no value
/// (the official SDKs type it as non-optional; `undefined` breaks `!== null` checks).
fn required_nullable(object: &Value, key: &str, at: &str) -> Result<(), String> {
    if object.get(key).is_some() {
        Ok(())
    } else {
        Err(format!(
            "{at}.{key} is missing (required and nullable: send null when there is none)"
        ))
    }
}

fn check_usage_not_null(json: &Value) -> Result<(), String> {
    match json.get("usage") {
        Some(Value::Null) => {
            Err("\"usage\": null (omit the key when there is no usage)".to_owned())
        }
        Some(Value::Object(usage)) => {
            for key in ["prompt_tokens", "completion_tokens", "total_tokens"] {
                expect(
                    usage.get(key).is_some_and(Value::is_u64),
                    &format!("usage.{key} is not a count"),
                )?;
            }
            Ok(())
        }
        Some(_) => Err("usage is not an object".to_owned()),
        None => Ok(()),
    }
}

#[derive(Debug, Default)]
struct StreamSummary {
    chunks: usize,
    comments: usize,
    role_first: bool,
    saw_choices: bool,
    finish_at: Option<usize>,
    usage_at: Option<usize>,
    usage_chunks: usize,
    reasoning_chunks: usize,
    artifacts: Vec<ArtifactDescriptor>,
    id: Option<String>,
    done: bool,
    max_gap: Duration,
    first_item_at: Option<Duration>,
    last_item_at: Option<Duration>,
    duration: Duration,
}

impl StreamSummary {
    fn chunk(&mut self, data: &str) -> Result<(), String> {
        let json: Value = serde_json::from_str(data).map_err(|e| {
            format!(
                "a data event is not JSON ({e}): {}",
                data.chars().take(80).collect::<String>()
            )
        })?;
        if let Some(error) = json.get("error") {
            return Err(format!("the stream carried an error event: {error}"));
        }
        expect(
            json.get("object") == Some(&json!("chat.completion.chunk")),
            "a chunk's object is not \"chat.completion.chunk\"",
        )?;
        check_usage_not_null(&json)?;
        let id = json
            .get("id")
            .and_then(Value::as_str)
            .ok_or("a chunk has no id")?;
        match &self.id {
            None => self.id = Some(id.to_owned()),
            Some(first) if first != id => {
                return Err(format!("chunk ids differ: '{first}' then '{id}'"))
            }
            Some(_) => {}
        }
        let choices = json
            .get("choices")
            .and_then(Value::as_array)
            .ok_or("a chunk has no choices array")?;
        let index = self.chunks;
        self.chunks += 1;
        if choices.is_empty() {
            if json.get("usage").is_some_and(Value::is_object) {
                self.usage_at = Some(index);
                self.usage_chunks += 1;
            }
            return Ok(());
        }
        if !self.saw_choices {
            self.saw_choices = true;
            self.role_first = choices[0]["delta"]["role"] == "assistant";
        }
        for (i, choice) in choices.iter().enumerate() {
            required_nullable(choice, "finish_reason", &format!("a chunk's choices[{i}]"))?;
            let delta = &choice["delta"];
            if delta
                .get("reasoning_content")
                .and_then(Value::as_str)
                .is_some_and(|r| !r.is_empty())
            {
                self.reasoning_chunks += 1;
            }
            if let Some(event) = delta.get("janus") {
                if let Ok(event) = serde_json::from_value::<JanusEvent>(event.clone()) {
                    self.artifacts.extend(event.artifact_items());
                }
            }
            if choice.get("finish_reason").is_some_and(Value::is_string) {
                self.finish_at = Some(index);
            }
        }
        Ok(())
    }
}
