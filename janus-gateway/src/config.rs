//! Gateway configuration: flags, environment variables and a TOML file, merged with flags
//! over env over file over the documented defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use janus_http::{ApiKeys, EnvPrefix, ServeConfig, ServeFile, ServeFlags};
use serde::Deserialize;

use crate::platform_config::{resolve_platforms, Budget, FilePlatform, PlatformService};
use crate::signing::SigningKeys;

pub use janus_http::LogFormat;

/// The gateway's environment prefix for the serving settings (`JANUS_HEADER_READ_TIMEOUT`,
/// …); each client connection may cost an upstream connection too.
#[derive(Debug, Clone, Copy)]
pub struct GatewayEnv;

impl EnvPrefix for GatewayEnv {
    const PREFIX: &'static str = "JANUS_";
    const DESCRIPTORS_PER_CONNECTION: u64 = 2;
}

/// Largest competitor JSON response relayed in non-streaming mode, by default.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why the configuration is unusable; the message names the bad setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting has a value that cannot be used.
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The flag or file key, e.g. `--competitor`.
        setting: String,
        /// What is wrong.
        reason: String,
    },
    /// The config file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

/// Command-line flags; each has an environment variable and a documented default.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "janus-gateway",
    version,
    about = "The Janus gateway: one OpenAI-compatible endpoint in front of competing backends.",
    long_about = "The Janus gateway: one OpenAI-compatible endpoint in front of competing backends.\n\n\
Clients call POST /v1/chat/completions; the gateway validates the request, picks a competitor \
(competitor_id, then a model equal to a competitor id, then the default), relays its SSE \
stream byte for byte with keep-alive comments, and reports failures as OpenAI error envelopes.\n\n\
Precedence: flags over environment over --config file over defaults."
)]
pub struct Args {
    /// Address to listen on [env: JANUS_LISTEN] [default: 127.0.0.1:8000]
    #[arg(long, env = "JANUS_LISTEN", value_name = "ADDR", hide_env = true)]
    pub listen: Option<String>,

