//! The echo competitor: a complete Janus competitor that shows every kind of event.
//!
//! For each request it:
//!
//! 1. writes `reasoning_content` steps saying what it is doing;
//! 2. wraps a simulated slow step in a `tool_start` / `tool_end` Janus event pair. The step
//!    lasts `ECHO_SLOW_STEP_MS` milliseconds (default 2500): long enough that the SDK sends
//!    `: ping` keep-alives while the handler is silent, short enough not to annoy anyone;
//! 3. streams the last user message back as content, one word per chunk;
//! 4. if that message asks for a file, attaches it as a small text artifact, `echo.txt`.
//!    **The rule:** the message contains the word `file` on its own, in any case — "make me
//!    a file", "send it as a FILE", "file: notes" all count; "profile" and "files" do not;
//! 5. if that message contains the word `sandbox` and the gateway granted platform services,
//!    counts its words inside a sandbox of the platform's `sandbox` service (through the
//!    SDK's [`Platform`](janus_competitor_sdk::Platform) handle: no URL, no key, no grant
//!    in this code) and says the count;
//! 6. reports usage (a rough estimate: four characters per token) and the finish reason.
//!
//! The same handler serves `stream: true` and `stream: false`: the SDK either sends each
//! event as a chunk as soon as it is written, or folds them all into one response.
//!
//! ```text
//! ECHO_SLOW_STEP_MS=500 cargo run -p echo-competitor -- --listen 127.0.0.1:8080
//! ```

use std::time::{Duration, Instant};

use janus_competitor_sdk::{
    async_trait, publish_artifact, ChatCompletionRequest, Competitor, CompetitorError, EventWriter,
    JanusEvent, Message, MessageContent, PlatformExt, RequestContext, SandyClient, Usage,
};
use serde_json::json;

/// The echo competitor.
#[derive(Debug, Clone)]
pub struct Echo {
    slow_step: Duration,
}

/// Environment variable with the length of the slow step, in milliseconds.
pub const SLOW_STEP_ENV: &str = "ECHO_SLOW_STEP_MS";

/// Length of the slow step when `ECHO_SLOW_STEP_MS` is unset.
pub const DEFAULT_SLOW_STEP: Duration = Duration::from_millis(2500);

/// Name of the artifact attached when the message asks for a file.
pub const ARTIFACT_NAME: &str = "echo.txt";

impl Echo {
    /// An echo competitor whose slow step lasts `slow_step`.
    pub fn new(slow_step: Duration) -> Echo {
        Echo { slow_step }
    }

    /// Reads `ECHO_SLOW_STEP_MS` (default 2500).
    pub fn from_env() -> Result<Echo, String> {
        match std::env::var(SLOW_STEP_ENV) {
            Err(_) => Ok(Echo::new(DEFAULT_SLOW_STEP)),
            Ok(value) => value
                .trim()
                .parse()
                .map(|ms| Echo::new(Duration::from_millis(ms)))
                .map_err(|_| {
                    format!("{SLOW_STEP_ENV} must be a number of milliseconds, got {value:?}")
                }),
        }
    }
}

