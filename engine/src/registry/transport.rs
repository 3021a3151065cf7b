//! Where requests go and how: endpoints (mirrors, then the registry), the scheme and
//! TLS settings of each host, HTTP clients, retries and the mapping of HTTP failures to
//! [`EngineError`]s.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Certificate, Client, Method, Response, StatusCode, Url};
use serde::Deserialize;

use super::config::RegistryConfig;
use super::reference::{validate_registry, Reference};
use crate::ids::Digest;
use crate::{EngineError, Result};

/// Where a request may be sent: a mirror or the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host[:port]`: the key for CA certificates, credentials and tokens.
    pub host: String,
    /// The scheme and path prefix, when the endpoint was configured as a URL.
    pub base: Option<Url>,
    /// Whether this is a mirror (whose failures fall through to the next endpoint).
    pub mirror: bool,
    /// The registry the request is for (sent to mirrors as `?ns=`).
    pub origin: String,
}

impl Endpoint {
    pub(crate) fn origin(registry: &str) -> Endpoint {
        Endpoint {
            host: registry.to_string(),
            base: None,
            mirror: false,
            origin: registry.to_string(),
        }
    }

    /// A mirror endpoint from configuration: `host[:port]` or `http(s)://host[:port][/prefix]`.
    pub(crate) fn mirror(spec: &str, origin: &str) -> Result<Endpoint> {
        let bad = |why: String| {
            EngineError::InvalidArgument(format!("mirror {spec:?} of registry {origin}: {why}"))
        };
        if spec.contains("://") {
            let url = Url::parse(spec).map_err(|e| bad(e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad("the scheme must be http or https".into()));
            }
            if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
                return Err(bad("only scheme, host, port and path are allowed".into()));
            }
            let host = url_host(&url).ok_or_else(|| bad("it has no host".into()))?;
            Ok(Endpoint {
                host,
                base: Some(url),
                mirror: true,
                origin: origin.to_string(),
            })
        } else {
            validate_registry(spec).map_err(bad)?;
            Ok(Endpoint {
                host: spec.to_string(),
                base: None,
                mirror: true,
                origin: origin.to_string(),
            })
        }
    }

    /// The URL of `/v2/<path>` at this endpoint, with `scheme` unless the endpoint
    /// fixes its own.
    pub(crate) fn url(&self, scheme: &str, path: &str) -> Result<Url> {
        let base = match &self.base {
            Some(b) => b.as_str().trim_end_matches('/').to_string(),
            None => format!("{scheme}://{}", self.host),
        };
        let mut url = Url::parse(&format!("{base}/v2/{path}")).map_err(|e| {
            EngineError::InvalidArgument(format!(
                "cannot form a URL for registry {} from {path:?}: {e}",
                self.host
            ))
        })?;
        if self.mirror {
            url.query_pairs_mut().append_pair("ns", &self.origin);
        }
        Ok(url)
    }
}

