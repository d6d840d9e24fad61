//! Request validation: bytes in, a typed [`ChatCompletionRequest`] or a precise error out.
//!
//! The JSON is first checked structurally, field by field, so every error names the exact
//! path (`messages[1].content[0].image_url.url`); only then is it converted to the typed
//! request. Fields Janus does not know are not checked: they are forwarded unchanged.

use serde_json::{Map, Value};

use crate::artifact::check_image_data_url;
use crate::chat::{ChatCompletionRequest, Role};
use crate::error::{ErrorEnvelope, ErrorKind};

/// A request that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// What is wrong, for people.
    pub message: String,
    /// JSON path of the offending field; `None` for the body as a whole.
    pub param: Option<String>,
    /// Machine-readable code (`invalid_json`, `invalid_type`, `missing_required_parameter`,
    /// `empty_array`, `invalid_value`, `decimal_below_min_value`, `decimal_above_max_value`,
    /// `integer_below_min_value`, `invalid_image_url`).
    pub code: &'static str,
}

impl ValidationError {
    fn new(code: &'static str, param: Option<String>, message: String) -> Self {
        ValidationError {
            message,
            param,
            code,
        }
    }

    /// The 400 envelope for this error.
    pub fn to_envelope(&self) -> ErrorEnvelope {
        let envelope =
            ErrorEnvelope::new(ErrorKind::InvalidRequest, &self.message, Some(self.code));
        match &self.param {
            Some(param) => envelope.with_param(param.clone()),
            None => envelope,
        }
    }
}

type Check = Result<(), ValidationError>;

/// A JSON path built on the stack while walking; rendered to a string only for an error,
/// so a valid request costs no allocation for paths.
#[derive(Clone, Copy)]
struct P<'a> {
    parent: Option<&'a P<'a>>,
    seg: Seg,
}

