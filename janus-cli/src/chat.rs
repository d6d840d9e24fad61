//! `janus chat`: one prompt through the gateway, the answer streamed to the terminal.
//!
//! The answer goes to stdout; reasoning (dimmed), janus events (one-line notes) and errors
//! go to stderr, so `janus chat "…" > answer.txt` captures just the answer.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use janus_client::{fetch_artifact, HttpClient};
use janus_core::sse::{SseItem, DONE_DATA};
use janus_core::{ArtifactDescriptor, ChatCompletionChunk, ChatCompletionResponse, ErrorEnvelope};
use serde_json::{json, Value};

use crate::exit::Failure;

/// Arguments of `janus chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// The prompt; `-` reads it from stdin
    pub prompt: String,
    /// Gateway base URL
    #[arg(long, env = "JANUS_GATEWAY_URL", default_value = crate::DEFAULT_GATEWAY)]
    pub gateway: String,
    /// Model (a competitor id routes to that competitor)
    #[arg(long, env = "JANUS_MODEL", default_value = "echo")]
    pub model: String,
    /// Attach an image (sent as a data: URL); repeatable
    #[arg(long, value_name = "PATH")]
    pub image: Vec<PathBuf>,
    /// Ask for one JSON response instead of a stream
    #[arg(long)]
    pub no_stream: bool,
    /// Print the raw chunks (or the raw response) as JSON lines
    #[arg(long)]
    pub json: bool,
    /// Do not show reasoning_content
    #[arg(long)]
    pub hide_reasoning: bool,
    /// Download the artifacts into DIR, verifying sha256 and size
    #[arg(long, value_name = "DIR")]
    pub save_artifacts: Option<PathBuf>,
    /// API key sent as "Authorization: Bearer <key>"
    #[arg(long, env = "JANUS_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Longest wait: for the response to start (connect and first byte), then, while
    /// streaming, for the next event; with --no-stream, for the whole response
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

fn mime_for(path: &std::path::Path) -> anyhow::Result<&'static str> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    Ok(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        other => {
            return Err(Failure::Usage(format!(
                "{}: unknown image type '.{other}' (png, jpg, jpeg, gif, webp, bmp, svg)",
                path.display()
            ))
            .into())
        }
    })
}

fn request_body(args: &ChatArgs, prompt: String) -> anyhow::Result<Bytes> {
    let content = if args.image.is_empty() {
        Value::String(prompt)
    } else {
        let mut parts = vec![json!({"type": "text", "text": prompt})];
        for path in &args.image {
            let mime = mime_for(path)?;
            let bytes = std::fs::read(path)
                .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
            let url = janus_core::data_url_encode(mime, &bytes);
            parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
        }
        Value::Array(parts)
    };
    let mut body = json!({
        "model": args.model,
        "messages": [{"role": "user", "content": content}],
        "stream": !args.no_stream,
    });
    if !args.no_stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    Ok(Bytes::from(body.to_string()))
}

struct Style {
    dim: bool,
}

impl Style {
    /// The request id the gateway gave, on stderr, so the user can `janus trace` it.
    fn request_id(&self, headers: &http::HeaderMap) {
        if let Some(id) = headers
            .get(janus_core::contract::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.note(&format!("request {id} (janus trace {id})\n"));
        }
    }

    fn note(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.dim {
            let _ = write!(err, "\x1b[2m{text}\x1b[0m");
        } else {
            let _ = write!(err, "{text}");
        }
        let _ = err.flush();
    }
}

