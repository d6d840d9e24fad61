//! Request validation: bytes in, a typed [`ChatCompletionRequest`] or a precise error out.
//!
//! The JSON is checked in one borrowed pass over the bytes: no `serde_json::Value` tree is
//! built, objects Janus inspects are read field by field as raw slices of the input, and
//! fields it does not know are skipped without allocating (they are forwarded unchanged).
//! So a 10 MB body of tiny values costs about its own size, and every error names the
//! exact path (`messages[1].content[0].image_url.url`). A key that appears twice in the
//! request object, or in an object Janus inspects, is an error (`duplicate_key`): JSON
//! parsers disagree on which copy wins, so the value checked would not be the value used.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer as _;
use serde_json::value::RawValue;

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
    /// `integer_below_min_value`, `invalid_image_url`, `duplicate_key`).
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

/// JSON nesting deeper than this is refused (requests) or treated as invalid (responses):
/// parsers downstream recurse, and serde_json's skipping of unknown values does not count
/// depth.
pub const MAX_JSON_DEPTH: usize = 128;

/// Whether `bytes` nest arrays and objects deeper than `max` (strings are skipped, so
/// brackets inside them do not count). Linear, no allocation; for syntactically valid or
/// invalid input alike.
pub fn json_depth_exceeds(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// Checks that `bytes` are one JSON document nested at most [`MAX_JSON_DEPTH`] deep,
/// without building it (relays check each competitor event and response this way).
pub fn check_json_document(bytes: &[u8]) -> Result<(), String> {
    if json_depth_exceeds(bytes, MAX_JSON_DEPTH) {
        return Err(format!("nested more than {MAX_JSON_DEPTH} levels deep"));
    }
    serde_json::from_slice::<IgnoredAny>(bytes)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What the gateway needs of a request it checked: routing inputs and the stream mode.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestSummary<'a> {
    /// `model`.
    pub model: Cow<'a, str>,
    /// `stream` (false when absent).
    pub stream: bool,
    /// `stream_options.include_usage` (false when absent).
    pub include_usage: bool,
    /// `competitor_id`, when sent.
    pub competitor_id: Option<Cow<'a, str>>,
}

/// The kind of a raw JSON value, read from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind(raw: &RawValue) -> Kind {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        _ => Kind::Number,
    }
}

fn type_name(raw: &RawValue) -> &'static str {
    match kind(raw) {
        Kind::Null => "null",
        Kind::Bool => "a boolean",
        Kind::Number => "a number",
        Kind::String => "a string",
        Kind::Array => "an array",
        Kind::Object => "an object",
    }
}

fn invalid_type(path: &P, expected: &str, got: &RawValue) -> ValidationError {
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

fn duplicate(path: String) -> ValidationError {
    ValidationError::new(
        "duplicate_key",
        Some(path.clone()),
        format!("duplicate key '{path}': each key may appear only once"),
    )
}

/// `message` gets the rendered path to mention.
fn invalid_value(path: &P, message: impl FnOnce(&str) -> String) -> ValidationError {
    let path = path.render();
    let message = message(&path);
    ValidationError::new("invalid_value", Some(path), message)
}

fn invalid_json(e: impl std::fmt::Display) -> ValidationError {
    ValidationError::new(
        "invalid_json",
        None,
        format!("request body is not valid JSON: {e}"),
    )
}

/// A string value, borrowed from the input unless it has escapes.
#[derive(serde::Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    if kind(raw) != Kind::String {
        return None;
    }
    serde_json::from_str::<Str<'_>>(raw.get()).ok().map(|s| s.0)
}

