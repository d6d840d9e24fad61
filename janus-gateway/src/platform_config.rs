//! Platform service settings: the `[[platform]]` TOML entries, `--platform NAME=URL`, the
//! built-in defaults of each kind, the allowlist patterns, budgets and prices.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Method};
use serde::Deserialize;

/// What a platform service is; decides its default allowlist and how it is metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformKind {
    /// An OpenAI-compatible API: calls and tokens (from the upstream's `usage`) are metered.
    Inference,
    /// A plain HTTP search API: calls are metered.
    Search,
    /// The Sandy API: sandboxes, their owner and their seconds are metered.
    Sandbox,
}

impl PlatformKind {
    /// The kind a service name implies (`inference`, `search`, `sandbox`).
    pub fn from_name(name: &str) -> Option<PlatformKind> {
        match name {
            "inference" => Some(PlatformKind::Inference),
            "search" => Some(PlatformKind::Search),
            "sandbox" => Some(PlatformKind::Sandbox),
            _ => None,
        }
    }

    /// The default request body cap of the kind.
    pub fn default_max_request_bytes(self) -> usize {
        match self {
            PlatformKind::Sandbox => DEFAULT_SANDBOX_REQUEST_BYTES,
            PlatformKind::Inference | PlatformKind::Search => DEFAULT_PLATFORM_REQUEST_BYTES,
        }
    }

    /// The documented default allowlist of the kind.
    pub fn default_allow(self) -> &'static [&'static str] {
        match self {
            PlatformKind::Inference => &[
                "POST /v1/chat/completions",
                "GET /v1/models",
                "POST /v1/embeddings",
            ],
            // A search API has no standard shape: any GET or POST below the base.
            PlatformKind::Search => &["GET /**", "POST /**"],
            PlatformKind::Sandbox => &[
                "POST /api/sandboxes",
                "GET /api/sandboxes/*",
                "POST /api/sandboxes/*/exec",
                "POST /api/sandboxes/*/files/write",
                "GET /api/sandboxes/*/files/read",
                "GET /api/sandboxes/*/files/list",
                "POST /api/sandboxes/*/terminate",
                "POST /api/sandboxes/*/refresh",
                "POST /api/sandboxes/*/agent/run",
                "POST /api/sandboxes/*/agent/cancel",
                "ANY /api/sandboxes/*/proxy/**",
            ],
        }
    }
}

/// One allowlist entry: `METHOD /path`, where a path segment `*` matches one segment, a
/// final `**` matches the rest (one segment or more), and `ANY` matches every method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    method: Option<Method>,
    segments: Vec<String>,
}

impl AllowRule {
    /// Parses `METHOD /path`.
    pub fn parse(text: &str) -> Result<AllowRule, String> {
        let (method, path) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("'{text}' is not 'METHOD /path'"))?;
        let method = match method.trim() {
            "ANY" | "*" => None,
            m => Some(
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| format!("'{m}' in '{text}' is not an HTTP method"))?,
            ),
        };
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(format!("the path of '{text}' must start with '/'"));
        }
        let segments: Vec<String> = path[1..].split('/').map(str::to_owned).collect();
        if segments
            .iter()
            .enumerate()
            .any(|(i, s)| s == "**" && i + 1 != segments.len())
        {
            return Err(format!("'**' may only end the path of '{text}'"));
        }
        Ok(AllowRule { method, segments })
    }

    /// True when `method path` (a normalized upstream path) is allowed by this rule.
    pub fn allows(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let path = path.strip_prefix('/').unwrap_or(path);
        let mut parts = path.split('/');
        for (i, pattern) in self.segments.iter().enumerate() {
            if pattern == "**" {
                let rest: Vec<&str> = parts.collect();
                return i + 1 == self.segments.len() && rest.iter().any(|s| !s.is_empty());
            }
            match parts.next() {
                Some(part) if pattern == "*" && !part.is_empty() => {}
                Some(part) if part == pattern => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }
}

/// A secret the gateway injects, read from the environment or a file at startup. `Debug`
/// never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from its value (for embedding; configuration reads env vars or files).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the injected header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Prices of a service, in US dollars, for `usage.platform.cost_usd`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per call.
    #[serde(default)]
    pub per_call: f64,
    /// Per million prompt tokens (inference).
    #[serde(default)]
    pub prompt_per_million: f64,
    /// Per million completion tokens (inference).
    #[serde(default)]
    pub completion_per_million: f64,
    /// Per sandbox-second (sandbox).
    #[serde(default)]
    pub per_sandbox_second: f64,
}

/// One configured platform service.
#[derive(Debug, Clone)]
pub struct PlatformService {
    /// Name in `/platform/{name}/…`.
    pub name: String,
    /// Kind.
    pub kind: PlatformKind,
    /// Upstream base URL (`http://`, no trailing slash).
    pub url: String,
    /// Secret injected into each upstream call; `None`: nothing injected.
    pub secret: Option<Secret>,
    /// Header that carries the secret.
    pub header: HeaderName,
    /// Scheme before the secret (`Bearer`); empty: the bare secret.
    pub scheme: String,
    /// Allowed `METHOD /path` patterns, matched against the upstream path.
    pub allow: Vec<AllowRule>,
    /// Total time of one call (response head and body).
    pub timeout: Duration,
    /// Largest request body forwarded.
    pub max_request_bytes: usize,
    /// Largest response body relayed.
    pub max_response_bytes: usize,
    /// Prices.
    pub price: Price,
}

