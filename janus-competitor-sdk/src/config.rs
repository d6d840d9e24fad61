//! Configuration: [`ServeConfig`] for [`serve`](crate::serve), and [`Args`], the flags and
//! environment variables that [`run`](crate::run) turns into one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use janus_core::contract::{
    DEFAULT_COMPETITOR_PORT, DEFAULT_REQUEST_TIMEOUT, KEEPALIVE_INTERVAL, MAX_BODY_BYTES,
};

/// How the server behaves. Start from [`ServeConfig::default`] and change what you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Silence after which a streaming response gets a `: ping` comment (default 1.5 s;
    /// the contract allows at most 2 s between events).
    pub keepalive_interval: Duration,
    /// Total time a handler may run before it is cancelled (default 300 s).
    pub request_timeout: Duration,
    /// Largest request body accepted; larger ones get 413 (default 10 MiB).
    pub max_body_bytes: usize,
    /// Where artifacts too large for a `data:` URL are written (default
    /// `$TMPDIR/janus-artifacts`). Files are named by artifact id only.
    pub artifact_dir: PathBuf,
    /// Base of artifact URLs, e.g. `http://my-competitor:8080`; `/artifacts/<id>` is
    /// appended. When unset, the request's `Host` is used.
    pub public_base_url: Option<String>,
    /// Connection handling from `janus-http`: header-read, body and idle timeouts, the
    /// connection cap, and `shutdown_grace` — after shutdown is asked for, in-flight
    /// requests get this long; streams still running then end with an error event and
    /// `[DONE]` (default 8 s here).
    pub connections: janus_http::ServeConfig,
    /// The version `/health` reports (default: the SDK's version).
    pub version: String,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            keepalive_interval: KEEPALIVE_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_body_bytes: MAX_BODY_BYTES,
            artifact_dir: std::env::temp_dir().join("janus-artifacts"),
            public_base_url: None,
            connections: default_connections(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

pub use janus_http::LogFormat;

/// The SDK's environment prefix for the serving settings (`JANUS_HEADER_READ_TIMEOUT`, …).
#[derive(Debug, Clone, Copy, Default)]
pub struct SdkEnv;

impl janus_http::EnvPrefix for SdkEnv {
    const PREFIX: &'static str = "JANUS_";
}

fn default_connections() -> janus_http::ServeConfig {
    let mut connections = janus_http::ServeConfig::default();
    connections.component = "competitor";
    connections.shutdown_grace = Duration::from_secs(8);
    connections
}

/// The flags and environment variables of a competitor binary. [`run`](crate::run) parses
/// them from the process; embed them in your own parser with `#[command(flatten)]`.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(about = "A Janus competitor.")]
pub struct Args {
    /// Address to listen on [env: JANUS_LISTEN; else 0.0.0.0:$PORT] [default: 0.0.0.0:8080]
    #[arg(long, env = "JANUS_LISTEN", value_name = "ADDR", hide_env = true)]
    pub listen: Option<SocketAddr>,

    /// Directory for artifacts over 1,000,000 bytes [env: JANUS_ARTIFACT_DIR] [default: $TMPDIR/janus-artifacts]
    #[arg(long, env = "JANUS_ARTIFACT_DIR", value_name = "DIR", hide_env = true)]
    pub artifact_dir: Option<PathBuf>,

    /// Base URL of artifact links, e.g. http://competitor:8080 [env: JANUS_PUBLIC_URL] [default: from the request's Host]
    #[arg(long, env = "JANUS_PUBLIC_URL", value_name = "URL", hide_env = true)]
    pub public_url: Option<String>,

    /// Keep-alive interval of streams [env: JANUS_KEEPALIVE] [default: 1500ms]
    #[arg(
        long,
        env = "JANUS_KEEPALIVE",
        value_name = "DURATION",
        hide_env = true
    )]
    pub keepalive: Option<String>,

    /// Total time a request may take [env: JANUS_REQUEST_TIMEOUT] [default: 300s]
    #[arg(
        long,
        env = "JANUS_REQUEST_TIMEOUT",
        value_name = "DURATION",
        hide_env = true
    )]
    pub request_timeout: Option<String>,

    /// Grace period for in-flight requests at shutdown [env: JANUS_SHUTDOWN_GRACE] [default: 8s]
    #[arg(
        long,
        env = "JANUS_SHUTDOWN_GRACE",
        value_name = "DURATION",
        hide_env = true
    )]
    pub shutdown_grace: Option<String>,

    /// Log format [env: JANUS_LOG_FORMAT] [default: json when stderr is not a terminal, else pretty]
    #[arg(long, env = "JANUS_LOG_FORMAT", value_enum, hide_env = true)]
    pub log_format: Option<LogFormat>,

    /// Connection handling: header-read, body and idle timeouts, connection cap, HTTP/2 streams.
    #[command(flatten)]
    pub serve: janus_http::ServeFlags<SdkEnv>,
}

