//! Process plumbing every Janus binary shares: the runtime, the shutdown signal, the log
//! format and the log setup.

use std::io::IsTerminal;

/// Tokio's own setting for the number of worker threads.
pub const WORKER_THREADS_ENV: &str = "TOKIO_WORKER_THREADS";

/// The Tokio runtime a server binary runs on. With one worker (`TOKIO_WORKER_THREADS=1`,
/// or one CPU) it is a current-thread runtime: a multi-thread runtime with a single worker
/// still pays for work stealing and cross-thread wake-ups it never uses, about 15 % of the
/// gateway's CPU per request (perf/REPORT.md). Otherwise Tokio's multi-thread runtime with
/// that many workers. A bad `TOKIO_WORKER_THREADS` is an error naming it (Tokio would
/// panic).
pub fn server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let setting = std::env::var(WORKER_THREADS_ENV).ok();
    let workers = worker_count(setting.as_deref(), cpus)?;
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder.enable_all().build()
}

/// Workers asked for by `setting` (the value of `TOKIO_WORKER_THREADS`), else one per CPU.
fn worker_count(setting: Option<&str>, cpus: usize) -> std::io::Result<usize> {
    match setting {
        None => Ok(cpus.max(1)),
        Some(value) => match value.trim().parse::<usize>() {
            Ok(workers) if workers > 0 => Ok(workers),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{WORKER_THREADS_ENV} must be a positive whole number, not {value:?}"),
            )),
        },
    }
}

/// Resolves when the process gets SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}

/// Log line format of every binary: `--log-format json|pretty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

impl LogFormat {
    /// The default when nothing is configured: JSON when stderr is not a terminal (a log
    /// collector is reading), human lines on a terminal.
    pub fn detect() -> LogFormat {
        if std::io::stderr().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        }
    }

    /// `configured`, else [`LogFormat::detect`].
    pub fn or_detect(configured: Option<LogFormat>) -> LogFormat {
        configured.unwrap_or_else(LogFormat::detect)
    }
}

/// Installs the global tracing subscriber on stderr (`RUST_LOG` filters, default `info`):
/// flat JSON lines (see [`json_subscriber`]), or compact human lines, coloured only on a
/// terminal. Does nothing if a subscriber is already installed.
pub fn init_logging(format: LogFormat) {
    init_logging_with_file(format, None);
}

/// [`init_logging`], and every line also as JSON into `file` when given (what `janus up
/// --log-dir` writes and `janus trace` reads, whatever the terminal shows).
pub fn init_logging_with_file(format: LogFormat, file: Option<std::fs::File>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    let (buffer, buffer_error) = match log_buffer_from_env() {
        Ok(bytes) => (bytes, None),
        Err(error) => (None, Some(error)),
    };
    // Buffered or not, each writer keeps its concrete type (no box per line).
    let stderr_json =
        (format == LogFormat::Json && buffer.is_none()).then(|| json_layer(std::io::stderr));
    let stderr_json_buffered = buffer
        .filter(|_| format == LogFormat::Json)
        .map(|capacity| json_layer(BufferedLines::new(std::io::stderr(), capacity).make_writer()));
    let stderr_pretty = (format == LogFormat::Pretty).then(|| {
        tracing_subscriber::fmt::layer()
            .compact()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
    });
    let (file, file_buffered) = match (file, buffer) {
        (Some(file), Some(capacity)) => (
            None,
            Some(json_layer(BufferedLines::new(file, capacity).make_writer())),
        ),
        (Some(file), None) => (Some(json_layer(std::sync::Arc::new(file))), None),
        (None, _) => (None, None),
    };
    // Span export is on exactly when an OTLP endpoint is configured; a bad setting is
    // reported once logging works and export stays off (telemetry never stops a server).
    let (otel, otel_error) = match crate::otel::OtlpConfig::from_env() {
        Ok(Some(config)) => (Some(crate::otel::layer(config)), None),
        Ok(None) => (None, None),
        Err(error) => (None, Some(error)),
    };
    let subscriber = tracing_subscriber::registry()
        .with(env_filter())
        .with(stderr_json)
        .with(stderr_json_buffered)
        .with(stderr_pretty)
        .with(file)
        .with(file_buffered)
        .with(otel);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        if let Some(error) = otel_error {
            tracing::warn!(%error, "OpenTelemetry export is off");
        }
        if let Some(error) = buffer_error {
            tracing::warn!(%error, "log lines are written unbuffered");
        }
    }
}

