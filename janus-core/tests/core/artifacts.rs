//! Artifact helpers: descriptors from bytes, data: URLs, verification.

use janus_core::{
    data_url_decode, data_url_encode, sha256_hex, ArtifactDescriptor, ArtifactError, ArtifactType,
};

#[test]
fn inline_descriptor_verifies_against_its_own_data_url() {
    let bytes = b"hello, janus\n";
    let artifact = ArtifactDescriptor::inline(bytes, "hello.txt", "text/plain").unwrap();
    assert!(artifact.id.starts_with("artf_"));
    assert!(artifact.id[5..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(artifact.kind, ArtifactType::File);
    assert_eq!(artifact.size_bytes, bytes.len() as u64);
    assert_eq!(artifact.ttl_seconds, Some(3600));
    let created = artifact.created_at.as_deref().unwrap();
    assert!(humantime_like_rfc3339(created), "created_at {created}");
    assert!(artifact.is_inline());
    let decoded = data_url_decode(&artifact.url).unwrap();
    assert_eq!(decoded.mime_type, "text/plain");
    assert_eq!(decoded.bytes, bytes);
    artifact.verify(&decoded.bytes).unwrap();
}

fn humantime_like_rfc3339(s: &str) -> bool {
    s.len() == 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' && s.ends_with('Z')
}

#[test]
fn sha256_matches_a_known_vector() {
    assert_eq!(
        sha256_hex(b"hello"),
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
}

#[test]
fn inline_refuses_more_than_a_million_bytes() {
    let at_limit = vec![7u8; 1_000_000];
    assert!(ArtifactDescriptor::inline(&at_limit, "a.bin", "application/octet-stream").is_ok());
    let over = vec![7u8; 1_000_001];
    let err = ArtifactDescriptor::inline(&over, "a.bin", "application/octet-stream").unwrap_err();
    assert_eq!(
        err,
        ArtifactError::TooLargeForDataUrl {
            size: 1_000_001,
            limit: 1_000_000
        }
    );
}

#[test]
fn verify_detects_size_and_hash_mismatch() {
    let artifact = ArtifactDescriptor::for_bytes(b"abc", "a", "text/plain", "http://h/a");
    assert!(matches!(
        artifact.verify(b"abcd"),
        Err(ArtifactError::SizeMismatch {
            expected: 3,
            actual: 4
        })
    ));
    assert!(matches!(
        artifact.verify(b"abd"),
        Err(ArtifactError::HashMismatch { .. })
    ));
    let mut no_hash = artifact.clone();
    no_hash.sha256 = None;
    assert_eq!(no_hash.verify(b"abc"), Err(ArtifactError::MissingHash));
}

#[test]
fn data_url_encode_decode_round_trip_binary() {
    let bytes: Vec<u8> = (0..=255u8).collect();
    let url = data_url_encode("image/png", &bytes);
    assert!(url.starts_with("data:image/png;base64,"));
    let decoded = data_url_decode(&url).unwrap();
    assert_eq!(decoded.bytes, bytes);
    assert_eq!(decoded.mime_type, "image/png");
}

#[test]
fn data_url_decode_rejects_malformed() {
    for bad in [
        "http://x/y",
        "data:image/png;base64",
        "data:image/png;base64,@@@",
        "data:nonsense;base64,AAAA",
    ] {
        assert!(data_url_decode(bad).is_err(), "{bad} should not decode");
    }
    let plain = data_url_decode("data:,hello").unwrap();
    assert_eq!(plain.mime_type, "text/plain");
    assert_eq!(plain.bytes, b"hello");
}

#[test]
fn artifact_type_follows_mime() {
    assert_eq!(ArtifactType::from_mime("image/png"), ArtifactType::Image);
    assert_eq!(ArtifactType::from_mime("text/csv"), ArtifactType::Dataset);
    assert_eq!(
        ArtifactType::from_mime("text/markdown; charset=utf-8"),
        ArtifactType::File
    );
    assert_eq!(
        ArtifactType::from_mime("application/octet-stream"),
        ArtifactType::Binary
    );
}

#[test]
fn ids_are_unique() {
    let a = ArtifactDescriptor::for_bytes(b"x", "x", "text/plain", "u");
    let b = ArtifactDescriptor::for_bytes(b"x", "x", "text/plain", "u");
    assert_ne!(a.id, b.id);
    let id = janus_core::new_request_id();
    assert!(id.starts_with("chatcmpl-") && id.len() == 9 + 24);
}

#[test]
fn mime_type_follows_the_file_name() {
    assert_eq!(janus_core::mime_type_for_name("report.CSV"), "text/csv");
    assert_eq!(janus_core::mime_type_for_name("a.b/c.png"), "image/png");
    assert_eq!(janus_core::mime_type_for_name("notes.txt"), "text/plain");
    assert_eq!(
        janus_core::mime_type_for_name("Makefile"),
        "application/octet-stream"
    );
}
