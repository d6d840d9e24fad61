//! The serving settings, declared once for every binary: flags with an environment
//! variable under the binary's prefix, keys of a TOML file, documented defaults.

use std::marker::PhantomData;
use std::time::Duration;

use clap::{Arg, ArgMatches, Command};

use crate::serve::{default_max_connections, ServeConfig};

/// The environment prefix of a binary's settings (`JANUS_`, `JANUS_SANDBOX_`).
pub trait EnvPrefix {
    /// Prepended to `HEADER_READ_TIMEOUT` and the other names.
    const PREFIX: &'static str;
    /// Descriptors one client connection costs: 2 for a proxy (its upstream call), else 1.
    const DESCRIPTORS_PER_CONNECTION: u64 = 1;
}

/// A setting that does not parse; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct SettingError {
    /// The flag, e.g. `--header-read-timeout`.
    pub setting: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn setting_error(setting: &'static str, reason: impl Into<String>) -> SettingError {
    SettingError {
        setting,
        reason: reason.into(),
    }
}

/// Parses a positive duration like `1.5s`, `300ms`, `2m`.
pub fn parse_duration(value: &str, setting: &'static str) -> Result<Duration, SettingError> {
    let duration = humantime::parse_duration(value.trim()).map_err(|e| {
        setting_error(
            setting,
            format!("'{value}' is not a duration like 1.5s or 300ms: {e}"),
        )
    })?;
    if duration.is_zero() {
        return Err(setting_error(setting, "must be greater than zero"));
    }
    Ok(duration)
}

/// The same settings as TOML keys (`header_read_timeout = "10s"`, …); flatten it into a
/// binary's file struct.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ServeFile {
    /// `header_read_timeout`.
    pub header_read_timeout: Option<String>,
    /// `body_timeout`.
    pub body_timeout: Option<String>,
    /// `idle_timeout`.
    pub idle_timeout: Option<String>,
    /// `max_connections`.
    pub max_connections: Option<u64>,
    /// `http2_max_streams`.
    pub http2_max_streams: Option<u32>,
}

/// The serving flags; embed with `#[command(flatten)] serve: ServeFlags<MyPrefix>`.
#[derive(Debug, Clone)]
pub struct ServeFlags<P> {
    /// `--header-read-timeout`.
    pub header_read_timeout: Option<String>,
    /// `--body-timeout`.
    pub body_timeout: Option<String>,
    /// `--idle-timeout`.
    pub idle_timeout: Option<String>,
    /// `--max-connections`.
    pub max_connections: Option<u64>,
    /// `--http2-max-streams`.
    pub http2_max_streams: Option<u32>,
    prefix: PhantomData<P>,
}

impl<P> Default for ServeFlags<P> {
    fn default() -> Self {
        ServeFlags {
            header_read_timeout: None,
            body_timeout: None,
            idle_timeout: None,
            max_connections: None,
            http2_max_streams: None,
            prefix: PhantomData,
        }
    }
}

/// (id, flag, env suffix, value name, help, default shown)
const FLAGS: [(&str, &str, &str, &str, &str, &str); 5] = [
    (
        "header_read_timeout",
        "header-read-timeout",
        "HEADER_READ_TIMEOUT",
        "DURATION",
        "A connection must send a complete request head this soon after it opens or wakes from idle",
        "10s",
    ),
    (
        "body_timeout",
        "body-timeout",
        "BODY_TIMEOUT",
        "DURATION",
        "A request body must arrive completely within this, else 408",
        "30s",
    ),
    (
        "idle_timeout",
        "idle-timeout",
        "IDLE_TIMEOUT",
        "DURATION",
        "A kept-alive connection with no request in flight closes after this",
        "75s",
    ),
    (
        "max_connections",
        "max-connections",
        "MAX_CONNECTIONS",
        "N",
        "Most client connections; past it idle ones close first, then 503 server_overloaded",
        "from the open-file limit",
    ),
    (
        "http2_max_streams",
        "http2-max-streams",
        "HTTP2_MAX_STREAMS",
        "N",
        "Most concurrent streams per HTTP/2 connection",
        "128",
    ),
];