/// `JANUS_LOG_BUFFER`: buffer JSON log lines up to this many bytes (`65536`, `64k`,
/// `1m`) before writing them, as nginx's `access_log … buffer=`; unset or `0`: every line
/// is written at once. Buffered lines are written when the buffer fills, every second,
/// at once for a warning or an error (after what came before it), and by
/// [`flush_logs`] at exit.
pub const LOG_BUFFER_ENV: &str = "JANUS_LOG_BUFFER";

/// Largest accepted `JANUS_LOG_BUFFER`.
const MAX_LOG_BUFFER: usize = 16 * 1024 * 1024;

fn log_buffer_from_env() -> Result<Option<usize>, String> {
    match std::env::var(LOG_BUFFER_ENV) {
        Ok(value) if !value.trim().is_empty() => parse_log_buffer(&value),
        _ => Ok(None),
    }
}

fn parse_log_buffer(value: &str) -> Result<Option<usize>, String> {
    let text = value.trim().to_ascii_lowercase();
    let (digits, unit) = match text.strip_suffix('k') {
        Some(digits) => (digits, 1024),
        None => match text.strip_suffix('m') {
            Some(digits) => (digits, 1024 * 1024),
            None => (text.as_str(), 1),
        },
    };
    let bytes = digits
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| *n <= MAX_LOG_BUFFER)
        .ok_or_else(|| {
            format!("{LOG_BUFFER_ENV} must be a size up to 16m (65536, 64k, 1m), got '{value}'")
        })?;
    Ok((bytes > 0).then_some(bytes))
}

/// Buffers that [`flush_logs`] and the once-a-second flusher write out.
static LOG_BUFFERS: std::sync::Mutex<Vec<std::sync::Arc<dyn FlushLines>>> =
    std::sync::Mutex::new(Vec::new());

trait FlushLines: Send + Sync {
    fn flush_lines(&self);
}

/// Writes every buffered log line now (binaries call it as they exit).
pub fn flush_logs() {
    let buffers = match LOG_BUFFERS.lock() {
        Ok(buffers) => buffers.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for buffer in buffers {
        buffer.flush_lines();
    }
}

/// Log lines gathered in memory and written to `sink` in large writes.
struct BufferedLines<W> {
    state: std::sync::Mutex<(Vec<u8>, W)>,
    capacity: usize,
}

impl<W: std::io::Write + Send + 'static> BufferedLines<W> {
    fn new(sink: W, capacity: usize) -> std::sync::Arc<Self> {
        let buffer = std::sync::Arc::new(BufferedLines {
            state: std::sync::Mutex::new((Vec::with_capacity(capacity), sink)),
            capacity,
        });
        let mut buffers = match LOG_BUFFERS.lock() {
            Ok(buffers) => buffers,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buffers.is_empty() {
            // One flusher thread for the process: a line waits at most about a second.
            let _ = std::thread::Builder::new()
                .name("janus-log-flush".into())
                .spawn(|| loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    flush_logs();
                });
        }
        buffers.push(buffer.clone());
        buffer
    }

    fn append(&self, bytes: &[u8], urgent: bool) -> std::io::Result<()> {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (buffer, sink) = &mut *state;
        buffer.extend_from_slice(bytes);
        if urgent || buffer.len() >= self.capacity {
            let written = sink.write_all(buffer);
            buffer.clear();
            written?;
        }
        Ok(())
    }
}

impl<W: std::io::Write + Send + 'static> FlushLines for BufferedLines<W> {
    fn flush_lines(&self) {
        let _ = self.append(&[], true);
    }
}

impl<W: std::io::Write + Send + 'static> BufferedLines<W> {
    fn make_writer(self: std::sync::Arc<Self>) -> BufferedMakeWriter<W> {
        BufferedMakeWriter(self)
    }
}

struct BufferedMakeWriter<W>(std::sync::Arc<BufferedLines<W>>);

