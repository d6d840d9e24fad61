//! Service configuration: flags with environment fallbacks and documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How sandboxes are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IsolationMode {
    /// Namespaces (mount, PID, network, UTS, IPC), an unprivileged uid without
    /// capabilities, cgroup limits. Needs root on Linux.
    Full,
    /// Plain directories and processes: nothing is isolated. For development only.
    None,
}

/// Command-line flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "janus-sandbox",
    version,
    about = "A Sandy-compatible sandbox service on local Linux isolation"
)]
pub struct Args {
    /// Address to listen on
    #[arg(long, env = "JANUS_SANDBOX_LISTEN", default_value = "127.0.0.1:8300")]
    pub listen: SocketAddr,
    /// When set, clients must send "Authorization: Bearer <key>"
    #[arg(long, env = "SANDY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// State directory (one folder per sandbox)
    #[arg(
        long,
        env = "JANUS_SANDBOX_ROOT",
        default_value = "/var/lib/janus-sandbox"
    )]
    pub root: PathBuf,
    /// Most sandboxes alive at once
    #[arg(long, env = "JANUS_SANDBOX_MAX", default_value_t = 16)]
    pub max_sandboxes: usize,
    /// TTL when a create names none (at most 3600s)
    #[arg(long, env = "JANUS_SANDBOX_DEFAULT_TTL", default_value = "600s", value_parser = humantime::parse_duration)]
    pub default_ttl: Duration,
    /// Memory limit per sandbox, in MiB
    #[arg(long, env = "JANUS_SANDBOX_MEMORY_MB", default_value_t = 512)]
    pub memory_mb: u64,
    /// Process limit per sandbox
    #[arg(long, env = "JANUS_SANDBOX_PIDS", default_value_t = 256)]
    pub pids: u64,
    /// CPU limit per sandbox, in cores
    #[arg(long, env = "JANUS_SANDBOX_CPUS", default_value_t = 1.0)]
    pub cpus: f64,
    /// full (namespaces + cgroups, needs root) or none (nothing isolated)
    #[arg(
        long,
        env = "JANUS_SANDBOX_ISOLATION",
        value_enum,
        default_value = "full"
    )]
    pub isolation: IsolationMode,
    /// Unprivileged uid (and gid) that sandbox commands run as
    #[arg(long, env = "JANUS_SANDBOX_UID", default_value_t = 65534)]
    pub uid: u32,
    /// A platform endpoint made reachable inside every sandbox at 127.0.0.1:PORT, as NAME=HOST:PORT; repeatable
    #[arg(
        long = "forward",
        env = "JANUS_SANDBOX_FORWARDS",
        value_delimiter = ',',
        value_name = "NAME=HOST:PORT"
    )]
    pub forwards: Vec<String>,
    /// A directory under which clients may name an unpacked image as a sandbox's read-only root (`rootfs`); repeatable [default: none, `rootfs` refused]
    #[arg(
        long = "allow-rootfs",
        env = "JANUS_SANDBOX_ALLOW_ROOTFS",
        value_delimiter = ',',
        value_name = "DIR"
    )]
    pub allow_rootfs: Vec<PathBuf>,
    /// Command agent/run starts (sh -c); it reads the prompt from $JANUS_AGENT_PROMPT
    #[arg(long, env = "JANUS_SANDBOX_AGENT_COMMAND", default_value = DEFAULT_AGENT_COMMAND)]
    pub agent_command: String,
    /// Open files per sandbox process (RLIMIT_NOFILE, soft and hard)
    #[arg(long, env = "JANUS_SANDBOX_OPEN_FILES", default_value_t = 1024)]
    pub open_files: u64,
    /// Largest file a sandbox process may write, in MiB (RLIMIT_FSIZE; 0 for no limit)
    #[arg(long, env = "JANUS_SANDBOX_FILE_SIZE_MB", default_value_t = 1024)]
    pub file_size_mb: u64,
    /// Base URL clients reach this service at, for sandbox `url`s [default: http://<listen>]
    #[arg(long, env = "JANUS_SANDBOX_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Time in-flight requests get to finish on shutdown
    #[arg(long, env = "JANUS_SANDBOX_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Log format [default: json when stderr is not a terminal, else pretty]
    #[arg(long, env = "JANUS_SANDBOX_LOG_FORMAT", value_enum)]
    pub log_format: Option<janus_http::LogFormat>,
    /// Connection handling: header-read, body and idle timeouts, connection cap, HTTP/2 streams.
    #[command(flatten)]
    pub serve: janus_http::ServeFlags<SandboxEnv>,
}