    /// A competitor as ID=URL; repeatable [env: JANUS_COMPETITORS, comma-separated]
    #[arg(
        long = "competitor",
        env = "JANUS_COMPETITORS",
        value_name = "ID=URL",
        value_delimiter = ',',
        hide_env = true
    )]
    pub competitors: Vec<String>,

    /// Competitor used when the request names none [env: JANUS_DEFAULT_COMPETITOR] [default: the first listed]
    #[arg(
        long,
        env = "JANUS_DEFAULT_COMPETITOR",
        value_name = "ID",
        hide_env = true
    )]
    pub default_competitor: Option<String>,

    /// TOML file with the same settings plus per-competitor options [env: JANUS_CONFIG]
    #[arg(long, env = "JANUS_CONFIG", value_name = "FILE", hide_env = true)]
    pub config: Option<PathBuf>,

    /// Upstream silence after which ": ping" is sent [env: JANUS_KEEPALIVE_INTERVAL] [default: 1.5s]
    #[arg(
        long,
        env = "JANUS_KEEPALIVE_INTERVAL",
        value_name = "DURATION",
        hide_env = true
    )]
    pub keepalive_interval: Option<String>,

    /// Total time a request may take [env: JANUS_REQUEST_TIMEOUT] [default: 300s]
    #[arg(
        long,
        env = "JANUS_REQUEST_TIMEOUT",
        value_name = "DURATION",
        hide_env = true
    )]
    pub request_timeout: Option<String>,

    /// Time to open a TCP connection to a competitor [env: JANUS_CONNECT_TIMEOUT] [default: 5s]
    #[arg(
        long,
        env = "JANUS_CONNECT_TIMEOUT",
        value_name = "DURATION",
        hide_env = true
    )]
    pub connect_timeout: Option<String>,

    /// Largest accepted request body in bytes [env: JANUS_MAX_BODY_BYTES] [default: 10485760]
    #[arg(
        long,
        env = "JANUS_MAX_BODY_BYTES",
        value_name = "BYTES",
        hide_env = true
    )]
    pub max_body_bytes: Option<u64>,

    /// Time in-flight streams get to finish on shutdown [env: JANUS_SHUTDOWN_GRACE] [default: 30s]
    #[arg(
        long,
        env = "JANUS_SHUTDOWN_GRACE",
        value_name = "DURATION",
        hide_env = true
    )]
    pub shutdown_grace: Option<String>,

    /// Comma-separated API keys; when set, clients must send "Authorization: Bearer <key>" [env: JANUS_API_KEYS]
    #[arg(long, env = "JANUS_API_KEYS", value_name = "KEYS", hide_env = true)]
    pub api_keys: Option<String>,

    /// Log format [env: JANUS_LOG_FORMAT] [default: json when stderr is not a terminal, else pretty]
    #[arg(long, env = "JANUS_LOG_FORMAT", value_enum, hide_env = true)]
    pub log_format: Option<LogFormat>,

    /// Interval of the background /health probes of each competitor [env: JANUS_HEALTH_INTERVAL] [default: 10s]
    #[arg(
        long,
        env = "JANUS_HEALTH_INTERVAL",
        value_name = "DURATION",
        hide_env = true
    )]
    pub health_interval: Option<String>,

    /// Cold-start attempts on 429/502/503/504 before giving up [env: JANUS_COLD_START_ATTEMPTS] [default: 6]
    #[arg(
        long,
        env = "JANUS_COLD_START_ATTEMPTS",
        value_name = "N",
        hide_env = true
    )]
    pub cold_start_attempts: Option<u32>,

    /// First cold-start backoff; doubles up to 15s [env: JANUS_COLD_START_BACKOFF] [default: 2s]
    #[arg(
        long,
        env = "JANUS_COLD_START_BACKOFF",
        value_name = "DURATION",
        hide_env = true
    )]
    pub cold_start_backoff: Option<String>,

    /// Answer 404 model_not_found for a model that names no competitor, instead of routing it to the default [env: JANUS_STRICT_MODELS] [default: false]
    #[arg(
        long,
        env = "JANUS_STRICT_MODELS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        hide_env = true
    )]
    pub strict_models: Option<bool>,

    /// Largest non-streaming competitor response relayed; larger is a 502 [env: JANUS_MAX_RESPONSE_BYTES] [default: 16777216]
    #[arg(
        long,
        env = "JANUS_MAX_RESPONSE_BYTES",
        value_name = "BYTES",
        hide_env = true
    )]
    pub max_response_bytes: Option<u64>,

    /// HMAC keys for platform grants and artifact capabilities, one per line; the first signs, all verify; replicas share the file [env: JANUS_PLATFORM_KEY_FILE] [default: a random key per process]
    #[arg(
        long,
        env = "JANUS_PLATFORM_KEY_FILE",
        value_name = "FILE",
        hide_env = true
    )]
    pub platform_key_file: Option<PathBuf>,

    /// Base URL clients see, used in artifact URLs and by the UI [env: JANUS_GATEWAY_PUBLIC_URL] [default: http://<listen>]
    #[arg(
        long,
        env = "JANUS_GATEWAY_PUBLIC_URL",
        value_name = "URL",
        hide_env = true
    )]
    pub public_url: Option<String>,

    /// Do not serve the chat UI at / (it is then a 404) [env: JANUS_NO_UI] [default: false]
    #[arg(
        long,
        env = "JANUS_NO_UI",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        hide_env = true
    )]
    pub no_ui: Option<bool>,

    /// A competitor the gateway launches in a sandbox, as ID=CMD (CMD split like a shell splits words, no shell run); repeatable [env: JANUS_LAUNCH, one]
    #[arg(
        long = "launch",
        env = "JANUS_LAUNCH",
        value_name = "ID=CMD",
        hide_env = true
    )]
    pub launch: Vec<String>,

    /// The Sandy API that runs launched competitors [env: JANUS_SANDBOX_URL] [default: none; required with --launch]
    #[arg(long, env = "JANUS_SANDBOX_URL", value_name = "URL", hide_env = true)]
    pub sandbox_url: Option<String>,
    /// A platform service as NAME=URL (inference, search and sandbox take their kind from the name); repeatable; options and secrets come from the [[platform]] entry of the same name [env: JANUS_PLATFORMS, comma-separated]
    #[arg(
        long = "platform",
        env = "JANUS_PLATFORMS",
        value_name = "NAME=URL",
        value_delimiter = ',',
        hide_env = true
    )]
    pub platforms: Vec<String>,

    /// Address of the platform listener competitors call (bound only when a platform service is configured) [env: JANUS_PLATFORM_LISTEN] [default: 127.0.0.1:8001]
    #[arg(
        long,
        env = "JANUS_PLATFORM_LISTEN",
        value_name = "ADDR",
        hide_env = true
    )]
    pub platform_listen: Option<String>,

    /// Platform base competitors are told in X-Janus-Platform-Url [env: JANUS_PLATFORM_PUBLIC_URL] [default: http://<platform-listen>/platform]
    #[arg(
        long,
        env = "JANUS_PLATFORM_PUBLIC_URL",
        value_name = "URL",
        hide_env = true
    )]
    pub platform_public_url: Option<String>,
    /// Longest an artifact link stays valid: its capability expires this long after the chat request that minted it [env: JANUS_ARTIFACT_TTL] [default: 3600s]
    #[arg(
        long,
        env = "JANUS_ARTIFACT_TTL",
        value_name = "DURATION",
        hide_env = true
    )]
    pub artifact_ttl: Option<String>,

    /// Connection handling: header-read, body and idle timeouts, connection cap, HTTP/2 streams.
    #[command(flatten)]
    pub serve: ServeFlags<GatewayEnv>,
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    listen: Option<String>,
    default_competitor: Option<String>,
    keepalive_interval: Option<String>,
    request_timeout: Option<String>,
    connect_timeout: Option<String>,
    max_body_bytes: Option<u64>,
    shutdown_grace: Option<String>,
    api_keys: Option<Vec<String>>,
    log_format: Option<LogFormat>,
    health_interval: Option<String>,
    cold_start_attempts: Option<u32>,
    cold_start_backoff: Option<String>,
    strict_models: Option<bool>,
    max_response_bytes: Option<u64>,
    platform_key_file: Option<PathBuf>,
    public_url: Option<String>,
    sandbox_url: Option<String>,
    no_ui: Option<bool>,
    platform_listen: Option<String>,
    platform_public_url: Option<String>,
    artifact_ttl: Option<String>,
    #[serde(default, rename = "competitor")]
    competitors: Vec<FileCompetitor>,
    #[serde(default, rename = "platform")]
    platforms: Vec<FilePlatform>,
    #[serde(flatten)]
    serve: ServeFile,
    /// Whatever is left: refused by name (flatten rules out `deny_unknown_fields`).
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCompetitor {
    id: String,
    url: Option<String>,
    timeout: Option<String>,
    max_concurrent_requests: Option<usize>,
    description: Option<String>,
    budget_calls: Option<u64>,
    budget_inference_tokens: Option<u64>,
    budget_sandboxes: Option<u64>,
    budget_sandbox_seconds: Option<f64>,
    command: Option<Vec<String>>,
    rootfs: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    resources: Resources,
    port: Option<u16>,
}