fn number(raw: &RawValue) -> Option<serde_json::Number> {
    if kind(raw) != Kind::Number {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// A key of an object, borrowed unless escaped.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The fields `names` of a raw object, as raw values; other keys are skipped without
/// allocating. `Err(Some(i))`: `names[i]` appears twice; `Err(None)`: not an object.
fn fields<'a, const N: usize>(
    raw: &'a RawValue,
    names: [&'static str; N],
) -> Result<[Option<&'a RawValue>; N], Option<usize>> {
    struct Fields<const N: usize> {
        names: [&'static str; N],
    }
    impl<'de, const N: usize> Visitor<'de> for Fields<N> {
        type Value = Result<[Option<&'de RawValue>; N], usize>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found: [Option<&'de RawValue>; N] = [None; N];
            let mut repeated = None;
            while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                match self.names.iter().position(|name| *name == key) {
                    Some(i) if found[i].is_some() => {
                        repeated.get_or_insert(i);
                        map.next_value::<IgnoredAny>()?;
                    }
                    Some(i) => found[i] = Some(map.next_value::<&'de RawValue>()?),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(match repeated {
                Some(i) => Err(i),
                None => Ok(found),
            })
        }
    }
    if kind(raw) != Kind::Object {
        return Err(None);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    match de.deserialize_map(Fields { names }) {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(i)) => Err(Some(i)),
        // The raw value was already checked JSON; treat the impossible as "not an object".
        Err(_) => Err(None),
    }
}

/// [`fields`] with the errors a check reports: not an object → invalid type at `path`;
/// a duplicate → `duplicate_key` at `path.<name>`.
fn object<'a, const N: usize>(
    path: &P,
    raw: &'a RawValue,
    names: [&'static str; N],
) -> Result<[Option<&'a RawValue>; N], ValidationError> {
    fields(raw, names).map_err(|e| match e {
        Some(i) => duplicate(path.key(names[i]).render()),
        None => invalid_type(path, "an object", raw),
    })
}

/// Calls `check` on each element of a raw array as it is read (no list is built, so a
/// huge array of tiny values costs nothing and the first bad element ends the walk).
/// Returns the number of elements; not an array → invalid type at `path`.
fn each_element<'a>(
    path: &P,
    raw: &'a RawValue,
    expected: &str,
    mut check: impl FnMut(usize, &'a RawValue) -> Check,
) -> Result<usize, ValidationError> {
    struct Elements<'c, F> {
        check: &'c mut F,
        failed: &'c RefCell<Option<ValidationError>>,
    }
    impl<'de, F: FnMut(usize, &'de RawValue) -> Check> Visitor<'de> for Elements<'_, F> {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while let Some(element) = seq.next_element::<&'de RawValue>()? {
                if let Err(e) = (self.check)(n, element) {
                    *self.failed.borrow_mut() = Some(e);
                    return Err(serde::de::Error::custom("check failed"));
                }
                n += 1;
            }
            Ok(n)
        }
    }
    if kind(raw) != Kind::Array {
        return Err(invalid_type(path, expected, raw));
    }
    let failed = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let counted = de.deserialize_seq(Elements {
        check: &mut check,
        failed: &failed,
    });
    match (failed.into_inner(), counted) {
        (Some(e), _) => Err(e),
        (None, Ok(n)) => Ok(n),
        (None, Err(e)) => Err(invalid_json(e)),
    }
}

/// The request object's members: known fields as raw values, duplicates of any key found.
struct Root<'a> {
    fields: [Option<&'a RawValue>; ROOT_FIELDS.len()],
    duplicate: Option<String>,
}

const ROOT_FIELDS: [&str; 14] = [
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "response_format",
    "user",
    "metadata",
    "competitor_id",
    // Not checked, but a duplicate would change what the competitor sees.
    "n",
];

/// Keys of a request object beyond which duplicates are found with a set, not a scan.
const LINEAR_KEY_SCAN: usize = 16;

impl<'de> serde::Deserialize<'de> for Root<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RootVisitor;
        impl<'de> Visitor<'de> for RootVisitor {
            type Value = Root<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Root<'de>, A::Error> {
                let mut root = Root {
                    fields: [None; ROOT_FIELDS.len()],
                    duplicate: None,
                };
                let mut seen: Vec<Cow<'de, str>> = Vec::new();
                let mut seen_set: std::collections::HashSet<Cow<'de, str>> =
                    std::collections::HashSet::new();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let repeated = if seen.len() < LINEAR_KEY_SCAN {
                        let repeated = seen.contains(&key);
                        seen.push(key.clone());
                        repeated
                    } else {
                        if seen_set.is_empty() {
                            seen_set.extend(seen.iter().cloned());
                        }
                        !seen_set.insert(key.clone())
                    };
                    if repeated && root.duplicate.is_none() {
                        root.duplicate = Some(key.clone().into_owned());
                    }
                    match ROOT_FIELDS.iter().position(|name| *name == key) {
                        Some(i) => root.fields[i] = Some(map.next_value::<&'de RawValue>()?),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(root)
            }
        }
        d.deserialize_map(RootVisitor)
    }
}

