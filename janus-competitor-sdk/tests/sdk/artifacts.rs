//! Artifacts: inline `data:` URLs, files served over HTTP, and paths that must not resolve.

use janus_competitor_sdk::janus_core::{data_url_decode, ArtifactDescriptor, JanusEvent};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::*;

fn artifacts_of(streamed: &Streamed) -> Vec<ArtifactDescriptor> {
    streamed
        .chunks()
        .iter()
        .filter_map(|c| c.choices.first()?.delta.janus.as_ref())
        .filter(|j| j.event == JanusEvent::ARTIFACTS)
        .flat_map(JanusEvent::artifact_items)
        .collect()
}

#[tokio::test]
async fn small_artifact_is_a_data_url_that_verifies() {
    let script = Script::new(vec![Step::Artifact {
        size: 1000,
        name: "notes.txt",
        mime: "text/plain",
    }]);
    let server = TestServer::start(script, config()).await;
    let streamed = stream(&server, &body(true)).await;
    let items = artifacts_of(&streamed);
    assert_eq!(items.len(), 1);
    let artifact = &items[0];
    assert!(artifact.id.starts_with("artf_"));
    assert!(artifact.is_inline());
    assert_eq!(artifact.mime_type, "text/plain");
    assert_eq!(artifact.display_name.as_deref(), Some("notes.txt"));
    assert_eq!(artifact.size_bytes, 1000);
    let decoded = data_url_decode(&artifact.url).unwrap();
    assert_eq!(decoded.mime_type, "text/plain");
    artifact.verify(&decoded.bytes).unwrap();
    assert_eq!(decoded.bytes, pattern(1000));
    server.stop().await;
}