/// Runs the command; exit 1 when the stream reports an error.
pub async fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let prompt = if args.prompt == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::Usage(format!("cannot read the prompt from stdin: {e}")))?;
        // `echo hi | janus chat -` sends "hi", not "hi\n" (one line ending, as a shell's
        // command substitution would strip).
        let trimmed = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        trimmed.to_owned()
    } else {
        args.prompt.clone()
    };
    let body = request_body(&args, prompt)?;
    let client = HttpClient::new(args.api_key.clone());
    let url = format!("{}/v1/chat/completions", args.gateway.trim_end_matches('/'));
    let style = Style {
        dim: std::io::stderr().is_terminal(),
    };
    let artifacts = if args.no_stream {
        let response = client
            .post_json(&url, body, args.timeout)
            .await
            .map_err(timeout_hint)?;
        style.request_id(&response.headers);
        if args.json {
            println!("{}", String::from_utf8_lossy(&response.body));
        }
        if !response.status.is_success() {
            let message = serde_json::from_slice::<ErrorEnvelope>(&response.body)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&response.body).into_owned());
            return Err(Failure::Answered(format!(
                "the gateway answered {}: {message}",
                response.status
            ))
            .into());
        }
        let response: ChatCompletionResponse =
            serde_json::from_slice(&response.body).map_err(|e| {
                Failure::Answered(format!("the response is not a chat completion: {e}"))
            })?;
        let message = response.choices.into_iter().next().map(|c| c.message);
        if let Some(message) = &message {
            if !args.json {
                if let (Some(reasoning), false) = (&message.reasoning_content, args.hide_reasoning)
                {
                    style.note(&format!("{reasoning}\n"));
                }
                println!("{}", message.content.as_deref().unwrap_or(""));
            }
        }
        message.and_then(|m| m.artifacts).unwrap_or_default()
    } else {
        match stream(&client, &url, body, &args, &style).await? {
            Ok(artifacts) => artifacts,
            Err(message) => {
                eprintln!("janus: the stream failed: {message}");
                return Ok(ExitCode::FAILURE);
            }
        }
    };
    if !artifacts.is_empty() && !args.json {
        println!("\nArtifacts:");
        for artifact in &artifacts {
            let url: String = if artifact.url.len() > 72 {
                format!("{}…", artifact.url.chars().take(72).collect::<String>())
            } else {
                artifact.url.clone()
            };
            println!(
                "  {}  {} bytes  {url}",
                artifact.display_name.as_deref().unwrap_or(&artifact.id),
                artifact.size_bytes
            );
        }
    }
    if let Some(dir) = &args.save_artifacts {
        save_artifacts(&client, &artifacts, dir, args.timeout).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams the answer; the inner error is an error event's message.
async fn stream(
    client: &HttpClient,
    url: &str,
    body: Bytes,
    args: &ChatArgs,
    style: &Style,
) -> anyhow::Result<Result<Vec<ArtifactDescriptor>, String>> {
    let mut stream = client
        .post_stream(url, body, args.timeout)
        .await
        .map_err(timeout_hint)?;
    style.request_id(&stream.headers);
    if !stream.status.is_success() {
        let mut raw = Vec::new();
        while let Ok(Some(_)) = stream.next(Duration::from_secs(5)).await {}
        raw.extend_from_slice(&stream.raw);
        let message = serde_json::from_slice::<ErrorEnvelope>(&raw)
            .map(|e| e.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&raw).into_owned());
        return Err(Failure::Answered(format!(
            "the gateway answered {}: {message}",
            stream.status
        ))
        .into());
    }
    let mut artifacts = Vec::new();
    let mut stdout = std::io::stdout().lock();
    let mut in_reasoning = false;
    // On a terminal stdout and stderr share the screen: a note written while an answer
    // line is open would be glued to it, so end that line first (on stderr, keeping the
    // answer on stdout unchanged).
    let shared_screen = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let mut in_content = false;
    while let Some(item) = stream.next(args.timeout).await.map_err(timeout_hint)? {
        let SseItem::Event(event) = item.item else {
            continue; // keep-alive comments
        };
        if event.data.trim() == DONE_DATA {
            break;
        }
        if args.json {
            writeln!(stdout, "{}", event.data)?;
        }
        if let Ok(envelope) = serde_json::from_str::<ErrorEnvelope>(&event.data) {
            stdout.flush()?;
            return Ok(Err(envelope.error.message));
        }
        let chunk: ChatCompletionChunk = serde_json::from_str(&event.data)
            .with_context(|| format!("malformed chunk: {}", event.data))?;
        for choice in &chunk.choices {
            let delta = &choice.delta;
            if let Some(janus) = &delta.janus {
                let items = janus.artifact_items();
                if !args.json {
                    if in_content && shared_screen {
                        style.note("\n");
                        in_content = false;
                    }
                    style.note(&format!(
                        "[{}] {}\n",
                        janus.event,
                        describe_event(janus, &items)
                    ));
                }
                artifacts.extend(items);
            }
            if args.json {
                continue;
            }
            if let (Some(reasoning), false) = (&delta.reasoning_content, args.hide_reasoning) {
                if in_content && shared_screen {
                    style.note("\n");
                    in_content = false;
                }
                style.note(reasoning);
                in_reasoning = !reasoning.ends_with('\n');
            }
            if let Some(content) = &delta.content {
                if in_reasoning {
                    style.note("\n");
                    in_reasoning = false;
                }
                write!(stdout, "{content}")?;
                stdout.flush()?;
                if !content.is_empty() {
                    in_content = !content.ends_with('\n');
                }
            }
        }
    }
    if !args.json && (in_content || !shared_screen) {
        writeln!(stdout)?;
    }
    Ok(Ok(artifacts))
}

/// Names the `--timeout` in a timeout, and which of its waits ran out (the client's message
/// says: connect and first byte, the whole response, or silence mid-stream).
fn timeout_hint(error: janus_client::ClientError) -> anyhow::Error {
    if let janus_client::ClientError::Timeout { deadline, .. } = &error {
        let which = match deadline {
            janus_client::Deadline::FirstByte => "for the response to start",
            janus_client::Deadline::Idle => "for the next event of a stream that had started",
            _ => "for the whole response",
        };
        let hint = format!("--timeout ran out waiting {which}");
        return anyhow::Error::new(error).context(hint);
    }
    error.into()
}

/// A one-line summary of a janus event's payload.
fn describe_event(event: &janus_core::JanusEvent, items: &[ArtifactDescriptor]) -> String {
    if !items.is_empty() {
        let names: Vec<String> = items
            .iter()
            .map(|a| {
                format!(
                    "{} ({} bytes)",
                    a.display_name.as_deref().unwrap_or(&a.id),
                    a.size_bytes
                )
            })
            .collect();
        return names.join(", ");
    }
    let payload = event.payload.to_string();
    if payload.chars().count() > 120 {
        format!("{}…", payload.chars().take(120).collect::<String>())
    } else {
        payload
    }
}

async fn save_artifacts(
    client: &HttpClient,
    artifacts: &[ArtifactDescriptor],
    dir: &std::path::Path,
    timeout: Duration,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for artifact in artifacts {
        let bytes = fetch_artifact(client, artifact, timeout)
            .await
            .map_err(anyhow::Error::msg)?;
        artifact
            .verify(&bytes)
            .with_context(|| format!("artifact {} failed verification", artifact.id))?;
        // Only the final path component of the display name, so a hostile name cannot
        // write outside DIR.
        let name = artifact
            .display_name
            .as_deref()
            .and_then(|n| std::path::Path::new(n).file_name())
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .unwrap_or(&artifact.id)
            .to_owned();
        let path = dir.join(name);
        std::fs::write(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "saved {} ({} bytes, sha256 verified)",
            path.display(),
            bytes.len()
        );
    }
    Ok(())
}
