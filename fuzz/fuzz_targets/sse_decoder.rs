//! Any bytes: the decoder never panics, a split feed equals a whole feed, boundaries agree,
//! and a small cap errors instead of growing.
#![no_main]

use janus_core::sse::{SseDecoder, SseItem};
use libfuzzer_sys::fuzz_target;

const CAP: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut whole = SseDecoder::new();
    let mut whole_items = Vec::new();
    let whole_result = whole.feed(rest, &mut whole_items);

    // The first byte picks where the rest is cut into two reads.
    let split = usize::from(first) * rest.len() / 256;
    let mut parts = SseDecoder::new();
    let mut part_items = Vec::new();
    let first_half = parts.feed(&rest[..split], &mut part_items);
    let second_half = first_half.and_then(|outcome| {
        if let Some(boundary) = outcome.last_boundary {
            assert!((1..=split).contains(&boundary));
        }
        parts.feed(&rest[split..], &mut part_items)
    });
    assert_eq!(whole_result.is_ok(), second_half.is_ok());
    if let (Ok(whole_outcome), Ok(second_outcome)) = (&whole_result, &second_half) {
        assert_eq!(whole_items, part_items);
        assert_eq!(whole.at_boundary(), parts.at_boundary());
        assert_eq!(whole.bytes_seen(), parts.bytes_seen());
        // At the end of the input both agree on whether it is a boundary.
        assert_eq!(
            whole_outcome.last_boundary == Some(rest.len()) && !rest.is_empty(),
            whole.at_boundary() && !rest.is_empty()
        );
        if split < rest.len() {
            assert_eq!(
                second_outcome.last_boundary == Some(rest.len() - split),
                parts.at_boundary()
            );
        }
        whole.finish(&mut whole_items).ok();
        assert!(whole.at_boundary());
    }

    // A small cap: any line longer than the cap must be an error, never a growing buffer.
    let mut capped = SseDecoder::with_max_event_bytes(CAP);
    let mut capped_items = Vec::new();
    let longest_line = rest
        .split(|&b| b == b'\n' || b == b'\r')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    match capped.feed(rest, &mut capped_items) {
        Ok(_) => {
            // A leading BOM is not part of any line.
            assert!(
                longest_line <= CAP + 3,
                "a {longest_line}-byte line passed a {CAP} cap"
            );
            // The same bytes under a larger cap cannot have failed, and decode the same.
            assert!(whole_result.is_ok());
            assert_eq!(capped_items, whole_items);
            for item in &capped_items {
                if let SseItem::Event(event) = item {
                    // Lossy UTF-8 turns one bad byte into three.
                    assert!(event.data.len() <= CAP * 3);
                }
            }
        }
        Err(_) => assert!(rest.len() > CAP),
    }
});
