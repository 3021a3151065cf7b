//! [`RegistryClient`]: the OCI distribution API calls berth makes, with retries,
//! mirrors and authentication.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    LOCATION, RANGE, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::sync::Semaphore;

use super::auth::{
    basic_header, fingerprint, parse_challenges, AuthCache, Challenge, TokenResponse,
};
use super::blob::{BlobResponse, UploadBody};
use super::config::{Credentials, RegistryConfig};
use super::docker_config;
use super::reference::{validate_registry, validate_repository, Reference};
use super::transport::{
    idempotent, len64, read_limited, registry_message, retry_delay, retryable_status, status_error,
    transient, transport_error, url_host, Endpoint, HostTransport, Subject, Transports,
};
use super::{Descriptor, MAX_MANIFEST_BYTES};
use crate::ids::Digest;
use crate::image::{self, media};
use crate::{EngineError, ErrorKind, Result};

/// What a manifest GET accepts: OCI and Docker schema 2, indexes and manifests.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// Largest token server answer read.
const MAX_TOKEN_BYTES: usize = 1 << 20;

/// A client of OCI distribution registries. Cheap to clone (clones share connections,
/// tokens and the download slots). Every method needs a tokio runtime with IO and time
/// enabled (actix's is one).
///
/// Pulls ([`resolve`](Self::resolve), [`fetch_manifest`](Self::fetch_manifest),
/// [`fetch_blob`](Self::fetch_blob)) try the registry's mirrors in order, then the
/// registry; pushes go to the registry only. `creds` are for the reference's registry
/// (they take precedence over the credentials file); a mirror gets only the
/// credentials file's entry for its own host.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RegistryConfig,
    transports: Transports,
    auth: AuthCache,
    downloads: Arc<Semaphore>,
    mirrors: BTreeMap<String, Vec<Endpoint>>,
}

/// One request, replayable (for retries and after authenticating).
struct Call<'a> {
    method: Method,
    ep: &'a Endpoint,
    /// The path under `/v2/` (with a query when needed).
    path: String,
    headers: HeaderMap,
    body: Option<Bytes>,
    scopes: Vec<String>,
    creds: Option<Credentials>,
    subject: Subject<'a>,
}

impl Call<'_> {
    fn scope_key(&self) -> String {
        self.scopes.join(" ")
    }

    fn repository(&self) -> String {
        match self.subject {
            Subject::Manifest(r) | Subject::Blob(r, _) | Subject::Repository(r) => {
                r.repository().to_string()
            }
        }
    }
}

fn pull_scope(repo: &str) -> Vec<String> {
    vec![format!("repository:{repo}:pull")]
}

fn push_scope(repo: &str) -> Vec<String> {
    vec![format!("repository:{repo}:pull,push")]
}

