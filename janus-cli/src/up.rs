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
    #[command(flatten)]
    pub gateway: janus_gateway::Args,
}

type SandboxTask = tokio::task::JoinHandle<std::io::Result<()>>;

/// Starts the sandbox service; returns its URL, task and a label for its isolation.
async fn start_sandbox(
    listen: SocketAddr,
    isolation: &str,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(String, SandboxTask, &'static str)> {
    use janus_sandbox::IsolationMode;
    let isolation = match isolation {
        "full" => IsolationMode::Full,
        "none" => IsolationMode::None,
        _ if janus_sandbox::full_isolation_available().is_ok() => IsolationMode::Full,
        _ => {
            tracing::warn!("sandbox isolation unavailable (needs root on Linux): sandboxes run WITHOUT isolation");
            IsolationMode::None
        }
    };
    if isolation == IsolationMode::Full {
        janus_sandbox::full_isolation_available().map_err(anyhow::Error::msg)?;
    }
    let root = std::env::temp_dir().join(format!("janus-up-sandboxes-{}", std::process::id()));
    let mut config = janus_sandbox::Config::new(root, isolation);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {} for the sandbox service", listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    config.public_url = url.clone();
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

/// Starts everything, prints how to use it, and runs until SIGINT/SIGTERM.
pub async fn run(mut args: UpArgs) -> anyhow::Result<ExitCode> {
    let log_format = args
        .gateway
        .log_format
        .unwrap_or(janus_gateway::LogFormat::Pretty);
    janus_gateway::init_logging(log_format);

    let echo = Echo::from_env().map_err(anyhow::Error::msg)?;
    let echo_listener = TcpListener::bind(args.echo_listen).await.with_context(|| {
        format!(
            "cannot listen on {} for the echo competitor",
            args.echo_listen
        )
    })?;
    let echo_addr = echo_listener.local_addr()?;

    // The echo competitor comes first, so it is the default unless --default-competitor says otherwise.
    args.gateway
        .competitors
        .insert(0, format!("echo=http://{echo_addr}"));
    let config = args.gateway.resolve()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} for the gateway", config.listen))?;
    let gateway_url = format!("http://{}", listener.local_addr()?);

    let mut echo_config = ServeConfig::default();
    echo_config.public_base_url = Some(format!("http://{echo_addr}"));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let echo_task = tokio::spawn(janus_competitor_sdk::serve(
        echo_listener,
        Arc::new(echo),
        echo_config,
        stopped(stop_rx.clone()),
    ));
    let sandbox = if args.no_sandbox {
        None
    } else {
        Some(
            start_sandbox(
                args.sandbox_listen,
                &args.sandbox_isolation,
                stopped(stop_rx.clone()),
            )
            .await?,
        )
    };
    let competitors: Vec<String> = config
        .competitors
        .iter()
        .map(|c| format!("{} → {}", c.id, c.url))
        .collect();
    let gateway_task = tokio::spawn(janus_gateway::run(listener, config, stopped(stop_rx)));

    println!("Janus is up.");
    println!("  gateway      {gateway_url}");
    println!("  competitors  {}", competitors.join(", "));
    if let Some((url, _, label)) = &sandbox {
        println!("  sandboxes    {url} ({label}); competitors use SANDY_BASE_URL={url}");
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
    let (gateway, echo) = tokio::join!(gateway_task, echo_task);
    gateway.context("the gateway task failed")??;
    echo.context("the echo competitor task failed")??;
    if let Some((_, task, _)) = sandbox {
        task.await.context("the sandbox service task failed")??;
    }
    Ok(ExitCode::SUCCESS)
}