/// Limits of a launched competitor's sandbox (unset: the sandbox service's defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores.
    pub cpu: Option<f64>,
    /// Memory in MiB.
    pub memory_mb: Option<u64>,
    /// Processes.
    pub pids: Option<u64>,
    /// `/workspace` size in MiB.
    pub disk_mb: Option<u64>,
}

/// A competitor the gateway launches (see `runner`).
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSpec {
    /// Routing id.
    pub id: String,
    /// The command inside the sandbox (argv).
    pub command: Vec<String>,
    /// An unpacked image used read-only as its root.
    pub rootfs: Option<PathBuf>,
    /// Plain environment values (names that look like secrets are refused: competitors
    /// reach services through the platform, never with keys of their own).
    pub env: Vec<(String, String)>,
    /// Sandbox limits.
    pub resources: Resources,
    /// The port it listens on inside the sandbox (default 8080; `JANUS_LISTEN` is set to
    /// `127.0.0.1:<port>` unless `env` sets it).
    pub port: u16,
    /// Total request timeout for this competitor.
    pub timeout: Option<Duration>,
    /// Concurrent requests allowed.
    pub max_concurrent_requests: Option<usize>,
    /// Shown in `/v1/models`.
    pub description: Option<String>,
}

/// Default port of a launched competitor inside its sandbox.
pub const DEFAULT_LAUNCH_PORT: u16 = 8080;