impl<'a, W: std::io::Write + Send + 'static> tracing_subscriber::fmt::MakeWriter<'a>
    for BufferedMakeWriter<W>
{
    type Writer = BufferedLine<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        BufferedLine {
            buffer: &self.0,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        BufferedLine {
            buffer: &self.0,
            // A warning or an error is written at once, with everything before it.
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}

/// One line's writer into a [`BufferedLines`].
struct BufferedLine<'a, W> {
    buffer: &'a BufferedLines<W>,
    urgent: bool,
}

impl<W: std::io::Write + Send + 'static> std::io::Write for BufferedLine<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.append(bytes, self.urgent)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// The JSON log shape of every Janus component, writing to `writer`: one object per line
/// with `timestamp`, `level`, `target`, the fields of every enclosing span (outermost
/// first, so a request's `component`, `request_id`, `trace_id`, `span_id`,
/// `parent_span_id` and `competitor` sit at the top level of each of its lines) and the
/// event's own fields (`message` included). `janus trace` reads exactly this.
pub fn json_subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    tracing_subscriber::registry()
        .with(filter)
        .with(json_layer(writer))
}

fn json_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer as _;
    // Span fields are kept as JSON values once (SpanFieldsLayer), not formatted into a
    // string per span and parsed back per line: the fmt layer's own field formatting is
    // turned off.
    SpanFieldsLayer.and_then(
        tracing_subscriber::fmt::layer()
            .fmt_fields(NoFields)
            .event_format(FlatJson)
            .with_writer(writer),
    )
}

/// A span's fields, serialized once as JSON object members when recorded, in the span's
/// extensions; each line of the span copies them as they are.
#[derive(Default)]
struct SpanFields(Members);

impl SpanFields {
    /// Adds newly recorded fields; a field recorded again replaces its member instead of
    /// repeating the key.
    fn merge(&mut self, added: Members) {
        for (name, range) in added.members {
            let member = &added.json[range];
            match self.0.members.iter().position(|(n, _)| *n == name) {
                None => self.0.push_member(name, member),
                // Rare (a field recorded twice): rebuild with the new member in place.
                Some(index) => {
                    let old = std::mem::take(&mut self.0);
                    for (i, (n, r)) in old.members.iter().enumerate() {
                        let kept = if i == index {
                            member
                        } else {
                            &old.json[r.clone()]
                        };
                        self.0.push_member(n, kept);
                    }
                }
            }
        }
    }
}

/// Fields of an event or a span, serialized as JSON object members into one string.
#[derive(Default)]
struct Members {
    json: String,
    members: Vec<(&'static str, std::ops::Range<usize>)>,
}

impl Members {
    /// Appends an already serialized member (`"name":value`).
    fn push_member(&mut self, name: &'static str, member: &str) {
        let start = self.json.len();
        self.json.push_str(member);
        self.members.push((name, start..self.json.len()));
    }

    fn push(&mut self, field: &tracing::field::Field, value: impl FnOnce(&mut String)) {
        let start = self.json.len();
        write_json_str(&mut self.json, field.name());
        self.json.push(':');
        value(&mut self.json);
        self.members.push((field.name(), start..self.json.len()));
    }

    fn has(&self, name: &str) -> bool {
        self.members.iter().any(|(n, _)| *n == name)
    }
}

impl tracing::field::Visit for Members {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.push(field, |out| write_json_str(out, value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.push(field, |out| {
            out.push_str(if value { "true" } else { "false" })
        });
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.push(field, |out| {
            let _ = std::fmt::Write::write_fmt(out, format_args!("{value}"));
        });
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.push(field, |out| {
            let _ = std::fmt::Write::write_fmt(out, format_args!("{value}"));
        });
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        // As serde_json writes numbers: NaN and infinities are null, whole numbers keep
        // a fraction (`0.0`).
        self.push(field, |out| match serde_json::Number::from_f64(value) {
            Some(number) => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("{number}"));
            }
            None => out.push_str("null"),
        });
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.push(field, |out| {
            let mut escaper = JsonStr(out);
            escaper.0.push('"');
            let _ = std::fmt::Write::write_fmt(&mut escaper, format_args!("{value:?}"));
            escaper.0.push('"');
        });
    }
}

/// Writes `text` as a JSON string (quoted, escaped).
fn write_json_str(out: &mut String, text: &str) {
    out.push('"');
    let _ = std::fmt::Write::write_str(&mut JsonStr(out), text);
    out.push('"');
}

/// A `fmt::Write` that escapes what it is given as the inside of a JSON string.
struct JsonStr<'a>(&'a mut String);

