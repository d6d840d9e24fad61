//! SSE decode throughput on a realistic chunk stream.

use std::hint::black_box;
use std::time::{Duration, Instant};

use janus_core::sse::{SseDecoder, SseItem};

fn realistic_stream() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..2000 {
        out.extend_from_slice(
            format!(
                "data: {{\"id\":\"chatcmpl-0123456789abcdef01234567\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"baseline\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}}}}]}}\n\n"
            )
            .as_bytes(),
        );
        if i % 200 == 0 {
            out.extend_from_slice(b": ping\n\n");
        }
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

fn measure(stream: &[u8], read_size: usize) {
    let mut samples = Vec::new();
    let mut items: Vec<SseItem> = Vec::with_capacity(4096);
    for _ in 0..5 {
        let start = Instant::now();
        let mut bytes = 0u64;
        while start.elapsed() < Duration::from_secs(1) {
            let mut decoder = SseDecoder::new();
            for piece in stream.chunks(read_size) {
                let _ = black_box(decoder.feed(black_box(piece), &mut items));
                items.clear();
            }
            bytes += stream.len() as u64;
        }
        samples.push(bytes as f64 / start.elapsed().as_secs_f64() / 1e6);
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "sse decode ({read_size}-byte reads): median {:.1} MB/s (min {:.1}, max {:.1}) over {} samples of {} bytes",
        samples[samples.len() / 2],
        samples[0],
        samples[samples.len() - 1],
        samples.len(),
        stream.len()
    );
}

pub fn bench_sse_decode() {
    let stream = realistic_stream();
    measure(&stream, 1400);
    measure(&stream, 64);
}