#[async_trait]
impl Competitor for Echo {
    async fn handle(
        &self,
        request: ChatCompletionRequest,
        context: RequestContext,
        out: &mut dyn EventWriter,
    ) -> Result<(), CompetitorError> {
        // Log lines written here already carry the request id (the SDK runs the handler in
        // the request's span). `context.request_id` is there for the headers of calls this
        // handler makes to other services; `context.remaining()` is the time left.
        tracing::info!(
            messages = request.messages.len(),
            seconds_left = context.remaining().as_secs(),
            "echo handling a request"
        );
        let text = request.last_user_text().unwrap_or_default();

        out.reasoning("Reading your last message.\n").await?;

        // A "tool" call: tell the client it starts, do the work, tell it how it ended.
        // While we sleep, the SDK keeps the stream alive with `: ping` comments. If the
        // client leaves or the deadline passes, the SDK drops this future at this await:
        // there is nothing to check by hand.
        let step_ms = self.slow_step.as_millis() as u64;
        out.janus(JanusEvent::new(
            JanusEvent::TOOL_START,
            json!({ "tool": "slow_step", "input": { "duration_ms": step_ms } }),
        ))
        .await?;
        out.reasoning(&format!("Running a slow step ({step_ms} ms).\n"))
            .await?;
        let started = Instant::now();
        tokio::time::sleep(self.slow_step).await;
        out.janus(JanusEvent::new(
            JanusEvent::TOOL_END,
            json!({
                "tool": "slow_step",
                "ok": true,
                "duration_ms": started.elapsed().as_millis() as u64,
            }),
        ))
        .await?;
        out.reasoning("Echoing it back.\n").await?;

        // The answer, one word (with the space after it) per chunk.
        let reply = if text.is_empty() {
            "(there was no user message to echo)"
        } else {
            text.as_str()
        };
        for word in reply.split_inclusive(char::is_whitespace) {
            out.content(word).await?;
        }

        if asks_for_file(&text) {
            // One call builds the descriptor (id, sha256, size, a data: URL for small files);
            // sending it puts it in the stream, or in `message.artifacts` when not streaming.
            let artifact = publish_artifact(text.as_bytes(), ARTIFACT_NAME, "text/plain").await?;
            out.content(&format!("\n\n(Attached as {ARTIFACT_NAME}.)"))
                .await?;
            out.artifact(artifact).await?;
        }

        if asks_for(&text, "sandbox") {
            match context.platform() {
                Some(platform) => {
                    out.reasoning("Counting the words in a sandbox, through the platform.\n")
                        .await?;
                    match count_in_sandbox(&platform.sandy(), reply).await {
                        Ok(count) => {
                            out.content(&format!("\n\n(A sandbox counted {count} words.)"))
                                .await?
                        }
                        Err(e) => out.reasoning(&format!("The sandbox failed: {e}\n")).await?,
                    }
                }
                None => {
                    out.reasoning("No platform services on this request, so no sandbox.\n")
                        .await?
                }
            }
        }

        let prompt_chars: usize = request.messages.iter().map(message_chars).sum();
        out.usage(Usage::new(tokens(prompt_chars), tokens(reply.len())))
            .await?;
        out.finish("stop").await?;
        Ok(())
    }
}

/// True when `text` asks for a file: it contains the word `file` on its own, in any case.
pub fn asks_for_file(text: &str) -> bool {
    asks_for(text, "file")
}

/// True when `text` contains `word` on its own, in any case.
fn asks_for(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// Writes `text` into a fresh sandbox, counts its words with `wc -w`, terminates it.
async fn count_in_sandbox(sandy: &SandyClient, text: &str) -> Result<String, String> {
    let sandbox = sandy
        .create(&janus_competitor_sdk::CreateOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let counted = async {
        sandy
            .write_file(&sandbox.id, "/workspace/echo.txt", text.as_bytes())
            .await?;
        sandy
            .exec(
                &sandbox.id,
                "wc -w < /workspace/echo.txt",
                Duration::from_secs(10),
            )
            .await
    }
    .await;
    // Terminated whatever happened; the gateway would do it at the end of the request too.
    let _ = sandy.terminate(&sandbox.id).await;
    let output = counted.map_err(|e| e.to_string())?;
    Ok(output.stdout.trim().to_owned())
}

/// Characters of text in a message (for the usage estimate).
fn message_chars(message: &Message) -> usize {
    let content = match message {
        Message::System { content, .. }
        | Message::Developer { content, .. }
        | Message::User { content, .. }
        | Message::Tool { content, .. } => Some(content),
        Message::Assistant { content, .. } => content.as_ref(),
    };
    content.map_or(0, |c: &MessageContent| c.text().len())
}

/// A rough token count: four characters per token, at least one.
fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_rule() {
        for yes in [
            "make me a file",
            "Send it as a FILE.",
            "file: notes",
            "a (file) please",
        ] {
            assert!(asks_for_file(yes), "{yes}");
        }
        for no in ["my profile", "two files", "filed under", "", "fi le"] {
            assert!(!asks_for_file(no), "{no}");
        }
    }

    #[test]
    fn token_estimate() {
        assert_eq!(tokens(0), 1);
        assert_eq!(tokens(8), 2);
        assert_eq!(tokens(9), 3);
    }
}
