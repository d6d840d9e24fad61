//! Folds a chunk stream into the equivalent non-streaming response.

use std::collections::BTreeMap;

use crate::artifact::ArtifactDescriptor;
use crate::chat::{
    ChatCompletionChunk, ChatCompletionResponse, Choice, Extra, FunctionCall, ResponseMessage,
    Role, ToolCall, Usage,
};

/// Accumulates chunks; [`ChunkAggregator::finish`] yields the response a non-streaming call
/// would have returned: content, reasoning, tool calls merged by index, artifacts (from
/// `janus` `artifacts` events), usage and finish reason.
#[derive(Debug, Default)]
pub struct ChunkAggregator {
    id: Option<String>,
    created: Option<u64>,
    model: Option<String>,
    choices: BTreeMap<u32, ChoiceState>,
    usage: Option<Usage>,
}

#[derive(Debug, Default)]
struct ChoiceState {
    content: Option<String>,
    reasoning: Option<String>,
    tool_calls: BTreeMap<u32, ToolCallState>,
    artifacts: Vec<ArtifactDescriptor>,
    refusal: Option<String>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default)]
struct ToolCallState {
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

fn append(slot: &mut Option<String>, piece: &str) {
    slot.get_or_insert_with(String::new).push_str(piece);
}

impl ChunkAggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatCompletionChunk) {
        self.id.get_or_insert_with(|| chunk.id.clone());
        self.created.get_or_insert(chunk.created);
        self.model.get_or_insert_with(|| chunk.model.clone());
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        for choice in &chunk.choices {
            let state = self.choices.entry(choice.index).or_default();
            let delta = &choice.delta;
            if let Some(content) = &delta.content {
                append(&mut state.content, content);
            }
            if let Some(reasoning) = &delta.reasoning_content {
                append(&mut state.reasoning, reasoning);
            }
            if let Some(refusal) = delta.extra.get("refusal").and_then(|r| r.as_str()) {
                append(&mut state.refusal, refusal);
            }
            for call in delta.tool_calls.iter().flatten() {
                let slot = state.tool_calls.entry(call.index).or_default();
                if let Some(id) = &call.id {
                    slot.id.get_or_insert_with(|| id.clone());
                }
                if let Some(kind) = &call.kind {
                    slot.kind.get_or_insert_with(|| kind.clone());
                }
                if let Some(function) = &call.function {
                    if let Some(name) = &function.name {
                        slot.name.push_str(name);
                    }
                    if let Some(arguments) = &function.arguments {
                        slot.arguments.push_str(arguments);
                    }
                }
            }
            if let Some(event) = &delta.janus {
                state.artifacts.extend(event.artifact_items());
            }
            if let Some(reason) = &choice.finish_reason {
                state.finish_reason = Some(reason.clone());
            }
        }
    }

    /// The folded response. A stream without any choice yields one empty choice, so the
    /// response always has the shape clients expect.
    pub fn finish(self) -> ChatCompletionResponse {
        let mut choices: Vec<Choice> = self
            .choices
            .into_iter()
            .map(|(index, state)| Choice {
                index,
                message: ResponseMessage {
                    role: Role::Assistant,
                    content: state.content,
                    reasoning_content: state.reasoning,
                    tool_calls: (!state.tool_calls.is_empty()).then(|| {
                        state
                            .tool_calls
                            .into_values()
                            .map(|call| ToolCall {
                                id: call.id.unwrap_or_default(),
                                kind: call.kind.unwrap_or_else(|| "function".to_owned()),
                                function: FunctionCall {
                                    name: call.name,
                                    arguments: call.arguments,
                                    extra: Extra::new(),
                                },
                                extra: Extra::new(),
                            })
                            .collect()
                    }),
                    artifacts: (!state.artifacts.is_empty()).then_some(state.artifacts),
                    refusal: state.refusal,
                    extra: Extra::new(),
                },
                finish_reason: state.finish_reason,
                logprobs: None,
                extra: Extra::new(),
            })
            .collect();
        if choices.is_empty() {
            choices.push(Choice {
                index: 0,
                message: ResponseMessage {
                    role: Role::Assistant,
                    content: Some(String::new()),
                    reasoning_content: None,
                    tool_calls: None,
                    artifacts: None,
                    refusal: None,
                    extra: Extra::new(),
                },
                finish_reason: Some("stop".to_owned()),
                logprobs: None,
                extra: Extra::new(),
            });
        }
        ChatCompletionResponse {
            id: self.id.unwrap_or_else(crate::ids::new_completion_id),
            object: "chat.completion".to_owned(),
            created: self.created.unwrap_or_else(crate::ids::unix_now),
            model: self.model.unwrap_or_default(),
            choices,
            usage: self.usage,
            extra: Extra::new(),
        }
    }
}