impl RegistryClient {
    /// A client with `config`, checked: mirrors and insecure entries must be well
    /// formed, the default registry a valid host, `max_concurrent_downloads` ≥ 1.
    pub fn new(config: RegistryConfig) -> Result<Self> {
        let bad = |m: String| EngineError::InvalidArgument(m);
        if config.max_concurrent_downloads == 0 {
            return Err(bad("max_concurrent_downloads must be at least 1".into()));
        }
        if let Some(d) = &config.default_registry {
            validate_registry(d).map_err(|w| bad(format!("default registry {d:?}: {w}")))?;
        }
        for i in &config.insecure {
            validate_registry(i).map_err(|w| bad(format!("insecure registry {i:?}: {w}")))?;
        }
        HeaderValue::from_str(&config.user_agent).map_err(|_| {
            bad(format!(
                "user agent {:?} is not a valid header",
                config.user_agent
            ))
        })?;
        let mut mirrors = BTreeMap::new();
        for (registry, specs) in &config.mirrors {
            validate_registry(registry)
                .map_err(|w| bad(format!("mirrors of {registry:?}: {w}")))?;
            let eps = specs
                .iter()
                .map(|s| Endpoint::mirror(s, registry))
                .collect::<Result<Vec<_>>>()?;
            mirrors.insert(registry.clone(), eps);
        }
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                transports: Transports::new(config.clone()),
                auth: AuthCache::default(),
                downloads: Arc::new(Semaphore::new(config.max_concurrent_downloads)),
                mirrors,
                config,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Parses a reference, giving one without a registry the configured default.
    pub fn parse_reference(&self, raw: &str) -> Result<Reference> {
        Reference::parse_with_default(raw, self.inner.config.default_registry.as_deref())
    }

    /// Fetches the manifest or index `reference` names (by digest when it has one, else
    /// by tag) and returns its descriptor and bytes. The bytes are verified: by digest,
    /// they must hash to it; by tag, the digest is computed (and a
    /// `Docker-Content-Digest` that disagrees is refused). Bodies over
    /// [`MAX_MANIFEST_BYTES`], schema 1 manifests and documents that are not OCI or
    /// Docker schema 2 indexes or manifests are refused (`InvalidArgument`); a missing
    /// tag or manifest is `NotFound { kind: "image" }`.
    pub async fn resolve(
        &self,
        reference: &Reference,
        creds: Option<&Credentials>,
    ) -> Result<(Descriptor, Bytes)> {
        let eps = self.pull_endpoints(reference.registry());
        let mut last = None;
        for ep in &eps {
            match self.get_manifest(ep, reference, creds).await {
                Ok(found) => return Ok(found),
                Err(e) if ep.mirror => {
                    tracing::debug!(mirror = %ep.host, %reference, error = %e, "mirror failed; trying the next endpoint");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| EngineError::Internal("no registry endpoint".into())))
    }

    /// Fetches the manifest `digest` of `reference`'s repository (an index entry),
    /// verified as [`resolve`](Self::resolve) does.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
        digest: &Digest,
        creds: Option<&Credentials>,
    ) -> Result<(Descriptor, Bytes)> {
        self.resolve(&reference.with_digest(digest.clone()), creds)
            .await
    }

    /// Starts downloading blob `digest` of `reference`'s repository from byte `offset`
    /// (`Range: bytes=offset-` when `offset > 0`). See [`BlobResponse`]: whether the
    /// range was honoured, the chunks, and where to resume after a broken connection.
    /// Waits for a download slot first. A missing blob is `NotFound { kind: "blob" }`.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        offset: u64,
        creds: Option<&Credentials>,
    ) -> Result<BlobResponse> {
        let permit = self
            .inner
            .downloads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| {
                EngineError::Internal("registry client's download slots are closed".into())
            })?;
        let eps = self.pull_endpoints(reference.registry());
        let mut last = None;
        for ep in &eps {
            match self.get_blob(ep, reference, digest, offset, creds).await {
                Ok((response, resumed, start, size)) => {
                    return Ok(BlobResponse {
                        response,
                        host: ep.host.clone(),
                        digest: digest.clone(),
                        resumed,
                        start,
                        received: 0,
                        size,
                        done: false,
                        _permit: permit,
                    })
                }
                Err(e) if ep.mirror => {
                    tracing::debug!(mirror = %ep.host, %digest, error = %e, "mirror failed; trying the next endpoint");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| EngineError::Internal("no registry endpoint".into())))
    }