fn top_level_kind(body: &[u8]) -> &'static str {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Checks a request body in one borrowed pass and returns what routing needs. Fields Janus
/// does not know are not checked: they are forwarded unchanged.
pub fn check_request(body: &[u8]) -> Result<RequestSummary<'_>, ValidationError> {
    if json_depth_exceeds(body, MAX_JSON_DEPTH) {
        return Err(invalid_json(format_args!(
            "nested more than {MAX_JSON_DEPTH} levels deep"
        )));
    }
    let text = std::str::from_utf8(body).map_err(invalid_json)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let root = match serde::Deserialize::deserialize(&mut de) {
        Ok(root) => root,
        Err(e) if e.is_data() => {
            return Err(ValidationError::new(
                "invalid_type",
                None,
                format!(
                    "request body must be a JSON object, but got {}",
                    top_level_kind(body)
                ),
            ))
        }
        Err(e) => return Err(invalid_json(e)),
    };
    de.end().map_err(invalid_json)?;
    check_root(&root)
}

/// Parses and validates a chat-completion request body into the typed request.
pub fn validate_request(body: &[u8]) -> Result<ChatCompletionRequest, ValidationError> {
    check_request(body)?;
    // The structural checks cover every typed field, so this conversion only fails on a
    // case they missed; the path still names the field.
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ValidationError::new(
            "invalid_value",
            (path != ".").then_some(path),
            format!("invalid request: {}", e.inner()),
        )
    })
}

/// `body` without the request object's `key` member (the gateway strips `competitor_id`).
/// Every other member keeps its bytes exactly, in order.
pub fn strip_top_level_key(body: &[u8], key: &str) -> Result<Vec<u8>, ValidationError> {
    struct Members<'k>(&'k str);
    impl<'de> Visitor<'de> for Members<'_> {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::new();
            while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
                let value = map.next_value::<&'de RawValue>()?;
                if name != self.0 {
                    members.push((name, value));
                }
            }
            Ok(members)
        }
    }
    let text = std::str::from_utf8(body).map_err(invalid_json)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let members = de.deserialize_map(Members(key)).map_err(invalid_json)?;
    let mut out = Vec::with_capacity(body.len());
    out.push(b'{');
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, name.as_ref()).map_err(invalid_json)?;
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
    }
    out.push(b'}');
    Ok(out)
}

fn root_field<'a>(root: &Root<'a>, name: &str) -> Option<&'a RawValue> {
    ROOT_FIELDS
        .iter()
        .position(|n| *n == name)
        .and_then(|i| root.fields[i])
}

fn check_root<'a>(root: &Root<'a>) -> Result<RequestSummary<'a>, ValidationError> {
    if let Some(key) = &root.duplicate {
        return Err(duplicate(key.clone()));
    }
    let model_path = P::root("model");
    let model = match root_field(root, "model") {
        None => return Err(missing(&model_path)),
        Some(raw) => match string(raw) {
            Some(name) if name.trim().is_empty() => {
                return Err(invalid_value(&model_path, |_| {
                    "'model' must not be empty".into()
                }))
            }
            Some(name) => name,
            None => return Err(invalid_type(&model_path, "a string", raw)),
        },
    };
    let messages_path = P::root("messages");
    match root_field(root, "messages") {
        None => return Err(missing(&messages_path)),
        Some(raw) => {
            let count = each_element(&messages_path, raw, "an array", |i, message| {
                check_message(&messages_path.index(i), message)
            })?;
            if count == 0 {
                return Err(ValidationError::new(
                    "empty_array",
                    Some("messages".into()),
                    "'messages' must contain at least one message".into(),
                ));
            }
        }
    }
    check_number_range(root, "temperature", 0.0, 2.0)?;
    check_number_range(root, "top_p", 0.0, 1.0)?;
    check_max_tokens(root)?;
    let stream = match root_field(root, "stream") {
        None => false,
        Some(raw) => match raw.get() {
            "true" => true,
            "false" => false,
            _ => return Err(invalid_type(&P::root("stream"), "a boolean", raw)),
        },
    };
    let mut include_usage = false;
    if let Some(options) = root_field(root, "stream_options") {
        let path = P::root("stream_options");
        let [include] = object(&path, options, ["include_usage"])?;
        if let Some(include) = include {
            include_usage = match include.get() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(invalid_type(
                        &path.key("include_usage"),
                        "a boolean",
                        include,
                    ))
                }
            };
        }
    }
    check_tools(root)?;
    if let Some(choice) = root_field(root, "tool_choice") {
        let path = P::root("tool_choice");
        match kind(choice) {
            Kind::String => {
                let mode = string(choice).unwrap_or_default();
                if !matches!(mode.as_ref(), "none" | "auto" | "required") {
                    return Err(invalid_value(&path, |_| {
                        format!(
                            "invalid value for 'tool_choice': '{mode}' (expected 'none', 'auto', 'required' or an object)"
                        )
                    }));
                }
            }
            Kind::Object => {}
            _ => return Err(invalid_type(&path, "a string or an object", choice)),
        }
    }
    if let Some(format) = root_field(root, "response_format") {
        let path = P::root("response_format");
        let [kind_field] = object(&path, format, ["type"])?;
        match kind_field {
            None => return Err(missing(&path.key("type"))),
            Some(raw) if kind(raw) == Kind::String => {}
            Some(other) => return Err(invalid_type(&path.key("type"), "a string", other)),
        }
    }
    check_optional(root, "user", "a string", Kind::String)?;
    check_optional(root, "metadata", "an object", Kind::Object)?;
    check_optional(root, "competitor_id", "a string", Kind::String)?;
    Ok(RequestSummary {
        model,
        stream,
        include_usage,
        competitor_id: root_field(root, "competitor_id").and_then(string),
    })
}

