"""Drives the gateway with the official OpenAI Python SDK; exits non-zero on any mismatch.

Run by openai_sdk.rs with JANUS_GATEWAY_URL set. Prints one line per passed check.
"""
import os
import sys

import openai

base = os.environ["JANUS_GATEWAY_URL"] + "/v1"
client = openai.OpenAI(base_url=base, api_key="test-key", max_retries=0, timeout=20)

# Non-streaming: content, usage, vendor fields kept.
completion = client.chat.completions.create(
    model="echo", messages=[{"role": "user", "content": "hello"}]
)
assert completion.choices[0].message.content == "hi", completion
assert completion.usage is not None and completion.usage.total_tokens == 2, completion.usage
assert completion.choices[0].finish_reason == "stop"
print("non-stream ok")

# Streaming with include_usage: content pieces, finish_reason, final usage chunk.
stream = client.chat.completions.create(
    model="echo",
    messages=[{"role": "user", "content": "hello"}],
    stream=True,
    stream_options={"include_usage": True},
)
content, finish, usage, empty_choice_chunks = "", None, None, 0
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    if not chunk.choices:
        empty_choice_chunks += 1
        continue
    delta = chunk.choices[0].delta
    if delta.content:
        content += delta.content
    if chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
assert content == "Hello, world", content
assert finish == "stop", finish
assert usage is not None and usage.total_tokens == 7, usage
assert empty_choice_chunks == 1, empty_choice_chunks
print("stream ok")

# An error after the stream started raises, carrying the message.
try:
    for _ in client.chat.completions.create(
        model="broken", messages=[{"role": "user", "content": "x"}], stream=True
    ):
        pass
except openai.APIError as error:
    assert "unreachable" in str(error), str(error)
    print("stream error raises ok")
else:
    sys.exit("stream error did not raise")

# An error before the start is an HTTP status the SDK maps to its exception class.
try:
    client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "x"}],
        extra_body={"competitor_id": "nope"},
    )
except openai.NotFoundError as error:
    assert error.status_code == 404
    assert "nope" in str(error), str(error)
    print("404 raises ok")
else:
    sys.exit("unknown competitor did not raise")

try:
    client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "x"}], temperature=5
    )
except openai.BadRequestError as error:
    assert error.status_code == 400
    assert error.body["param"] == "temperature", error.body
    print("400 raises ok")
else:
    sys.exit("bad temperature did not raise")

# Models list.
ids = [m.id for m in client.models.list()]
assert ids == ["echo", "broken"], ids
print("models ok")