#[tokio::test]
async fn the_largest_inline_artifact_is_still_a_data_url() {
    let script = Script::new(vec![Step::Artifact {
        size: 1_000_000,
        name: "edge.bin",
        mime: "application/octet-stream",
    }]);
    let server = TestServer::start(script, config()).await;
    let reply = post(&server, &body(false)).await;
    let artifact: ArtifactDescriptor =
        serde_json::from_value(reply.json()["choices"][0]["message"]["artifacts"][0].clone())
            .unwrap();
    assert!(artifact.is_inline());
    artifact
        .verify(&data_url_decode(&artifact.url).unwrap().bytes)
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn large_artifact_is_served_over_http_and_verifies() {
    let size = 1_500_000;
    let script = Script::new(vec![Step::Artifact {
        size,
        name: "big \"report\".bin",
        mime: "application/x-test",
    }]);
    let config = config();
    let dir = config.artifact_dir.clone();
    let server = TestServer::start(script, config).await;
    let streamed = stream(&server, &body(true)).await;
    let items = artifacts_of(&streamed);
    assert_eq!(items.len(), 1);
    let artifact = &items[0];
    assert!(!artifact.is_inline());
    // Without a configured base, links use the Host the client reached us by.
    assert_eq!(
        artifact.url,
        format!("http://{}/artifacts/{}", server.addr, artifact.id)
    );
    assert_eq!(artifact.size_bytes, size as u64);

    let reply = get(&artifact.url).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/x-test");
    assert_eq!(reply.headers["content-length"], size.to_string().as_str());
    assert_eq!(reply.headers["x-artifact-id"], artifact.id.as_str());
    assert_eq!(
        reply.headers["content-disposition"],
        "attachment; filename=\"big _report_.bin\"; filename*=UTF-8''big%20%22report%22.bin"
    );
    assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    assert_eq!(reply.headers["content-security-policy"], "sandbox");
    assert_eq!(reply.headers["accept-ranges"], "bytes");
    artifact.verify(&reply.body).unwrap();
    assert_eq!(reply.body.len(), size);

    // HEAD gives the same headers and no body.
    let head = send(
        http::Request::head(&artifact.url)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], size.to_string().as_str());
    assert!(head.body.is_empty());

    // The file sits in the artifact directory under its id, and is removed at shutdown.
    assert!(dir.join(&artifact.id).is_file());
    server.stop().await;
    assert!(!dir.join(&artifact.id).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn public_base_url_is_used_for_links() {
    let script = Script::new(vec![Step::Artifact {
        size: 1_200_000,
        name: "a.bin",
        mime: "application/octet-stream",
    }]);
    let mut config = config();
    let dir = config.artifact_dir.clone();
    config.public_base_url = Some("http://competitor.internal:8080".into());
    let server = TestServer::start(script, config).await;
    let reply = post(&server, &body(false)).await;
    let url = reply.json()["choices"][0]["message"]["artifacts"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with("http://competitor.internal:8080/artifacts/artf_"),
        "{url}"
    );
    let path = url.trim_start_matches("http://competitor.internal:8080");
    assert_eq!(get(&server.url(path)).await.status, 200);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn artifact_base_header_puts_links_under_the_gateway() {
    let script = Script::new(vec![
        Step::Artifact {
            size: 1_100_000,
            name: "a.bin",
            mime: "application/octet-stream",
        },
        Step::Artifact {
            size: 10,
            name: "small.txt",
            mime: "text/plain",
        },
    ]);
    let mut config = config();
    let dir = config.artifact_dir.clone();
    // The gateway's base wins over the competitor's own configured base.
    config.public_base_url = Some("http://competitor.internal:8080".into());
    let server = TestServer::start(script, config).await;
    let base = "http://gateway.example:8000/v1/artifacts/cap.abc-_/";
    let mut request = chat_request(&server.url("/v1/chat/completions"), &body(false));
    request
        .headers_mut()
        .insert("x-janus-artifact-base", base.parse().unwrap());
    let reply = send(request).await;
    let artifacts = reply.json()["choices"][0]["message"]["artifacts"].clone();
    let large: ArtifactDescriptor = serde_json::from_value(artifacts[0].clone()).unwrap();
    assert_eq!(large.url, format!("{base}{}", large.id));
    // data: URLs are unchanged.
    let small: ArtifactDescriptor = serde_json::from_value(artifacts[1].clone()).unwrap();
    assert!(small.is_inline());
    // The file is still served at the competitor's own /artifacts/<id>.
    let direct = get(&server.url(&format!("/artifacts/{}", large.id))).await;
    assert_eq!(direct.status, 200);
    large.verify(&direct.body).unwrap();

    // A base that is not an http(s) prefix ending in '/' is ignored.
    for bad in [
        "javascript:alert(1)/",
        "http://gateway.example/v1/artifacts/cap",
        "http://gateway.example/a b/",
        "http://gateway.example/a)/",
    ] {
        let mut request = chat_request(&server.url("/v1/chat/completions"), &body(false));
        request
            .headers_mut()
            .insert("x-janus-artifact-base", bad.parse().unwrap());
        let url = send(request).await.json()["choices"][0]["message"]["artifacts"][0]["url"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            url.starts_with("http://competitor.internal:8080/artifacts/artf_"),
            "{bad}: {url}"
        );
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_single_byte_range_is_honoured() {
    let size = 1_300_000;
    let script = Script::new(vec![Step::Artifact {
        size,
        name: "r.bin",
        mime: "application/octet-stream",
    }]);
    let config = config();
    let dir = config.artifact_dir.clone();
    let server = TestServer::start(script, config).await;
    let reply = post(&server, &body(false)).await;
    let url = reply.json()["choices"][0]["message"]["artifacts"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let whole = pattern(size);
    let ranged = |range: &'static str| {
        let url = url.clone();
        async move {
            send(
                http::Request::get(&url)
                    .header("range", range)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap(),
            )
            .await
        }
    };
    let part = ranged("bytes=1000-1999").await;
    assert_eq!(part.status, 206);
    assert_eq!(part.headers["content-range"], "bytes 1000-1999/1300000");
    assert_eq!(part.headers["content-length"], "1000");
    assert_eq!(part.headers["x-artifact-size"], "1300000");
    assert_eq!(&part.body[..], &whole[1000..2000]);

    let tail = ranged("bytes=-10").await;
    assert_eq!(tail.status, 206);
    assert_eq!(&tail.body[..], &whole[size - 10..]);

    let open = ranged("bytes=1299990-").await;
    assert_eq!(open.status, 206);
    assert_eq!(
        open.headers["content-range"],
        "bytes 1299990-1299999/1300000"
    );
    assert_eq!(&open.body[..], &whole[size - 10..]);

    let past = ranged("bytes=1300000-").await;
    assert_eq!(past.status, 416);
    assert_eq!(past.headers["content-range"], "bytes */1300000");
    assert_eq!(past.json()["error"]["code"], "range_not_satisfiable");

    // Several ranges: the whole file (allowed by RFC 9110), never a multipart body.
    let multi = ranged("bytes=0-1,5-6").await;
    assert_eq!(multi.status, 200);
    assert_eq!(multi.body.len(), size);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends a request line exactly as given (no client-side path normalisation).
async fn raw_get(server: &TestServer, target: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn paths_outside_the_store_never_resolve() {
    let config = config();
    let dir = config.artifact_dir.clone();
    std::fs::create_dir_all(&dir).unwrap();
    // A file that exists in the directory but was not published by the server.
    std::fs::write(dir.join("artf_00"), b"planted").unwrap();
    let server = TestServer::start(Script::new(vec![]), config).await;
    for target in [
        "/artifacts/../Cargo.toml",
        "/artifacts/..%2f..%2fetc%2fpasswd",
        "/artifacts/%2e%2e/%2e%2e/etc/passwd",
        "/artifacts/artf_00",
        "/artifacts/artf_00/../artf_00",
        "/artifacts/",
        "/artifacts//etc/passwd",
        "/artifacts/artf_0123456789abcdef0123456789abcdef",
    ] {
        let response = raw_get(&server, target).await;
        let status = response.lines().next().unwrap_or_default().to_owned();
        assert!(
            status.starts_with("HTTP/1.1 404") || status.starts_with("HTTP/1.1 400"),
            "{target}: {status}"
        );
        assert!(!response.contains("planted"), "{target}");
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