#[derive(Clone, Copy)]
enum Seg {
    Key(&'static str),
    Index(usize),
}

impl<'a> P<'a> {
    fn root(key: &'static str) -> P<'static> {
        P {
            parent: None,
            seg: Seg::Key(key),
        }
    }

    fn key(&'a self, key: &'static str) -> P<'a> {
        P {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    fn index(&'a self, index: usize) -> P<'a> {
        P {
            parent: Some(self),
            seg: Seg::Index(index),
        }
    }

    fn render(&self) -> String {
        let mut out = match self.parent {
            Some(parent) => parent.render(),
            None => String::new(),
        };
        match self.seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Index(index) => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
        }
        out
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid_type(path: &P, expected: &str, got: &Value) -> ValidationError {
    let path = path.render();
    ValidationError::new(
        "invalid_type",
        Some(path.clone()),
        format!(
            "invalid type for '{path}': expected {expected}, but got {}",
            type_name(got)
        ),
    )
}

fn missing(path: &P) -> ValidationError {
    let path = path.render();
    ValidationError::new(
        "missing_required_parameter",
        Some(path.clone()),
        format!("missing required parameter: '{path}'"),
    )
}

/// `message` gets the rendered path to mention.
fn invalid_value(path: &P, message: impl FnOnce(&str) -> String) -> ValidationError {
    let path = path.render();
    let message = message(&path);
    ValidationError::new("invalid_value", Some(path), message)
}

/// Parses and validates a chat-completion request body.
pub fn validate_request(body: &[u8]) -> Result<ChatCompletionRequest, ValidationError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ValidationError::new(
            "invalid_json",
            None,
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    validate_value(value)
}

/// Checks an already parsed JSON body without converting it, for relays that forward the
/// JSON as it is and only need to know that it is valid.
pub fn check_request_json(value: &Value) -> Result<(), ValidationError> {
    let Value::Object(root) = value else {
        return Err(ValidationError::new(
            "invalid_type",
            None,
            format!(
                "request body must be a JSON object, but got {}",
                type_name(value)
            ),
        ));
    };
    check_root(root)
}

/// Validates an already parsed JSON body and converts it to the typed request.
pub fn validate_value(value: Value) -> Result<ChatCompletionRequest, ValidationError> {
    check_request_json(&value)?;
    // The structural checks cover every typed field, so this conversion only fails on a
    // case they missed; the path still names the field.
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ValidationError::new(
            "invalid_value",
            (path != ".").then_some(path),
            format!("invalid request: {}", e.inner()),
        )
    })
}

fn check_root(root: &Map<String, Value>) -> Check {
    let model = P::root("model");
    match root.get("model") {
        None => return Err(missing(&model)),
        Some(Value::String(name)) if name.trim().is_empty() => {
            return Err(invalid_value(&model, |_| {
                "'model' must not be empty".into()
            }))
        }
        Some(Value::String(_)) => {}
        Some(other) => return Err(invalid_type(&model, "a string", other)),
    }
    let messages_path = P::root("messages");
    match root.get("messages") {
        None => return Err(missing(&messages_path)),
        Some(Value::Array(messages)) if messages.is_empty() => {
            return Err(ValidationError::new(
                "empty_array",
                Some("messages".into()),
                "'messages' must contain at least one message".into(),
            ))
        }
        Some(Value::Array(messages)) => {
            for (i, message) in messages.iter().enumerate() {
                check_message(&messages_path.index(i), message)?;
            }
        }
        Some(other) => return Err(invalid_type(&messages_path, "an array", other)),
    }
    check_number_range(root, "temperature", 0.0, 2.0)?;
    check_number_range(root, "top_p", 0.0, 1.0)?;
    check_max_tokens(root)?;
    check_optional(root, "stream", "a boolean", Value::is_boolean)?;
    if let Some(options) = root.get("stream_options") {
        let path = P::root("stream_options");
        let Value::Object(options) = options else {
            return Err(invalid_type(&path, "an object", options));
        };
        if let Some(include) = options.get("include_usage") {
            if !include.is_boolean() {
                return Err(invalid_type(
                    &path.key("include_usage"),
                    "a boolean",
                    include,
                ));
            }
        }
    }
    check_tools(root)?;
    if let Some(choice) = root.get("tool_choice") {
        let path = P::root("tool_choice");
        match choice {
            Value::String(mode) if matches!(mode.as_str(), "none" | "auto" | "required") => {}
            Value::String(mode) => {
                return Err(invalid_value(&path, |_| {
                    format!(
                        "invalid value for 'tool_choice': '{mode}' (expected 'none', 'auto', 'required' or an object)"
                    )
                }))
            }
            Value::Object(_) => {}
            other => return Err(invalid_type(&path, "a string or an object", other)),
        }
    }
    if let Some(format) = root.get("response_format") {
        let path = P::root("response_format");
        let Value::Object(format) = format else {
            return Err(invalid_type(&path, "an object", format));
        };
        match format.get("type") {
            None => return Err(missing(&path.key("type"))),
            Some(Value::String(_)) => {}
            Some(other) => return Err(invalid_type(&path.key("type"), "a string", other)),
        }
    }
    check_optional(root, "user", "a string", Value::is_string)?;
    check_optional(root, "metadata", "an object", Value::is_object)?;
    check_optional(root, "competitor_id", "a string", Value::is_string)?;
    Ok(())
}

fn check_optional(
    root: &Map<String, Value>,
    key: &'static str,
    expected: &str,
    ok: fn(&Value) -> bool,
) -> Check {
    match root.get(key) {
        Some(value) if !ok(value) => Err(invalid_type(&P::root(key), expected, value)),
        _ => Ok(()),
    }
}

fn check_number_range(root: &Map<String, Value>, key: &'static str, min: f64, max: f64) -> Check {
    let Some(value) = root.get(key) else {
        return Ok(());
    };
    let Some(number) = value.as_f64() else {
        return Err(invalid_type(&P::root(key), "a number", value));
    };
    if number < min {
        return Err(ValidationError::new(
            "decimal_below_min_value",
            Some(key.to_owned()),
            format!("invalid '{key}': {number} is below the minimum of {min}"),
        ));
    }
    if number > max {
        return Err(ValidationError::new(
            "decimal_above_max_value",
            Some(key.to_owned()),
            format!("invalid '{key}': {number} is above the maximum of {max}"),
        ));
    }
    Ok(())
}

fn check_max_tokens(root: &Map<String, Value>) -> Check {
    let Some(value) = root.get("max_tokens") else {
        return Ok(());
    };
    let below = |n: &dyn std::fmt::Display| {
        ValidationError::new(
            "integer_below_min_value",
            Some("max_tokens".into()),
            format!("invalid 'max_tokens': {n} is below the minimum of 1"),
        )
    };
    match value {
        Value::Number(n) if n.as_u64() == Some(0) => Err(below(n)),
        Value::Number(n) if n.is_u64() => Ok(()),
        Value::Number(n) if n.is_i64() => Err(below(n)),
        other => Err(invalid_type(&P::root("max_tokens"), "an integer", other)),
    }
}

/// A required string field: missing, or not a string, is an error.
fn require_string<'v>(
    object: &'v Map<String, Value>,
    path: &P,
    key: &'static str,
) -> Result<&'v str, ValidationError> {
    match object.get(key) {
        None => Err(missing(&path.key(key))),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(invalid_type(&path.key(key), "a string", other)),
    }
}

fn check_tools(root: &Map<String, Value>) -> Check {
    let Some(tools) = root.get("tools") else {
        return Ok(());
    };
    let tools_path = P::root("tools");
    let Value::Array(tools) = tools else {
        return Err(invalid_type(&tools_path, "an array", tools));
    };
    for (i, tool) in tools.iter().enumerate() {
        let path = tools_path.index(i);
        let Value::Object(tool) = tool else {
            return Err(invalid_type(&path, "an object", tool));
        };
        if require_string(tool, &path, "type")? == "function" {
            let function_path = path.key("function");
            match tool.get("function") {
                None => return Err(missing(&function_path)),
                Some(Value::Object(function)) => {
                    if require_string(function, &function_path, "name")?.is_empty() {
                        return Err(invalid_value(&function_path.key("name"), |_| {
                            "function name must not be empty".into()
                        }));
                    }
                }
                Some(other) => return Err(invalid_type(&function_path, "an object", other)),
            }
        }
    }
    Ok(())
}

fn check_message(path: &P, message: &Value) -> Check {
    let Value::Object(message) = message else {
        return Err(invalid_type(path, "an object", message));
    };
    let role_path = path.key("role");
    let role = match message.get("role") {
        None => return Err(missing(&role_path)),
        Some(Value::String(name)) => Role::parse(name).ok_or_else(|| {
            invalid_value(&role_path, |rendered| {
                format!(
                    "invalid value for '{rendered}': '{name}' (expected one of 'system', 'developer', 'user', 'assistant', 'tool')"
                )
            })
        })?,
        Some(other) => return Err(invalid_type(&role_path, "a string", other)),
    };
    match message.get("name") {
        None | Some(Value::String(_)) => {}
        Some(other) => return Err(invalid_type(&path.key("name"), "a string", other)),
    }
    let content_path = path.key("content");
    match role {
        Role::Assistant => {
            let has_tool_calls = match message.get("tool_calls") {
                None => false,
                Some(Value::Array(calls)) => {
                    let calls_path = path.key("tool_calls");
                    for (i, call) in calls.iter().enumerate() {
                        check_tool_call(&calls_path.index(i), call)?;
                    }
                    !calls.is_empty()
                }
                Some(other) => {
                    return Err(invalid_type(&path.key("tool_calls"), "an array", other))
                }
            };
            match message.get("content") {
                None | Some(Value::Null) if has_tool_calls => {}
                None | Some(Value::Null) => return Err(missing(&content_path)),
                Some(content) => check_content(&content_path, content, role)?,
            }
            match message.get("reasoning_content") {
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(other) => {
                    return Err(invalid_type(
                        &path.key("reasoning_content"),
                        "a string",
                        other,
                    ))
                }
            }
        }
        Role::Tool => {
            match message.get("tool_call_id") {
                None | Some(Value::Null) => return Err(missing(&path.key("tool_call_id"))),
                Some(Value::String(_)) => {}
                Some(other) => {
                    return Err(invalid_type(&path.key("tool_call_id"), "a string", other))
                }
            }
            match message.get("content") {
                None | Some(Value::Null) => return Err(missing(&content_path)),
                Some(content) => check_content(&content_path, content, role)?,
            }
        }
        Role::System | Role::Developer | Role::User => match message.get("content") {
            None | Some(Value::Null) => return Err(missing(&content_path)),
            Some(content) => check_content(&content_path, content, role)?,
        },
    }
    Ok(())
}

fn check_tool_call(path: &P, call: &Value) -> Check {
    let Value::Object(call) = call else {
        return Err(invalid_type(path, "an object", call));
    };
    require_string(call, path, "id")?;
    match call.get("type") {
        None | Some(Value::String(_)) => {}
        Some(other) => return Err(invalid_type(&path.key("type"), "a string", other)),
    }
    let function_path = path.key("function");
    let Some(function) = call.get("function") else {
        return Err(missing(&function_path));
    };
    let Value::Object(function) = function else {
        return Err(invalid_type(&function_path, "an object", function));
    };
    require_string(function, &function_path, "name")?;
    require_string(function, &function_path, "arguments")?;
    Ok(())
}

fn check_content(path: &P, content: &Value, role: Role) -> Check {
    match content {
        Value::String(_) => Ok(()),
        Value::Array(parts) => {
            if parts.is_empty() && role != Role::Assistant {
                let rendered = path.render();
                return Err(ValidationError::new(
                    "empty_array",
                    Some(rendered.clone()),
                    format!("'{rendered}' must contain at least one part"),
                ));
            }
            for (i, part) in parts.iter().enumerate() {
                check_part(&path.index(i), part)?;
            }
            Ok(())
        }
        other => Err(invalid_type(path, "a string or an array of parts", other)),
    }
}

fn check_part(path: &P, part: &Value) -> Check {
    let Value::Object(part) = part else {
        return Err(invalid_type(path, "an object", part));
    };
    match require_string(part, path, "type")? {
        "text" => require_string(part, path, "text").map(|_| ()),
        "image_url" => check_image_url(&path.key("image_url"), part.get("image_url")),
        // Unknown part kinds are forwarded unchanged (contract.md §1).
        _ => Ok(()),
    }
}

fn check_image_url(path: &P, image_url: Option<&Value>) -> Check {
    let Some(image_url) = image_url else {
        return Err(missing(path));
    };
    let Value::Object(image_url) = image_url else {
        return Err(invalid_type(path, "an object", image_url));
    };
    let url = require_string(image_url, path, "url")?;
    check_url(&path.key("url"), url)?;
    match image_url.get("detail") {
        None => Ok(()),
        Some(Value::String(detail)) if matches!(detail.as_str(), "auto" | "low" | "high") => Ok(()),
        Some(Value::String(detail)) => Err(invalid_value(&path.key("detail"), |rendered| {
            format!("invalid value for '{rendered}': '{detail}' (expected 'auto', 'low' or 'high')")
        })),
        Some(other) => Err(invalid_type(&path.key("detail"), "a string", other)),
    }
}

fn check_url(path: &P, url: &str) -> Check {
    let bad = |reason: &str| {
        let rendered = path.render();
        let message = format!("invalid image url at '{rendered}': {reason}");
        ValidationError::new("invalid_image_url", Some(rendered), message)
    };
    let scheme_end = url.find(':').unwrap_or(0);
    let scheme = &url[..scheme_end];
    if scheme.eq_ignore_ascii_case("data") {
        return check_image_data_url(url).map_err(bad);
    }
    let rest = if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http") {
        match url[scheme_end..].strip_prefix("://") {
            Some(rest) => rest,
            None => return Err(bad("expected an http(s) URL or a base64 data: URL")),
        }
    } else {
        return Err(bad("expected an http(s) URL or a base64 data: URL"));
    };
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(bad("the URL has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("the URL contains whitespace or control characters"));
    }
    Ok(())
}
