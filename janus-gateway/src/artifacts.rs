//! Artifacts through the gateway: the capability each chat request carries, and the
//! download route that checks it and streams the competitor's file.
//!
//! A capability is a signed token (`signing`, purpose `artifact`) over the competitor id and
//! an expiry. The gateway mints one per chat request and tells the competitor its artifact
//! base, `<public URL>/v1/artifacts/<capability>/`; the competitor links served artifacts
//! as `<base><artifact-id>`. `GET /v1/artifacts/<capability>/<artifact-id>` needs no API
//! key — the capability is the credential — and is stateless: any replica holding the key
//! file verifies it and streams `/artifacts/<artifact-id>` from that competitor, frame by
//! frame, never holding the file. What the client gets is always an attachment with
//! `nosniff` and `Content-Security-Policy: sandbox`, whatever the competitor claimed, so a
//! hostile file cannot run script on the gateway's (the UI's) origin.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use janus_core::contract::{
    ARTIFACTS_ROUTE_PREFIX, COMPETITOR_ARTIFACTS_PREFIX, REQUEST_ID_HEADER,
};
use janus_core::{content_disposition, content_disposition_filename, is_artifact_id, ByteRange};
use janus_http::response::{empty, BoxError, ResponseBody};
use tokio::time::Sleep;

use crate::config::Config;
use crate::error::GatewayError;
use crate::signing::SigningKeys;
use crate::upstream::{error_chain, HttpClient};

/// The signing purpose of capabilities (a grant never verifies as one).
const PURPOSE: &str = "artifact";
/// Payload layout version, so the format can change without old tokens misparsing.
const PAYLOAD_VERSION: &str = "a1";
/// A competitor silent this long mid-download ends the download (time spent waiting for a
/// slow client does not count).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a verified capability grants: that competitor's artifacts, until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capability {
    pub(crate) competitor: String,
    /// Unix seconds.
    pub(crate) expires: u64,
}

/// A capability token for `competitor`, valid until `expires` (unix seconds).
pub(crate) fn mint(keys: &SigningKeys, competitor: &str, expires: u64) -> String {
    keys.sign(
        PURPOSE,
        format!("{PAYLOAD_VERSION}|{expires}|{competitor}").as_bytes(),
    )
}

/// The artifact base of one chat request: `<public base>/v1/artifacts/<capability>/`,
/// valid for `ttl` from `now` (unix seconds). `None` when the public URL cannot be a
/// header value (then the competitor falls back to its own links).
pub(crate) fn base_header(
    config: &Config,
    keys: &SigningKeys,
    competitor: &str,
    now: u64,
) -> Option<HeaderValue> {
    let expires = now.saturating_add(config.artifact_ttl.as_secs());
    let token = mint(keys, competitor, expires);
    let base = format!("{}{ARTIFACTS_ROUTE_PREFIX}{token}/", config.public_base());
    HeaderValue::from_str(&base).ok()
}

/// Each competitor's artifact base of the current second. Minting is an HMAC; a busy
/// gateway mints once per competitor per second instead of once per request, and every
/// request still gets an expiry of `now + ttl` to the second, as if minted for it.
#[derive(Debug, Default)]
pub(crate) struct BaseCache {
    /// Competitor id → (unix second, base minted then). Keys are configured competitors.
    latest: std::sync::Mutex<std::collections::HashMap<String, (u64, Option<HeaderValue>)>>,
}

impl BaseCache {
    /// [`base_header`] for `competitor` at `now`, minted at most once per second.
    pub(crate) fn get(
        &self,
        config: &Config,
        keys: &SigningKeys,
        competitor: &str,
        now: u64,
    ) -> Option<HeaderValue> {
        // A panic elsewhere cannot leave a (second, value) pair half written.
        let mut latest = self
            .latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match latest.get_mut(competitor) {
            Some((at, value)) if *at == now => value.clone(),
            Some(entry) => {
                *entry = (now, base_header(config, keys, competitor, now));
                entry.1.clone()
            }
            None => {
                let value = base_header(config, keys, competitor, now);
                latest.insert(competitor.to_owned(), (now, value.clone()));
                value
            }
        }
    }
}

/// Checks `token` at `now` (unix seconds): forged or altered → 403, expired → 404.
pub(crate) fn verify(
    keys: &SigningKeys,
    token: &str,
    now: u64,
) -> Result<Capability, GatewayError> {
    let payload = keys
        .verify(PURPOSE, token)
        .map_err(|_| GatewayError::CapabilityInvalid)?;
    let payload = std::str::from_utf8(&payload).map_err(|_| GatewayError::CapabilityInvalid)?;
    let mut fields = payload.splitn(3, '|');
    let (Some(PAYLOAD_VERSION), Some(expires), Some(competitor)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(GatewayError::CapabilityInvalid);
    };
    let expires: u64 = expires
        .parse()
        .map_err(|_| GatewayError::CapabilityInvalid)?;
    if expires <= now {
        return Err(GatewayError::ArtifactNotFound(
            "the artifact link has expired".to_owned(),
        ));
    }
    Ok(Capability {
        competitor: competitor.to_owned(),
        expires,
    })
}

