//! A table of malformed requests, each with the exact `code` and `param` it must produce.

use janus_core::validate_request;
use serde_json::{json, Value};

const PNG: &str = "data:image/png;base64,iVBORw0KGgo=";

fn base() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
}

fn with(patch: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut body = base();
    patch(&mut body);
    serde_json::to_vec(&body).unwrap()
}

fn user_parts(parts: Value) -> Vec<u8> {
    with(|b| b["messages"] = json!([{"role": "user", "content": parts}]))
}

#[test]
fn malformed_requests_name_code_and_param() {
    let cases: Vec<(&str, Vec<u8>, &str, Option<&str>)> = vec![
        ("not json", b"{not json".to_vec(), "invalid_json", None),
        ("empty body", Vec::new(), "invalid_json", None),
        ("array body", b"[1,2]".to_vec(), "invalid_type", None),
        (
            "missing model",
            with(|b| {
                b.as_object_mut().unwrap().remove("model");
            }),
            "missing_required_parameter",
            Some("model"),
        ),
        (
            "model not string",
            with(|b| b["model"] = json!(5)),
            "invalid_type",
            Some("model"),
        ),
        (
            "model empty",
            with(|b| b["model"] = json!("  ")),
            "invalid_value",
            Some("model"),
        ),
        (
            "missing messages",
            with(|b| {
                b.as_object_mut().unwrap().remove("messages");
            }),
            "missing_required_parameter",
            Some("messages"),
        ),
        (
            "messages not array",
            with(|b| b["messages"] = json!("hi")),
            "invalid_type",
            Some("messages"),
        ),
        (
            "messages empty",
            with(|b| b["messages"] = json!([])),
            "empty_array",
            Some("messages"),
        ),
        (
            "message not object",
            with(|b| b["messages"] = json!(["hi"])),
            "invalid_type",
            Some("messages[0]"),
        ),
        (
            "role missing",
            with(|b| b["messages"] = json!([{"content": "x"}])),
            "missing_required_parameter",
            Some("messages[0].role"),
        ),
        (
            "role not string",
            with(|b| b["messages"] = json!([{"role": 1, "content": "x"}])),
            "invalid_type",
            Some("messages[0].role"),
        ),
        (
            "unknown role",
            with(|b| {
                b["messages"] =
                    json!([{"role": "user", "content": "a"}, {"role": "robot", "content": "x"}])
            }),
            "invalid_value",
            Some("messages[1].role"),
        ),
        (
            "user content missing",
            with(|b| b["messages"] = json!([{"role": "user"}])),
            "missing_required_parameter",
            Some("messages[0].content"),
        ),
        (
            "user content null",
            with(|b| b["messages"] = json!([{"role": "user", "content": null}])),
            "missing_required_parameter",
            Some("messages[0].content"),
        ),
        (
            "content number",
            with(|b| b["messages"] = json!([{"role": "system", "content": 3}])),
            "invalid_type",
            Some("messages[0].content"),
        ),
        (
            "content parts empty",
            user_parts(json!([])),
            "empty_array",
            Some("messages[0].content"),
        ),
        (
            "part not object",
            user_parts(json!(["x"])),
            "invalid_type",
            Some("messages[0].content[0]"),
        ),
        (
            "part type missing",
            user_parts(json!([{"text": "x"}])),
            "missing_required_parameter",
            Some("messages[0].content[0].type"),
        ),
        (
            "text part without text",
            user_parts(json!([{"type": "text"}])),
            "missing_required_parameter",
            Some("messages[0].content[0].text"),
        ),
        (
            "text part text number",
            user_parts(json!([{"type": "text", "text": 1}])),
            "invalid_type",
            Some("messages[0].content[0].text"),
        ),
        (
            "image part without image_url",
            user_parts(json!([{"type": "text", "text": "a"}, {"type": "image_url"}])),
            "missing_required_parameter",
            Some("messages[0].content[1].image_url"),
        ),
        (
            "image_url as string",
            user_parts(json!([{"type": "image_url", "image_url": "https://x/y.png"}])),
            "invalid_type",
            Some("messages[0].content[0].image_url"),
        ),
        (
            "image url missing",
            user_parts(json!([{"type": "image_url", "image_url": {}}])),
            "missing_required_parameter",
            Some("messages[0].content[0].image_url.url"),
        ),
        (
            "image url ftp",
            user_parts(json!([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}])),
            "invalid_image_url",
            Some("messages[0].content[0].image_url.url"),
        ),
        (
            "image url no host",
            user_parts(json!([{"type": "image_url", "image_url": {"url": "https:///y.png"}}])),
            "invalid_image_url",
            Some("messages[0].content[0].image_url.url"),
        ),
        (
            "image data url not base64",
            user_parts(json!([{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}])),
            "invalid_image_url",
            Some("messages[0].content[0].image_url.url"),
        ),
        (
            "image data url bad payload",
            user_parts(
                json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,***"}}]),
            ),
            "invalid_image_url",
            Some("messages[0].content[0].image_url.url"),
        ),
        (
            "image data url no comma",
            user_parts(
                json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64"}}]),
            ),
            "invalid_image_url",
            Some("messages[0].content[0].image_url.url"),
        ),
        (
            "image detail bad",
            user_parts(
                json!([{"type": "image_url", "image_url": {"url": PNG, "detail": "ultra"}}]),
            ),
            "invalid_value",
            Some("messages[0].content[0].image_url.detail"),
        ),
        (
            "deep image path",
            with(
                |b| b["messages"] = json!([{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]),
            ),
            "invalid_image_url",
            Some("messages[1].content[1].image_url.url"),
        ),
        (
            "tool without tool_call_id",
            with(|b| {
                b["messages"] =
                    json!([{"role": "user", "content": "a"}, {"role": "tool", "content": "r"}])
            }),
            "missing_required_parameter",
            Some("messages[1].tool_call_id"),
        ),
        (
            "tool_call_id number",
            with(|b| b["messages"] = json!([{"role": "tool", "content": "r", "tool_call_id": 7}])),
            "invalid_type",
            Some("messages[0].tool_call_id"),
        ),
        (
            "assistant without content or tool calls",
            with(|b| b["messages"] = json!([{"role": "assistant"}])),
            "missing_required_parameter",
            Some("messages[0].content"),
        ),
        (
            "assistant tool call without function",
            with(|b| {
                b["messages"] =
                    json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}])
            }),
            "missing_required_parameter",
            Some("messages[0].tool_calls[0].function"),
        ),
        (
            "assistant tool call arguments object",
            with(
                |b| b["messages"] = json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}]}]),
            ),
            "invalid_type",
            Some("messages[0].tool_calls[0].function.arguments"),
        ),
        (
            "name not string",
            with(|b| b["messages"] = json!([{"role": "user", "content": "a", "name": 1}])),
            "invalid_type",
            Some("messages[0].name"),
        ),
        (
            "temperature too high",
            with(|b| b["temperature"] = json!(2.5)),
            "decimal_above_max_value",
            Some("temperature"),
        ),
        (
            "temperature negative",
            with(|b| b["temperature"] = json!(-0.1)),
            "decimal_below_min_value",
            Some("temperature"),
        ),
        (
            "temperature string",
            with(|b| b["temperature"] = json!("hot")),
            "invalid_type",
            Some("temperature"),
        ),
        (
            "top_p above one",
            with(|b| b["top_p"] = json!(1.01)),
            "decimal_above_max_value",
            Some("top_p"),
        ),
        (
            "top_p negative",
            with(|b| b["top_p"] = json!(-1)),
            "decimal_below_min_value",
            Some("top_p"),
        ),
        (
            "max_tokens zero",
            with(|b| b["max_tokens"] = json!(0)),
            "integer_below_min_value",
            Some("max_tokens"),
        ),
        (
            "max_tokens negative",
            with(|b| b["max_tokens"] = json!(-5)),
            "integer_below_min_value",
            Some("max_tokens"),
        ),
        (
            "max_tokens float",
            with(|b| b["max_tokens"] = json!(1.5)),
            "invalid_type",
            Some("max_tokens"),
        ),
        (
            "stream string",
            with(|b| b["stream"] = json!("yes")),
            "invalid_type",
            Some("stream"),
        ),
        (
            "stream_options not object",
            with(|b| b["stream_options"] = json!(true)),
            "invalid_type",
            Some("stream_options"),
        ),
        (
            "include_usage not bool",
            with(|b| b["stream_options"] = json!({"include_usage": "yes"})),
            "invalid_type",
            Some("stream_options.include_usage"),
        ),
        (
            "tools not array",
            with(|b| b["tools"] = json!({})),
            "invalid_type",
            Some("tools"),
        ),
        (
            "tool function name missing",
            with(|b| b["tools"] = json!([{"type": "function", "function": {}}])),
            "missing_required_parameter",
            Some("tools[0].function.name"),
        ),
        (
            "tool_choice bad string",
            with(|b| b["tool_choice"] = json!("sometimes")),
            "invalid_value",
            Some("tool_choice"),
        ),
        (
            "tool_choice number",
            with(|b| b["tool_choice"] = json!(1)),
            "invalid_type",
            Some("tool_choice"),
        ),
        (
            "response_format without type",
            with(|b| b["response_format"] = json!({})),
            "missing_required_parameter",
            Some("response_format.type"),
        ),
        (
            "user not string",
            with(|b| b["user"] = json!(42)),
            "invalid_type",
            Some("user"),
        ),
        (
            "metadata not object",
            with(|b| b["metadata"] = json!([1])),
            "invalid_type",
            Some("metadata"),
        ),
        (
            "competitor_id not string",
            with(|b| b["competitor_id"] = json!(1)),
            "invalid_type",
            Some("competitor_id"),
        ),
    ];
    assert!(cases.len() >= 30);
    for (name, body, code, param) in cases {
        let err = match validate_request(&body) {
            Ok(request) => panic!("case '{name}' was accepted: {request:?}"),
            Err(err) => err,
        };
        assert_eq!(err.code, code, "case '{name}': {err:?}");
        assert_eq!(err.param.as_deref(), param, "case '{name}': {err:?}");
        assert!(!err.message.is_empty(), "case '{name}' has no message");
        let envelope: Value = serde_json::from_slice(&err.to_envelope().to_json()).unwrap();
        assert_eq!(envelope["error"]["type"], "invalid_request_error");
        assert_eq!(envelope["error"]["code"], code);
    }
}

