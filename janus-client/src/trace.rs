//! `janus trace`: one request's story rebuilt from the JSON logs of every component.
//!
//! Every component logs flat JSON lines (janus-http's log shape) carrying `component`,
//! `request_id`, `trace_id`, `span_id` and `parent_span_id`. A hop is one component's
//! handling of one request (one `span_id`); hops link through `parent_span_id`, because
//! each hop sends the next its own span id as the `traceparent` parent. This module finds
//! the lines of a request or trace, groups them into hops, orders each hop's events, links
//! the hops into a tree and marks what failed and what is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};

/// One log line, parsed.
#[derive(Debug, Clone)]
struct Line {
    at: SystemTime,
    fields: Map<String, Value>,
}

impl Line {
    fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    fn num(&self, key: &str) -> Option<f64> {
        self.fields.get(key).and_then(Value::as_f64)
    }
}

/// One step of a hop, with its time.
#[derive(Debug, Clone, Serialize)]
pub struct TraceEvent {
    /// RFC 3339 time.
    pub at: String,
    /// Milliseconds since the trace's first event.
    pub offset_ms: f64,
    /// What happened (`accepted`, `first byte`, the log message, …).
    pub what: String,
    /// Selected fields (status, duration, tokens, sandbox, …).
    pub detail: BTreeMap<String, Value>,
    /// Whether this step is where something failed.
    pub failed: bool,
}

/// One component's handling of the request.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    /// `gateway`, `competitor`, `sandbox`, …
    pub component: String,
    /// This hop's span id.
    pub span_id: String,
    /// The caller's span id, when known.
    pub parent_span_id: Option<String>,
    /// The request id this hop logged.
    pub request_id: Option<String>,
    /// The competitor, when the hop names one.
    pub competitor: Option<String>,
    /// Milliseconds from the hop's first to its last event.
    pub duration_ms: f64,
    /// Whether a step of this hop failed.
    pub failed: bool,
    /// The steps, in time order.
    pub events: Vec<TraceEvent>,
    /// Hops this one called.
    pub children: Vec<Hop>,
}

/// The rebuilt story.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// What was asked for.
    pub query: String,
    /// The trace ids found.
    pub trace_ids: Vec<String>,
    /// Hops as a tree (roots first in time).
    pub hops: Vec<Hop>,
    /// Hops the story implies but no log shows (e.g. a gateway routed to a competitor
    /// whose logs are not among the inputs).
    pub missing: Vec<String>,
    /// Log lines read in all, and how many belonged to this request.
    pub lines_read: usize,
    /// Lines of this request.
    pub lines_matched: usize,
}

/// Why a trace could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// A log file or directory could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No line of the logs names the id.
    #[error("no log line names {query} (read {lines} lines from {files} files)")]
    NotFound {
        /// The id asked for.
        query: String,
        /// Lines read.
        lines: usize,
        /// Files read.
        files: usize,
    },
}

/// The log files under `paths`: files as given, directories scanned (not recursively) for
/// `*.log` and `*.jsonl`, sorted by name.
pub fn log_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, TraceError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| TraceError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| TraceError::Read {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|ext| ext == "log" || ext == "jsonl")
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn parse_line(text: &str) -> Option<Line> {
    let text = text.trim();
    if !text.starts_with('{') {
        return None;
    }
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let at = fields
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339(t).ok())?;
    Some(Line { at, fields })
}

