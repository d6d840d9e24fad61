//! `janus up`: the local stack — the gateway in front of the embedded echo competitor (and
//! any competitors you add) and the sandbox service, in this process, until Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use echo_competitor::Echo;
use janus_competitor_sdk::ServeConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::exit::Failure;

/// The embedded echo competitor's id.
const ECHO_ID: &str = "echo";
/// Where the inference key is read from without `--inference-key-env`.
const DEFAULT_INFERENCE_KEY_ENV: &str = "JANUS_BASELINE_INFERENCE_KEY";

/// Arguments of `janus up`: every gateway setting, plus where the echo competitor listens.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Address of the embedded echo competitor (port 0 picks a free one)
    #[arg(long, env = "JANUS_ECHO_LISTEN", default_value = "127.0.0.1:0")]
    pub echo_listen: SocketAddr,
    /// Address of the embedded sandbox service (Sandy API)
    #[arg(long, env = "JANUS_SANDBOX_LISTEN", default_value = "127.0.0.1:8300")]
    pub sandbox_listen: SocketAddr,
    /// Sandbox isolation: full (namespaces + cgroups, needs root), none, or auto (full when possible)
    #[arg(long, default_value = "auto", value_parser = ["auto", "full", "none"])]
    pub sandbox_isolation: String,
    /// Do not start the sandbox service
    #[arg(long)]
    pub no_sandbox: bool,
    /// Directory for the JSON log of every component (one file per run), read by `janus trace` [env: JANUS_LOG_DIR] [default: $XDG_STATE_HOME/janus/logs, else ~/.local/state/janus/logs]
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<std::path::PathBuf>,
    /// OpenAI-compatible API served to competitors as the platform's inference service (e.g. http://127.0.0.1:11434/v1)
    #[arg(long, env = "JANUS_INFERENCE_URL", value_name = "URL")]
    pub inference_url: Option<String>,
    /// Environment variable holding the inference API key (the gateway injects it; competitors never see it)
    #[arg(long, value_name = "VAR", requires = "inference_url")]
    pub inference_key_env: Option<String>,
    /// Search API served to competitors as the platform's search service
    #[arg(long, env = "JANUS_SEARCH_URL", value_name = "URL")]
    pub search_url: Option<String>,
    /// Environment variable holding the search API key
    #[arg(long, value_name = "VAR", requires = "search_url")]
    pub search_key_env: Option<String>,
    /// Address of the embedded baseline competitor (port 0 picks a free one); the baseline is included when --inference-url is given
    #[arg(long, env = "JANUS_BASELINE_LISTEN", default_value = "127.0.0.1:0")]
    pub baseline_listen: SocketAddr,
    #[command(flatten)]
    pub gateway: janus_gateway::Args,
}

type SandboxTask = tokio::task::JoinHandle<std::io::Result<()>>;

/// The sandbox service's temporary `--root`: removed when `janus up` ends, however it ends.
struct TempRoot(std::path::PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(root = %self.0.display(), error = %e, "cannot remove the sandbox folder");
            }
        }
    }
}

/// Binds `addr` for `what`; a taken or unusable address is a configuration error naming
/// the flag that changes it.
async fn bind(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        Failure::Usage(format!(
            "cannot listen on {addr} for {what}: {e} (choose another address with {flag})"
        ))
        .into()
    })
}

/// The isolation the sandbox service gets.
fn sandbox_isolation(isolation: &str) -> anyhow::Result<janus_sandbox::IsolationMode> {
    use janus_sandbox::IsolationMode;
    let mode = match isolation {
        "full" => IsolationMode::Full,
        "none" => IsolationMode::None,
        _ if janus_sandbox::full_isolation_available().is_ok() => IsolationMode::Full,
        _ => {
            tracing::warn!("sandbox isolation unavailable (needs root on Linux): sandboxes run WITHOUT isolation");
            IsolationMode::None
        }
    };
    if mode == IsolationMode::Full {
        janus_sandbox::full_isolation_available()
            .map_err(|e| Failure::Usage(format!("--sandbox-isolation full: {e}")))?;
    }
    Ok(mode)
}

