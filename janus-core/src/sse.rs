//! Server-Sent Events codec with no I/O: bytes in, events out; events in, bytes out.
//!
//! The decoder follows the WHATWG "event stream interpretation": LF, CRLF and CR line
//! endings (a CRLF split across two reads is one ending), comments, multi-line `data` joined
//! with `\n`, `event`, `id`, `retry`. It is incremental and linear: each byte is scanned once,
//! only an unfinished line is buffered, and an event larger than the cap is an error rather
//! than unbounded growth. It also tracks event boundaries, so a byte-forwarding relay knows
//! where a keep-alive comment may be inserted without splitting an event.

/// Default cap on one event's size (bytes of all its lines), 4 MiB: room for a chunk that
/// carries the largest inline artifact (a 1,000,000-byte file is a ~1.34 MB `data:` URL).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;
/// The keep-alive comment, `: ping\n\n`.
pub const PING: &[u8] = b": ping\n\n";
/// The stream terminator event, `data: [DONE]\n\n`.
pub const DONE: &[u8] = b"data: [DONE]\n\n";
/// The data payload that marks the end of an OpenAI stream.
pub const DONE_DATA: &str = "[DONE]";

/// A dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` of this event, if any.
    pub id: Option<String>,
    /// The `retry:` value in milliseconds, if any.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// A data-only event.
    pub fn data(data: impl Into<String>) -> SseEvent {
        SseEvent {
            event: None,
            data: data.into(),
            id: None,
            retry: None,
        }
    }
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A complete event.
    Event(SseEvent),
    /// A comment line (`: ping` yields `"ping"`).
    Comment(String),
}

/// Decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// An event (or a single line) grew past the cap.
    #[error("sse event exceeds {limit} bytes")]
    EventTooLarge {
        /// The cap.
        limit: usize,
    },
}

/// What one `feed` call found out about boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedOutcome {
    /// Offset just past the last event boundary inside the fed slice (None if no boundary
    /// fell inside it).
    pub last_boundary: Option<usize>,
}

/// Incremental SSE decoder.
#[derive(Debug, Clone)]
pub struct SseDecoder {
    max_event_bytes: usize,
    /// Bytes of an unfinished line.
    line: Vec<u8>,
    /// The last byte fed was a CR ending a line: a following LF belongs to it.
    after_cr: bool,
    /// Nothing fed yet (for the BOM check).
    at_start: bool,
    bom_pending: Vec<u8>,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    /// Field lines seen since the last dispatch (an undispatched event is pending).
    pending_fields: bool,
    /// Bytes of the event being accumulated, for the cap.
    event_bytes: usize,
    seen: u64,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseDecoder {
    /// A decoder with [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder whose events may not exceed `limit` bytes.
    pub fn with_max_event_bytes(limit: usize) -> Self {
        SseDecoder {
            max_event_bytes: limit,
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            bom_pending: Vec::new(),
            data: String::new(),
            has_data: false,
            event: None,
            id: None,
            retry: None,
            pending_fields: false,
            event_bytes: 0,
            seen: 0,
        }
    }

    /// Total bytes fed.
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    /// True when nothing of a partial event is buffered: a comment inserted now cannot
    /// split an event.
    pub fn at_boundary(&self) -> bool {
        self.line.is_empty() && !self.pending_fields && self.bom_pending.is_empty()
    }

    /// Feeds bytes; appends complete items to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseItem>) -> Result<FeedOutcome, SseError> {
        self.seen += bytes.len() as u64;
        let mut input = bytes;
        let mut base = 0usize;
        let mut outcome = FeedOutcome::default();
        if self.at_start {
            // Strip a leading BOM, which may itself arrive split across reads.
            let need = BOM.len() - self.bom_pending.len();
            let take = need.min(input.len());
            let candidate = [&self.bom_pending[..], &input[..take]].concat();
            if BOM.starts_with(&candidate) {
                if candidate.len() < BOM.len() {
                    self.bom_pending = candidate;
                    return Ok(outcome);
                }
                self.bom_pending.clear();
                self.at_start = false;
                input = &input[take..];
                base = take;
                // Right after the BOM nothing of an event is buffered: a boundary.
                outcome.last_boundary = Some(take);
            } else {
                self.at_start = false;
                let held = std::mem::take(&mut self.bom_pending);
                if !held.is_empty() {
                    // Not a BOM after all: decode the held bytes as content first.
                    self.feed_inner(&held, 0, out, &mut FeedOutcome::default())?;
                }
            }
        }
        self.feed_inner(input, base, out, &mut outcome)?;
        Ok(outcome)
    }

