//! `cargo bench -p janus-core`: SSE decode throughput and request validation time.
#![allow(clippy::print_stdout, missing_docs)]

#[path = "sse_part.rs"]
mod sse_part;
#[path = "validate_part.rs"]
mod validate_part;

fn main() {
    sse_part::bench_sse_decode();
    validate_part::bench_validate();
}