/// A launched competitor from `ID=CMD`.
pub fn parse_launch(spec: &str) -> Result<LaunchSpec, ConfigError> {
    let (id, command) = spec
        .split_once('=')
        .ok_or_else(|| invalid("--launch", format!("'{spec}' is not ID=CMD")))?;
    let id = id.trim();
    check_id(id)?;
    let (env, command) = janus_core::words::split_command(command)
        .map_err(|e| invalid("--launch", format!("competitor '{id}': {e}")))?;
    let launch = LaunchSpec {
        id: id.to_owned(),
        command,
        rootfs: None,
        env,
        resources: Resources::default(),
        port: DEFAULT_LAUNCH_PORT,
        timeout: None,
        max_concurrent_requests: None,
        description: None,
    };
    check_launch_env(&launch)?;
    Ok(launch)
}

/// Environment names a launched competitor may not be given: they would be secrets.
fn check_launch_env(launch: &LaunchSpec) -> Result<(), ConfigError> {
    for (name, _) in &launch.env {
        let upper = name.to_ascii_uppercase();
        if ["KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"]
            .iter()
            .any(|word| upper.contains(word))
        {
            return Err(invalid(
                "competitor.env",
                format!(
                    "competitor '{}': '{name}' looks like a secret; launched competitors get plain values only and reach services through the platform",
                    launch.id
                ),
            ));
        }
    }
    Ok(())
}

/// One competitor the gateway can route to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompetitorConfig {
    /// Routing id (also accepted as `model`).
    pub id: String,
    /// Base URL, e.g. `http://127.0.0.1:8080` (no trailing slash).
    pub url: String,
    /// Total request timeout for this competitor (default: the gateway's).
    pub timeout: Option<Duration>,
    /// Concurrent requests allowed; more get 429.
    pub max_concurrent_requests: Option<usize>,
    /// Shown in `/v1/models`.
    pub description: Option<String>,
}

/// Cold-start retry policy (contract.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles each time.
    pub initial_backoff: Duration,
    /// Backoff cap.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(15),
        }
    }
}