fn check_optional(root: &Root<'_>, key: &'static str, expected: &str, want: Kind) -> Check {
    match root_field(root, key) {
        Some(raw) if kind(raw) != want => Err(invalid_type(&P::root(key), expected, raw)),
        _ => Ok(()),
    }
}

fn check_number_range(root: &Root<'_>, key: &'static str, min: f64, max: f64) -> Check {
    let Some(raw) = root_field(root, key) else {
        return Ok(());
    };
    let Some(number) = number(raw).and_then(|n| n.as_f64()) else {
        return Err(invalid_type(&P::root(key), "a number", raw));
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

fn check_max_tokens(root: &Root<'_>) -> Check {
    let Some(raw) = root_field(root, "max_tokens") else {
        return Ok(());
    };
    let below = |n: &dyn std::fmt::Display| {
        ValidationError::new(
            "integer_below_min_value",
            Some("max_tokens".into()),
            format!("invalid 'max_tokens': {n} is below the minimum of 1"),
        )
    };
    match number(raw) {
        Some(n) if n.as_u64() == Some(0) => Err(below(&n)),
        Some(n) if n.is_u64() => Ok(()),
        Some(n) if n.is_i64() => Err(below(&n)),
        _ => Err(invalid_type(&P::root("max_tokens"), "an integer", raw)),
    }
}

/// A required string field: missing, or not a string, is an error.
fn require_string<'a>(
    field: Option<&'a RawValue>,
    path: &P,
    key: &'static str,
) -> Result<Cow<'a, str>, ValidationError> {
    match field {
        None => Err(missing(&path.key(key))),
        Some(raw) => string(raw).ok_or_else(|| invalid_type(&path.key(key), "a string", raw)),
    }
}

fn check_tools(root: &Root<'_>) -> Check {
    let Some(tools) = root_field(root, "tools") else {
        return Ok(());
    };
    let tools_path = P::root("tools");
    each_element(&tools_path, tools, "an array", |i, tool| {
        let path = tools_path.index(i);
        let [kind_field, function] = object(&path, tool, ["type", "function"])?;
        if require_string(kind_field, &path, "type")? == "function" {
            let function_path = path.key("function");
            match function {
                None => return Err(missing(&function_path)),
                Some(function) => {
                    let [name] = object(&function_path, function, ["name"])?;
                    if require_string(name, &function_path, "name")?.is_empty() {
                        return Err(invalid_value(&function_path.key("name"), |_| {
                            "function name must not be empty".into()
                        }));
                    }
                }
            }
        }
        Ok(())
    })
    .map(|_| ())
}

fn is_absent_or_null(field: Option<&RawValue>) -> bool {
    field.is_none_or(|raw| kind(raw) == Kind::Null)
}