#[test]
fn well_formed_requests_pass() {
    let cases = [
        base(),
        json!({"model": "m", "messages": [{"role": "developer", "content": "d"}, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png?x=1"}}, {"type": "audio", "audio": {}}]}]}),
        json!({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "c", "content": "r"}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0, "top_p": 1, "max_tokens": 1, "stream": true, "stream_options": {"include_usage": true}, "tool_choice": {"type": "function", "function": {"name": "f"}}, "vendor_field": [null]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 2, "top_p": 0}),
    ];
    for body in cases {
        let bytes = serde_json::to_vec(&body).unwrap();
        if let Err(err) = validate_request(&bytes) {
            panic!("rejected {body}: {err:?}");
        }
    }
}

#[test]
fn vendor_fields_are_kept_for_forwarding() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"x","x_msg":true}],"seed":7,"x":{"y":1}}"#;
    let request = validate_request(body).unwrap();
    assert_eq!(request.extra["seed"], json!(7));
    assert_eq!(request.extra["x"], json!({"y": 1}));
    let back = serde_json::to_value(&request).unwrap();
    assert_eq!(back, serde_json::from_slice::<Value>(body).unwrap());
}

// Issue 10: `{"temperature":5,"temperature":1,…}` was validated on the last value and
// forwarded as sent, so the competitor received 5.
#[test]
fn duplicate_keys_are_refused_where_janus_looks() {
    let cases: [(&[u8], &str); 6] = [
        (
            br#"{"model":"m","temperature":5,"temperature":1,"messages":[{"role":"user","content":"x"}]}"#,
            "temperature",
        ),
        (
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"messages":[{"role":"user","content":"y"}]}"#,
            "messages",
        ),
        (
            br#"{"model":"m","messages":[],"vendor":1,"vendor":2}"#,
            "vendor",
        ),
        (
            br#"{"model":"m","messages":[{"role":"user","role":"system","content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://a.example/x.png","url":"data:,"}}]}]}"#,
            "messages[0].content[0].image_url.url",
        ),
        (
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true,"include_usage":false}}"#,
            "stream_options.include_usage",
        ),
    ];
    for (body, param) in cases {
        let err = janus_core::check_request(body).unwrap_err();
        assert_eq!(err.code, "duplicate_key", "{param}: {err:?}");
        assert_eq!(err.param.as_deref(), Some(param));
    }
    // Objects Janus does not inspect are forwarded untouched, duplicates and all.
    let nested = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{"a":1,"a":2},"x":{"k":1,"k":2}}"#;
    assert!(janus_core::check_request(nested).is_ok());
}