impl std::fmt::Write for JsonStr<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let bytes = text.as_bytes();
        // Ids, names and numbers (nearly every value logged) need no escape: one scan
        // the compiler vectorizes, one copy.
        if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
            self.0.push_str(text);
            return Ok(());
        }
        let mut clean = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.push_str(&text[clean..i]);
            if escape.is_empty() {
                let _ = std::fmt::Write::write_fmt(self.0, format_args!("\\u{byte:04x}"));
            } else {
                self.0.push_str(escape);
            }
            clean = i + 1;
        }
        self.0.push_str(&text[clean..]);
        Ok(())
    }
}

/// Records every span's fields into [`SpanFields`].
struct SpanFieldsLayer;

impl<S> tracing_subscriber::Layer<S> for SpanFieldsLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if extensions.get_mut::<SpanFields>().is_none() {
            let mut added = Members::default();
            attrs.record(&mut added);
            let mut fields = SpanFields::default();
            fields.merge(added);
            extensions.insert(fields);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
                let mut added = Members::default();
                values.record(&mut added);
                fields.merge(added);
            }
        }
    }
}

/// A field formatter that formats nothing (span fields live in [`SpanFields`]).
struct NoFields;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for NoFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: tracing_subscriber::fmt::format::Writer<'writer>,
        _fields: R,
    ) -> std::fmt::Result {
        Ok(())
    }
}