/// Starts the sandbox service on a bound listener; returns its URL, task and a label for
/// its isolation.
fn start_sandbox(
    listener: TcpListener,
    isolation: janus_sandbox::IsolationMode,
    root: &TempRoot,
    allow_rootfs: &[std::path::PathBuf],
    platform_forward: Option<SocketAddr>,
    baseline_agent: bool,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(String, SandboxTask, &'static str)> {
    use janus_sandbox::IsolationMode;
    let mut config = janus_sandbox::Config::new(root.0.clone(), isolation);
    // The images launched competitors name are the ones this service may use as roots.
    for dir in allow_rootfs {
        config.allow_rootfs.push(
            dir.canonicalize()
                .map_err(|e| Failure::Usage(format!("rootfs {}: {e}", dir.display())))?,
        );
    }
    let url = format!("http://{}", listener.local_addr()?);
    config.public_url = url.clone();
    if baseline_agent {
        // The baseline's agent: the copied janus-agent when there is one, else the
        // stand-in. It reaches inference through the platform forward, with the grant.
        config.agent_command = format!(
            "if [ -x ./{path} ]; then {run}; fi; {fallback}",
            path = janus_baseline::AGENT_PATH,
            run = janus_baseline::SANDBOX_AGENT_COMMAND,
            fallback = janus_sandbox::DEFAULT_AGENT_COMMAND,
        );
    }
    if let Some(platform) = platform_forward {
        // The platform is the one endpoint every sandbox reaches: inside, at the same
        // 127.0.0.1:PORT the competitors are told (`SANDY_FORWARD_PLATFORM`).
        let port = platform.port();
        config
            .forwards
            .push(("platform".to_owned(), format!("127.0.0.1:{port}")));
    }
    let label = match isolation {
        IsolationMode::Full => "full isolation",
        IsolationMode::None => "NO isolation",
    };
    Ok((
        url,
        tokio::spawn(janus_sandbox::run(listener, config, stopped)),
        label,
    ))
}

/// A platform service from `--inference-url` / `--search-url` and its key variable.
fn platform_service(
    kind: janus_gateway::PlatformKind,
    name: &str,
    url: &str,
    key_env: Option<&str>,
) -> anyhow::Result<janus_gateway::PlatformService> {
    let flag = format!("--{name}-url");
    let service = janus_gateway::PlatformService::new(name, kind, url)
        .map_err(|e| Failure::Usage(format!("{flag}: {e}")))?;
    Ok(match key_env {
        None => service,
        Some(var) => match std::env::var(var) {
            Ok(key) if !key.trim().is_empty() => {
                service.with_secret(janus_gateway::Secret::new(key.trim()))
            }
            _ => {
                return Err(Failure::Usage(format!(
                    "--{name}-key-env: environment variable {var} is unset or empty"
                ))
                .into())
            }
        },
    })
}

/// The baseline's settings for `janus up`: its environment. Inference, search and the
/// sandboxes reach it through the gateway's platform with each request's grant, so no
/// upstream URL or key is handed to it.
fn baseline_settings(url: &str) -> anyhow::Result<janus_baseline::Settings> {
    let mut settings = janus_baseline::Settings::from_env().map_err(Failure::Usage)?;
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(Failure::Usage(format!(
            "--inference-url must be an http:// or https:// URL, got '{url}'"
        ))
        .into());
    }
    settings.inference_url = None;
    settings.inference_key = None;
    settings.agent_api_base = None;
    settings.search_url = None;
    if settings.agent_binary.is_none() {
        // Installed side by side (cargo install, a release archive, target/<profile>).
        settings.agent_binary = std::env::current_exe()
            .ok()
            .map(|exe| exe.with_file_name("janus-agent"))
            .filter(|path| path.is_file());
    }
    Ok(settings)
}

/// The id of a `--competitor ID=URL` spec.
fn spec_id(spec: &str) -> &str {
    spec.split_once('=').map_or(spec, |(id, _)| id).trim()
}

