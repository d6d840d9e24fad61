//! Artifact descriptors (contract.md §5) and their helpers: building a descriptor from bytes,
//! `data:` URLs, and verifying bytes against a descriptor.

use std::time::SystemTime;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::contract::{DATA_URL_MAX_BYTES, DEFAULT_ARTIFACT_TTL_SECONDS};
use crate::ids::{hex, new_artifact_id};

/// What kind of thing an artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactType {
    /// A picture.
    Image,
    /// A document.
    File,
    /// Tabular or structured data.
    Dataset,
    /// Anything else.
    Binary,
}

impl ArtifactType {
    /// The type that fits a MIME type.
    pub fn from_mime(mime_type: &str) -> ArtifactType {
        let essence = mime_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            m if m.starts_with("image/") => ArtifactType::Image,
            "text/csv"
            | "text/tab-separated-values"
            | "application/x-ndjson"
            | "application/jsonl"
            | "application/vnd.apache.parquet" => ArtifactType::Dataset,
            m if m.starts_with("text/") => ArtifactType::File,
            "application/json" | "application/pdf" | "application/xml" | "application/zip" => {
                ArtifactType::File
            }
            _ => ArtifactType::Binary,
        }
    }
}

/// An artifact descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactDescriptor {
    /// `artf_` + hex.
    pub id: String,
    /// Kind of artifact.
    #[serde(rename = "type")]
    pub kind: ArtifactType,
    /// MIME type of the bytes.
    pub mime_type: String,
    /// File name shown to people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Exact size of the bytes.
    pub size_bytes: u64,
    /// Lowercase hex sha256 of the bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Seconds the artifact stays retrievable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// An http(s) URL, or a base64 `data:` URL for small files.
    pub url: String,
    /// Vendor fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why an artifact could not be built or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// Bytes too large for an inline `data:` URL.
    #[error("artifact of {size} bytes exceeds the {limit}-byte data: url limit")]
    TooLargeForDataUrl {
        /// Size of the bytes.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not a well-formed base64 `data:` URL.
    #[error("malformed data: url: {0}")]
    MalformedDataUrl(&'static str),
    /// Size differs from `size_bytes`.
    #[error("size mismatch: descriptor says {expected} bytes, got {actual}")]
    SizeMismatch {
        /// `size_bytes`.
        expected: u64,
        /// Measured.
        actual: u64,
    },
    /// Hash differs from `sha256`.
    #[error("sha256 mismatch: descriptor says {expected}, got {actual}")]
    HashMismatch {
        /// `sha256`.
        expected: String,
        /// Measured.
        actual: String,
    },
    /// The descriptor carries no `sha256` to check against.
    #[error("descriptor has no sha256")]
    MissingHash,
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

impl ArtifactDescriptor {
    /// Describes `bytes` served at `url`: fresh `artf_` id, sha256, size, type from the
    /// MIME type, `created_at` now, default TTL.
    pub fn for_bytes(
        bytes: &[u8],
        display_name: impl Into<String>,
        mime_type: impl Into<String>,
        url: impl Into<String>,
    ) -> ArtifactDescriptor {
        let mime_type = mime_type.into();
        ArtifactDescriptor {
            id: new_artifact_id(),
            kind: ArtifactType::from_mime(&mime_type),
            mime_type,
            display_name: Some(display_name.into()),
            size_bytes: bytes.len() as u64,
            sha256: Some(sha256_hex(bytes)),
            created_at: Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string()),
            ttl_seconds: Some(DEFAULT_ARTIFACT_TTL_SECONDS),
            url: url.into(),
            extra: Map::new(),
        }
    }

    /// Describes `bytes` with an inline base64 `data:` URL; fails above 1,000,000 bytes.
    pub fn inline(
        bytes: &[u8],
        display_name: impl Into<String>,
        mime_type: impl Into<String>,
    ) -> Result<ArtifactDescriptor, ArtifactError> {
        let size = bytes.len() as u64;
        if size > DATA_URL_MAX_BYTES {
            return Err(ArtifactError::TooLargeForDataUrl {
                size,
                limit: DATA_URL_MAX_BYTES,
            });
        }
        let mime_type = mime_type.into();
        let url = data_url_encode(&mime_type, bytes);
        Ok(ArtifactDescriptor::for_bytes(
            bytes,
            display_name,
            mime_type,
            url,
        ))
    }

    /// True when `url` is an inline `data:` URL.
    pub fn is_inline(&self) -> bool {
        self.url.starts_with("data:")
    }

    /// Checks `bytes` against `size_bytes` and `sha256`.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), ArtifactError> {
        let actual = bytes.len() as u64;
        if actual != self.size_bytes {
            return Err(ArtifactError::SizeMismatch {
                expected: self.size_bytes,
                actual,
            });
        }
        let expected = self.sha256.as_deref().ok_or(ArtifactError::MissingHash)?;
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(ArtifactError::HashMismatch {
                expected: expected.to_owned(),
                actual,
            });
        }
        Ok(())
    }
}

