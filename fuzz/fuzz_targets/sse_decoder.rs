//! Any bytes: the decoder never panics, a split feed equals a whole feed, and the cap holds.
#![no_main]

use janus_core::sse::SseDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut whole = SseDecoder::new();
    let mut whole_items = Vec::new();
    let whole_result = whole.feed(rest, &mut whole_items);

    let split = usize::from(first) * rest.len() / 256;
    let mut parts = SseDecoder::new();
    let mut part_items = Vec::new();
    let first_half = parts.feed(&rest[..split], &mut part_items);
    let second_half = first_half.and_then(|_| parts.feed(&rest[split..], &mut part_items));
    assert_eq!(whole_result.is_ok(), second_half.is_ok());
    if whole_result.is_ok() {
        assert_eq!(whole_items, part_items);
    }

    let mut capped = SseDecoder::with_max_event_bytes(4096);
    let mut capped_items = Vec::new();
    if capped.feed(rest, &mut capped_items).is_ok() {
        for item in &capped_items {
            if let janus_core::sse::SseItem::Event(event) = item {
                assert!(event.data.len() <= 4096 * 3);
            }
        }
    }
});