/// Starts everything, prints how to use it, and runs until SIGINT/SIGTERM.
pub async fn run(mut args: UpArgs) -> anyhow::Result<ExitCode> {
    // Every component logs into one JSON file under the log directory, whatever stderr
    // shows (JSON when it is not a terminal, as every Janus binary), so `janus trace` works
    // after a local run with no other argument.
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(janus_client::trace::default_log_dir);
    let log_file = log_dir.join(format!(
        "janus-up-{}-{}.log",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', ""),
        std::process::id()
    ));
    let file = std::fs::create_dir_all(&log_dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_file)
        })
        .map_err(|e| {
            Failure::Usage(format!(
                "cannot write the log file {}: {e} (choose another directory with --log-dir)",
                log_file.display()
            ))
        })?;
    janus_http::runtime::init_logging_with_file(
        janus_gateway::LogFormat::or_detect(args.gateway.log_format),
        Some(file),
    );

    // A competitor of the user's named `echo` wins over the embedded one.
    let embed_echo = !args
        .gateway
        .competitors
        .iter()
        .any(|s| spec_id(s) == ECHO_ID);
    let echo = if embed_echo {
        let echo = Echo::from_env().map_err(Failure::Usage)?;
        let listener = bind(args.echo_listen, "the echo competitor", "--echo-listen").await?;
        let addr = listener.local_addr()?;
        // First in the list, so it is the default unless --default-competitor says otherwise.
        args.gateway
            .competitors
            .insert(0, format!("{ECHO_ID}=http://{addr}"));
        Some((echo, listener, addr))
    } else {
        None
    };
    let baseline = match args.inference_url.clone() {
        Some(url)
            if !args
                .gateway
                .competitors
                .iter()
                .any(|s| spec_id(s) == janus_baseline::ID) =>
        {
            let mut settings = baseline_settings(&url)?;
            if args.search_url.is_some() && settings.search_path.is_none() {
                // The agent's web_search goes to the platform's search service.
                settings.search_path = Some("search".to_owned());
            }
            let listener = bind(
                args.baseline_listen,
                "the baseline competitor",
                "--baseline-listen",
            )
            .await?;
            let addr = listener.local_addr()?;
            args.gateway
                .competitors
                .push(format!("{}=http://{addr}", janus_baseline::ID));
            Some((settings, listener, addr))
        }
        _ => None,
    };
    let user_baseline = args
        .gateway
        .competitors
        .iter()
        .any(|s| spec_id(s) == janus_baseline::ID)
        && baseline.is_none();
    let sandbox_setup = if args.no_sandbox {
        None
    } else {
        let isolation = sandbox_isolation(&args.sandbox_isolation)?;
        let sandbox_listener = bind(
            args.sandbox_listen,
            "the sandbox service",
            "--sandbox-listen",
        )
        .await?;
        let root = TempRoot(
            std::env::temp_dir().join(format!("janus-up-sandboxes-{}", std::process::id())),
        );
        Some((isolation, sandbox_listener, root))
    };
    // Competitors launched with --launch (or `command` in the config file) run in the
    // embedded sandbox service unless another is named.
    if let (Some((_, sandbox_listener, _)), None) = (&sandbox_setup, &args.gateway.sandbox_url) {
        args.gateway.sandbox_url = Some(format!("http://{}", sandbox_listener.local_addr()?));
    }
    let mut config = args.gateway.resolve()?;
    use janus_gateway::PlatformKind;
    // Without --inference-key-env the inference key is $JANUS_BASELINE_INFERENCE_KEY when
    // set. Either way the gateway injects it: no competitor, the baseline included, sees it.
    let inference_key_env = args.inference_key_env.clone().or_else(|| {
        std::env::var(DEFAULT_INFERENCE_KEY_ENV)
            .is_ok_and(|key| !key.trim().is_empty())
            .then(|| DEFAULT_INFERENCE_KEY_ENV.to_owned())
    });
    for (kind, name, url, key) in [
        (
            PlatformKind::Inference,
            "inference",
            &args.inference_url,
            &inference_key_env,
        ),
        (
            PlatformKind::Search,
            "search",
            &args.search_url,
            &args.search_key_env,
        ),
    ] {
        if let Some(url) = url {
            config.platforms.retain(|p| p.name != name);
            config
                .platforms
                .push(platform_service(kind, name, url, key.as_deref())?);
        }
    }
    if !config.launch.is_empty() && args.no_sandbox && config.sandbox_url.is_none() {
        return Err(Failure::Usage(
            "--launch needs the sandbox service: drop --no-sandbox or pass --sandbox-url".into(),
        )
        .into());
    }
    let allow_rootfs: Vec<std::path::PathBuf> = config
        .launch
        .iter()
        .filter_map(|l| l.rootfs.clone())
        .collect();
    // Every listener is bound before anything starts, so a taken port fails cleanly.
    let listener = bind(config.listen, "the gateway", "--listen").await?;
    let gateway_url = format!("http://{}", listener.local_addr()?);
    let ui = config.ui;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let echo_task = echo.map(|(echo, echo_listener, echo_addr)| {
        let mut echo_config = ServeConfig::default();
        echo_config.public_base_url = Some(format!("http://{echo_addr}"));
        tokio::spawn(janus_competitor_sdk::serve(
            echo_listener,
            Arc::new(echo),
            echo_config,
            stopped(stop_rx.clone()),
        ))
    });
    // The platform listener is bound before the sandbox service starts, so the service can
    // forward it into every sandbox. The embedded sandbox service is itself a platform
    // service, so with it the platform is always on.
    let platform_listener = if config.platforms.is_empty() && sandbox_setup.is_none() {
        None
    } else {
        let platform_listener =
            bind(config.platform_listen, "the platform", "--platform-listen").await?;
        // Port 0 picks a free port: competitors are told the real one.
        config.platform_listen = platform_listener.local_addr()?;
        Some(platform_listener)
    };
    let sandbox = match sandbox_setup {
        None => None,
        Some((isolation, sandbox_listener, root)) => {
            let (url, task, label) = start_sandbox(
                sandbox_listener,
                isolation,
                &root,
                &allow_rootfs,
                Some(config.platform_listen),
                baseline.is_some(),
                stopped(stop_rx.clone()),
            )?;
            // Competitors reach it as the platform's sandbox service.
            if !config.platforms.iter().any(|p| p.name == "sandbox") {
                config.platforms.push(
                    janus_gateway::PlatformService::new("sandbox", PlatformKind::Sandbox, &url)
                        .map_err(Failure::Usage)?,
                );
            }
            Some((url, task, label, root))
        }
    };
    let platform_line = platform_listener.as_ref().map(|_| {
        let names: Vec<&str> = config.platforms.iter().map(|p| p.name.as_str()).collect();
        format!("{} ({})", config.platform_base(), names.join(", "))
    });
    let mut baseline_note = None;
    let baseline_task = baseline.map(|(settings, listener, addr)| {
        baseline_note = Some(format!(
            "inference {} through the platform{}{}",
            args.inference_url.as_deref().unwrap_or(""),
            if sandbox.is_some() {
                ", agent path in the sandboxes"
            } else {
                ", no sandboxes: fast path only"
            },
            if settings.agent_binary.is_some() {
                ""
            } else {
                " (no janus-agent binary beside janus: set JANUS_BASELINE_AGENT_BINARY)"
            },
        ));
        let mut serve = ServeConfig::default();
        serve.public_base_url = Some(format!("http://{addr}"));
        tokio::spawn(janus_competitor_sdk::serve(
            listener,
            // Every service comes with the request's platform grant.
            Arc::new(janus_baseline::Baseline::new(settings, None)),
            serve,
            stopped(stop_rx.clone()),
        ))
    });
    let competitors: Vec<String> = config
        .competitors
        .iter()
        .map(|c| format!("{} → {}", c.id, c.url))
        .collect();
    let gateway_task = tokio::spawn(janus_gateway::run_with_platform(
        listener,
        platform_listener,
        config,
        stopped(stop_rx),
    ));

    println!("Janus is up.");
    println!("  gateway      {gateway_url}");
    if ui {
        println!("  chat UI      {gateway_url}/ (open it in a browser; --no-ui turns it off)");
    }
    println!("  competitors  {}", competitors.join(", "));
    if let Some((url, _, label, _)) = &sandbox {
        println!("  sandboxes    {url} ({label}); competitors reach it through the platform");
    }
    if let Some(line) = &platform_line {
        println!("  platform     {line}");
    }
    println!("  logs         {}", log_file.display());
    match &baseline_note {
        Some(note) => println!("  baseline     included ({note})"),
        None if user_baseline => {}
        None => println!(
            "  baseline     not included: no inference upstream is configured (--inference-url URL, key in $JANUS_BASELINE_INFERENCE_KEY)"
        ),
    }
    println!();
    println!("Try:");
    println!(
        "  curl -N {gateway_url}/v1/chat/completions -H 'content-type: application/json' \\\n    -d '{{\"model\":\"echo\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}'"
    );
    println!("  janus chat --gateway {gateway_url} \"hello, make me a file\"");
    println!();
    println!("Ctrl-C stops everything.");

    janus_gateway::shutdown_signal().await;
    let _ = stop_tx.send(true);
    let gateway = gateway_task.await;
    gateway.context("the gateway task failed")??;
    if let Some(echo) = echo_task {
        echo.await.context("the echo competitor task failed")??;
    }
    if let Some(baseline) = baseline_task {
        baseline
            .await
            .context("the baseline competitor task failed")??;
    }
    if let Some((_, task, _, root)) = sandbox {
        task.await.context("the sandbox service task failed")??;
        drop(root);
    }
    janus_http::otel::flush(std::time::Duration::from_secs(2)).await;
    janus_http::runtime::flush_logs();
    Ok(ExitCode::SUCCESS)
}