/// Default per-call timeout (the Sandy HTTP timeout of the reference, contract §6).
pub const DEFAULT_PLATFORM_TIMEOUT: Duration = Duration::from_secs(660);
/// Default request body cap of a platform call.
pub const DEFAULT_PLATFORM_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// Default request body cap of a sandbox service call: the sandbox service's own cap, as
/// files (a dataset, an agent binary) are uploaded base64-encoded in `files/write`.
pub const DEFAULT_SANDBOX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Default response body cap of a platform call.
pub const DEFAULT_PLATFORM_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

impl PlatformService {
    /// A service with the defaults of its kind and no secret.
    pub fn new(name: &str, kind: PlatformKind, url: &str) -> Result<PlatformService, String> {
        check_name(name)?;
        Ok(PlatformService {
            name: name.to_owned(),
            kind,
            url: check_upstream(url)?,
            secret: None,
            header: http::header::AUTHORIZATION,
            scheme: "Bearer".to_owned(),
            allow: kind
                .default_allow()
                .iter()
                .map(|rule| AllowRule::parse(rule))
                .collect::<Result<_, _>>()?,
            timeout: DEFAULT_PLATFORM_TIMEOUT,
            max_request_bytes: kind.default_max_request_bytes(),
            max_response_bytes: DEFAULT_PLATFORM_RESPONSE_BYTES,
            price: Price::default(),
        })
    }

    /// With this secret.
    pub fn with_secret(mut self, secret: Secret) -> PlatformService {
        self.secret = Some(secret);
        self
    }
}

/// Per-request platform budget of a competitor (`[[competitor]]` `budget_*` keys).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Platform calls.
    pub calls: u64,
    /// Inference tokens, prompt and completion.
    pub inference_tokens: u64,
    /// Sandboxes created.
    pub sandboxes: u64,
    /// Sandbox-seconds.
    pub sandbox_seconds: f64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            calls: 100,
            inference_tokens: 200_000,
            sandboxes: 4,
            sandbox_seconds: 600.0,
        }
    }
}

/// A `[[platform]]` entry of the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePlatform {
    name: String,
    kind: Option<PlatformKind>,
    url: Option<String>,
    /// Refused: a secret never sits in the config text.
    secret: Option<toml::Value>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    header: Option<String>,
    scheme: Option<String>,
    allow: Option<Vec<String>>,
    timeout: Option<String>,
    max_request_bytes: Option<u64>,
    max_response_bytes: Option<u64>,
    price: Option<Price>,
}

type Refusal = (&'static str, String);

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(format!(
            "platform name '{name}' must be non-empty and use only letters, digits, '-', '_'"
        ));
    }
    Ok(())
}

fn check_upstream(url: &str) -> Result<String, String> {
    let uri: http::Uri = url
        .trim()
        .parse()
        .map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "'{url}' must be an absolute http:// URL (TLS to an upstream goes through an egress proxy)"
        ));
    }
    if uri.query().is_some() || uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!("'{url}' must have no query and no user info"));
    }
    Ok(url.trim().trim_end_matches('/').to_owned())
}

/// Merges `--platform NAME=URL` (URL wins) with the file's `[[platform]]` entries.
pub(crate) fn resolve_platforms(
    flags: &[String],
    file: &[FilePlatform],
) -> Result<Vec<PlatformService>, Refusal> {
    let mut urls: Vec<(String, String)> = Vec::new();
    for spec in flags.iter().filter(|s| !s.trim().is_empty()) {
        let (name, url) = spec
            .split_once('=')
            .ok_or_else(|| ("--platform", format!("'{spec}' is not NAME=URL")))?;
        urls.push((name.trim().to_owned(), url.trim().to_owned()));
    }
    for entry in file {
        if !urls.iter().any(|(name, _)| *name == entry.name) {
            let url = entry.url.clone().ok_or_else(|| {
                (
                    "platform.url",
                    format!("platform '{}' has no url", entry.name),
                )
            })?;
            urls.push((entry.name.clone(), url));
        }
    }
    let mut services: Vec<PlatformService> = Vec::new();
    for (name, url) in urls {
        let entry = file.iter().find(|e| e.name == name);
        let kind = entry
            .and_then(|e| e.kind)
            .or_else(|| PlatformKind::from_name(&name))
            .ok_or_else(|| {
                (
                    "platform.kind",
                    format!(
                        "platform '{name}' needs kind = \"inference\", \"search\" or \"sandbox\""
                    ),
                )
            })?;
        let mut service =
            PlatformService::new(&name, kind, &url).map_err(|reason| ("--platform", reason))?;
        if services.iter().any(|s| s.name == name) {
            return Err(("--platform", format!("platform '{name}' is listed twice")));
        }
        if let Some(entry) = entry {
            apply_file(&mut service, entry)?;
        }
        services.push(service);
    }
    Ok(services)
}

