//! Serving artifact bytes over HTTP, the pieces both ends share: the competitor SDK's file
//! server and the gateway's capability route agree on which ids exist, how a file name is
//! put in `Content-Disposition`, and what a byte range means. Plain string logic, no HTTP
//! types.

/// `artf_` followed by 1–64 lowercase hex digits: the only artifact ids served over HTTP.
/// Anything else (a `/`, `..`, percent escapes, upper case) is refused before it can name a
/// file or reach a competitor.
pub fn is_artifact_id(id: &str) -> bool {
    id.strip_prefix("artf_").is_some_and(|hex| {
        (1..=64).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The ASCII stand-in for a display name: everything but letters, digits and ` ._-+()[]`
/// becomes `_`, so it is safe inside the quoted `filename=`.
fn ascii_filename(display_name: &str) -> String {
    let safe: String = display_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ._-+()[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.trim().is_empty() {
        "artifact".to_owned()
    } else {
        safe
    }
}

/// RFC 5987 `attr-char`: what `filename*` may carry without a percent escape.
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
}

/// `attachment; filename="<ascii>"; filename*=UTF-8''<percent-encoded>` (RFC 6266): the
/// quoted ASCII fallback for old clients, the exact UTF-8 name for the rest. Always
/// `attachment`, so a browser saves the file instead of rendering it. Control characters
/// are dropped from the name first; the result is always a valid header value.
pub fn content_disposition(display_name: &str) -> String {
    let name: String = display_name.chars().filter(|c| !c.is_control()).collect();
    let mut encoded = String::with_capacity(name.len());
    for b in name.bytes() {
        if is_attr_char(b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let fallback = ascii_filename(&name);
    if encoded.is_empty() {
        return format!("attachment; filename=\"{fallback}\"");
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The file name a `Content-Disposition` value carries: the UTF-8 `filename*` when present
/// and decodable, else the quoted or bare `filename`. `None` when it names none. The gateway
/// reads the competitor's name with it and writes its own header with
/// [`content_disposition`], so what a client sees is always `attachment`.
pub fn content_disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    for param in value.split(';').skip(1) {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let raw = raw.trim();
        if key.eq_ignore_ascii_case("filename*") {
            let Some((charset, rest)) = raw.split_once('\'') else {
                continue;
            };
            let Some((_language, encoded)) = rest.split_once('\'') else {
                continue;
            };
            if !charset.eq_ignore_ascii_case("utf-8") {
                continue;
            }
            if let Some(name) = percent_decode(encoded).and_then(|b| String::from_utf8(b).ok()) {
                return Some(name);
            }
        } else if key.eq_ignore_ascii_case("filename") {
            let name = raw
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or(raw);
            plain = Some(name.replace("\\\"", "\""));
        }
    }
    plain
}

/// One byte range of a `Range: bytes=…` header, before the file size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-` or `bytes=first-last` (inclusive).
    From {
        /// First byte.
        first: u64,
        /// Last byte, inclusive; `None` to the end.
        last: Option<u64>,
    },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The range of a `Range` header value when it is exactly one well-formed byte range;
    /// `None` for anything else (several ranges, other units, garbage), which a server may
    /// answer with the whole file (RFC 9110 §14.2).
    pub fn parse(value: &str) -> Option<ByteRange> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        if first.trim().is_empty() {
            return number(last).map(ByteRange::Suffix);
        }
        let first = number(first)?;
        let last = if last.trim().is_empty() {
            None
        } else {
            Some(number(last)?)
        };
        if last.is_some_and(|last| last < first) {
            return None;
        }
        Some(ByteRange::From { first, last })
    }

    /// The inclusive `(first, last)` bytes this range selects from a file of `size` bytes;
    /// `None` when it selects nothing (answer 416 with `bytes */size`).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::From { first, last } if first < size => {
                Some((first, last.map_or(size - 1, |last| last.min(size - 1))))
            }
            ByteRange::From { .. } => None,
            ByteRange::Suffix(_) if size == 0 => None,
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((size.saturating_sub(n), size - 1)),
        }
    }

    /// The header value form, `bytes=…`.
    pub fn header_value(self) -> String {
        match self {
            ByteRange::From { first, last: None } => format!("bytes={first}-"),
            ByteRange::From {
                first,
                last: Some(last),
            } => format!("bytes={first}-{last}"),
            ByteRange::Suffix(n) => format!("bytes=-{n}"),
        }
    }
}

/// A `Content-Range: bytes first-last/size` value, parsed: `(first, last, size)`.
pub fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, size) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    let size: u64 = size.trim().parse().ok()?;
    (first <= last && last < size).then_some((first, last, size))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_generated_ids_are_artifact_ids() {
        assert!(is_artifact_id(&crate::new_artifact_id()));
        for bad in [
            "",
            "artf_",
            "artf_../etc",
            "artf_ABC",
            "../artf_00",
            "artf_00/..",
            "artf_00%2f",
            "artf_00.part",
            &format!("artf_{}", "0".repeat(65)),
        ] {
            assert!(!is_artifact_id(bad), "{bad}");
        }
    }

    #[test]
    fn content_disposition_has_a_fallback_and_the_exact_name() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("a\"b\r\n.txt"),
            "attachment; filename=\"a_b.txt\"; filename*=UTF-8''a%22b.txt"
        );
        assert_eq!(
            content_disposition("日本.csv"),
            "attachment; filename=\"__.csv\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.csv"
        );
        assert_eq!(content_disposition(""), "attachment; filename=\"artifact\"");
        for name in [
            "日本.csv",
            "a b;c=d",
            "x\u{7f}y",
            "\"\\",
            "../../etc/passwd",
        ] {
            let value = content_disposition(name);
            assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{value}");
            let expected: String = name.chars().filter(|c| !c.is_control()).collect();
            assert_eq!(content_disposition_filename(&value).unwrap(), expected);
        }
    }

    #[test]
    fn content_disposition_filename_reads_plain_and_extended_forms() {
        assert_eq!(
            content_disposition_filename("attachment; filename=\"a b.txt\"").unwrap(),
            "a b.txt"
        );
        assert_eq!(
            content_disposition_filename("inline; filename=x.html").unwrap(),
            "x.html"
        );
        assert_eq!(
            content_disposition_filename("attachment; filename*=utf-8'en'%C3%A9.txt").unwrap(),
            "é.txt"
        );
        // A broken extended form falls back to the plain one.
        assert_eq!(
            content_disposition_filename("attachment; filename=\"f\"; filename*=UTF-8''%ZZ")
                .unwrap(),
            "f"
        );
        assert_eq!(content_disposition_filename("attachment"), None);
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(
            ByteRange::parse("bytes=0-99"),
            Some(ByteRange::From {
                first: 0,
                last: Some(99)
            })
        );
        assert_eq!(
            ByteRange::parse("bytes=10-"),
            Some(ByteRange::From {
                first: 10,
                last: None
            })
        );
        assert_eq!(ByteRange::parse("bytes=-5"), Some(ByteRange::Suffix(5)));
        for bad in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=5-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "",
        ] {
            assert_eq!(ByteRange::parse(bad), None, "{bad}");
        }
        let r = |s| ByteRange::parse(s).unwrap();
        assert_eq!(r("bytes=0-99").resolve(50), Some((0, 49)));
        assert_eq!(r("bytes=10-").resolve(50), Some((10, 49)));
        assert_eq!(r("bytes=-5").resolve(50), Some((45, 49)));
        assert_eq!(r("bytes=-500").resolve(50), Some((0, 49)));
        assert_eq!(r("bytes=50-").resolve(50), None);
        assert_eq!(r("bytes=-0").resolve(50), None);
        assert_eq!(r("bytes=-1").resolve(0), None);
        assert_eq!(r("bytes=3-7").header_value(), "bytes=3-7");
        assert_eq!(parse_content_range("bytes 3-7/50"), Some((3, 7, 50)));
        assert_eq!(parse_content_range("bytes 3-50/50"), None);
        assert_eq!(parse_content_range("bytes */50"), None);
    }
}