    fn feed_inner(
        &mut self,
        mut input: &[u8],
        mut offset: usize,
        out: &mut Vec<SseItem>,
        outcome: &mut FeedOutcome,
    ) -> Result<(), SseError> {
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            if input[0] == b'\n' {
                input = &input[1..];
                offset += 1;
                if self.at_boundary() {
                    outcome.last_boundary = Some(offset);
                }
            }
        }
        while !input.is_empty() {
            match memchr::memchr2(b'\n', b'\r', input) {
                None => {
                    self.grow(input.len())?;
                    self.line.extend_from_slice(input);
                    return Ok(());
                }
                Some(end) => {
                    self.grow(end)?;
                    let mut consumed = end + 1;
                    if input[end] == b'\r' {
                        if end + 1 < input.len() {
                            if input[end + 1] == b'\n' {
                                consumed += 1;
                            }
                        } else {
                            self.after_cr = true;
                        }
                    }
                    if self.line.is_empty() {
                        self.process_line(&input[..end], out);
                    } else {
                        self.line.extend_from_slice(&input[..end]);
                        let line = std::mem::take(&mut self.line);
                        self.process_line(&line, out);
                        // Keep the allocation for the next partial line.
                        self.line = line;
                        self.line.clear();
                    }
                    input = &input[consumed..];
                    offset += consumed;
                    if self.at_boundary() {
                        outcome.last_boundary = Some(offset);
                    }
                }
            }
        }
        Ok(())
    }

    fn grow(&mut self, n: usize) -> Result<(), SseError> {
        self.event_bytes = self.event_bytes.saturating_add(n);
        if self.event_bytes > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseItem>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            let text = &line[1..];
            let text = text.strip_prefix(b" ").unwrap_or(text);
            out.push(SseItem::Comment(String::from_utf8_lossy(text).into_owned()));
            if !self.pending_fields {
                self.event_bytes = 0;
            }
            return;
        }
        self.pending_fields = true;
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // All digits, so UTF-8; too many digits to fit is ignored like any bad value.
                if let Some(retry) = std::str::from_utf8(value)
                    .ok()
                    .and_then(|text| text.parse().ok())
                {
                    self.retry = Some(retry);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        if self.has_data {
            let mut data = std::mem::take(&mut self.data);
            data.pop(); // the trailing '\n' of the last data line
            out.push(SseItem::Event(SseEvent {
                event: self.event.take(),
                data,
                id: self.id.take(),
                retry: self.retry.take(),
            }));
        }
        self.data.clear();
        self.has_data = false;
        self.event = None;
        self.id = None;
        self.retry = None;
        self.pending_fields = false;
        self.event_bytes = 0;
    }

    /// Ends the stream: an unfinished event is discarded, as the specification says.
    pub fn finish(&mut self, _out: &mut Vec<SseItem>) -> Result<(), SseError> {
        self.line.clear();
        self.data.clear();
        self.has_data = false;
        self.event = None;
        self.id = None;
        self.retry = None;
        self.pending_fields = false;
        self.event_bytes = 0;
        self.after_cr = false;
        self.bom_pending.clear();
        Ok(())
    }
}

fn push_lines(prefix: &[u8], text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut rest = bytes;
    loop {
        match memchr::memchr2(b'\n', b'\r', rest) {
            Some(end) => {
                out.extend_from_slice(prefix);
                out.extend_from_slice(&rest[..end]);
                out.push(b'\n');
                let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[end + skip..];
            }
            None => {
                out.extend_from_slice(prefix);
                out.extend_from_slice(rest);
                out.push(b'\n');
                return;
            }
        }
    }
}

/// `data: <line>\n` for each line of `data`, then the blank line.
pub fn encode_data(data: &str, out: &mut Vec<u8>) {
    out.reserve(data.len() + 8);
    push_lines(b"data: ", data, out);
    out.push(b'\n');
}

/// A full event: optional `event:`, `id:`, `retry:`, then the data lines and the blank line.
pub fn encode_event(event: &SseEvent, out: &mut Vec<u8>) {
    if let Some(name) = &event.event {
        push_lines(b"event: ", name, out);
    }
    if let Some(id) = &event.id {
        push_lines(b"id: ", id, out);
    }
    if let Some(retry) = event.retry {
        out.extend_from_slice(format!("retry: {retry}\n").as_bytes());
    }
    encode_data(&event.data, out);
}

/// `: <line>\n` for each line of `text`, then the blank line (`: ping\n\n` for `ping`).
pub fn encode_comment(text: &str, out: &mut Vec<u8>) {
    if text.is_empty() {
        out.extend_from_slice(b":\n\n");
        return;
    }
    push_lines(b": ", text, out);
    out.push(b'\n');
}

/// `data: [DONE]\n\n`.
pub fn encode_done(out: &mut Vec<u8>) {
    out.extend_from_slice(DONE);
}