fn apply_file(service: &mut PlatformService, entry: &FilePlatform) -> Result<(), Refusal> {
    let name = &service.name;
    if entry.secret.is_some() {
        return Err((
            "platform.secret",
            format!(
                "platform '{name}': secrets are never read from the config text; use secret_env = \"VAR\" or secret_file = \"PATH\""
            ),
        ));
    }
    service.secret = match (&entry.secret_env, &entry.secret_file) {
        (Some(_), Some(_)) => {
            return Err((
                "platform.secret_env",
                format!("platform '{name}': set secret_env or secret_file, not both"),
            ))
        }
        (Some(var), None) => match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => Some(Secret(value.trim().to_owned())),
            _ => {
                return Err((
                    "platform.secret_env",
                    format!("platform '{name}': environment variable {var} is unset or empty"),
                ))
            }
        },
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(value) if !value.trim().is_empty() => Some(Secret(value.trim().to_owned())),
            Ok(_) => {
                return Err((
                    "platform.secret_file",
                    format!("platform '{name}': {} is empty", path.display()),
                ))
            }
            Err(e) => {
                return Err((
                    "platform.secret_file",
                    format!("platform '{name}': cannot read {}: {e}", path.display()),
                ))
            }
        },
        (None, None) => None,
    };
    if let Some(header) = &entry.header {
        service.header = HeaderName::from_bytes(header.trim().as_bytes()).map_err(|_| {
            (
                "platform.header",
                format!("platform '{name}': '{header}' is not a header name"),
            )
        })?;
    }
    if let Some(scheme) = &entry.scheme {
        service.scheme = scheme.trim().to_owned();
    }
    if let Some(allow) = &entry.allow {
        service.allow = allow
            .iter()
            .map(|rule| AllowRule::parse(rule))
            .collect::<Result<_, _>>()
            .map_err(|reason| ("platform.allow", format!("platform '{name}': {reason}")))?;
    }
    if let Some(timeout) = &entry.timeout {
        service.timeout = janus_http::parse_duration(timeout, "platform.timeout").map_err(|e| {
            (
                "platform.timeout",
                format!("platform '{name}': {}", e.reason),
            )
        })?;
    }
    let caps = [
        (
            "platform.max_request_bytes",
            entry.max_request_bytes,
            &mut service.max_request_bytes,
        ),
        (
            "platform.max_response_bytes",
            entry.max_response_bytes,
            &mut service.max_response_bytes,
        ),
    ];
    for (setting, value, slot) in caps {
        if let Some(bytes) = value {
            if bytes == 0 {
                return Err((setting, format!("platform '{name}': must be at least 1")));
            }
            *slot = usize::try_from(bytes)
                .map_err(|_| (setting, format!("platform '{name}': too large")))?;
        }
    }
    if let Some(price) = entry.price {
        let all = [
            price.per_call,
            price.prompt_per_million,
            price.completion_per_million,
            price.per_sandbox_second,
        ];
        if all.iter().any(|p| !(p.is_finite() && *p >= 0.0)) {
            return Err((
                "platform.price",
                format!("platform '{name}': prices must be non-negative numbers"),
            ));
        }
        service.price = price;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn allow_rules_match_segments() {
        let rule = AllowRule::parse("POST /api/sandboxes/*/exec").unwrap();
        assert!(rule.allows(&Method::POST, "/api/sandboxes/sbx1/exec"));
        assert!(!rule.allows(&Method::GET, "/api/sandboxes/sbx1/exec"));
        assert!(!rule.allows(&Method::POST, "/api/sandboxes//exec"));
        assert!(!rule.allows(&Method::POST, "/api/sandboxes/a/b/exec"));
        assert!(!rule.allows(&Method::POST, "/api/sandboxes/sbx1/exec/more"));
        let rest = AllowRule::parse("ANY /api/sandboxes/*/proxy/**").unwrap();
        assert!(rest.allows(&Method::PUT, "/api/sandboxes/s/proxy/8080/x/y"));
        assert!(!rest.allows(&Method::PUT, "/api/sandboxes/s/proxy"));
        let exact = AllowRule::parse("POST /v1/chat/completions").unwrap();
        assert!(exact.allows(&Method::POST, "/v1/chat/completions"));
        assert!(!exact.allows(&Method::POST, "/v1/chat/completions/x"));
        assert!(AllowRule::parse("POST /a/**/b").is_err());
        assert!(AllowRule::parse("POST a").is_err());
        for kind in [
            PlatformKind::Inference,
            PlatformKind::Search,
            PlatformKind::Sandbox,
        ] {
            assert!(PlatformService::new("x", kind, "http://127.0.0.1:1").is_ok());
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("sk-live")), "Secret(..)");
    }
}