/// Reads `files` and rebuilds the story of `query`, a request id or a trace id.
pub fn build(query: &str, files: &[PathBuf]) -> Result<Trace, TraceError> {
    let mut lines = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| TraceError::Read {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        lines.extend(text.lines().filter_map(parse_line));
    }
    let lines_read = lines.len();
    // A request id leads to its trace ids; a trace id is its own.
    let mut trace_ids: BTreeSet<String> = lines
        .iter()
        .filter(|l| l.str("request_id") == Some(query) || l.str("trace_id") == Some(query))
        .filter_map(|l| l.str("trace_id").map(str::to_owned))
        .collect();
    if trace_ids.is_empty() && query.len() == 32 {
        trace_ids.insert(query.to_owned());
    }
    let in_trace = |l: &Line| {
        l.str("request_id") == Some(query)
            || l.str("trace_id").is_some_and(|t| trace_ids.contains(t))
    };
    // Artifacts published in the trace are fetched later by requests of their own: their
    // download lines belong to this story too.
    let artifacts: BTreeSet<String> = lines
        .iter()
        .filter(|l| in_trace(l) && l.str("message") == Some("artifact published"))
        .filter_map(|l| l.str("artifact_id").map(str::to_owned))
        .collect();
    let mut matched: Vec<Line> = lines
        .into_iter()
        .filter(|l| in_trace(l) || l.str("artifact_id").is_some_and(|a| artifacts.contains(a)))
        .collect();
    if matched.is_empty() {
        return Err(TraceError::NotFound {
            query: query.to_owned(),
            lines: lines_read,
            files: files.len(),
        });
    }
    matched.sort_by_key(|l| l.at);
    let lines_matched = matched.len();
    let origin = matched
        .iter()
        .map(start_of)
        .min()
        .unwrap_or(SystemTime::UNIX_EPOCH);

    // Group into hops by span id (lines without one form a hop per component).
    let mut by_span: BTreeMap<String, Vec<Line>> = BTreeMap::new();
    for line in matched {
        let key = match line.str("span_id") {
            Some(span) => span.to_owned(),
            None => format!("component:{}", line.str("component").unwrap_or("unknown")),
        };
        by_span.entry(key).or_default().push(line);
    }
    let mut hops: Vec<Hop> = by_span
        .into_iter()
        .map(|(span, lines)| hop(span, &lines, origin))
        .collect();
    let missing = missing_hops(&hops);
    let hops = link(&mut hops);
    Ok(Trace {
        query: query.to_owned(),
        trace_ids: trace_ids.into_iter().collect(),
        hops,
        missing,
        lines_read,
        lines_matched,
    })
}

/// When the work a line reports began: a finishing line with `duration_ms` began that
/// long before it was written.
fn start_of(line: &Line) -> SystemTime {
    match line.num("duration_ms") {
        Some(ms) if line.str("message") == Some("request finished") && ms >= 0.0 => line
            .at
            .checked_sub(Duration::from_secs_f64(ms / 1000.0))
            .unwrap_or(line.at),
        _ => line.at,
    }
}