/// The event formatter behind [`json_subscriber`]: writes the line directly (no JSON
/// value tree), span members copied as serialized; a field of the event, or of an inner
/// span, wins over an outer span's field of the same name.
struct FlatJson;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for FlatJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut event_fields = Members::default();
        event.record(&mut event_fields);
        let metadata = event.metadata();
        let mut line = String::with_capacity(256 + event_fields.json.len());
        line.push_str("{\"timestamp\":\"");
        std::fmt::Write::write_fmt(
            &mut line,
            format_args!(
                "{}",
                humantime::format_rfc3339_micros(std::time::SystemTime::now())
            ),
        )?;
        line.push_str("\",\"level\":\"");
        line.push_str(metadata.level().as_str());
        line.push_str("\",\"target\":");
        write_json_str(&mut line, metadata.target());
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<_> = scope.from_root().collect();
            for (depth, span) in spans.iter().enumerate() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<SpanFields>() else {
                    continue;
                };
                let overridden = |name: &str| {
                    event_fields.has(name)
                        || spans[depth + 1..].iter().any(|inner| {
                            inner
                                .extensions()
                                .get::<SpanFields>()
                                .is_some_and(|f| f.0.has(name))
                        })
                };
                for (name, range) in &fields.0.members {
                    if !overridden(name) {
                        line.push(',');
                        line.push_str(&fields.0.json[range.clone()]);
                    }
                }
            }
        }
        for (_, range) in &event_fields.members {
            line.push(',');
            line.push_str(&event_fields.json[range.clone()]);
        }
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// Records an event's or a span's fields into a JSON object (log lines, exported spans).
pub(crate) struct JsonVisitor<'a>(pub(crate) &'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn lines(captured: &Captured) -> Vec<Value> {
        String::from_utf8(captured.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn one_worker_means_a_current_thread_runtime_and_bad_counts_are_named() {
        assert_eq!(super::worker_count(None, 2).unwrap(), 2);
        assert_eq!(super::worker_count(None, 0).unwrap(), 1);
        assert_eq!(super::worker_count(Some("1"), 8).unwrap(), 1);
        assert_eq!(super::worker_count(Some(" 4 "), 1).unwrap(), 4);
        for bad in ["0", "-1", "two", ""] {
            let error = super::worker_count(Some(bad), 2).unwrap_err();
            assert!(
                error.to_string().contains("TOKIO_WORKER_THREADS"),
                "{error}"
            );
        }
        // The process's own setting: the flavour follows the count.
        let runtime = super::server_runtime().unwrap();
        let flavor = runtime.handle().runtime_flavor();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers =
            super::worker_count(std::env::var("TOKIO_WORKER_THREADS").ok().as_deref(), cpus)
                .unwrap();
        let expected = if workers == 1 {
            tokio::runtime::RuntimeFlavor::CurrentThread
        } else {
            tokio::runtime::RuntimeFlavor::MultiThread
        };
        assert_eq!(flavor, expected);
    }

    #[test]
    fn lines_are_flat_json_with_span_fields_and_the_event_winning() {
        let captured = Captured::default();
        let subscriber =
            super::json_subscriber(tracing_subscriber::EnvFilter::new("info"), captured.clone());
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "request",
                component = "gateway",
                request_id = "req-1",
                competitor = tracing::field::Empty
            );
            let _outer = outer.enter();
            outer.record("competitor", "echo");
            // Recorded twice: the member is replaced, not repeated.
            outer.record("competitor", "mock");
            let inner = tracing::info_span!("call", request_id = "req-inner", attempt = 2u64);
            let _inner = inner.enter();
            tracing::info!(
                competitor = "event-wins",
                text = "quote \" backslash \\ newline \n tab \t bell \u{7} é",
                ratio = 0.5,
                whole = 3.0,
                nan = f64::NAN,
                negative = -7i64,
                flag = true,
                debugged = ?vec!["a\"b"],
                "request finished"
            );
        });
        let lines = lines(&captured);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert!(line["target"].as_str().unwrap().contains("runtime"));
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(line["component"], "gateway");
        // The inner span's field wins over the outer's, the event's over both.
        assert_eq!(line["request_id"], "req-inner");
        assert_eq!(line["competitor"], "event-wins");
        assert_eq!(line["attempt"], 2);
        assert_eq!(
            line["text"],
            "quote \" backslash \\ newline \n tab \t bell \u{7} é"
        );
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["whole"], json!(3.0));
        assert_eq!(line["nan"], Value::Null);
        assert_eq!(line["negative"], -7);
        assert_eq!(line["flag"], true);
        assert_eq!(line["debugged"], "[\"a\\\"b\"]");
        assert_eq!(line["message"], "request finished");
        // Each key once.
        let raw = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(raw.matches("\"competitor\":").count(), 1, "{raw}");
        assert_eq!(raw.matches("\"request_id\":").count(), 1, "{raw}");
    }

    #[test]
    fn a_field_recorded_again_replaces_its_member() {
        let captured = Captured::default();
        let subscriber =
            super::json_subscriber(tracing_subscriber::EnvFilter::new("info"), captured.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("request", a = 1u64, b = tracing::field::Empty, c = 3u64);
            let _span = span.enter();
            span.record("b", 2u64);
            span.record("a", 10u64);
            tracing::info!("x");
        });
        let raw = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(raw.trim()).unwrap();
        assert_eq!(
            (line["a"].clone(), line["b"].clone(), line["c"].clone()),
            (json!(10), json!(2), json!(3))
        );
        assert_eq!(raw.matches("\"a\":").count(), 1, "{raw}");
    }

    #[test]
    fn log_buffer_sizes_parse_and_bad_ones_are_named() {
        assert_eq!(super::parse_log_buffer("65536"), Ok(Some(65536)));
        assert_eq!(super::parse_log_buffer(" 64k "), Ok(Some(65536)));
        assert_eq!(super::parse_log_buffer("1M"), Ok(Some(1 << 20)));
        assert_eq!(super::parse_log_buffer("0"), Ok(None));
        for bad in ["64kb", "-1", "lots", "17m"] {
            let error = super::parse_log_buffer(bad).unwrap_err();
            assert!(
                error.contains("JANUS_LOG_BUFFER") && error.contains(bad),
                "{error}"
            );
        }
    }

    #[test]
    fn buffered_lines_are_written_when_full_urgent_or_flushed_in_order() {
        use std::io::Write as _;
        use tracing_subscriber::fmt::MakeWriter as _;
        let sink = Captured::default();
        let buffer = super::BufferedLines::new(sink.clone(), 64);
        let make = buffer.clone().make_writer();
        let written = || String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        make.make_writer().write_all(b"one\n").unwrap();
        make.make_writer().write_all(b"two\n").unwrap();
        assert_eq!(written(), "", "below the capacity nothing is written");
        // A warning goes out at once, after what came before it.
        let warning = tracing::Metadata::new(
            "w",
            "t",
            tracing::Level::WARN,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CALLSITE)),
            tracing::metadata::Kind::EVENT,
        );
        make.make_writer_for(&warning).write_all(b"warn\n").unwrap();
        assert_eq!(written(), "one\ntwo\nwarn\n");
        make.make_writer().write_all(&[b'x'; 70]).unwrap();
        assert_eq!(written().len(), 13 + 70, "a full buffer is written");
        make.make_writer().write_all(b"last\n").unwrap();
        super::flush_logs();
        assert!(written().ends_with("last\n"));
    }

    struct Callsite;
    static CALLSITE: Callsite = Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!("not registered")
        }
    }
}
