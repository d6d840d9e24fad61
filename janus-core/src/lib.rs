//! `janus-core` — the contract every other Janus crate builds on.
//!
//! It has no HTTP client or server: it is types, codecs and traits.
//!
//! Map of the crate:
//! - [`chat`](crate::ChatCompletionRequest) wire types: request, messages, content parts,
//!   response, chunk, delta, tool calls, `janus` events, extended usage.
//! - [`ArtifactDescriptor`] and the artifact helpers (`data:` URLs, sha256, verification).
//! - `download`: what artifact servers share: [`is_artifact_id`], [`content_disposition`]
//!   (RFC 6266), [`ByteRange`].
//! - [`ErrorEnvelope`]: the OpenAI error envelope and the error codes Janus uses.
//! - [`validate_request`]: request bytes in, typed request or a precise error out.
//! - [`sse`]: the SSE decoder and encoder (no I/O), with event-boundary tracking for relays.
//! - [`StreamEvent`], [`ChunkDecoder`], [`ChunkAggregator`]: typed streams and the fold of a
//!   chunk stream into the equivalent non-streaming response.
//! - [`Competitor`], [`EventWriter`], [`RequestContext`] and [`contract`]: the competitor
//!   contract in code.
#![deny(missing_docs)]

mod aggregate;
mod artifact;
mod chat;
mod competitor;
pub mod contract;
mod download;
mod error;
mod ids;
pub mod sse;
mod stream;
mod validate;
pub mod words;

pub use aggregate::ChunkAggregator;
pub use artifact::{
    data_url_decode, data_url_encode, mime_type_for_name, sha256_hex, ArtifactDescriptor,
    ArtifactError, ArtifactType, DataUrl,
};
pub use chat::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, Choice, ChunkChoice,
    ContentPart, Delta, Extra, FunctionCall, FunctionCallDelta, ImageUrl, JanusEvent, Message,
    MessageContent, ResponseMessage, Role, StreamOptions, ToolCall, ToolCallDelta, Usage,
};
pub use competitor::{
    Competitor, CompetitorError, CompetitorEvent, EventWriter, PlatformAccess, RequestContext,
    RequestHeaders, WriterClosed,
};
pub use download::{
    content_disposition, content_disposition_filename, is_artifact_id, parse_content_range,
    ByteRange,
};
pub use error::{error_chain, ErrorBody, ErrorEnvelope, ErrorKind};
pub use ids::{new_artifact_id, new_completion_id, new_request_id, random_hex, unix_ms, unix_now};
pub use stream::{ChunkDecoder, StreamDecodeError, StreamEvent};
pub use validate::{
    check_json_document, check_request, json_depth_exceeds, strip_top_level_key, validate_request,
    RequestSummary, ValidationError, MAX_JSON_DEPTH,
};
