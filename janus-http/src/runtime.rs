//! Process plumbing every Janus binary shares: the shutdown signal, the log format and the
//! log setup.

use std::io::IsTerminal;

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
    let stderr_json = (format == LogFormat::Json).then(|| json_layer(std::io::stderr));
    let stderr_pretty = (format == LogFormat::Pretty).then(|| {
        tracing_subscriber::fmt::layer()
            .compact()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
    });
    let file = file.map(|file| json_layer(std::sync::Arc::new(file)));
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
        .with(stderr_pretty)
        .with(file)
        .with(otel);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        if let Some(error) = otel_error {
            tracing::warn!(%error, "OpenTelemetry export is off");
        }
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

/// A span's fields as JSON values, in the span's extensions.
struct SpanFields(serde_json::Map<String, serde_json::Value>);

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
            let mut fields = serde_json::Map::new();
            attrs.record(&mut JsonVisitor(&mut fields));
            extensions.insert(SpanFields(fields));
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
                values.record(&mut JsonVisitor(&mut fields.0));
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

/// The event formatter behind [`json_subscriber`].
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
        use serde_json::Value;
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            Value::String(
                humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            ),
        );
        let metadata = event.metadata();
        line.insert("level".into(), Value::String(metadata.level().to_string()));
        line.insert("target".into(), Value::String(metadata.target().to_owned()));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        writeln!(writer, "{}", Value::Object(line))
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
