//! Chat-completion wire types (contract.md §1, §2) with the Janus extensions.
//!
//! Every object keeps fields it does not know in `extra`, so vendor fields survive a
//! deserialize → serialize round trip. Absent optional fields are omitted, never `null`;
//! fields OpenAI's API spec marks required and nullable (`finish_reason` of a chunk choice,
//! `logprobs` of a choice, `refusal` of a response message) are always sent, as `null`
//! when they have no value, because the official SDKs type them as non-optional.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::artifact::ArtifactDescriptor;

/// Unknown fields kept verbatim.
pub type Extra = Map<String, Value>;

/// `POST /v1/chat/completions` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// Model name; the gateway also routes on it when it equals a competitor id.
    pub model: String,
    /// The conversation, never empty after validation.
    pub messages: Vec<Message>,
    /// Sampling temperature, 0–2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Upper bound on generated tokens, ≥ 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Stream the answer as SSE chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options (`include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Tool definitions, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// `"none" | "auto" | "required"` or an object naming a function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Response format object (`{"type": ...}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// End-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Free-form metadata object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Gateway-only extension: pick this competitor. Stripped before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competitor_id: Option<String>,
    /// Vendor fields, forwarded unchanged.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatCompletionRequest {
    /// True when the client asked for an SSE stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// True when the client asked for a final usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The text of the last user message (text parts joined with a newline).
    pub fn last_user_text(&self) -> Option<String> {
        self.messages.iter().rev().find_map(|m| match m {
            Message::User { content, .. } => Some(content.text()),
            _ => None,
        })
    }
}

/// `stream_options`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with `choices: []` and `usage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A message's role, as a plain value (the [`Message`] enum carries it as its tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application.
    System,
    /// Instructions from the developer (treated like `system`).
    Developer,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            _ => return None,
        })
    }
}

/// One conversation message, tagged by `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    /// `role: "system"`.
    System {
        /// The instructions.
        content: MessageContent,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Vendor fields.
        #[serde(flatten)]
        extra: Extra,
    },
    /// `role: "developer"`, handled like `system`.
    Developer {
        /// The instructions.
        content: MessageContent,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Vendor fields.
        #[serde(flatten)]
        extra: Extra,
    },
    /// `role: "user"`.
    User {
        /// Text or parts (text, images, unknown kinds).
        content: MessageContent,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Vendor fields.
        #[serde(flatten)]
        extra: Extra,
    },
    /// `role: "assistant"`; content may be absent when `tool_calls` is present.
    Assistant {
        /// The answer text or parts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<MessageContent>,
        /// Janus extension: the intermediate steps shown beside the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reasoning_content: Option<String>,
        /// Tool calls the model made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_calls: Option<Vec<ToolCall>>,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Vendor fields.
        #[serde(flatten)]
        extra: Extra,
    },
    /// `role: "tool"`: a tool result answering `tool_call_id`.
    Tool {
        /// The result.
        content: MessageContent,
        /// The call this answers.
        tool_call_id: String,
        /// Vendor fields.
        #[serde(flatten)]
        extra: Extra,
    },
}

impl Message {
    /// The message's role.
    pub fn role(&self) -> Role {
        match self {
            Message::System { .. } => Role::System,
            Message::Developer { .. } => Role::Developer,
            Message::User { .. } => Role::User,
            Message::Assistant { .. } => Role::Assistant,
            Message::Tool { .. } => Role::Tool,
        }
    }

    /// A plain user message.
    pub fn user(text: impl Into<String>) -> Message {
        Message::User {
            content: MessageContent::Text(text.into()),
            name: None,
            extra: Extra::new(),
        }
    }

    /// A plain system message.
    pub fn system(text: impl Into<String>) -> Message {
        Message::System {
            content: MessageContent::Text(text.into()),
            name: None,
            extra: Extra::new(),
        }
    }
}

