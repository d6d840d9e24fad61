//! Harness for the cross-crate end-to-end tests: a competitor built on the SDK and a gateway
//! in front of it, both in this process on 127.0.0.1:0.

use std::net::SocketAddr;
use std::sync::Arc;

use janus_competitor_sdk::{Competitor, ServeConfig};
use janus_gateway::{CompetitorConfig, Config};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A running gateway + competitor pair; both stop when this is dropped.
#[derive(Debug)]
pub struct Stack {
    /// Gateway base URL.
    pub gateway: String,
    /// Competitor base URL.
    pub competitor: String,
    /// Platform base competitors are told (`…/platform`), when platform services are on.
    pub platform: Option<String>,
    stop: watch::Sender<bool>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Starts `competitor` (id `c`) and a gateway routing to it.
pub async fn start<C: Competitor>(competitor: C) -> std::io::Result<Stack> {
    start_with_platform(competitor, Vec::new()).await
}

/// [`start`] with these platform services on a platform listener of its own.
pub async fn start_with_platform<C: Competitor>(
    competitor: C,
    platforms: Vec<janus_gateway::PlatformService>,
) -> std::io::Result<Stack> {
    let (stop, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let (competitor_listener, competitor_addr) = bind().await?;
    let competitor_url = format!("http://{competitor_addr}");
    let mut serve_config = ServeConfig::default();
    serve_config.public_base_url = Some(competitor_url.clone());
    tokio::spawn(janus_competitor_sdk::serve(
        competitor_listener,
        Arc::new(competitor),
        serve_config,
        stopped(stop_rx.clone()),
    ));
    let (gateway_listener, gateway_addr) = bind().await?;
    let config = Config::with_competitors(vec![CompetitorConfig {
        id: "c".to_owned(),
        url: competitor_url.clone(),
        timeout: None,
        max_concurrent_requests: None,
        description: None,
    }]);
    let mut config = config;
    let platform_listener = if platforms.is_empty() {
        None
    } else {
        let (listener, addr) = bind().await?;
        config.platform_listen = addr;
        config.platforms = platforms;
        Some(listener)
    };
    let platform = platform_listener.as_ref().map(|_| config.platform_base());
    tokio::spawn(janus_gateway::run_with_platform(
        gateway_listener,
        platform_listener,
        config,
        stopped(stop_rx),
    ));
    Ok(Stack {
        gateway: format!("http://{gateway_addr}"),
        competitor: competitor_url,
        platform,
        stop,
    })
}

/// Serves `answer` on 127.0.0.1:0 through the real serving layer — a test double for an
/// upstream (an inference API, a search API) — and returns its address.
pub async fn test_double<F, Fut>(answer: F) -> std::io::Result<SocketAddr>
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<janus_http::ResponseBody>> + Send + 'static,
{
    let (listener, addr) = bind().await?;
    tokio::spawn(janus_http::serve(
        listener,
        answer,
        janus_http::ServeConfig::default(),
        janus_http::Drain::new(),
        std::future::pending(),
    ));
    Ok(addr)
}