/// `host[:port]` of a URL, as certs.d and credentials name it (default ports omitted).
pub(crate) fn url_host(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// How a host is reached: the candidate (scheme, client) pairs in the order they are
/// tried, and which one answered last (tried first from then on).
#[derive(Debug)]
pub(crate) struct HostTransport {
    pub candidates: Vec<(&'static str, Client)>,
    chosen: Mutex<Option<usize>>,
}

impl HostTransport {
    /// The candidates in the order to try them now.
    pub(crate) fn order(&self) -> Vec<usize> {
        let chosen = *self
            .chosen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match chosen {
            Some(c) => vec![c],
            None => (0..self.candidates.len()).collect(),
        }
    }

    pub(crate) fn choose(&self, i: usize) {
        *self
            .chosen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(i);
    }

    /// The candidate in use (the chosen one, else the first).
    pub(crate) fn current(&self) -> (&'static str, Client) {
        let i = self.order()[0];
        self.candidates[i].clone()
    }
}

/// Builds and caches the HTTP clients, one [`HostTransport`] per endpoint.
#[derive(Debug)]
pub(crate) struct Transports {
    config: RegistryConfig,
    hosts: Mutex<HashMap<String, Arc<HostTransport>>>,
    shared: Mutex<HashMap<bool, Client>>,
}

impl Transports {
    pub(crate) fn new(config: RegistryConfig) -> Self {
        Transports {
            config,
            hosts: Mutex::new(HashMap::new()),
            shared: Mutex::new(HashMap::new()),
        }
    }

    /// The transport of an endpoint. The scheme is:
    /// - the endpoint's own, when configured as a URL;
    /// - `https`, verified with the system roots and `certs.d/<host>/*.crt`, when that
    ///   directory has certificates (even for an insecure registry: the CA says it
    ///   speaks TLS);
    /// - for an insecure registry: `https` without verification, then plain `http`
    ///   (docker's order); the one that answers is remembered;
    /// - else verified `https`.
    pub(crate) fn for_endpoint(&self, ep: &Endpoint) -> Result<Arc<HostTransport>> {
        let key = match &ep.base {
            Some(b) => b.as_str().to_string(),
            None => ep.host.clone(),
        };
        if let Some(t) = lock(&self.hosts).get(&key) {
            return Ok(t.clone());
        }
        let insecure = self.config.is_insecure(&ep.host);
        let certs = self.host_certs(&ep.host)?;
        let candidates = match ep.base.as_ref().map(Url::scheme) {
            Some("http") => vec![("http", self.shared(false)?)],
            Some(_) if certs.is_empty() && insecure => vec![("https", self.shared(true)?)],
            Some(_) => vec![("https", self.verified(&ep.host, certs)?)],
            None if !certs.is_empty() || !insecure => {
                vec![("https", self.verified(&ep.host, certs)?)]
            }
            None => vec![("https", self.shared(true)?), ("http", self.shared(false)?)],
        };
        let t = Arc::new(HostTransport {
            candidates,
            chosen: Mutex::new(None),
        });
        Ok(lock(&self.hosts).entry(key).or_insert(t).clone())
    }

    /// A client for a URL given by a registry (a token realm): verified with that
    /// host's CA certificates, or unverified for an insecure host.
    pub(crate) fn for_url(&self, url: &Url) -> Result<Client> {
        let host = url_host(url).unwrap_or_default();
        if url.scheme() == "http" {
            return self.shared(false);
        }
        let certs = self.host_certs(&host)?;
        if certs.is_empty() && self.config.is_insecure(&host) {
            return self.shared(true);
        }
        self.verified(&host, certs)
    }

    fn builder(&self) -> reqwest::ClientBuilder {
        Client::builder()
            .user_agent(self.config.user_agent.clone())
            .connect_timeout(self.config.connect_timeout)
            .read_timeout(self.config.read_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // Follows up to 10 redirects; reqwest drops Authorization (and cookies)
            // when a redirect leaves the host, so blob storage behind a redirect never
            // sees the registry's credentials.
            .redirect(reqwest::redirect::Policy::limited(10))
    }

    /// The client without extra CAs: verified (`false`) or not verifying (`true`).
    fn shared(&self, skip_verify: bool) -> Result<Client> {
        if let Some(c) = lock(&self.shared).get(&skip_verify) {
            return Ok(c.clone());
        }
        let c = self
            .builder()
            .danger_accept_invalid_certs(skip_verify)
            .build()
            .map_err(|e| {
                EngineError::Internal(format!("cannot build the HTTP client: {}", chain(&e)))
            })?;
        Ok(lock(&self.shared).entry(skip_verify).or_insert(c).clone())
    }

    fn verified(&self, host: &str, certs: Vec<Certificate>) -> Result<Client> {
        if certs.is_empty() {
            return self.shared(false);
        }
        let mut b = self.builder();
        for c in certs {
            b = b.add_root_certificate(c);
        }
        b.build().map_err(|e| {
            EngineError::Internal(format!(
                "cannot build the HTTP client for registry {host}: {}",
                chain(&e)
            ))
        })
    }

    /// The CA certificates of `certs_dir/<host>/*.crt`, sorted by file name.
    fn host_certs(&self, host: &str) -> Result<Vec<Certificate>> {
        let Some(root) = &self.config.certs_dir else {
            return Ok(Vec::new());
        };
        if host.contains('/') || host.starts_with('.') {
            return Ok(Vec::new());
        }
        let dir = root.join(host);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(EngineError::Internal(format!(
                    "cannot read CA directory {}: {e}",
                    dir.display()
                )))
            }
        };
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            out.extend(read_pem(&f, host)?);
        }
        Ok(out)
    }
}

