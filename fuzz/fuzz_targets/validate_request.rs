//! Any bytes: validation never panics; accepted requests serialize and validate again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match janus_core::validate_request(data) {
        Ok(request) => {
            let again = serde_json::to_vec(&request).expect("typed request serializes");
            janus_core::validate_request(&again).expect("a serialized valid request stays valid");
        }
        Err(error) => {
            assert!(!error.message.is_empty());
            let _ = error.to_envelope().to_json();
        }
    }
});