fn unknown_artifact() -> GatewayError {
    GatewayError::ArtifactNotFound("no such artifact (unknown or expired)".to_owned())
}

/// `GET`/`HEAD /v1/artifacts/<capability>/<artifact-id>`; `rest` is the path after the
/// route prefix.
pub(crate) async fn download<B>(
    config: &Config,
    client: &HttpClient,
    keys: &SigningKeys,
    rest: &str,
    request: &Request<B>,
    request_id: &HeaderValue,
) -> Result<Response<ResponseBody>, GatewayError> {
    let method = request.method();
    let headers = request.headers();
    let trace = request.extensions().get::<janus_http::TraceContext>();
    let Some((token, id)) = rest.split_once('/') else {
        return Err(GatewayError::ArtifactNotFound(
            "artifacts are downloaded at /v1/artifacts/<capability>/<artifact-id>".to_owned(),
        ));
    };
    let capability = verify(keys, token, janus_core::unix_now())?;
    // Strict: `artf_` + hex only, so nothing like `..`, `%2f` or a second `/` reaches the
    // competitor.
    if !is_artifact_id(id) {
        return Err(unknown_artifact());
    }
    // A capability for a competitor this replica does not know is as good as unknown.
    let competitor = config
        .competitor(&capability.competitor)
        .ok_or_else(unknown_artifact)?;
    let unreachable = |reason: String| GatewayError::Unreachable {
        competitor: competitor.id.clone(),
        reason,
    };
    let url: http::Uri = format!("{}{COMPETITOR_ARTIFACTS_PREFIX}{id}", competitor.url)
        .parse()
        .map_err(|e| unreachable(format!("bad url: {e}")))?;
    let mut upstream = Request::builder()
        .method(if method == Method::HEAD {
            Method::HEAD
        } else {
            Method::GET
        })
        .uri(url)
        .header(REQUEST_ID_HEADER, request_id.clone());
    // The competitor's side of the download continues this request's trace.
    if let Some(trace) = trace {
        upstream = upstream.header(
            janus_core::contract::TRACEPARENT_HEADER,
            trace.traceparent.clone(),
        );
    }
    // Only one well-formed byte range is forwarded; anything else gets the whole file.
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(ByteRange::parse);
    if let Some(range) = range {
        upstream = upstream.header(header::RANGE, range.header_value());
    }
    let upstream = upstream
        .body(Full::new(Bytes::new()))
        .map_err(|e| unreachable(format!("cannot build request: {e}")))?;
    let wait = competitor.timeout.unwrap_or(config.request_timeout);
    let response = match tokio::time::timeout(wait, client.request(upstream)).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => return Err(unreachable(error_chain(&e))),
        Err(_) => {
            return Err(GatewayError::Timeout {
                competitor: competitor.id.clone(),
                seconds: wait.as_secs_f64(),
            })
        }
    };
    let invalid = |reason: &str| GatewayError::InvalidUpstream {
        competitor: competitor.id.clone(),
        reason: format!("artifact {id}: {reason}"),
    };
    let status = response.status();
    match status {
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
        StatusCode::NOT_FOUND => return Err(unknown_artifact()),
        StatusCode::RANGE_NOT_SATISFIABLE => {
            let size = header_str(response.headers(), header::CONTENT_RANGE)
                .and_then(|v| v.strip_prefix("bytes */"))
                .and_then(|v| v.trim().parse().ok());
            return Err(GatewayError::RangeNotSatisfiable { size });
        }
        other => {
            return Err(GatewayError::UpstreamStatus {
                competitor: competitor.id.clone(),
                status: other,
                message: format!("artifact {id}: {other}"),
                envelope: None,
            })
        }
    }
    let upstream_headers = response.headers();
    let length: u64 = header_str(upstream_headers, header::CONTENT_LENGTH)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| invalid("no Content-Length"))?;
    let content_range = if status == StatusCode::PARTIAL_CONTENT {
        let (first, last, size) = header_str(upstream_headers, header::CONTENT_RANGE)
            .and_then(janus_core::parse_content_range)
            .ok_or_else(|| invalid("206 without a valid Content-Range"))?;
        if last - first + 1 != length {
            return Err(invalid("Content-Range and Content-Length disagree"));
        }
        Some((first, last, size))
    } else {
        None
    };
    let size = header_str(upstream_headers, "x-artifact-size")
        .and_then(|v| v.parse::<u64>().ok())
        .or(content_range.map(|(_, _, size)| size))
        .unwrap_or(length);
    let content_type = upstream_headers
        .get(header::CONTENT_TYPE)
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let name = header_str(upstream_headers, header::CONTENT_DISPOSITION)
        .and_then(content_disposition_filename)
        .unwrap_or_else(|| id.to_owned());
    tracing::info!(
        competitor = %competitor.id,
        artifact_id = id,
        status = status.as_u16(),
        bytes = length,
        "artifact download"
    );

    let body = if method == Method::HEAD {
        empty()
    } else {
        janus_http::response::boxed(IdleTimeoutBody::new(response.into_body(), IDLE_TIMEOUT))
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    let h = out.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some((first, last, size)) = content_range {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {first}-{last}/{size}")) {
            h.insert(header::CONTENT_RANGE, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&content_disposition(&name)) {
        h.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Ok(value) = HeaderValue::from_str(id) {
        h.insert("x-artifact-id", value);
    }
    h.insert("x-artifact-size", HeaderValue::from(size));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    insert_security_headers(h);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    Ok(out)
}

/// The headers that keep a downloaded file from acting as a page of the gateway's origin:
/// no MIME sniffing into HTML, and a sandbox (no script, unique origin) if a browser renders
/// it anyway. The link itself is a credential, so it is never sent on as a referrer.
pub(crate) fn insert_security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The competitor's body, relayed frame by frame, ended with an error if the competitor
/// stays silent for `idle` while the client is waiting for data. The timer only runs
/// while a frame has been asked for and not yet delivered, so a slow client never trips it.
struct IdleTimeoutBody<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    /// A frame has been asked for and the timer armed for it.
    waiting: bool,
}

impl<B> IdleTimeoutBody<B> {
    fn new(inner: B, idle: Duration) -> Self {
        IdleTimeoutBody {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if !this.waiting {
            let deadline = tokio::time::Instant::now() + this.idle;
            this.timer.as_mut().reset(deadline);
            this.waiting = true;
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BoxError::from(format!(
                    "competitor sent no artifact bytes for {}s",
                    this.idle.as_secs()
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keys() -> SigningKeys {
        SigningKeys::from_lines("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk").unwrap()
    }

    #[test]
    fn capabilities_round_trip_and_expire() {
        let keys = keys();
        let token = mint(&keys, "echo", 1_000);
        assert_eq!(
            verify(&keys, &token, 999).unwrap(),
            Capability {
                competitor: "echo".into(),
                expires: 1_000
            }
        );
        assert!(matches!(
            verify(&keys, &token, 1_000),
            Err(GatewayError::ArtifactNotFound(_))
        ));
    }

    #[test]
    fn forged_altered_and_foreign_tokens_are_refused() {
        let keys = keys();
        let other = SigningKeys::from_lines("oooooooooooooooooooooooooooooooooooo").unwrap();
        let token = mint(&keys, "echo", u64::MAX);
        for bad in [
            mint(&other, "echo", u64::MAX),
            token.replacen('.', "x.", 1),
            keys.sign("grant", b"a1|99999999999|echo"),
            keys.sign(PURPOSE, b"a0|99999999999|echo"),
            keys.sign(PURPOSE, b"a1|soon|echo"),
            "nonsense".to_owned(),
            String::new(),
        ] {
            assert!(
                matches!(verify(&keys, &bad, 0), Err(GatewayError::CapabilityInvalid)),
                "{bad}"
            );
        }
    }

    /// A body that yields one frame, then nothing, ever.
    struct Stalls(bool);

    impl Body for Stalls {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_competitor_ends_the_download_but_a_slow_client_does_not() {
        use http_body_util::BodyExt as _;
        let mut body = IdleTimeoutBody::new(Stalls(false), Duration::from_secs(30));
        assert!(body.frame().await.unwrap().is_ok());
        // The client takes its time before asking again: that is not the competitor's
        // silence.
        tokio::time::sleep(Duration::from_secs(100)).await;
        let asked = tokio::time::Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert_eq!(asked.elapsed(), Duration::from_secs(30));
        assert!(error.to_string().contains("30s"), "{error}");
    }

    #[test]
    fn the_base_is_under_the_public_url() {
        let mut config = Config::with_competitors(Vec::new());
        config.public_url = Some("https://janus.example".into());
        let keys = keys();
        let base = base_header(&config, &keys, "echo", 100).unwrap();
        let base = base.to_str().unwrap();
        let token = base
            .strip_prefix("https://janus.example/v1/artifacts/")
            .and_then(|t| t.strip_suffix('/'))
            .unwrap();
        assert_eq!(verify(&keys, token, 100).unwrap().expires, 100 + 3600);
    }

    #[test]
    fn the_cached_base_is_minted_once_a_second_and_verifies_like_a_fresh_one() {
        let mut config = Config::with_competitors(Vec::new());
        config.public_url = Some("https://janus.example".into());
        let keys = keys();
        let cache = BaseCache::default();
        let first = cache.get(&config, &keys, "echo", 100).unwrap();
        assert_eq!(cache.get(&config, &keys, "echo", 100).unwrap(), first);
        assert_eq!(first, base_header(&config, &keys, "echo", 100).unwrap());
        let other = cache.get(&config, &keys, "other", 100).unwrap();
        assert_ne!(other, first, "each competitor has its own capability");
        let later = cache.get(&config, &keys, "echo", 101).unwrap();
        assert_ne!(later, first);
        let token = later
            .to_str()
            .unwrap()
            .strip_prefix("https://janus.example/v1/artifacts/")
            .and_then(|t| t.strip_suffix('/'))
            .unwrap();
        let capability = verify(&keys, token, 101).unwrap();
        assert_eq!(
            (capability.competitor.as_str(), capability.expires),
            ("echo", 101 + 3600)
        );
    }
}
