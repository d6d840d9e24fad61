//! `janus models` and `janus health`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use janus_client::HttpClient;
use serde_json::Value;

/// Where the gateway is.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// Gateway base URL
    #[arg(long, env = "JANUS_GATEWAY_URL", default_value = crate::DEFAULT_GATEWAY)]
    pub gateway: String,
    /// API key sent as "Authorization: Bearer <key>"
    #[arg(long, env = "JANUS_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print the raw JSON
    #[arg(long)]
    pub json: bool,
}

async fn get_json(args: &GatewayArgs, path: &str) -> anyhow::Result<Value> {
    let client = HttpClient::new(args.api_key.clone());
    let url = format!("{}{path}", args.gateway.trim_end_matches('/'));
    let response = client.get(&url, Duration::from_secs(10)).await?;
    let json = response
        .json()
        .with_context(|| format!("GET {url} answered {} without JSON", response.status))?;
    if !response.status.is_success() {
        let message = json["error"]["message"].as_str().unwrap_or("no message");
        bail!("GET {url} answered {}: {message}", response.status);
    }
    Ok(json)
}

/// `janus models`.
pub async fn models(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let json = get_json(&args, "/v1/models").await?;
    if args.json {
        println!("{json:#}");
        return Ok(ExitCode::SUCCESS);
    }
    for model in json["data"].as_array().into_iter().flatten() {
        let id = model["id"].as_str().unwrap_or("?");
        match model["description"].as_str() {
            Some(description) => println!("{id}\t{description}"),
            None => println!("{id}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `janus health`: exit 0 only when the gateway is ok and every competitor is ready.
pub async fn health(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let json = get_json(&args, "/health").await?;
    let competitors = json["competitors"].as_array().cloned().unwrap_or_default();
    let all_ready = competitors.iter().all(|c| c["ready"] == true);
    if args.json {
        println!("{json:#}");
    } else {
        println!(
            "gateway {} — status {}, version {}",
            args.gateway,
            json["status"].as_str().unwrap_or("?"),
            json["version"].as_str().unwrap_or("?")
        );
        for competitor in &competitors {
            let id = competitor["id"].as_str().unwrap_or("?");
            if competitor["ready"] == true {
                println!("  {id}: ready");
            } else {
                let why = competitor["error"].as_str().unwrap_or("not ready");
                println!("  {id}: NOT READY ({why})");
            }
        }
    }
    Ok(if json["status"] == "ok" && all_ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
