//! The one request-id rule of every component, and the checks on the tracing headers a
//! server accepts from a client (`X-Correlation-ID`, `traceparent`, `tracestate`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use janus_core::contract::{CORRELATION_ID_HEADER, REQUEST_ID_HEADER, TRACEPARENT_HEADER};

/// `tracestate` header name.
pub const TRACESTATE_HEADER: &str = "tracestate";
/// Longest `tracestate` forwarded (W3C Trace Context allows at least 512 bytes).
pub const MAX_TRACESTATE_BYTES: usize = 512;
/// Longest client-sent request or correlation id kept.
pub const MAX_ID_LEN: usize = 128;

/// The request id of a request, as the serving layer settled it; stored in the request's
/// extensions and echoed on its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The client's `X-Request-Id` when [`accept_id`] keeps it, else a fresh one.
    pub fn from_headers(headers: &HeaderMap) -> RequestId {
        RequestId(
            headers
                .get(REQUEST_ID_HEADER)
                .filter(|v| accept_id(v.as_bytes()))
                .cloned()
                .unwrap_or_else(fresh_id),
        )
    }

    /// A fresh id.
    pub fn generate() -> RequestId {
        RequestId(fresh_id())
    }

    /// The id (always ASCII).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("chatcmpl-unknown")
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a client-sent id (`X-Request-Id`, `X-Correlation-ID`) is kept: 1–128
/// characters of `[A-Za-z0-9._:-]`. Anything else is replaced (request id) or dropped
/// (correlation id), so ids are always safe to log and forward.
pub fn accept_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The client's `X-Correlation-ID` under the request-id rule, else `None`.
pub fn correlation_id(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get(CORRELATION_ID_HEADER)
        .filter(|v| accept_id(v.as_bytes()))
        .cloned()
}

/// `chatcmpl-` + 24 hex characters: 8 random per process, then a 64-bit counter. Unique
/// without a syscall per request.
fn fresh_id() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| janus_core::random_hex(4));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(9 + prefix.len() + 16);
    id.push_str("chatcmpl-");
    id.push_str(prefix);
    push_hex(&mut id, n);
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("chatcmpl-unknown"))
}

/// Whether `value` is a valid W3C `traceparent`: `version-traceid-parentid-flags` in
/// lowercase hex, version not `ff`, ids not all zeros; version `00` has exactly four
/// fields, later versions may append more.
pub fn valid_traceparent(value: &[u8]) -> bool {
    fn hex(field: &[u8], len: usize) -> bool {
        field.len() == len && field.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
    let mut fields = value.split(|&b| b == b'-');
    let (Some(version), Some(trace), Some(parent), Some(flags)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    let rest_ok = if version == b"00" {
        fields.next().is_none()
    } else {
        true
    };
    rest_ok
        && hex(version, 2)
        && version != b"ff"
        && hex(trace, 32)
        && trace.iter().any(|&b| b != b'0')
        && hex(parent, 16)
        && parent.iter().any(|&b| b != b'0')
        && hex(flags, 2)
}

/// The trace context of one hop: the trace it belongs to (the client's valid
/// `traceparent`, else a trace started here), the span id this hop logs under, and what it
/// passes downstream — the same trace id and flags with this hop's span id as the parent,
/// as a W3C participant does, so a trace's hops link up (`parent_span_id` → `span_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent` to send downstream: this trace, with this hop's span as the parent.
    pub traceparent: HeaderValue,
    /// `tracestate` to send, if any (the client's, when at most 512 bytes of visible ASCII).
    pub tracestate: Option<HeaderValue>,
    /// Whether the trace was started here (the client sent none, or an invalid one).
    pub started_here: bool,
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
}

impl TraceContext {
    /// Continues the client's trace or starts one; either way this hop gets a new span id.
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        let (_, _, span) = next_ids();
        let mut span_id = String::with_capacity(16);
        push_hex(&mut span_id, span);
        let client = headers
            .get(TRACEPARENT_HEADER)
            .filter(|v| valid_traceparent(v.as_bytes()))
            .and_then(|v| v.to_str().ok());
        let (trace_id, parent_span_id, flags, tracestate) = match client {
            Some(value) => (
                value[3..35].to_owned(),
                Some(value[36..52].to_owned()),
                value[53..55].to_owned(),
                headers
                    .get(TRACESTATE_HEADER)
                    .filter(|v| {
                        v.len() <= MAX_TRACESTATE_BYTES
                            && v.as_bytes().iter().all(|b| (0x20..0x7f).contains(b))
                    })
                    .cloned(),
            ),
            None => {
                let (hi, lo, _) = next_ids();
                let mut trace_id = String::with_capacity(32);
                push_hex(&mut trace_id, hi);
                push_hex(&mut trace_id, lo);
                (trace_id, None, "01".to_owned(), None)
            }
        };
        let mut traceparent = String::with_capacity(55);
        for part in ["00-", &trace_id, "-", &span_id, "-", &flags] {
            traceparent.push_str(part);
        }
        let traceparent = HeaderValue::from_str(&traceparent).unwrap_or_else(|_| new_traceparent());
        TraceContext {
            traceparent,
            tracestate,
            started_here: parent_span_id.is_none(),
            trace_id,
            span_id,
            parent_span_id,
        }
    }

    /// The trace id (32 hex characters).
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// This hop's span id (16 hex characters): the parent id of what it sends downstream.
    pub fn span_id(&self) -> &str {
        &self.span_id
    }

    /// The caller's span id, when the trace was continued.
    pub fn parent_span_id(&self) -> Option<&str> {
        self.parent_span_id.as_deref()
    }
}