/// The sandbox service's environment prefix for the serving settings
/// (`JANUS_SANDBOX_HEADER_READ_TIMEOUT`, …).
#[derive(Debug, Clone, Copy)]
pub struct SandboxEnv;

impl janus_http::EnvPrefix for SandboxEnv {
    const PREFIX: &'static str = "JANUS_SANDBOX_";
}

/// The default agent: says what it was asked, shows its environment, and finishes. Real
/// deployments name a CLI agent here.
pub const DEFAULT_AGENT_COMMAND: &str =
    "echo \"agent $JANUS_AGENT_NAME ($JANUS_AGENT_MODEL) received: $JANUS_AGENT_PROMPT\"; echo done";

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Required bearer key(s), if any.
    pub api_keys: Option<janus_http::ApiKeys>,
    /// Connection handling, shutdown grace included.
    pub serve: janus_http::ServeConfig,
    /// Log format.
    pub log_format: janus_http::LogFormat,
    /// State directory.
    pub root: PathBuf,
    /// Capacity.
    pub max_sandboxes: usize,
    /// Default TTL.
    pub default_ttl: Duration,
    /// Largest TTL a client may ask for.
    pub max_ttl: Duration,
    /// Default memory limit (MiB).
    pub memory_mb: u64,
    /// Default process limit.
    pub pids: u64,
    /// Default CPU limit (cores).
    pub cpus: f64,
    /// Isolation mode.
    pub isolation: IsolationMode,
    /// Uid/gid for sandbox commands.
    pub uid: u32,
    /// Largest stdout or stderr kept per exec.
    pub max_output_bytes: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest exec timeout a client may ask for.
    pub max_exec_timeout: Duration,
    /// Base URL clients use to reach this service (for sandbox `url`s).
    pub public_url: String,
    /// Command `agent/run` starts.
    pub agent_command: String,
    /// Platform endpoints forwarded into every sandbox: (NAME, HOST:PORT).
    pub forwards: Vec<(String, String)>,
    /// Directories a `rootfs` may lie in (canonical paths); empty: `rootfs` is refused.
    pub allow_rootfs: Vec<PathBuf>,
    /// This service's own binary, run under `nsenter --net` as the relay helper.
    pub helper_binary: PathBuf,
    /// Open-files and file-size limits of every command.
    pub rlimits: crate::isolation::Rlimits,
}

/// Parses `NAME=HOST:PORT`.
pub fn parse_forward(spec: &str) -> Result<(String, String), String> {
    let (name, target) = spec
        .split_once('=')
        .ok_or_else(|| format!("--forward '{spec}' is not NAME=HOST:PORT"))?;
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid_name {
        return Err(format!(
            "--forward name '{name}' must be letters, digits, '-' or '_'"
        ));
    }
    let port = target
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .filter(|p| *p > 0);
    if port.is_none() {
        return Err(format!("--forward target '{target}' is not HOST:PORT"));
    }
    Ok((name.to_owned(), target.to_owned()))
}

/// The largest TTL (contract: default 600 s, at most 3600 s).
pub const MAX_TTL: Duration = Duration::from_secs(3600);

impl Config {
    /// Defaults for tests and embedding, with state under `root`.
    pub fn new(root: PathBuf, isolation: IsolationMode) -> Config {
        let mut serve = janus_http::ServeConfig::default();
        serve.component = "sandbox";
        serve.shutdown_grace = Duration::from_secs(10);
        Config {
            api_keys: None,
            serve,
            log_format: janus_http::LogFormat::detect(),
            root,
            max_sandboxes: 16,
            default_ttl: Duration::from_secs(600),
            max_ttl: MAX_TTL,
            memory_mb: 512,
            pids: 256,
            cpus: 1.0,
            isolation,
            uid: 65534,
            max_output_bytes: 1024 * 1024,
            max_body_bytes: 32 * 1024 * 1024,
            max_exec_timeout: Duration::from_secs(3600),
            public_url: "http://127.0.0.1:8300".to_owned(),
            agent_command: DEFAULT_AGENT_COMMAND.to_owned(),
            forwards: Vec::new(),
            allow_rootfs: Vec::new(),
            helper_binary: std::env::current_exe()
                .unwrap_or_else(|_| PathBuf::from("janus-sandbox")),
            rlimits: crate::isolation::Rlimits::default(),
        }
    }
}