impl<P: EnvPrefix> clap::Args for ServeFlags<P> {
    fn augment_args(mut cmd: Command) -> Command {
        for (id, long, env, value_name, help, default) in FLAGS {
            let env = format!("{}{env}", P::PREFIX);
            cmd = cmd.arg(
                Arg::new(id)
                    .long(long)
                    .value_name(value_name)
                    .help(format!("{help} [env: {env}] [default: {default}]"))
                    .env(env)
                    .hide_env(true),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

fn number<T: std::str::FromStr>(
    matches: &ArgMatches,
    id: &str,
    flag: &'static str,
) -> Result<Option<T>, clap::Error> {
    match matches.get_one::<String>(id) {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value '{text}' for '{flag}': expected a whole number\n"),
            )
        }),
    }
}

impl<P: EnvPrefix> clap::FromArgMatches for ServeFlags<P> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = ServeFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let text = |id: &str| matches.get_one::<String>(id).cloned();
        if let Some(v) = text("header_read_timeout") {
            self.header_read_timeout = Some(v);
        }
        if let Some(v) = text("body_timeout") {
            self.body_timeout = Some(v);
        }
        if let Some(v) = text("idle_timeout") {
            self.idle_timeout = Some(v);
        }
        if let Some(v) = number(matches, "max_connections", "--max-connections")? {
            self.max_connections = Some(v);
        }
        if let Some(v) = number(matches, "http2_max_streams", "--http2-max-streams")? {
            self.http2_max_streams = Some(v);
        }
        Ok(())
    }
}

impl<P: EnvPrefix> ServeFlags<P> {
    /// Flags (and environment) over `file` over `base` (which carries the binary's own
    /// shutdown grace); the connection cap defaults from the open-file limit.
    pub fn resolve(
        &self,
        file: &ServeFile,
        base: ServeConfig,
    ) -> Result<ServeConfig, SettingError> {
        let mut config = base;
        config.max_connections = default_max_connections(P::DESCRIPTORS_PER_CONNECTION);
        let durations: [(&'static str, Option<&String>, &mut Duration); 3] = [
            (
                "--header-read-timeout",
                self.header_read_timeout
                    .as_ref()
                    .or(file.header_read_timeout.as_ref()),
                &mut config.header_read_timeout,
            ),
            (
                "--body-timeout",
                self.body_timeout.as_ref().or(file.body_timeout.as_ref()),
                &mut config.body_timeout,
            ),
            (
                "--idle-timeout",
                self.idle_timeout.as_ref().or(file.idle_timeout.as_ref()),
                &mut config.idle_timeout,
            ),
        ];
        for (setting, value, slot) in durations {
            if let Some(value) = value {
                *slot = parse_duration(value, setting)?;
            }
        }
        if let Some(max) = self.max_connections.or(file.max_connections) {
            if max == 0 {
                return Err(setting_error("--max-connections", "must be at least 1"));
            }
            config.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
        }
        if let Some(streams) = self.http2_max_streams.or(file.http2_max_streams) {
            if streams == 0 {
                return Err(setting_error("--http2-max-streams", "must be at least 1"));
            }
            config.http2_max_streams = streams;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Debug, Clone)]
    struct TestPrefix;
    impl EnvPrefix for TestPrefix {
        const PREFIX: &'static str = "JANUS_HTTP_TEST_";
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeFlags<TestPrefix>,
    }

    #[test]
    fn flags_beat_the_file_and_defaults_fill_the_rest() {
        let cli =
            Cli::try_parse_from(["t", "--header-read-timeout", "2s", "--max-connections", "7"])
                .unwrap();
        let file = ServeFile {
            header_read_timeout: Some("9s".into()),
            idle_timeout: Some("5s".into()),
            ..ServeFile::default()
        };
        let config = cli.serve.resolve(&file, ServeConfig::default()).unwrap();
        assert_eq!(config.header_read_timeout, Duration::from_secs(2));
        assert_eq!(config.idle_timeout, Duration::from_secs(5));
        assert_eq!(config.body_timeout, Duration::from_secs(30));
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.http2_max_streams, 128);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let cli = Cli::try_parse_from(["t", "--body-timeout", "soon"]).unwrap();
        let err = cli
            .serve
            .resolve(&ServeFile::default(), ServeConfig::default())
            .unwrap_err();
        assert_eq!(err.setting, "--body-timeout");
        assert!(Cli::try_parse_from(["t", "--max-connections", "many"]).is_err());
        let cli = Cli::try_parse_from(["t", "--max-connections", "0"]).unwrap();
        assert!(cli
            .serve
            .resolve(&ServeFile::default(), ServeConfig::default())
            .is_err());
    }

    #[test]
    fn the_default_cap_comes_from_the_open_file_limit() {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(1 << 20);
        let expected = usize::try_from(soft.saturating_sub(64).max(16) / 2).unwrap();
        assert_eq!(default_max_connections(2), expected);
    }
}
