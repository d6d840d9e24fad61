//! Time to validate a realistic ~1 KB request.

use std::hint::black_box;
use std::time::{Duration, Instant};

fn request_1kb() -> Vec<u8> {
    let body = serde_json::json!({
        "model": "baseline",
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": 0.7,
        "max_tokens": 1024,
        "messages": [
            {"role": "system", "content": "You are Janus, a helpful assistant. Answer precisely and cite your sources when you use the web."},
            {"role": "user", "content": "Summarise the history of the Roman Republic in three paragraphs, focusing on institutions."},
            {"role": "assistant", "content": "The Roman Republic began in 509 BC when the last king was expelled. Its institutions balanced consuls, the senate and popular assemblies."},
            {"role": "user", "content": [
                {"type": "text", "text": "Now compare it with this picture of the Forum and tell me what building this is."},
                {"type": "image_url", "image_url": {"url": "https://example.com/images/forum-romanum.jpg", "detail": "auto"}}
            ]}
        ],
        "metadata": {"session": "6f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b"},
        "user": "user-1234"
    });
    let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
    // Pad with a vendor field to ~1 KB, as real clients send.
    if bytes.len() < 1024 {
        let pad = "x".repeat(1024 - bytes.len() - 16);
        bytes.pop();
        bytes.extend_from_slice(format!(",\"x_pad\":\"{pad}\"}}").as_bytes());
    }
    bytes
}

fn measure(label: &str, body: &[u8], run: impl Fn(&[u8]) -> bool) {
    assert!(run(body), "{label}: the benchmark request must be valid");
    let mut samples = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut iterations = 0u64;
        while start.elapsed() < Duration::from_millis(400) {
            for _ in 0..100 {
                black_box(run(black_box(body)));
            }
            iterations += 100;
        }
        samples.push(start.elapsed().as_nanos() as f64 / iterations as f64);
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "{label} ({}-byte request): median {:.2} µs (min {:.2}, max {:.2}) over {} samples",
        body.len(),
        samples[samples.len() / 2] / 1000.0,
        samples[0] / 1000.0,
        samples[samples.len() - 1] / 1000.0,
        samples.len()
    );
}

pub fn bench_validate() {
    let body = request_1kb();
    measure("validate_request, bytes to typed request", &body, |b| {
        janus_core::validate_request(b).is_ok()
    });
    // What the gateway does: one borrowed pass, then forward the original bytes.
    measure(
        "check_request, one borrowed pass (gateway path)",
        &body,
        |b| janus_core::check_request(b).is_ok(),
    );
    // What it did before: a full Value tree, then a walk over it.
    measure(
        "Value parse (the old gateway path's first half)",
        &body,
        |b| serde_json::from_slice::<serde_json::Value>(b).is_ok(),
    );
}