impl Args {
    /// The configuration these flags describe; the error names the bad flag.
    pub fn resolve(self) -> Result<Config, String> {
        if self.default_ttl.is_zero() || self.default_ttl > MAX_TTL {
            return Err("--default-ttl must be between 1s and 3600s".to_owned());
        }
        if self.max_sandboxes == 0 {
            return Err("--max-sandboxes must be at least 1".to_owned());
        }
        if self.memory_mb < 16 {
            return Err("--memory-mb must be at least 16".to_owned());
        }
        if self.pids < 8 {
            return Err("--pids must be at least 8".to_owned());
        }
        if self.cpus.is_nan() || self.cpus <= 0.0 {
            return Err("--cpus must be greater than 0".to_owned());
        }
        let mut config = Config::new(self.root, self.isolation);
        // Set but blank is a mistake, never "no authentication".
        config.api_keys = match &self.api_key {
            Some(key) => Some(
                janus_http::ApiKeys::parse(key)
                    .map_err(|e| format!("--api-key (SANDY_API_KEY): {e}"))?,
            ),
            None => None,
        };
        if self.shutdown_grace.is_zero() {
            return Err("--shutdown-grace must be greater than zero".to_owned());
        }
        let mut serve = self
            .serve
            .resolve(&janus_http::ServeFile::default(), config.serve.clone())
            .map_err(|e| e.to_string())?;
        serve.shutdown_grace = self.shutdown_grace;
        config.serve = serve;
        config.log_format = janus_http::LogFormat::or_detect(self.log_format);
        config.max_sandboxes = self.max_sandboxes;
        config.default_ttl = self.default_ttl;
        config.memory_mb = self.memory_mb;
        config.pids = self.pids;
        config.cpus = self.cpus;
        config.uid = self.uid;
        config.public_url = match self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        };
        if self.open_files < 16 {
            return Err("--open-files must be at least 16".to_owned());
        }
        config.rlimits = crate::isolation::Rlimits {
            open_files: self.open_files,
            file_size_bytes: self.file_size_mb.saturating_mul(1024 * 1024),
        };
        config.agent_command = self.agent_command;
        for spec in self.forwards.iter().filter(|s| !s.trim().is_empty()) {
            config.forwards.push(parse_forward(spec.trim())?);
        }
        for dir in self
            .allow_rootfs
            .iter()
            .filter(|d| !d.as_os_str().is_empty())
        {
            let canonical = dir
                .canonicalize()
                .map_err(|e| format!("--allow-rootfs {}: {e}", dir.display()))?;
            if !canonical.is_dir() {
                return Err(format!("--allow-rootfs {}: not a directory", dir.display()));
            }
            config.allow_rootfs.push(canonical);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::{parse_forward, Args};

    #[test]
    fn forwards_are_name_equals_host_port() {
        assert_eq!(
            parse_forward("gateway=127.0.0.1:8000").unwrap(),
            ("gateway".to_owned(), "127.0.0.1:8000".to_owned())
        );
        assert!(parse_forward("gateway").is_err());
        assert!(parse_forward("=127.0.0.1:80").is_err());
        assert!(parse_forward("a b=127.0.0.1:80").is_err());
        assert!(parse_forward("x=127.0.0.1").is_err());
        assert!(parse_forward("x=127.0.0.1:0").is_err());
    }

    #[test]
    fn flags_resolve_into_a_config() {
        let args = Args::try_parse_from([
            "janus-sandbox",
            "--listen",
            "0.0.0.0:9000",
            "--public-url",
            "http://sandbox.local:9000/",
            "--forward",
            "gw=127.0.0.1:8000",
            "--file-size-mb",
            "2",
            "--isolation",
            "none",
        ])
        .unwrap();
        let config = args.resolve().unwrap();
        assert_eq!(config.public_url, "http://sandbox.local:9000");
        assert_eq!(
            config.forwards,
            [("gw".to_owned(), "127.0.0.1:8000".to_owned())]
        );
        assert_eq!(config.rlimits.file_size_bytes, 2 * 1024 * 1024);
        assert_eq!(config.rlimits.open_files, 1024);
        assert_eq!(config.default_ttl.as_secs(), 600);
        let too_long = Args::try_parse_from(["janus-sandbox", "--default-ttl", "2h"]).unwrap();
        assert!(too_long.resolve().unwrap_err().contains("--default-ttl"));
    }
}