fn check_message(path: &P, message: &RawValue) -> Check {
    let [role_field, name, content, tool_calls, reasoning, tool_call_id] = object(
        path,
        message,
        [
            "role",
            "name",
            "content",
            "tool_calls",
            "reasoning_content",
            "tool_call_id",
        ],
    )?;
    let role_path = path.key("role");
    let role = match role_field {
        None => return Err(missing(&role_path)),
        Some(raw) => match string(raw) {
            Some(name) => Role::parse(&name).ok_or_else(|| {
                invalid_value(&role_path, |rendered| {
                    format!(
                        "invalid value for '{rendered}': '{name}' (expected one of 'system', 'developer', 'user', 'assistant', 'tool')"
                    )
                })
            })?,
            None => return Err(invalid_type(&role_path, "a string", raw)),
        },
    };
    if let Some(name) = name {
        if kind(name) != Kind::String {
            return Err(invalid_type(&path.key("name"), "a string", name));
        }
    }
    let content_path = path.key("content");
    match role {
        Role::Assistant => {
            let has_tool_calls = match tool_calls {
                None => false,
                Some(calls) => {
                    let calls_path = path.key("tool_calls");
                    let count = each_element(&calls_path, calls, "an array", |i, call| {
                        check_tool_call(&calls_path.index(i), call)
                    })?;
                    count > 0
                }
            };
            match content {
                _ if is_absent_or_null(content) && has_tool_calls => {}
                _ if is_absent_or_null(content) => return Err(missing(&content_path)),
                Some(content) => check_content(&content_path, content, role)?,
                None => {}
            }
            if let Some(reasoning) = reasoning {
                if !matches!(kind(reasoning), Kind::Null | Kind::String) {
                    return Err(invalid_type(
                        &path.key("reasoning_content"),
                        "a string",
                        reasoning,
                    ));
                }
            }
        }
        Role::Tool => {
            match tool_call_id {
                _ if is_absent_or_null(tool_call_id) => {
                    return Err(missing(&path.key("tool_call_id")))
                }
                Some(raw) if kind(raw) == Kind::String => {}
                Some(other) => {
                    return Err(invalid_type(&path.key("tool_call_id"), "a string", other))
                }
                None => {}
            }
            match content {
                _ if is_absent_or_null(content) => return Err(missing(&content_path)),
                Some(content) => check_content(&content_path, content, role)?,
                None => {}
            }
        }
        Role::System | Role::Developer | Role::User => match content {
            _ if is_absent_or_null(content) => return Err(missing(&content_path)),
            Some(content) => check_content(&content_path, content, role)?,
            None => {}
        },
    }
    Ok(())
}

fn check_tool_call(path: &P, call: &RawValue) -> Check {
    let [id, kind_field, function] = object(path, call, ["id", "type", "function"])?;
    require_string(id, path, "id")?;
    if let Some(raw) = kind_field {
        if kind(raw) != Kind::String {
            return Err(invalid_type(&path.key("type"), "a string", raw));
        }
    }
    let function_path = path.key("function");
    let Some(function) = function else {
        return Err(missing(&function_path));
    };
    let [name, arguments] = object(&function_path, function, ["name", "arguments"])?;
    require_string(name, &function_path, "name")?;
    require_string(arguments, &function_path, "arguments")?;
    Ok(())
}

fn check_content(path: &P, content: &RawValue, role: Role) -> Check {
    match kind(content) {
        Kind::String => Ok(()),
        Kind::Array => {
            let count = each_element(path, content, "a string or an array of parts", |i, part| {
                check_part(&path.index(i), part)
            })?;
            if count == 0 && role != Role::Assistant {
                let rendered = path.render();
                return Err(ValidationError::new(
                    "empty_array",
                    Some(rendered.clone()),
                    format!("'{rendered}' must contain at least one part"),
                ));
            }
            Ok(())
        }
        _ => Err(invalid_type(path, "a string or an array of parts", content)),
    }
}

fn check_part(path: &P, part: &RawValue) -> Check {
    let [kind_field, text, image_url] = object(path, part, ["type", "text", "image_url"])?;
    match require_string(kind_field, path, "type")?.as_ref() {
        "text" => require_string(text, path, "text").map(|_| ()),
        "image_url" => check_image_url(&path.key("image_url"), image_url),
        // Unknown part kinds are forwarded unchanged (contract.md §1).
        _ => Ok(()),
    }
}

fn check_image_url(path: &P, image_url: Option<&RawValue>) -> Check {
    let Some(image_url) = image_url else {
        return Err(missing(path));
    };
    let [url, detail] = object(path, image_url, ["url", "detail"])?;
    let url = require_string(url, path, "url")?;
    check_url(&path.key("url"), &url)?;
    match detail {
        None => Ok(()),
        Some(raw) => match string(raw) {
            Some(detail) if matches!(detail.as_ref(), "auto" | "low" | "high") => Ok(()),
            Some(detail) => Err(invalid_value(&path.key("detail"), |rendered| {
                format!(
                    "invalid value for '{rendered}': '{detail}' (expected 'auto', 'low' or 'high')"
                )
            })),
            None => Err(invalid_type(&path.key("detail"), "a string", raw)),
        },
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
