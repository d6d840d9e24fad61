//! Agentic files: every artifact the answer announced is fetched (a `data:` URL decoded, an
//! http URL fetched) and verified by sha256 and size; then each file the item expects must
//! be among the verified ones, with its content checked where the item says.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full, Limited};
use janus_core::ArtifactDescriptor;

use crate::measure::HttpClient;
use crate::score::Evaluation;
use crate::suite::ExpectedArtifact;

/// Largest artifact fetched for verification.
const MAX_ARTIFACT: usize = 64 << 20;

async fn fetch(
    client: &HttpClient,
    artifact: &ArtifactDescriptor,
    timeout: Duration,
) -> Result<Bytes, String> {
    if artifact.url.starts_with("data:") {
        return janus_core::data_url_decode(&artifact.url)
            .map(|d| Bytes::from(d.bytes))
            .map_err(|e| e.to_string());
    }
    let request = Request::get(&artifact.url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("bad url {}: {e}", artifact.url))?;
    let fetched = tokio::time::timeout(timeout, async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("GET {}: {}", artifact.url, janus_core::error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(format!(
                "GET {} answered {}",
                artifact.url,
                response.status().as_u16()
            ));
        }
        Limited::new(response.into_body(), MAX_ARTIFACT)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| format!("GET {}: {e}", artifact.url))
    })
    .await;
    fetched.map_err(|_| {
        format!(
            "GET {} did not finish within {} s",
            artifact.url,
            timeout.as_secs()
        )
    })?
}

fn matches(
    spec: &ExpectedArtifact,
    artifact: &ArtifactDescriptor,
    bytes: &[u8],
) -> Result<(), String> {
    if let Some(name) = &spec.name {
        if artifact.display_name.as_deref() != Some(name.as_str()) {
            return Err(format!("not named {name}"));
        }
    }
    if let Some(mime) = &spec.mime_type {
        if !artifact.mime_type.eq_ignore_ascii_case(mime) {
            return Err(format!("type {} is not {mime}", artifact.mime_type));
        }
    }
    if let Some(min) = spec.min_size {
        if (bytes.len() as u64) < min {
            return Err(format!("{} bytes, fewer than {min}", bytes.len()));
        }
    }
    let text = String::from_utf8_lossy(bytes).to_lowercase();
    for needle in &spec.contains {
        if !text.contains(&needle.to_lowercase()) {
            return Err(format!("does not contain {needle:?}"));
        }
    }
    Ok(())
}

/// Verifies the artifacts and scores the expected files (`artifacts` = files found over
/// files expected). An artifact whose bytes do not match its sha256 or size counts as
/// absent.
pub async fn evaluate(
    client: &HttpClient,
    announced: &[ArtifactDescriptor],
    expected: &[ExpectedArtifact],
    timeout: Duration,
) -> Evaluation {
    let mut evaluation = Evaluation::default();
    let mut verified: Vec<(&ArtifactDescriptor, Bytes)> = Vec::new();
    for artifact in announced {
        match fetch(client, artifact, timeout).await {
            Ok(bytes) => match artifact.verify(&bytes) {
                Ok(()) if artifact.sha256.is_some() => verified.push((artifact, bytes)),
                Ok(()) => evaluation
                    .notes
                    .push(format!("artifact {}: no sha256 to verify", artifact.id)),
                Err(e) => evaluation
                    .notes
                    .push(format!("artifact {}: {e}", artifact.id)),
            },
            Err(e) => evaluation
                .notes
                .push(format!("artifact {}: {e}", artifact.id)),
        }
    }
    let mut found = 0usize;
    for (i, spec) in expected.iter().enumerate() {
        let mut why = Vec::new();
        let hit = verified
            .iter()
            .any(|(artifact, bytes)| match matches(spec, artifact, bytes) {
                Ok(()) => true,
                Err(e) => {
                    why.push(format!(
                        "{}: {e}",
                        artifact.display_name.as_deref().unwrap_or(&artifact.id)
                    ));
                    false
                }
            });
        if hit {
            found += 1;
        } else if why.is_empty() {
            evaluation
                .notes
                .push(format!("expected file {i}: no verified artifact"));
        } else {
            evaluation
                .notes
                .push(format!("expected file {i}: {}", why.join("; ")));
        }
    }
    evaluation.add("artifacts", found as f64 / expected.len().max(1) as f64);
    evaluation
}
