//! Identifiers and clock helpers shared by every crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// `n` random bytes as lowercase hex (`2 * n` characters).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS source failing is near impossible; stay unique rather than fail a request.
        fallback_bytes(&mut bytes);
    }
    hex(&bytes)
}

fn fallback_bytes(bytes: &mut [u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut offset = 0;
    while offset < bytes.len() {
        let mut hasher = Sha256::new();
        hasher.update(unix_nanos().to_le_bytes());
        hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        hasher.update(std::process::id().to_le_bytes());
        let digest = hasher.finalize();
        let take = digest.len().min(bytes.len() - offset);
        bytes[offset..offset + take].copy_from_slice(&digest[..take]);
        offset += take;
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A request id: `chatcmpl-` + 24 hex characters.
pub fn new_request_id() -> String {
    format!("chatcmpl-{}", random_hex(12))
}

/// A completion id for responses and chunks: `chatcmpl-` + 24 hex characters.
pub fn new_completion_id() -> String {
    new_request_id()
}

/// An artifact id: `artf_` + 32 hex characters.
pub fn new_artifact_id() -> String {
    format!("artf_{}", random_hex(16))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (the unit of `X-Janus-Deadline` and grant expiry).
pub fn unix_ms() -> u64 {
    u64::try_from(unix_nanos() / 1_000_000).unwrap_or(u64::MAX)
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