/// A sampled `traceparent` with a fresh trace id and span id, from a per-process random
/// seed and a counter mixed by SplitMix64: no syscall per request.
pub fn new_traceparent() -> HeaderValue {
    let (trace_hi, trace_lo, span) = next_ids();
    HeaderValue::from_str(&format!("00-{trace_hi:016x}{trace_lo:016x}-{span:016x}-01"))
        .unwrap_or_else(|_| {
            HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
        })
}

fn next_ids() -> (u64, u64, u64) {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            bytes = janus_core::unix_now().to_le_bytes();
        }
        u64::from_le_bytes(bytes)
    });
    let n = COUNTER.fetch_add(3, Ordering::Relaxed);
    // Never zero: W3C forbids all-zero ids.
    let id = |k: u64| splitmix64(seed.wrapping_add(n + k)).max(1);
    (id(0), id(1), id(2))
}

/// Appends `value` as 16 lowercase hex digits (what `{:016x}` writes, without the
/// formatting machinery: ids are made for every request).
fn push_hex(out: &mut String, value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[((value >> (shift * 4)) & 0xf) as usize]));
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hex_is_what_the_formatter_writes() {
        for value in [0, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef, 1 << 63] {
            let mut hex = String::new();
            push_hex(&mut hex, value);
            assert_eq!(hex, format!("{value:016x}"));
        }
    }

    #[test]
    fn ids_follow_the_rule() {
        assert!(accept_id(b"req-123"));
        assert!(accept_id(b"a.b_c:d-E9"));
        assert!(accept_id(&[b'a'; 128]));
        assert!(!accept_id(&[b'a'; 129]));
        assert!(!accept_id(b""));
        assert!(!accept_id(b"has space"));
        assert!(!accept_id(b"semi;colon"));
        assert!(!accept_id("é".as_bytes()));
    }

    #[test]
    fn fresh_ids_are_unique_and_acceptable() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert!(accept_id(a.as_str().as_bytes()));
        assert_eq!(a.as_str().len(), "chatcmpl-".len() + 24);
    }

    #[test]
    fn traceparent_validation() {
        let good = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert!(valid_traceparent(good));
        assert!(valid_traceparent(
            b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"
        ));
        for bad in [
            &b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"[..],
            b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            b"00-00000000000000000000000000000000-b7ad6b7169203331-01",
            b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            b"00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            b"garbage",
            b"",
        ] {
            assert!(!valid_traceparent(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn new_traces_are_valid_and_distinct() {
        let a = new_traceparent();
        let b = new_traceparent();
        assert!(valid_traceparent(a.as_bytes()));
        assert_ne!(a, b);
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT_HEADER, HeaderValue::from_static("nope"));
        headers.insert(TRACESTATE_HEADER, HeaderValue::from_static("k=v"));
        let context = TraceContext::from_headers(&headers);
        assert!(context.started_here);
        assert!(
            context.tracestate.is_none(),
            "tracestate needs a valid traceparent"
        );
        assert_eq!(context.trace_id().len(), 32);
        assert!(context.parent_span_id().is_none());
    }

    #[test]
    fn a_continued_trace_keeps_its_id_and_gets_this_hop_as_parent() {
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT_HEADER,
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
        );
        let context = TraceContext::from_headers(&headers);
        assert!(!context.started_here);
        assert_eq!(context.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(context.parent_span_id(), Some("b7ad6b7169203331"));
        assert_eq!(context.span_id().len(), 16);
        assert_ne!(context.span_id(), "b7ad6b7169203331");
        assert_eq!(
            context.traceparent.to_str().unwrap(),
            format!(
                "00-0af7651916cd43dd8448eb211c80319c-{}-00",
                context.span_id()
            ),
            "the sampled flag is kept"
        );
        let next = TraceContext::from_headers(&headers);
        assert_ne!(next.span_id(), context.span_id(), "every hop its own span");
    }
}