/// Message content: a string, or an array of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Multimodal parts.
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// The text of the content; text parts are joined with a newline, other parts skipped.
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(text) => text.clone(),
            MessageContent::Parts(parts) => {
                let texts: Vec<&str> = parts
                    .iter()
                    .filter_map(|p| match p {
                        ContentPart::Text { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                texts.join("\n")
            }
        }
    }

    /// The image URLs among the parts.
    pub fn image_urls(&self) -> Vec<&str> {
        match self {
            MessageContent::Text(_) => Vec::new(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::ImageUrl { image_url, .. } => Some(image_url.url.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// One content part, tagged by `type`; unknown kinds are kept as raw JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    /// `{"type":"text","text"}`.
    Text {
        /// The text.
        text: String,
        /// Vendor fields.
        extra: Extra,
    },
    /// `{"type":"image_url","image_url":{"url","detail"?}}`.
    ImageUrl {
        /// The image reference.
        image_url: ImageUrl,
        /// Vendor fields.
        extra: Extra,
    },
    /// Any other part kind, forwarded unchanged.
    Unknown(Value),
}

/// The `image_url` object of an image part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// An http(s) URL or a base64 `data:` URL.
    pub url: String,
    /// `auto`, `low` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Serialize, Deserialize)]
struct TextPartWire {
    text: String,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Serialize, Deserialize)]
struct ImagePartWire {
    image_url: ImageUrl,
    #[serde(flatten)]
    extra: Extra,
}

impl Serialize for ContentPart {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tagged<'a, T> {
            #[serde(rename = "type")]
            kind: &'a str,
            #[serde(flatten)]
            body: T,
        }
        #[derive(Serialize)]
        struct TextRef<'a> {
            text: &'a str,
            #[serde(flatten)]
            extra: &'a Extra,
        }
        #[derive(Serialize)]
        struct ImageRef<'a> {
            image_url: &'a ImageUrl,
            #[serde(flatten)]
            extra: &'a Extra,
        }
        match self {
            ContentPart::Text { text, extra } => Tagged {
                kind: "text",
                body: TextRef { text, extra },
            }
            .serialize(serializer),
            ContentPart::ImageUrl { image_url, extra } => Tagged {
                kind: "image_url",
                body: ImageRef { image_url, extra },
            }
            .serialize(serializer),
            ContentPart::Unknown(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        let kind = match value.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            Some(_) => return Err(D::Error::custom("content part `type` must be a string")),
            None => return Err(D::Error::missing_field("type")),
        };
        match kind.as_str() {
            "text" | "image_url" => {
                if let Value::Object(map) = &mut value {
                    map.remove("type");
                }
                if kind == "text" {
                    let part: TextPartWire =
                        serde_json::from_value(value).map_err(D::Error::custom)?;
                    Ok(ContentPart::Text {
                        text: part.text,
                        extra: part.extra,
                    })
                } else {
                    let part: ImagePartWire =
                        serde_json::from_value(value).map_err(D::Error::custom)?;
                    Ok(ContentPart::ImageUrl {
                        image_url: part.image_url,
                        extra: part.extra,
                    })
                }
            }
            _ => Ok(ContentPart::Unknown(value)),
        }
    }
}

/// A complete tool call in a response or an assistant message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id, answered by a `tool` message's `tool_call_id`.
    pub id: String,
    /// Always `function` today.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function and its JSON arguments.
    pub function: FunctionCall,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

fn function_type() -> String {
    "function".to_owned()
}

/// A function name and its arguments (a JSON string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments, JSON-encoded.
    pub arguments: String,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A fragment of a tool call in a streaming delta; fragments merge by `index`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which tool call this fragment belongs to.
    pub index: u32,
    /// The call id (first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` (first fragment).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and argument fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Function fragment of a [`ToolCallDelta`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// Function name (usually in the first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of the JSON arguments; pieces concatenate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token and cost accounting, with the Janus extensions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Sum of both.
    pub total_tokens: u64,
    /// Janus: estimated cost in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Janus: seconds of sandbox time used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_seconds: Option<f64>,
    /// Vendor fields (e.g. `completion_tokens_details`).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Usage {
    /// Usage with `total_tokens` computed.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Usage::default()
        }
    }
}

