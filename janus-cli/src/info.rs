//! `janus models` and `janus health`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use janus_client::HttpClient;
use serde_json::Value;

use crate::exit::Failure;

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
    let json = response.json().ok_or_else(|| {
        Failure::Answered(format!(
            "GET {url} answered {} without JSON",
            response.status
        ))
    })?;
    if !response.status.is_success() {
        let message = json["error"]["message"].as_str().unwrap_or("no message");
        return Err(Failure::Answered(format!(
            "GET {url} answered {}: {message}",
            response.status
        ))
        .into());
    }
    Ok(json)
}

/// The id of the gateway's default competitor: the `/v1/models` entry marked
/// `"janus": {"default": true}`, else `/health`'s `default_competitor`.
async fn default_model(args: &GatewayArgs, models: &Value) -> Option<String> {
    let marked = models["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["janus"]["default"] == true)
        .and_then(|m| m["id"].as_str());
    if let Some(id) = marked {
        return Some(id.to_owned());
    }
    let health = get_json(args, "/health").await.ok()?;
    health["default_competitor"].as_str().map(str::to_owned)
}

/// `janus models`: one line per competitor, the default marked `(default)` (an unknown
/// `model` is routed to it).
pub async fn models(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let json = get_json(&args, "/v1/models")
        .await
        .context("cannot list the gateway's models")?;
    if args.json {
        println!("{json:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let default = default_model(&args, &json).await;
    for model in json["data"].as_array().into_iter().flatten() {
        let id = model["id"].as_str().unwrap_or("?");
        let marker = if default.as_deref() == Some(id) {
            " (default)"
        } else {
            ""
        };
        match model["description"].as_str() {
            Some(description) => println!("{id}{marker}\t{description}"),
            None => println!("{id}{marker}"),
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
        ExitCode::from(crate::exit::ANSWERED_ERROR)
    })
}