#[test]
fn the_summary_carries_what_routing_needs() {
    let body = br#"{"model":"m\u0031","stream":true,"stream_options":{"include_usage":true},"competitor_id":"c","messages":[{"role":"user","content":"x"}]}"#;
    let summary = janus_core::check_request(body).unwrap();
    assert_eq!(summary.model, "m1");
    assert!(summary.stream);
    assert!(summary.include_usage);
    assert_eq!(summary.competitor_id.as_deref(), Some("c"));
    let plain =
        janus_core::check_request(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
            .unwrap();
    assert!(!plain.stream && !plain.include_usage && plain.competitor_id.is_none());
}

#[test]
fn stripping_a_key_keeps_every_other_byte() {
    let body = br#"{"model":"m", "competitor_id":"c","messages":[{"role":"user","content":"x y"}],"x\"q":{"k" : [1, 2.50]}}"#;
    let stripped = janus_core::strip_top_level_key(body, "competitor_id").unwrap();
    assert_eq!(
        String::from_utf8(stripped).unwrap(),
        r#"{"model":"m","messages":[{"role":"user","content":"x y"}],"x\"q":{"k" : [1, 2.50]}}"#
    );
}

#[test]
fn deep_nesting_is_refused() {
    let depth = 100_000;
    let mut body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"x":"#.to_vec();
    body.extend(std::iter::repeat_n(b'[', depth));
    body.extend(std::iter::repeat_n(b']', depth));
    body.push(b'}');
    let err = janus_core::check_request(&body).unwrap_err();
    assert_eq!(err.code, "invalid_json");
    assert!(janus_core::json_depth_exceeds(&body, 128));
    // Brackets inside strings do not count; 128 levels are fine.
    assert!(!janus_core::json_depth_exceeds(br#"["[[[[\"[["]"#, 1));
    let ok = format!("{}{}", "[".repeat(128), "]".repeat(128));
    assert!(!janus_core::json_depth_exceeds(ok.as_bytes(), 128));
}

#[test]
fn huge_arrays_of_tiny_values_are_walked_not_collected() {
    // 2 MB of `1,`: the first element is already wrong, and the error says so.
    let mut body = br#"{"model":"m","messages":["#.to_vec();
    for _ in 0..1_000_000 {
        body.extend_from_slice(b"1,");
    }
    body.extend_from_slice(b"1]}");
    let err = janus_core::check_request(&body).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("messages[0]"));
    assert_eq!(err.code, "invalid_type");
}