/// The resolved gateway configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Competitors in the order listed.
    pub competitors: Vec<CompetitorConfig>,
    /// Id of the default competitor.
    pub default_competitor: String,
    /// Silence before a keep-alive comment.
    pub keepalive_interval: Duration,
    /// Total request timeout.
    pub request_timeout: Duration,
    /// TCP connect timeout towards competitors.
    pub connect_timeout: Duration,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Accepted API keys; `None` means no authentication.
    pub api_keys: Option<ApiKeys>,
    /// Refuse unknown models (404 `model_not_found`) instead of using the default.
    pub strict_models: bool,
    /// Largest non-streaming competitor response relayed (502 beyond it).
    pub max_response_bytes: usize,
    /// Competitors the gateway launches in sandboxes (added to `competitors` at startup).
    pub launch: Vec<LaunchSpec>,
    /// The Sandy API launched competitors run on.
    pub sandbox_url: Option<String>,
    /// Keys for grants and capabilities; `None`: a random key made at startup (tokens then
    /// verify on this process only).
    pub signing_keys: Option<SigningKeys>,
    /// Base URL clients see (no trailing slash); `None`: `http://` and the address the
    /// listener is bound to.
    pub public_url: Option<String>,
    /// Serve the chat UI at `/` (off with `--no-ui`).
    pub ui: bool,
    /// Platform services competitors may call through the platform listener.
    pub platforms: Vec<PlatformService>,
    /// Address of the platform listener.
    pub platform_listen: SocketAddr,
    /// Platform base competitors are told (up to and including `/platform`); `None`:
    /// `http://<platform_listen>/platform`.
    pub platform_public_url: Option<String>,
    /// Per-request platform budgets by competitor id; others get [`Budget::default`].
    pub budgets: std::collections::HashMap<String, Budget>,
    /// Longest an artifact capability lives, counted from the chat request that minted it.
    pub artifact_ttl: Duration,
    /// Connection handling, including the shutdown grace period for in-flight streams.
    pub serve: ServeConfig,
    /// Log format.
    pub log_format: LogFormat,
    /// Interval of background health probes.
    pub health_interval: Duration,
    /// Cold-start retries.
    pub retry: RetryPolicy,
}

impl Config {
    /// A configuration with defaults and these competitors (the first is the default).
    pub fn with_competitors(competitors: Vec<CompetitorConfig>) -> Config {
        let default_competitor = competitors
            .first()
            .map(|c| c.id.clone())
            .unwrap_or_default();
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            competitors,
            default_competitor,
            keepalive_interval: janus_core::contract::KEEPALIVE_INTERVAL,
            request_timeout: janus_core::contract::DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: Duration::from_secs(5),
            max_body_bytes: janus_core::contract::MAX_BODY_BYTES,
            api_keys: None,
            strict_models: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            launch: Vec::new(),
            sandbox_url: None,
            signing_keys: None,
            public_url: None,
            ui: true,
            platforms: Vec::new(),
            platform_listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
            platform_public_url: None,
            budgets: std::collections::HashMap::new(),
            artifact_ttl: Duration::from_secs(janus_core::contract::DEFAULT_ARTIFACT_TTL_SECONDS),
            serve: default_serve(),
            log_format: LogFormat::Json,
            health_interval: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }

    /// The base URL clients see, without a trailing slash.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The platform base competitors are told, without a trailing slash.
    pub fn platform_base(&self) -> String {
        match &self.platform_public_url {
            Some(url) => url.clone(),
            None => format!("http://{}/platform", self.platform_listen),
        }
    }

    /// The per-request budget of a competitor.
    pub fn budget(&self, competitor: &str) -> Budget {
        self.budgets.get(competitor).copied().unwrap_or_default()
    }

    /// The competitor with this id.
    pub fn competitor(&self, id: &str) -> Option<&CompetitorConfig> {
        self.competitors.iter().find(|c| c.id == id)
    }
}

/// The serving defaults, with the connection cap of a proxy.
fn default_serve() -> ServeConfig {
    let mut serve = ServeConfig::default();
    serve.component = "gateway";
    serve.max_connections =
        janus_http::default_max_connections(GatewayEnv::DESCRIPTORS_PER_CONNECTION);
    serve
}

/// A competitor from `ID=URL`.
pub fn parse_competitor(spec: &str) -> Result<CompetitorConfig, ConfigError> {
    let (id, url) = spec
        .split_once('=')
        .ok_or_else(|| invalid("--competitor", format!("'{spec}' is not ID=URL")))?;
    let id = id.trim();
    check_id(id)?;
    Ok(CompetitorConfig {
        id: id.to_owned(),
        url: check_url(url.trim(), "--competitor")?,
        timeout: None,
        max_concurrent_requests: None,
        description: None,
    })
}