/// A flag or environment variable that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `PORT` is not a port number.
    #[error("PORT must be a port number, got {0:?}")]
    InvalidPort(String),
    /// A duration flag does not parse (`1500ms`, `2s`, `5m`).
    #[error("--{flag}: invalid duration {value:?}: {reason}")]
    InvalidDuration {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A duration that must be positive is zero.
    #[error("--{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// `--public-url` is not an http(s) URL.
    #[error("--public-url must start with http:// or https://, got {0:?}")]
    InvalidPublicUrl(String),
    /// A serving setting (`--header-read-timeout`, …) is unusable.
    #[error("{0}")]
    Serve(#[from] janus_http::SettingError),
}

fn duration(
    flag: &'static str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let parsed =
        humantime::parse_duration(value.trim()).map_err(|e| ConfigError::InvalidDuration {
            flag,
            value: value.to_owned(),
            reason: e.to_string(),
        })?;
    if parsed.is_zero() {
        return Err(ConfigError::ZeroDuration(flag));
    }
    Ok(parsed)
}

impl Args {
    /// The listen address: `--listen`, else `JANUS_LISTEN`, else `0.0.0.0:$PORT`, else
    /// `0.0.0.0:8080`.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen_addr_with(std::env::var("PORT").ok())
    }

    fn listen_addr_with(&self, port: Option<String>) -> Result<SocketAddr, ConfigError> {
        if let Some(listen) = self.listen {
            return Ok(listen);
        }
        let port = match port.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_COMPETITOR_PORT,
            Some(port) => port
                .parse()
                .map_err(|_| ConfigError::InvalidPort(port.to_owned()))?,
        };
        Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
    }

    /// The [`ServeConfig`] these flags describe; unset flags keep the defaults.
    pub fn serve_config(&self) -> Result<ServeConfig, ConfigError> {
        let defaults = ServeConfig::default();
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::InvalidPublicUrl(url.clone()));
            }
        }
        let mut connections = self.serve.resolve(
            &janus_http::ServeFile::default(),
            defaults.connections.clone(),
        )?;
        connections.shutdown_grace = duration(
            "shutdown-grace",
            self.shutdown_grace.as_deref(),
            defaults.connections.shutdown_grace,
        )?;
        Ok(ServeConfig {
            connections,
            keepalive_interval: duration(
                "keepalive",
                self.keepalive.as_deref(),
                defaults.keepalive_interval,
            )?,
            request_timeout: duration(
                "request-timeout",
                self.request_timeout.as_deref(),
                defaults.request_timeout,
            )?,
            artifact_dir: self.artifact_dir.clone().unwrap_or(defaults.artifact_dir),
            public_base_url: self
                .public_url
                .as_ref()
                .map(|url| url.trim_end_matches('/').to_owned()),
            ..defaults
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn listen_prefers_flag_then_port_then_default() {
        let mut args = Args::default();
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(args.listen_addr_with(None), Ok(addr("0.0.0.0:8080")));
        assert_eq!(
            args.listen_addr_with(Some("9000".into())),
            Ok(addr("0.0.0.0:9000"))
        );
        assert!(matches!(
            args.listen_addr_with(Some("http".into())),
            Err(ConfigError::InvalidPort(_))
        ));
        args.listen = Some(addr("127.0.0.1:1"));
        assert_eq!(
            args.listen_addr_with(Some("9000".into())),
            Ok(addr("127.0.0.1:1"))
        );
    }

    #[test]
    fn durations_parse_and_reject_zero() {
        let args = Args {
            request_timeout: Some("0s".into()),
            ..Args::default()
        };
        assert!(matches!(
            args.serve_config(),
            Err(ConfigError::ZeroDuration("request-timeout"))
        ));
        let args = Args {
            keepalive: Some("250ms".into()),
            public_url: Some("http://c:8080/".into()),
            ..Args::default()
        };
        let config = args.serve_config().unwrap();
        assert_eq!(config.keepalive_interval, Duration::from_millis(250));
        assert_eq!(config.public_base_url.as_deref(), Some("http://c:8080"));
        let args = Args {
            public_url: Some("c:8080".into()),
            ..Args::default()
        };
        assert!(args.serve_config().is_err());
    }
}
