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
    /// OpenAI-compatible inference upstream (the part before /chat/completions); with it,
    /// the baseline competitor (id `baseline`) is included
    #[arg(long, env = "JANUS_BASELINE_INFERENCE_URL")]
    pub inference_url: Option<String>,
    /// Name of the environment variable that holds the inference key (read, never printed)
    #[arg(long, default_value = "JANUS_BASELINE_INFERENCE_KEY")]
    pub inference_key_env: String,
    /// Address of the embedded baseline competitor (port 0 picks a free one)
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
    inference_forward: Option<String>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(String, SandboxTask, &'static str)> {
    use janus_sandbox::IsolationMode;
    let mut config = janus_sandbox::Config::new(root.0.clone(), isolation);
    let url = format!("http://{}", listener.local_addr()?);
    config.public_url = url.clone();
    if let Some(target) = inference_forward {
        // The baseline's agent: the copied janus-agent when there is one, else the
        // stand-in. Inference is reachable inside at the same host:port.
        config.agent_command = format!(
            "if [ -x ./{path} ]; then {run}; fi; {fallback}",
            path = janus_baseline::AGENT_PATH,
            run = janus_baseline::SANDBOX_AGENT_COMMAND,
            fallback = janus_sandbox::DEFAULT_AGENT_COMMAND,
        );
        config.forwards.push(("inference".to_owned(), target));
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

/// `host:port` of an http(s) URL, for the sandbox forward.
fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        return Some(authority.to_owned());
    }
    let port = if scheme == "https" { 443 } else { 80 };
    Some(format!("{authority}:{port}"))
}

/// The baseline's settings for `janus up`: its environment, then the flags.
fn baseline_settings(args: &UpArgs, url: &str) -> anyhow::Result<janus_baseline::Settings> {
    let mut settings = janus_baseline::Settings::from_env().map_err(Failure::Usage)?;
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(Failure::Usage(format!(
            "--inference-url must be an http:// or https:// URL, got '{url}'"
        ))
        .into());
    }
    settings.inference_url = Some(url.trim_end_matches('/').to_owned());
    settings.inference_key = std::env::var(&args.inference_key_env)
        .ok()
        .filter(|k| !k.is_empty());
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
    // JSON when stderr is not a terminal, as every Janus binary.
    janus_gateway::init_logging(janus_gateway::LogFormat::or_detect(args.gateway.log_format));

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
            let settings = baseline_settings(&args, &url)?;
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
    let config = args.gateway.resolve()?;
    // Every listener is bound before anything starts, so a taken port fails cleanly.
    let listener = bind(config.listen, "the gateway", "--listen").await?;
    let gateway_url = format!("http://{}", listener.local_addr()?);
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
    let sandbox = match sandbox_setup {
        None => None,
        Some((isolation, sandbox_listener, root)) => {
            let forward = baseline
                .as_ref()
                .and_then(|(settings, _, _)| settings.inference_url.as_deref())
                .and_then(host_port);
            let (url, task, label) = start_sandbox(
                sandbox_listener,
                isolation,
                &root,
                forward,
                stopped(stop_rx.clone()),
            )?;
            Some((url, task, label, root))
        }
    };
    let mut baseline_note = None;
    let baseline_task = baseline.map(|(settings, listener, addr)| {
        let sandy = sandbox
            .as_ref()
            .map(|(url, _, _, _)| janus_competitor_sdk::SandyClient::new(url, None));
        baseline_note = Some(format!(
            "inference {}{}{}",
            settings.inference_url.as_deref().unwrap_or(""),
            if sandy.is_some() {
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
            Arc::new(janus_baseline::Baseline::new(settings, sandy)),
            serve,
            stopped(stop_rx.clone()),
        ))
    });
    let competitors: Vec<String> = config
        .competitors
        .iter()
        .map(|c| format!("{} → {}", c.id, c.url))
        .collect();
    let gateway_task = tokio::spawn(janus_gateway::run(listener, config, stopped(stop_rx)));

    println!("Janus is up.");
    println!("  gateway      {gateway_url}");
    println!("  competitors  {}", competitors.join(", "));
    if let Some((url, _, label, _)) = &sandbox {
        println!("  sandboxes    {url} ({label}); competitors use SANDY_BASE_URL={url}");
    }
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
    Ok(ExitCode::SUCCESS)
}