/// A decoded `data:` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUrl {
    /// The media type (`text/plain` when the URL names none), parameters removed.
    pub mime_type: String,
    /// The decoded bytes.
    pub bytes: Vec<u8>,
}

/// `data:<mime>;base64,<payload>`.
pub fn data_url_encode(mime_type: &str, bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = String::with_capacity(mime_type.len() + 13 + bytes.len().div_ceil(3) * 4);
    out.push_str("data:");
    out.push_str(mime_type);
    out.push_str(";base64,");
    b64.encode_string(bytes, &mut out);
    out
}

/// Decodes a `data:` URL (base64 or percent-free plain payload).
pub fn data_url_decode(url: &str) -> Result<DataUrl, ArtifactError> {
    let header_and_payload = url
        .strip_prefix("data:")
        .ok_or(ArtifactError::MalformedDataUrl("missing data: prefix"))?;
    let (header, payload) =
        header_and_payload
            .split_once(',')
            .ok_or(ArtifactError::MalformedDataUrl(
                "missing ',' before the payload",
            ))?;
    let mut params = header.split(';');
    let media = params.next().unwrap_or("").trim();
    let mut is_base64 = false;
    for param in params {
        if param.eq_ignore_ascii_case("base64") {
            is_base64 = true;
        }
    }
    let mime_type = if media.is_empty() {
        "text/plain".to_owned()
    } else if is_valid_media_type(media) {
        media.to_ascii_lowercase()
    } else {
        return Err(ArtifactError::MalformedDataUrl(
            "media type is not type/subtype",
        ));
    };
    let bytes = if is_base64 {
        base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .map_err(|_| ArtifactError::MalformedDataUrl("payload is not valid base64"))?
    } else {
        payload.as_bytes().to_vec()
    };
    Ok(DataUrl { mime_type, bytes })
}

/// `type/subtype` made of RFC 2045 token characters.
pub(crate) fn is_valid_media_type(media: &str) -> bool {
    fn is_token(s: &str) -> bool {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    }
    match media.split_once('/') {
        Some((kind, sub)) => is_token(kind) && is_token(sub),
        None => false,
    }
}

/// Checks that a `data:` URL is well-formed for an image part: a media type, `;base64`
/// and a valid base64 payload. Returns the reason when it is not.
pub(crate) fn check_image_data_url(url: &str) -> Result<(), &'static str> {
    let rest = url.strip_prefix("data:").ok_or("missing data: prefix")?;
    let (header, payload) = rest
        .split_once(',')
        .ok_or("missing ',' before the payload")?;
    let mut params = header.split(';');
    let media = params.next().unwrap_or("");
    if !is_valid_media_type(media) {
        return Err("media type is not type/subtype");
    }
    if !params.any(|p| p.eq_ignore_ascii_case("base64")) {
        return Err("payload must be base64 (;base64)");
    }
    if payload.is_empty() {
        return Err("payload is empty");
    }
    // Decoding into a scratch buffer proves validity; images are small relative to the
    // 10 MiB body cap, so this linear pass is cheap.
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map(|_| ())
        .map_err(|_| "payload is not valid base64")
}

/// The MIME type a file name's extension suggests (`application/octet-stream` when unknown).
pub fn mime_type_for_name(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "csv" => "text/csv",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}