fn check_id(id: &str) -> Result<(), ConfigError> {
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(invalid(
            "--competitor",
            format!("competitor id '{id}' must be non-empty and use only letters, digits, '-', '_', '.', ':'"),
        ));
    }
    Ok(())
}

fn check_url(url: &str, setting: &str) -> Result<String, ConfigError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| invalid(setting, format!("'{url}' is not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid(
            setting,
            format!("'{url}' must be an http:// URL (TLS terminates in front of competitors)"),
        ));
    }
    if uri.host().is_none() {
        return Err(invalid(setting, format!("'{url}' has no host")));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn parse_duration(value: &str, setting: &'static str) -> Result<Duration, ConfigError> {
    janus_http::parse_duration(value, setting).map_err(|e| invalid(e.setting, e.reason))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

impl Args {
    /// Resolves flags, environment and file into a [`Config`].
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        if let Some(key) = file.unknown.keys().next() {
            return Err(ConfigError::File {
                path: self.config.clone().unwrap_or_default(),
                reason: format!("unknown field `{key}`"),
            });
        }
        let mut config = Config::with_competitors(Vec::new());
        config.serve = self
            .serve
            .resolve(&file.serve, config.serve)
            .map_err(|e| invalid(e.setting, e.reason))?;

        if let Some(listen) = self.listen.or(file.listen) {
            config.listen = listen
                .trim()
                .parse()
                .map_err(|_| invalid("--listen", format!("'{listen}' is not HOST:PORT")))?;
        }

        // Flag/env competitors take precedence; per-competitor options from the file apply
        // by id to whichever list wins.
        let mut competitors = Vec::new();
        let mut launch = Vec::new();
        for spec in self.launch.iter().filter(|s| !s.trim().is_empty()) {
            launch.push(parse_launch(spec)?);
        }
        for c in file.competitors.iter().filter(|c| c.command.is_some()) {
            check_id(&c.id)?;
            if c.url.is_some() {
                return Err(invalid(
                    "competitor.url",
                    format!(
                        "competitor '{}' has both a url and a command: one or the other",
                        c.id
                    ),
                ));
            }
            let command = c.command.clone().unwrap_or_default();
            if command.is_empty() || command.iter().any(String::is_empty) {
                return Err(invalid(
                    "competitor.command",
                    format!(
                        "competitor '{}': command must be a non-empty list of non-empty words",
                        c.id
                    ),
                ));
            }
            let spec = LaunchSpec {
                id: c.id.clone(),
                command,
                rootfs: c.rootfs.clone(),
                env: c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                resources: c.resources,
                port: c.port.unwrap_or(DEFAULT_LAUNCH_PORT),
                timeout: None,
                max_concurrent_requests: None,
                description: None,
            };
            check_launch_env(&spec)?;
            if spec.port == 0 {
                return Err(invalid("competitor.port", "must be 1-65535"));
            }
            // A flag for the same id wins, as for addressed competitors.
            if !launch.iter().any(|l: &LaunchSpec| l.id == spec.id) {
                launch.push(spec);
            }
        }
        if self.competitors.is_empty() {
            for c in file.competitors.iter().filter(|c| c.command.is_none()) {
                check_id(&c.id)?;
                let url = c.url.as_deref().ok_or_else(|| {
                    invalid(
                        "competitor.url",
                        format!("competitor '{}' has no url", c.id),
                    )
                })?;
                competitors.push(CompetitorConfig {
                    id: c.id.clone(),
                    url: check_url(url, "competitor.url")?,
                    timeout: None,
                    max_concurrent_requests: None,
                    description: None,
                });
            }
        } else {
            for spec in self.competitors.iter().filter(|s| !s.trim().is_empty()) {
                competitors.push(parse_competitor(spec)?);
            }
        }
        for spec in &mut launch {
            if let Some(options) = file.competitors.iter().find(|c| c.id == spec.id) {
                if let Some(timeout) = &options.timeout {
                    spec.timeout = Some(parse_duration(timeout, "competitor.timeout")?);
                }
                spec.max_concurrent_requests = options.max_concurrent_requests.filter(|m| *m > 0);
                spec.description.clone_from(&options.description);
            }
        }
        for competitor in &mut competitors {
            if let Some(options) = file.competitors.iter().find(|c| c.id == competitor.id) {
                if let Some(timeout) = &options.timeout {
                    competitor.timeout = Some(parse_duration(timeout, "competitor.timeout")?);
                }
                if let Some(max) = options.max_concurrent_requests {
                    if max == 0 {
                        return Err(invalid(
                            "competitor.max_concurrent_requests",
                            "must be at least 1",
                        ));
                    }
                    competitor.max_concurrent_requests = Some(max);
                }
                competitor.description.clone_from(&options.description);
                let mut budget = Budget::default();
                if let Some(n) = options.budget_calls {
                    budget.calls = n;
                }
                if let Some(n) = options.budget_inference_tokens {
                    budget.inference_tokens = n;
                }
                if let Some(n) = options.budget_sandboxes {
                    budget.sandboxes = n;
                }
                if let Some(n) = options.budget_sandbox_seconds {
                    if !(n.is_finite() && n >= 0.0) {
                        return Err(invalid(
                            "competitor.budget_sandbox_seconds",
                            "must be a non-negative number",
                        ));
                    }
                    budget.sandbox_seconds = n;
                }
                config.budgets.insert(competitor.id.clone(), budget);
            }
        }
        let ids: Vec<&str> = competitors
            .iter()
            .map(|c| c.id.as_str())
            .chain(launch.iter().map(|l| l.id.as_str()))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(invalid(
                    "--competitor",
                    format!("competitor id '{id}' is listed twice"),
                ));
            }
        }
        if ids.is_empty() {
            return Err(invalid(
                "--competitor",
                "no competitors configured: pass --competitor ID=URL (or --launch ID=CMD) or set JANUS_COMPETITORS",
            ));
        }
        config.default_competitor = match self.default_competitor.or(file.default_competitor) {
            Some(id) if ids.contains(&id.as_str()) => id,
            Some(id) => {
                return Err(invalid(
                    "--default-competitor",
                    format!("'{id}' is not one of the configured competitors"),
                ))
            }
            None => ids[0].to_owned(),
        };
        config.sandbox_url = match self.sandbox_url.or(file.sandbox_url) {
            Some(url) => Some(check_url(url.trim(), "--sandbox-url")?),
            None => None,
        };
        if !launch.is_empty() && config.sandbox_url.is_none() {
            return Err(invalid(
                "--sandbox-url",
                "launched competitors need a sandbox service: pass --sandbox-url (janus up sets it)",
            ));
        }
        config.competitors = competitors;
        config.launch = launch;

        let durations: [(&str, Option<String>, &mut Duration); 7] = [
            (
                "--keepalive-interval",
                self.keepalive_interval.or(file.keepalive_interval),
                &mut config.keepalive_interval,
            ),
            (
                "--request-timeout",
                self.request_timeout.or(file.request_timeout),
                &mut config.request_timeout,
            ),
            (
                "--connect-timeout",
                self.connect_timeout.or(file.connect_timeout),
                &mut config.connect_timeout,
            ),
            (
                "--shutdown-grace",
                self.shutdown_grace.or(file.shutdown_grace),
                &mut config.serve.shutdown_grace,
            ),
            (
                "--health-interval",
                self.health_interval.or(file.health_interval),
                &mut config.health_interval,
            ),
            (
                "--cold-start-backoff",
                self.cold_start_backoff.or(file.cold_start_backoff),
                &mut config.retry.initial_backoff,
            ),
            (
                "--artifact-ttl",
                self.artifact_ttl.or(file.artifact_ttl),
                &mut config.artifact_ttl,
            ),
        ];
        for (setting, value, slot) in durations {
            if let Some(value) = value {
                *slot = parse_duration(&value, setting)?;
            }
        }
        if config.artifact_ttl < Duration::from_secs(1) {
            return Err(invalid("--artifact-ttl", "must be at least 1s"));
        }
        if config.keepalive_interval >= janus_core::contract::MAX_GAP {
            return Err(invalid(
                "--keepalive-interval",
                "must be below 2s, the longest gap the contract allows",
            ));
        }
        if let Some(bytes) = self.max_body_bytes.or(file.max_body_bytes) {
            if bytes == 0 {
                return Err(invalid("--max-body-bytes", "must be at least 1"));
            }
            config.max_body_bytes = usize::try_from(bytes)
                .map_err(|_| invalid("--max-body-bytes", "too large for this machine"))?;
        }
        if let Some(attempts) = self.cold_start_attempts.or(file.cold_start_attempts) {
            if attempts == 0 {
                return Err(invalid("--cold-start-attempts", "must be at least 1"));
            }
            config.retry.max_attempts = attempts;
        }
        // Set but empty is a mistake, never "no authentication".
        config.api_keys = match (self.api_keys, file.api_keys) {
            (Some(keys), _) => {
                Some(ApiKeys::parse(&keys).map_err(|e| invalid("--api-keys", e.to_string()))?)
            }
            (None, Some(keys)) => {
                Some(ApiKeys::new(&keys).map_err(|e| invalid("api_keys", e.to_string()))?)
            }
            (None, None) => None,
        };
        config.strict_models = self.strict_models.or(file.strict_models).unwrap_or(false);
        if let Some(bytes) = self.max_response_bytes.or(file.max_response_bytes) {
            if bytes == 0 {
                return Err(invalid("--max-response-bytes", "must be at least 1"));
            }
            config.max_response_bytes = usize::try_from(bytes)
                .map_err(|_| invalid("--max-response-bytes", "too large for this machine"))?;
        }
        if let Some(path) = self.platform_key_file.or(file.platform_key_file) {
            config.signing_keys =
                Some(SigningKeys::from_file(&path).map_err(|e| invalid("--platform-key-file", e))?);
        }
        if let Some(url) = self.public_url.or(file.public_url) {
            let uri: http::Uri = url
                .trim()
                .parse()
                .map_err(|e| invalid("--public-url", format!("'{url}' is not a URL: {e}")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(invalid(
                    "--public-url",
                    format!("'{url}' must be an absolute http:// or https:// URL"),
                ));
            }
            config.public_url = Some(url.trim().trim_end_matches('/').to_owned());
        }
        config.ui = !self.no_ui.or(file.no_ui).unwrap_or(false);
        if let Some(listen) = self.platform_listen.or(file.platform_listen) {
            config.platform_listen = listen.trim().parse().map_err(|_| {
                invalid("--platform-listen", format!("'{listen}' is not HOST:PORT"))
            })?;
        }
        if let Some(url) = self.platform_public_url.or(file.platform_public_url) {
            let uri: http::Uri = url.trim().parse().map_err(|e| {
                invalid(
                    "--platform-public-url",
                    format!("'{url}' is not a URL: {e}"),
                )
            })?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(invalid(
                    "--platform-public-url",
                    format!("'{url}' must be an absolute http:// or https:// URL"),
                ));
            }
            config.platform_public_url = Some(url.trim().trim_end_matches('/').to_owned());
        }
        config.platforms = resolve_platforms(&self.platforms, &file.platforms)
            .map_err(|(setting, reason)| invalid(setting, reason))?;
        config.log_format = LogFormat::or_detect(self.log_format.or(file.log_format));
        Ok(config)
    }
}
