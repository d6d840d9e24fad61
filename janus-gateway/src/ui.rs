//! The chat UI: one HTML page and its scripts and styles, embedded in the binary so
//! `janus up` serves a working chat page with nothing else to install, online or not.
//!
//! Assets are served under content-hashed names (`assets/app.<hash>.js`) with a year-long
//! immutable cache; the page itself is `no-cache` (revalidated by `ETag`) so a new binary
//! is picked up at once. The hashes are computed once at startup rather than in a build
//! script: the files are a few tens of kilobytes (well under a millisecond of SHA-256),
//! there is no `rerun-if-changed` bookkeeping to get wrong, and the hash is of exactly the
//! bytes served.
//!
//! The Content-Security-Policy allows scripts, styles and fetches from this origin only —
//! no inline script, no CDN — so even if model output slipped past the page's sanitizing
//! Markdown renderer, an injected `<script>` or `onerror=` handler would not run.

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use janus_http::response::{empty, full, method_not_allowed, not_found};
use sha2::{Digest, Sha256};

use crate::server::ResponseBody;

/// The policy on the page and every asset. `img-src data: blob:` is for artifact and
/// upload previews (both are built from `data:` URLs the page already holds);
/// `connect-src 'self'` keeps the page talking to this gateway only.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// Cache policy of hashed assets: their name changes whenever their bytes do.
pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Where the hashed assets live, relative to the page (relative so the UI also works
/// behind a proxy that mounts the gateway under a path prefix).
const ASSET_DIR: &str = "assets/";

/// The source files: (name in `index.html`, content type, bytes).
const SOURCES: [(&str, &str, &[u8]); 3] = [
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/style.css"),
    ),
    (
        "markdown.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/markdown.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/app.js"),
    ),
];

const INDEX_TEMPLATE: &str = include_str!("../ui/index.html");

#[derive(Debug)]
struct Asset {
    /// `/assets/<stem>.<hash>.<ext>`.
    path: String,
    content_type: &'static str,
    body: &'static [u8],
}

/// The embedded UI, with hashed names resolved.
#[derive(Debug)]
pub(crate) struct Ui {
    index: String,
    index_etag: HeaderValue,
    assets: Vec<Asset>,
}

fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

impl Ui {
    /// Hashes the assets and writes their hashed names into the page.
    pub(crate) fn new() -> Ui {
        let mut index = INDEX_TEMPLATE.to_owned();
        let mut assets = Vec::with_capacity(SOURCES.len());
        for (name, content_type, body) in SOURCES {
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            let hashed = format!("{stem}.{}.{ext}", short_hash(body));
            // index.html names each asset as `{{name}}`.
            index = index.replace(&format!("{{{{{name}}}}}"), &format!("{ASSET_DIR}{hashed}"));
            assets.push(Asset {
                path: format!("/{ASSET_DIR}{hashed}"),
                content_type,
                body,
            });
        }
        let index_etag = HeaderValue::from_str(&format!("\"{}\"", short_hash(index.as_bytes())))
            .unwrap_or_else(|_| HeaderValue::from_static("\"ui\""));
        Ui {
            index,
            index_etag,
            assets,
        }
    }

    /// The response for `path` when it belongs to the UI (`/` or `/assets/…`), else `None`.
    pub(crate) fn respond(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<Response<ResponseBody>> {
        let is_index = path == "/" || path == "/index.html";
        if !is_index && !path.starts_with("/assets/") {
            return None;
        }
        if method != Method::GET && method != Method::HEAD {
            return Some(method_not_allowed(method, "GET, HEAD"));
        }
        if is_index {
            return Some(self.index(headers));
        }
        let Some(asset) = self.assets.iter().find(|a| a.path == path) else {
            return Some(not_found(format!("no UI asset at {path}"), "not_found"));
        };
        let mut response = Response::new(full(asset.body));
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
        secure(h);
        Some(response)
    }

    fn index(&self, headers: &HeaderMap) -> Response<ResponseBody> {
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == self.index_etag.as_bytes());
        let mut response = if fresh {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            Response::new(full(self.index.clone()))
        };
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::ETAG, self.index_etag.clone());
        secure(h);
        response
    }
}

/// Headers every UI response carries.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn every_asset_is_named_in_the_page_by_its_hash() {
        let ui = Ui::new();
        assert!(!ui.index.contains("{{"), "unresolved placeholder");
        for asset in &ui.assets {
            assert!(
                ui.index.contains(&format!("\"{}\"", &asset.path[1..])),
                "{} not referenced",
                asset.path
            );
        }
    }

    #[test]
    fn the_page_has_no_inline_script() {
        let ui = Ui::new();
        for piece in ui.index.split("<script").skip(1) {
            let tag_end = piece.find('>').unwrap();
            assert!(piece[..tag_end].contains("src="), "inline script: {piece}");
            assert!(piece[tag_end + 1..].starts_with("</script>"));
        }
        // No `onclick=`-style handler attributes either.
        let lower = ui.index.to_ascii_lowercase();
        for (at, _) in lower.match_indices(" on") {
            let rest = &lower[at + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            assert!(
                !(name_len > 0 && rest[name_len..].starts_with('=')),
                "handler attribute at {at}"
            );
        }
    }
}