fn read_pem(path: &Path, host: &str) -> Result<Vec<Certificate>> {
    let pem = std::fs::read(path).map_err(|e| {
        EngineError::Internal(format!(
            "cannot read CA certificate {} for registry {host}: {e}",
            path.display()
        ))
    })?;
    let certs = Certificate::from_pem_bundle(&pem).map_err(|e| {
        EngineError::InvalidArgument(format!(
            "CA certificate {} for registry {host} is not valid PEM: {}",
            path.display(),
            chain(&e)
        ))
    })?;
    if certs.is_empty() {
        return Err(EngineError::InvalidArgument(format!(
            "CA certificate file {} for registry {host} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Locks, ignoring poisoning (every update is a single insert).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An error and its causes, `outer: inner: innermost`, repeated messages once.
pub(crate) fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        // hyper-util's "client error (Connect)" only says which stage failed; its
        // cause says what.
        let noise = s.starts_with("client error (") && err.source().is_some();
        if !noise && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The `EngineError` a failed request becomes. An error of ours inside (an upload
/// stream that failed) is returned as it was.
pub(crate) fn transport_error(host: &str, e: &reqwest::Error) -> EngineError {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(ours) = err.downcast_ref::<EngineError>() {
            return ours.clone();
        }
        cur = err.source();
    }
    // The request's own line (`error sending request for url (…)`) says little more
    // than the causes; keep the causes.
    let causes = match e.source() {
        Some(s) => chain(s),
        None => e.to_string(),
    };
    if e.is_timeout() {
        return EngineError::Unavailable(format!("registry {host} timed out: {causes}"));
    }
    if is_dns_failure(&causes) {
        // A name that does not resolve is the caller's mistake far more often than an
        // outage: a 4xx that names the host.
        return EngineError::InvalidArgument(format!(
            "registry host {host} does not resolve: {causes}"
        ));
    }
    EngineError::Unavailable(format!("cannot reach registry {host}: {causes}"))
}

/// Whether a connection error's causes say the host name did not resolve.
fn is_dns_failure(causes: &str) -> bool {
    let c = causes.to_ascii_lowercase();
    c.contains("dns error")
        || c.contains("failed to lookup address")
        || c.contains("name or service not known")
        || c.contains("no address associated")
}

/// Whether a failed request may be sent again.
pub(crate) fn transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request()
}

/// Whether a status may go away on a retry.
pub(crate) fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// The delay before retry number `attempt` (0-based): `backoff * 2^attempt` capped at
/// 10 s, or the response's `Retry-After` seconds when given and at most 30.
pub(crate) fn retry_delay(
    backoff: Duration,
    attempt: u32,
    headers: Option<&HeaderMap>,
) -> Duration {
    let after = headers
        .and_then(|h| h.get(RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s <= 30);
    if let Some(s) = after {
        return Duration::from_secs(s);
    }
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    backoff.saturating_mul(factor).min(Duration::from_secs(10))
}

/// What a request was about, for error messages and `NotFound` kinds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// A manifest or index.
    Manifest(&'a Reference),
    /// A blob of the reference's repository.
    Blob(&'a Reference, &'a Digest),
    /// The repository (uploads, mounts).
    Repository(&'a Reference),
}

impl Subject<'_> {
    fn repository(&self) -> String {
        match self {
            Subject::Manifest(r) | Subject::Blob(r, _) | Subject::Repository(r) => {
                r.repository().to_string()
            }
        }
    }
}

/// The error for a response that is not a success: 404 → `NotFound` (image, blob or
/// repository), 401/403 → `Unauthenticated`, 405 → `FailedPrecondition`, 429 and 5xx →
/// `Unavailable`, other 4xx → `InvalidArgument`; the registry's error codes and
/// messages are quoted.
pub(crate) async fn status_error(resp: Response, host: &str, subject: Subject<'_>) -> EngineError {
    let status = resp.status();
    let path = resp.url().path().to_string();
    let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
    let msg = registry_message(&body);
    let detail = if msg.is_empty() {
        String::new()
    } else {
        format!(": {msg}")
    };
    let repo = subject.repository();
    match status.as_u16() {
        404 => match subject {
            Subject::Manifest(r) => EngineError::NotFound {
                kind: "image",
                id: r.to_string(),
            },
            Subject::Blob(r, d) => EngineError::NotFound {
                kind: "blob",
                id: format!("{}@{d}", r.name()),
            },
            Subject::Repository(r) => EngineError::NotFound {
                kind: "repository",
                id: r.name(),
            },
        },
        401 => EngineError::Unauthenticated(format!(
            "registry {host} requires authentication for {repo}{detail}"
        )),
        403 => {
            EngineError::Unauthenticated(format!("registry {host} denied access to {repo}{detail}"))
        }
        405 => EngineError::FailedPrecondition(format!(
            "registry {host} does not allow this operation on {path} ({status}){detail}"
        )),
        416 => EngineError::InvalidArgument(format!(
            "registry {host} cannot serve the requested range of {path} ({status}){detail}"
        )),
        429 | 500..=599 => EngineError::Unavailable(format!(
            "registry {host} answered {status} for {path}{detail}"
        )),
        _ => EngineError::InvalidArgument(format!(
            "registry {host} refused the request for {path}: {status}{detail}"
        )),
    }
}

/// The registry's `{"errors":[{"code","message"}]}` as `CODE: message; …`, else the
/// start of a text body.
pub(crate) fn registry_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<One>,
    }
    #[derive(Deserialize)]
    struct One {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(errs) = serde_json::from_slice::<Errors>(body) {
        return errs
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Reads a whole body of at most `limit` bytes; `None` past the limit.
pub(crate) async fn read_limited(mut resp: Response, limit: usize) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.ok()? {
        if buf.len() + chunk.len() > limit {
            return None;
        }
        buf.extend_from_slice(&chunk);
    }
    Some(buf.freeze())
}

/// A byte count as `u64` (lossless on every platform berth runs on).
pub(crate) fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Whether `method` may be sent again after a failure.
pub(crate) fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_urls() {
        let o = Endpoint::origin("127.0.0.1:5000");
        assert_eq!(
            o.url("http", "a/b/manifests/v1").unwrap().as_str(),
            "http://127.0.0.1:5000/v2/a/b/manifests/v1"
        );
        let m = Endpoint::mirror("https://mirror.local:5001/cache/", "reg.io").unwrap();
        assert_eq!(m.host, "mirror.local:5001");
        assert_eq!(
            m.url("http", "a/blobs/sha256:00").unwrap().as_str(),
            "https://mirror.local:5001/cache/v2/a/blobs/sha256:00?ns=reg.io"
        );
        let m = Endpoint::mirror("mirror.local", "reg.io").unwrap();
        assert_eq!(m.base, None);
        assert_eq!(
            m.url("https", "x/manifests/t").unwrap().as_str(),
            "https://mirror.local/v2/x/manifests/t?ns=reg.io"
        );
        for bad in [
            "ftp://m",
            "http://m/?x=1",
            "bad host",
            "m:0",
            "http://u:p@m",
        ] {
            assert!(Endpoint::mirror(bad, "reg.io").is_err(), "{bad}");
        }
        let u = Url::parse("https://[::1]:8443/token").unwrap();
        assert_eq!(url_host(&u).unwrap(), "[::1]:8443");
        let u = Url::parse("https://auth.io/token").unwrap();
        assert_eq!(url_host(&u).unwrap(), "auth.io");
    }

    #[test]
    fn delays() {
        let b = Duration::from_millis(100);
        assert_eq!(retry_delay(b, 0, None), Duration::from_millis(100));
        assert_eq!(retry_delay(b, 3, None), Duration::from_millis(800));
        assert_eq!(retry_delay(b, 40, None), Duration::from_secs(10));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_delay(b, 0, Some(&h)), Duration::from_secs(2));
        h.insert(RETRY_AFTER, "3600".parse().unwrap());
        assert_eq!(retry_delay(b, 0, Some(&h)), Duration::from_millis(100));
    }

    #[test]
    fn registry_messages() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}},{"code":"X"}]}"#;
        assert_eq!(
            registry_message(body),
            "MANIFEST_UNKNOWN: manifest unknown; X"
        );
        assert_eq!(registry_message(b"  plain text\n"), "plain text");
        assert_eq!(registry_message(b""), "");
        assert!(registry_message("é".repeat(300).as_bytes()).ends_with('…'));
    }
}