    /// Downloads a whole small blob (an image configuration) of at most `limit` bytes,
    /// resuming with a range request when the connection breaks (up to `retries`
    /// times), and verifies its digest.
    pub async fn fetch_blob_bytes(
        &self,
        reference: &Reference,
        digest: &Digest,
        limit: u64,
        creds: Option<&Credentials>,
    ) -> Result<Bytes> {
        let too_big = || {
            EngineError::InvalidArgument(format!(
                "blob {digest} of {} is larger than the {limit} bytes expected",
                reference.name()
            ))
        };
        let mut buf = BytesMut::new();
        let mut breaks = 0;
        'fetch: loop {
            let mut blob = self
                .fetch_blob(reference, digest, len64(buf.len()), creds)
                .await?;
            if !blob.resumed() {
                buf.clear();
            }
            if blob.size().is_some_and(|s| s > limit) {
                return Err(too_big());
            }
            loop {
                match blob.next_chunk().await {
                    Ok(Some(c)) => {
                        if len64(buf.len() + c.len()) > limit {
                            return Err(too_big());
                        }
                        buf.extend_from_slice(&c);
                    }
                    Ok(None) => break 'fetch,
                    Err(e)
                        if e.kind() == ErrorKind::Unavailable
                            && breaks < self.inner.config.retries =>
                    {
                        tracing::debug!(%digest, error = %e, "blob download broke; resuming");
                        breaks += 1;
                        continue 'fetch;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let actual = Digest::of_bytes(&buf);
        if &actual != digest {
            return Err(EngineError::InvalidArgument(format!(
                "blob {digest} of {} does not match its digest: the registry served content hashing to {actual}",
                reference.name()
            )));
        }
        Ok(buf.freeze())
    }

    /// Whether blob `digest` is in `target`'s repository (`HEAD`).
    pub async fn blob_exists(
        &self,
        target: &Reference,
        digest: &Digest,
        creds: Option<&Credentials>,
    ) -> Result<bool> {
        let ep = Endpoint::origin(target.registry());
        let call = Call {
            method: Method::HEAD,
            ep: &ep,
            path: format!("{}/blobs/{digest}", target.repository()),
            headers: HeaderMap::new(),
            body: None,
            scopes: push_scope(target.repository()),
            creds: self.credentials(&ep, creds)?,
            subject: Subject::Blob(target, digest),
        };
        let resp = self.send(&call).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(resp, &ep.host, call.subject).await),
        }
    }

    /// Asks the registry to mount blob `digest` from repository `from` (same registry)
    /// into `target`'s repository, without uploading it. `true` when mounted; `false`
    /// when the registry declined (it does not have the blob there, or does not mount)
    /// and the blob must be uploaded.
    pub async fn mount_blob(
        &self,
        target: &Reference,
        digest: &Digest,
        from: &str,
        creds: Option<&Credentials>,
    ) -> Result<bool> {
        validate_repository(from).map_err(|w| {
            EngineError::InvalidArgument(format!("repository {from:?} to mount from: {w}"))
        })?;
        let ep = Endpoint::origin(target.registry());
        let mut scopes = push_scope(target.repository());
        scopes.push(format!("repository:{from}:pull"));
        let call = Call {
            method: Method::POST,
            ep: &ep,
            path: format!(
                "{}/blobs/uploads/?mount={digest}&from={from}",
                target.repository()
            ),
            headers: HeaderMap::new(),
            body: Some(Bytes::new()),
            scopes,
            creds: self.credentials(&ep, creds)?,
            subject: Subject::Repository(target),
        };
        let resp = self.send(&call).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry opened an upload instead; close it.
                if let Ok(url) = location(&resp, &ep.host) {
                    self.cancel_upload(&call, url).await;
                }
                Ok(false)
            }
            _ => Err(status_error(resp, &ep.host, call.subject).await),
        }
    }

    /// Uploads blob `digest` of `size` bytes to `target`'s repository: `POST` to open an
    /// upload, then one `PUT` of the whole body to the location the registry gave
    /// (relative or absolute) with `?digest=`. The registry verifies the digest; a body
    /// of another size fails before it completes. Not retried (the body is consumed):
    /// on `Unavailable` the caller pushes again with a new body. Check
    /// [`blob_exists`](Self::blob_exists) / [`mount_blob`](Self::mount_blob) first.
    pub async fn push_blob(
        &self,
        target: &Reference,
        digest: &Digest,
        size: u64,
        body: impl Into<UploadBody>,
        creds: Option<&Credentials>,
    ) -> Result<()> {
        let body = body.into().into_body(digest, size)?;
        let ep = Endpoint::origin(target.registry());
        let start = Call {
            method: Method::POST,
            ep: &ep,
            path: format!("{}/blobs/uploads/", target.repository()),
            headers: HeaderMap::new(),
            body: Some(Bytes::new()),
            scopes: push_scope(target.repository()),
            creds: self.credentials(&ep, creds)?,
            subject: Subject::Repository(target),
        };
        let resp = self.send(&start).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(resp, &ep.host, start.subject).await);
        }
        let upload = location(&resp, &ep.host)?;
        let mut put_url = upload.clone();
        put_url
            .query_pairs_mut()
            .append_pair("digest", digest.as_str());

        let transport = self.inner.transports.for_endpoint(&ep)?;
        let (_, client) = transport.current();
        let mut rb = client
            .put(put_url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(body);
        if let Some(a) = self.authorization_for(&start, &upload) {
            rb = rb.header(AUTHORIZATION, a);
        }
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                self.cancel_upload(&start, upload).await;
                return Err(transport_error(&ep.host, &e));
            }
        };
        let status = resp.status();
        if status.is_success() {
            return check_digest_header(&resp, digest, &ep.host, "blob");
        }
        let subject = Subject::Blob(target, digest);
        let err = if status == StatusCode::UNAUTHORIZED {
            refused(&start)
        } else {
            status_error(resp, &ep.host, subject).await
        };
        self.cancel_upload(&start, upload).await;
        Err(err)
    }

    /// Uploads a manifest or index to `target`'s repository under its digest when
    /// `target` has one (it must be the bytes' digest), else under its tag, and returns
    /// the digest. Schema 1 media types are refused.
    pub async fn push_manifest(
        &self,
        target: &Reference,
        media_type: &str,
        bytes: Bytes,
        creds: Option<&Credentials>,
    ) -> Result<Digest> {
        if matches!(
            media::document_kind(media_type),
            Some(media::DocumentKind::Schema1)
        ) {
            return Err(EngineError::InvalidArgument(media::SCHEMA1_REFUSAL.into()));
        }
        let content_type = HeaderValue::from_str(media_type).map_err(|_| {
            EngineError::InvalidArgument(format!("media type {media_type:?} is not a valid header"))
        })?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(EngineError::InvalidArgument(format!(
                "manifest for {target} is {} bytes; registries accept at most {MAX_MANIFEST_BYTES}",
                bytes.len()
            )));
        }
        let digest = Digest::of_bytes(&bytes);
        if let Some(want) = target.digest() {
            if want != &digest {
                return Err(EngineError::InvalidArgument(format!(
                    "manifest to push as {target} hashes to {digest}, not to the digest its reference names"
                )));
            }
        }
        let ep = Endpoint::origin(target.registry());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type);
        let call = Call {
            method: Method::PUT,
            ep: &ep,
            path: format!("{}/manifests/{}", target.repository(), target.object()),
            headers,
            body: Some(bytes),
            scopes: push_scope(target.repository()),
            creds: self.credentials(&ep, creds)?,
            subject: Subject::Manifest(target),
        };
        let resp = self.send(&call).await?;
        if !resp.status().is_success() {
            return Err(status_error(resp, &ep.host, call.subject).await);
        }
        check_digest_header(&resp, &digest, &ep.host, "manifest")?;
        Ok(digest)
    }

    // ---- pulls ----

    /// The registry's mirrors in order, then the registry.
    fn pull_endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut eps = self
            .inner
            .mirrors
            .get(registry)
            .cloned()
            .unwrap_or_default();
        eps.push(Endpoint::origin(registry));
        eps
    }

    async fn get_manifest(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        creds: Option<&Credentials>,
    ) -> Result<(Descriptor, Bytes)> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let call = Call {
            method: Method::GET,
            ep,
            path: format!(
                "{}/manifests/{}",
                reference.repository(),
                reference.object()
            ),
            headers,
            body: None,
            scopes: pull_scope(reference.repository()),
            creds: self.credentials(ep, creds)?,
            subject: Subject::Manifest(reference),
        };
        let resp = self.send(&call).await?;
        if !resp.status().is_success() {
            return Err(status_error(resp, &ep.host, call.subject).await);
        }
        let host = &ep.host;
        let invalid = |m: String| {
            EngineError::InvalidArgument(format!("manifest {reference} from registry {host}: {m}"))
        };
        let content_type = header_str(&resp, CONTENT_TYPE.as_str());
        let header_digest = header_str(&resp, DOCKER_CONTENT_DIGEST);
        if content_type.as_deref().and_then(media::document_kind)
            == Some(media::DocumentKind::Schema1)
        {
            return Err(invalid(media::SCHEMA1_REFUSAL.into()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > len64(MAX_MANIFEST_BYTES))
        {
            return Err(invalid(format!(
                "it is larger than {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        let body = read_body(resp, MAX_MANIFEST_BYTES, host)
            .await?
            .ok_or_else(|| invalid(format!("it is larger than {MAX_MANIFEST_BYTES} bytes")))?;
        let parsed = image::parse(content_type.as_deref(), &body).map_err(|e| match e {
            EngineError::InvalidArgument(m) => invalid(m),
            other => other,
        })?;
        let digest = Digest::of_bytes(&body);
        let claimed = match reference.digest() {
            Some(d) => Some((d.clone(), "the digest asked for")),
            // A header in another algorithm cannot be compared; it is ignored.
            None => header_digest
                .as_deref()
                .and_then(|h| Digest::parse(h).ok())
                .map(|d| (d, "its Docker-Content-Digest")),
        };
        if let Some((want, what)) = claimed {
            if want != digest {
                return Err(invalid(format!(
                    "digest mismatch: the content hashes to {digest}, not to {want} ({what})"
                )));
            }
        }
        let descriptor = Descriptor {
            media_type: parsed.media_type().to_string(),
            digest,
            size: len64(body.len()),
        };
        Ok((descriptor, body))
    }

    async fn get_blob(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        digest: &Digest,
        offset: u64,
        creds: Option<&Credentials>,
    ) -> Result<(Response, bool, u64, Option<u64>)> {
        let mut headers = HeaderMap::new();
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-"))
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            headers.insert(RANGE, range);
        }
        let call = Call {
            method: Method::GET,
            ep,
            path: format!("{}/blobs/{digest}", reference.repository()),
            headers,
            body: None,
            scopes: pull_scope(reference.repository()),
            creds: self.credentials(ep, creds)?,
            subject: Subject::Blob(reference, digest),
        };
        let resp = self.send(&call).await?;
        match resp.status() {
            StatusCode::OK => {
                let size = resp.content_length();
                Ok((resp, false, 0, size))
            }
            StatusCode::PARTIAL_CONTENT => {
                let range = header_str(&resp, CONTENT_RANGE.as_str()).unwrap_or_default();
                let Some((start, total)) = parse_content_range(&range) else {
                    return Err(EngineError::Unavailable(format!(
                        "registry {} answered a range request for blob {digest} with an unreadable Content-Range {range:?}",
                        ep.host
                    )));
                };
                if start != offset {
                    return Err(EngineError::Unavailable(format!(
                        "registry {} answered a request for blob {digest} from byte {offset} with bytes from {start}",
                        ep.host
                    )));
                }
                Ok((resp, true, start, total))
            }
            _ => Err(status_error(resp, &ep.host, call.subject).await),
        }
    }

    // ---- requests, retries, authentication ----

    /// Credentials for an endpoint: the caller's for the registry itself, else the
    /// credentials file's entry for the endpoint's host.
    fn credentials(
        &self,
        ep: &Endpoint,
        given: Option<&Credentials>,
    ) -> Result<Option<Credentials>> {
        if !ep.mirror {
            if let Some(c) = given {
                return Ok(Some(c.clone()));
            }
        }
        match &self.inner.config.credentials_file {
            Some(path) => docker_config::lookup(path, &ep.host),
            None => Ok(None),
        }
    }

    /// Sends a call, retrying transient failures (idempotent methods and POSTs without
    /// a body) and authenticating once on a 401 with a Basic or Bearer challenge. Any
    /// other response is returned as it is.
    async fn send(&self, call: &Call<'_>) -> Result<Response> {
        let transport = self.inner.transports.for_endpoint(call.ep)?;
        let retry = idempotent(&call.method) || call.body.as_ref().is_none_or(Bytes::is_empty);
        let mut authenticated = false;
        loop {
            let auth = self.authorization(call);
            let resp = self
                .retrying(retry, &call.ep.host, || {
                    self.send_once(&transport, call, auth.as_deref())
                })
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if authenticated {
                return Err(refused(call));
            }
            let challenge = parse_challenges(
                resp.headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            let Some(challenge) = challenge else {
                return Err(status_error(resp, &call.ep.host, call.subject).await);
            };
            self.authenticate(call, challenge).await?;
            authenticated = true;
        }
    }

    /// One attempt: each candidate scheme of the host in turn while the connection
    /// itself fails (an insecure registry: HTTPS, then HTTP), the one that answers
    /// remembered. The outer `Err` is ours (a bad URL); the inner one the transport's.
    async fn send_once(
        &self,
        transport: &HostTransport,
        call: &Call<'_>,
        auth: Option<&str>,
    ) -> Result<std::result::Result<Response, reqwest::Error>> {
        let mut first_err = None;
        for i in transport.order() {
            let (scheme, client) = &transport.candidates[i];
            let url = call.ep.url(scheme, &call.path)?;
            let mut rb = client
                .request(call.method.clone(), url)
                .headers(call.headers.clone());
            if let Some(a) = auth {
                rb = rb.header(AUTHORIZATION, a);
            }
            if let Some(b) = &call.body {
                rb = rb.body(b.clone());
            }
            match rb.send().await {
                Ok(resp) => {
                    transport.choose(i);
                    return Ok(Ok(resp));
                }
                Err(e) => {
                    let next = e.is_connect();
                    tracing::debug!(host = %call.ep.host, scheme, error = %super::transport::chain(&e), "request failed");
                    first_err.get_or_insert(e);
                    if !next {
                        break;
                    }
                }
            }
        }
        match first_err {
            Some(e) => Ok(Err(e)),
            None => Err(EngineError::Internal(format!(
                "registry {} has no transport",
                call.ep.host
            ))),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or `retries` retries were made
    /// (when `retry`): connection failures, timeouts, 429 and 5xx are retried after
    /// [`retry_delay`].
    async fn retrying<F, Fut>(&self, retry: bool, host: &str, mut attempt: F) -> Result<Response>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<std::result::Result<Response, reqwest::Error>>>,
    {
        let mut n = 0u32;
        loop {
            let r = attempt().await?;
            let again = match &r {
                Err(e) => transient(e),
                Ok(resp) => retryable_status(resp.status()),
            };
            if !retry || !again || n >= self.inner.config.retries {
                return r.map_err(|e| transport_error(host, &e));
            }
            let delay = retry_delay(
                self.inner.config.backoff,
                n,
                r.as_ref().ok().map(Response::headers),
            );
            let why = match &r {
                Ok(resp) => resp.status().to_string(),
                Err(e) => super::transport::chain(e),
            };
            tracing::debug!(%host, retry = n + 1, ?delay, %why, "retrying registry request");
            drop(r);
            tokio::time::sleep(delay).await;
            n += 1;
        }
    }

    /// The `Authorization` to send with a call, from what the host asked before: basic
    /// credentials, or a cached bearer token for the call's scopes and credentials.
    fn authorization(&self, call: &Call<'_>) -> Option<String> {
        match self.inner.auth.challenge(&call.ep.host)? {
            Challenge::Basic => call
                .creds
                .as_ref()
                .filter(|c| c.has_password())
                .map(basic_header),
            Challenge::Bearer { .. } => self
                .inner
                .auth
                .token(
                    &call.ep.host,
                    &call.scope_key(),
                    &fingerprint(call.creds.as_ref()),
                )
                .map(|t| format!("Bearer {t}")),
        }
    }

    /// The `Authorization` for a request to `url` made on behalf of `call` (none when
    /// the URL leaves the call's host).
    fn authorization_for(&self, call: &Call<'_>, url: &Url) -> Option<String> {
        if url_host(url).as_deref() != Some(call.ep.host.as_str()) {
            return None;
        }
        self.authorization(call)
    }

    /// Answers a challenge: remembers it for the host and, for Bearer, fetches a token.
    async fn authenticate(&self, call: &Call<'_>, challenge: Challenge) -> Result<()> {
        let host = &call.ep.host;
        self.inner.auth.set_challenge(host, challenge.clone());
        match challenge {
            Challenge::Basic => {
                if call.creds.as_ref().is_some_and(Credentials::has_password) {
                    Ok(())
                } else {
                    Err(refused(call))
                }
            }
            Challenge::Bearer { realm, service, .. } => {
                let fp = fingerprint(call.creds.as_ref());
                let key = call.scope_key();
                self.inner.auth.forget_token(host, &key, &fp);
                let (token, ttl) = self.fetch_token(call, &realm, service.as_deref()).await?;
                self.inner.auth.set_token(host, &key, &fp, token, ttl);
                Ok(())
            }
        }
    }

    /// Gets a bearer token from the realm: `GET realm?service=…&scope=…` with basic
    /// credentials when known, or, with an identity token, the OAuth2 refresh-token
    /// `POST`.
    async fn fetch_token(
        &self,
        call: &Call<'_>,
        realm: &str,
        service: Option<&str>,
    ) -> Result<(String, Duration)> {
        let host = &call.ep.host;
        let bad_realm = |why: String| {
            EngineError::Unauthenticated(format!(
                "registry {host} named an unusable token realm {realm:?}: {why}"
            ))
        };
        let url = Url::parse(realm).map_err(|e| bad_realm(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad_realm("the scheme must be http or https".into()));
        }
        let realm_host = url_host(&url).unwrap_or_default();
        if url.scheme() == "http"
            && call.creds.is_some()
            && !self.inner.config.is_insecure(&realm_host)
        {
            return Err(EngineError::Unauthenticated(format!(
                "registry {host} asks for credentials over plain HTTP ({realm}); refusing to send \
                 them (configure {realm_host} as an insecure registry to allow it)"
            )));
        }
        let client = self.inner.transports.for_url(&url)?;
        let creds = call.creds.as_ref();
        let resp = self
            .retrying(true, &realm_host, || {
                let rb = match creds.and_then(|c| c.identity_token.as_deref()) {
                    Some(refresh) => {
                        let mut form = vec![
                            ("grant_type", "refresh_token".to_string()),
                            ("refresh_token", refresh.to_string()),
                            ("client_id", "berth".to_string()),
                            ("scope", call.scopes.join(" ")),
                        ];
                        if let Some(s) = service {
                            form.push(("service", s.to_string()));
                        }
                        client.post(url.clone()).form(&form)
                    }
                    None => {
                        let mut u = url.clone();
                        {
                            let mut q = u.query_pairs_mut();
                            if let Some(s) = service {
                                q.append_pair("service", s);
                            }
                            for s in &call.scopes {
                                q.append_pair("scope", s);
                            }
                            if let Some(c) = creds.filter(|c| c.has_password()) {
                                q.append_pair("account", &c.username);
                            }
                        }
                        let rb = client.get(u);
                        match creds.filter(|c| c.has_password()) {
                            Some(c) => rb.basic_auth(&c.username, Some(&c.password)),
                            None => rb,
                        }
                    }
                };
                async move { Ok(rb.send().await) }
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(refused(call));
        }
        if !status.is_success() {
            let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
            let msg = registry_message(&body);
            return Err(EngineError::Unavailable(format!(
                "token server {realm} of registry {host} answered {status}{}",
                if msg.is_empty() {
                    String::new()
                } else {
                    format!(": {msg}")
                }
            )));
        }
        let body = read_body(resp, MAX_TOKEN_BYTES, &realm_host)
            .await?
            .ok_or_else(|| {
                EngineError::Unavailable(format!(
                    "token server {realm} of registry {host} sent an oversized answer"
                ))
            })?;
        serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| {
                EngineError::Unavailable(format!(
                    "token server {realm} of registry {host} sent no token"
                ))
            })
    }

    /// Best effort: deletes an upload that will not be completed.
    async fn cancel_upload(&self, call: &Call<'_>, url: Url) {
        let Ok(transport) = self.inner.transports.for_endpoint(call.ep) else {
            return;
        };
        let (_, client) = transport.current();
        let mut rb = client.delete(url.clone());
        if let Some(a) = self.authorization_for(call, &url) {
            rb = rb.header(AUTHORIZATION, a);
        }
        if let Err(e) = rb.send().await {
            tracing::debug!(host = %call.ep.host, error = %e, "could not cancel an upload");
        }
    }
}

/// The error for a 401 after authenticating (or with nothing to authenticate with).
fn refused(call: &Call<'_>) -> EngineError {
    let host = &call.ep.host;
    let repo = call.repository();
    if call.creds.is_some() {
        EngineError::Unauthenticated(format!(
            "registry {host} refused the credentials for {repo}"
        ))
    } else {
        EngineError::Unauthenticated(format!(
            "registry {host} requires authentication for {repo}: log in with `berth login {host}` \
             or pass credentials"
        ))
    }
}

/// The upload location of a response, resolved against its URL.
fn location(resp: &Response, host: &str) -> Result<Url> {
    let loc = header_str(resp, LOCATION.as_str()).ok_or_else(|| {
        EngineError::Unavailable(format!(
            "registry {host} opened an upload without giving its location"
        ))
    })?;
    resp.url().join(&loc).map_err(|e| {
        EngineError::Unavailable(format!(
            "registry {host} gave an invalid upload location {loc:?}: {e}"
        ))
    })
}

/// When the registry names the digest of what it stored, it must be ours.
fn check_digest_header(resp: &Response, digest: &Digest, host: &str, what: &str) -> Result<()> {
    if let Some(h) = header_str(resp, DOCKER_CONTENT_DIGEST) {
        if let Ok(d) = Digest::parse(&h) {
            if &d != digest {
                return Err(EngineError::Internal(format!(
                    "registry {host} stored the {what} {digest} under digest {d}"
                )));
            }
        }
    }
    Ok(())
}

fn header_str(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// `bytes start-end/total` → (start, total when not `*`).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

/// A whole body of at most `limit` bytes (`None` past it); a broken connection is
/// `Unavailable`.
async fn read_body(mut resp: Response, limit: usize, host: &str) -> Result<Option<Bytes>> {
    let mut buf = BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if buf.len() + c.len() > limit {
                    return Ok(None);
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => return Ok(Some(buf.freeze())),
            Err(e) => return Err(transport_error(host, &e)),
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range(""), None);
    }

    #[test]
    fn config_is_checked() {
        let ok = RegistryConfig::default();
        assert!(RegistryClient::new(ok.clone()).is_ok());
        let mut c = ok.clone();
        c.max_concurrent_downloads = 0;
        assert!(RegistryClient::new(c).is_err());
        let mut c = ok.clone();
        c.mirrors.insert("reg.io".into(), vec!["ftp://x".into()]);
        assert!(RegistryClient::new(c).is_err());
        let mut c = ok.clone();
        c.default_registry = Some("not a host".into());
        assert!(RegistryClient::new(c).is_err());
        let mut c = ok;
        c.default_registry = Some("reg.local:5000".into());
        let client = RegistryClient::new(c).unwrap();
        assert_eq!(
            client.parse_reference("app").unwrap().to_string(),
            "reg.local:5000/app:latest"
        );
    }
}