fn offset_ms(origin: SystemTime, at: SystemTime) -> f64 {
    at.duration_since(origin)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Fields shown beside an event; ids and bookkeeping fields are left out.
fn detail(line: &Line) -> BTreeMap<String, Value> {
    const HIDDEN: &[&str] = &[
        "timestamp",
        "level",
        "target",
        "message",
        "component",
        "request_id",
        "trace_id",
        "span_id",
        "parent_span_id",
        "correlation_id",
    ];
    line.fields
        .iter()
        .filter(|(k, v)| !HIDDEN.contains(&k.as_str()) && !v.is_null() && *v != "")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn failed(line: &Line) -> bool {
    let level = line.str("level").unwrap_or("");
    let bad_status = line.num("status").is_some_and(|s| s >= 400.0);
    let bad_outcome = line
        .str("outcome")
        .is_some_and(|o| o != "ok" && o != "stop" && !o.is_empty());
    level == "WARN" || level == "ERROR" || bad_status || bad_outcome
}

fn event(origin: SystemTime, at: SystemTime, what: &str, line: &Line, failed: bool) -> TraceEvent {
    TraceEvent {
        at: humantime::format_rfc3339_micros(at).to_string(),
        offset_ms: offset_ms(origin, at),
        what: what.to_owned(),
        // The steps expanded from one access line show its fields once, at the end.
        detail: if matches!(what, "accepted" | "competitor answered" | "first byte") {
            BTreeMap::new()
        } else {
            detail(line)
        },
        failed,
    }
}

fn hop(span: String, lines: &[Line], origin: SystemTime) -> Hop {
    let first = &lines[0];
    let pick = |key: &str| lines.iter().find_map(|l| l.str(key).map(str::to_owned));
    let component = pick("component").unwrap_or_else(|| "unknown".to_owned());
    let mut events = Vec::new();
    for line in lines {
        let message = line.str("message").unwrap_or("");
        // The gateway tells a whole request in its one access line: expand it.
        if component == "gateway" && message == "request finished" {
            let start = start_of(line);
            events.push(event(origin, start, "accepted", line, false));
            let at = |ms: f64| start + Duration::from_secs_f64(ms.max(0.0) / 1000.0);
            if let Some(ms) = line.num("upstream_ms") {
                events.push(event(origin, at(ms), "competitor answered", line, false));
            }
            if let Some(ms) = line.num("ttft_ms") {
                events.push(event(origin, at(ms), "first byte", line, false));
            }
            events.push(event(origin, line.at, "end", line, failed(line)));
            continue;
        }
        let what = if message.is_empty() { "log" } else { message };
        events.push(event(origin, line.at, what, line, failed(line)));
    }
    events.sort_by(|a, b| a.offset_ms.total_cmp(&b.offset_ms));
    let start = events.first().map_or(0.0, |e| e.offset_ms);
    let end = events.last().map_or(0.0, |e| e.offset_ms);
    Hop {
        component,
        span_id: if span.starts_with("component:") {
            String::new()
        } else {
            span
        },
        parent_span_id: first
            .str("parent_span_id")
            .map(str::to_owned)
            .or_else(|| pick("parent_span_id")),
        request_id: pick("request_id"),
        competitor: pick("competitor"),
        duration_ms: end - start,
        failed: events.iter().any(|e| e.failed),
        events,
        children: Vec::new(),
    }
}

/// Hops the logs imply but do not contain.
fn missing_hops(hops: &[Hop]) -> Vec<String> {
    let mut missing = Vec::new();
    let has = |component: &str| hops.iter().any(|h| h.component == component);
    for gateway in hops.iter().filter(|h| h.component == "gateway") {
        let routed = gateway.competitor.as_deref().filter(|c| *c != "none");
        if let Some(competitor) = routed {
            let answered = gateway
                .events
                .iter()
                .any(|e| e.what == "competitor answered" || e.what == "first byte");
            if answered && !has("competitor") {
                missing.push(format!(
                    "competitor '{competitor}': the gateway relayed its answer, but no log of it was given (pass its log with --logs)"
                ));
            }
        }
    }
    missing
}

/// Links hops into trees by `parent_span_id`; roots and siblings in time order.
fn link(hops: &mut Vec<Hop>) -> Vec<Hop> {
    let spans: BTreeSet<String> = hops.iter().map(|h| h.span_id.clone()).collect();
    let start = |h: &Hop| h.events.first().map_or(0.0, |e| e.offset_ms);
    hops.sort_by(|a, b| start(a).total_cmp(&start(b)));
    let (mut roots, mut rest): (Vec<Hop>, Vec<Hop>) = std::mem::take(hops)
        .into_iter()
        .partition(|h| h.parent_span_id.as_ref().is_none_or(|p| !spans.contains(p)));
    fn attach(node: &mut Hop, rest: &mut Vec<Hop>) {
        let (mine, others): (Vec<Hop>, Vec<Hop>) = std::mem::take(rest)
            .into_iter()
            .partition(|h| h.parent_span_id.as_deref() == Some(node.span_id.as_str()));
        *rest = others;
        node.children = mine;
        for child in &mut node.children {
            attach(child, rest);
        }
    }
    for root in &mut roots {
        attach(root, &mut rest);
    }
    // Anything left points at a parent that is itself orphaned: show it at the top.
    roots.extend(rest);
    roots
}

impl Trace {
    /// The story as an indented tree for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "trace {} ({} of {} log lines)\n",
            self.trace_ids.join(", "),
            self.lines_matched,
            self.lines_read
        ));
        fn render(out: &mut String, hop: &Hop, depth: usize) {
            let pad = "  ".repeat(depth);
            let mark = if hop.failed { "✗" } else { "•" };
            let mut title = format!("{pad}{mark} {}", hop.component);
            if let Some(competitor) = hop.competitor.as_deref().filter(|c| *c != "none") {
                title.push_str(&format!(" [{competitor}]"));
            }
            if let Some(id) = &hop.request_id {
                title.push_str(&format!(" request {id}"));
            }
            title.push_str(&format!(" — {:.1} ms", hop.duration_ms));
            out.push_str(&title);
            out.push('\n');
            for event in &hop.events {
                let flag = if event.failed {
                    "  ← failed here"
                } else {
                    ""
                };
                let detail: Vec<String> = event
                    .detail
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect();
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!("  {}", detail.join(" "))
                };
                out.push_str(&format!(
                    "{pad}    +{:>9.1} ms  {}{detail}{flag}\n",
                    event.offset_ms, event.what
                ));
            }
            for child in &hop.children {
                render(out, child, depth + 1);
            }
        }
        for hop in &self.hops {
            render(&mut out, hop, 0);
        }
        for missing in &self.missing {
            out.push_str(&format!("! missing: {missing}\n"));
        }
        out
    }
}

/// Where `janus up` writes its logs and `janus trace` looks by default:
/// `$JANUS_LOG_DIR`, else `$XDG_STATE_HOME/janus/logs`, else `~/.local/state/janus/logs`,
/// else a `janus-logs` folder in the temporary directory.
pub fn default_log_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("JANUS_LOG_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Path::new(&state).join("janus").join("logs");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return Path::new(&home)
            .join(".local")
            .join("state")
            .join("janus")
            .join("logs");
    }
    std::env::temp_dir().join("janus-logs")
}