/// A structured Janus event carried in `delta.janus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JanusEvent {
    /// `tool_start`, `tool_end`, `sandbox_start`, `sandbox_end`, `artifacts`, …
    pub event: String,
    /// Event-specific payload object.
    #[serde(default)]
    pub payload: Value,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl JanusEvent {
    /// Event name for a tool starting.
    pub const TOOL_START: &'static str = "tool_start";
    /// Event name for a tool finishing.
    pub const TOOL_END: &'static str = "tool_end";
    /// Event name for a sandbox starting.
    pub const SANDBOX_START: &'static str = "sandbox_start";
    /// Event name for a sandbox ending.
    pub const SANDBOX_END: &'static str = "sandbox_end";
    /// Event name for artifacts (`payload: {"items": [descriptor…]}`).
    pub const ARTIFACTS: &'static str = "artifacts";

    /// An event with a payload.
    pub fn new(event: impl Into<String>, payload: Value) -> JanusEvent {
        JanusEvent {
            event: event.into(),
            payload,
            extra: Extra::new(),
        }
    }

    /// The `artifacts` event for these descriptors.
    pub fn artifacts(items: &[ArtifactDescriptor]) -> JanusEvent {
        JanusEvent::new(JanusEvent::ARTIFACTS, serde_json::json!({ "items": items }))
    }

    /// The descriptors of an `artifacts` event (empty for any other event).
    pub fn artifact_items(&self) -> Vec<ArtifactDescriptor> {
        if self.event != JanusEvent::ARTIFACTS {
            return Vec::new();
        }
        match self.payload.get("items") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| serde_json::from_value(item.clone()).ok())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Non-streaming response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    /// `chatcmpl-…`.
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// Model that answered.
    pub model: String,
    /// The answers.
    pub choices: Vec<Choice>,
    /// Usage; omitted when unknown (never `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One answer of a [`ChatCompletionResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Choice index.
    pub index: u32,
    /// The assistant message.
    pub message: ResponseMessage,
    /// Why generation stopped; required and nullable, so always sent.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Token log probabilities; required and nullable, so always sent (`null` here).
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The assistant message of a non-streaming response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// Always `assistant`.
    pub role: Role,
    /// The answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Janus: intermediate steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Janus: artifacts produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<ArtifactDescriptor>>,
    /// The model's refusal message; required and nullable, so always sent.
    #[serde(default)]
    pub refusal: Option<String>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One streaming chunk (`chat.completion.chunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// Same id on every chunk of a stream.
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    /// Unix seconds, same on every chunk.
    pub created: u64,
    /// Model that answers.
    pub model: String,
    /// Deltas; empty on the final usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Only on the final usage chunk; omitted otherwise (never `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatCompletionChunk {
    /// The `object` value of chunks.
    pub const OBJECT: &'static str = "chat.completion.chunk";

    /// A chunk with one choice carrying `delta`.
    pub fn with_delta(id: &str, created: u64, model: &str, delta: Delta) -> Self {
        ChatCompletionChunk {
            id: id.to_owned(),
            object: Self::OBJECT.to_owned(),
            created,
            model: model.to_owned(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: None,
                extra: Extra::new(),
            }],
            usage: None,
            extra: Extra::new(),
        }
    }
}

/// One choice of a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Choice index.
    pub index: u32,
    /// What this chunk adds.
    #[serde(default)]
    pub delta: Delta,
    /// Set on the last content chunk of this choice; `null` on every other chunk
    /// (required and nullable, so always sent).
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// What one chunk adds to a choice.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Delta {
    /// `assistant`, on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A piece of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A piece of the intermediate steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool-call fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// A structured Janus event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub janus: Option<JanusEvent>,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Extra,
}
