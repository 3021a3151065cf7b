//! A typed client of the API, over a unix socket (`unix:///run/berth/berth.sock`) or TCP
//! with a bearer token (`tcp://127.0.0.1:7070`). Used by the CLI and the tests.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::types::*;

/// A request body: buffered JSON or a streamed file.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The host string is not `unix://PATH` or `tcp://HOST:PORT`.
    #[error("invalid host {0:?}: use unix:///path/to/berth.sock or tcp://host:port")]
    BadHost(String),
    /// The daemon cannot be reached.
    #[error("cannot connect to berthd at {target}: {source}")]
    Connect {
        /// Where.
        target: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("talking to berthd: {0}")]
    Http(String),
    /// The daemon answered with an error.
    #[error("{kind}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error kind.
        kind: String,
        /// Message.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from berthd: {0}")]
    Decode(String),
}

/// The client.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    token: Option<String>,
}

/// A raw answer: status and body bytes.
#[derive(Debug)]
pub struct RawResponse {
    /// Status.
    pub status: StatusCode,
    /// Content type, if any.
    pub content_type: Option<String>,
    /// Body.
    pub body: Bytes,
}

impl RawResponse {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

impl Client {
    /// A client for `host` (`unix:///path` or `tcp://host:port`; a bare path means unix).
    pub fn new(host: &str, token: Option<String>) -> Result<Client, ClientError> {
        let target = if let Some(p) = host.strip_prefix("unix://") {
            Target::Unix(PathBuf::from(p))
        } else if let Some(a) = host.strip_prefix("tcp://") {
            Target::Tcp(a.trim_end_matches('/').to_string())
        } else if host.starts_with('/') {
            Target::Unix(PathBuf::from(host))
        } else {
            return Err(ClientError::BadHost(host.to_string()));
        };
        Ok(Client { target, token })
    }

    /// A client of a unix socket.
    pub fn unix(path: impl Into<PathBuf>) -> Client {
        Client {
            target: Target::Unix(path.into()),
            token: None,
        }
    }

    fn target_str(&self) -> String {
        match &self.target {
            Target::Unix(p) => format!("unix://{}", p.display()),
            Target::Tcp(a) => format!("tcp://{a}"),
        }
    }

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<Body>, ClientError> {
        let connect_err = |source| ClientError::Connect {
            target: self.target_str(),
            source,
        };
        macro_rules! handshake {
            ($stream:expr) => {{
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new($stream))
                    .await
                    .map_err(|e| ClientError::Http(e.to_string()))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }};
        }
        Ok(match &self.target {
            Target::Unix(p) => handshake!(tokio::net::UnixStream::connect(p)
                .await
                .map_err(connect_err)?),
            Target::Tcp(a) => handshake!(tokio::net::TcpStream::connect(a)
                .await
                .map_err(connect_err)?),
        })
    }

    /// Sends a request and returns the streaming response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>, ClientError> {
        let json = body.is_some();
        let body: Body = Full::new(Bytes::from(body.unwrap_or_default()))
            .map_err(|never| match never {})
            .boxed();
        self.send_body(method, path, body, json, headers).await
    }

    /// Sends a request whose body streams from `file` (an archive upload).
    pub async fn send_file(
        &self,
        method: Method,
        path: &str,
        file: tokio::fs::File,
        content_type: &str,
    ) -> Result<Response<Incoming>, ClientError> {
        use tokio::io::AsyncReadExt;
        let stream = futures_util::stream::unfold(file, |mut f| async move {
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(hyper::body::Frame::data(Bytes::from(buf))), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let body: Body = StreamBody::new(stream).boxed();
        self.send_body(
            method,
            path,
            body,
            false,
            &[("content-type", content_type.to_string())],
        )
        .await
    }

    async fn send_body(
        &self,
        method: Method,
        path: &str,
        body: Body,
        json: bool,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>, ClientError> {
        let mut sender = self.connect().await?;
        let host = match &self.target {
            Target::Unix(_) => "berthd".to_string(),
            Target::Tcp(a) => a.clone(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if json {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(body)
            .map_err(|e| ClientError::Http(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))
    }

    /// Sends a request and reads the whole answer, whatever its status.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, ClientError> {
        let res = self.send(method, path, body, &[]).await?;
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(RawResponse {
            status,
            content_type,
            body,
        })
    }

    /// Reads an error answer into [`ClientError::Api`].
    pub async fn error_of(res: Response<Incoming>) -> ClientError {
        let status = res.status().as_u16();
        let body = match res.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return ClientError::Http(e.to_string()),
        };
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => ClientError::Api {
                status,
                kind: b.error.kind,
                message: b.error.message,
            },
            Err(_) => ClientError::Api {
                status,
                kind: "Unknown".into(),
                message: String::from_utf8_lossy(&body).into_owned(),
            },
        }
    }

    /// Calls the API: a JSON body in, the typed answer out; error answers become
    /// [`ClientError::Api`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let res = self.raw(method, path, body).await?;
        if !res.status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&res.body) {
                Ok(b) => ClientError::Api {
                    status: res.status.as_u16(),
                    kind: b.error.kind,
                    message: b.error.message,
                },
                Err(_) => ClientError::Api {
                    status: res.status.as_u16(),
                    kind: "Unknown".into(),
                    message: String::from_utf8_lossy(&res.body).into_owned(),
                },
            });
        }
        serde_json::from_slice(&res.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET /v1/version`.
    pub async fn version(&self) -> Result<VersionInfo, ClientError> {
        self.call(Method::GET, "/v1/version", None::<&()>).await
    }

    /// `GET /v1/healthz`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, "/v1/healthz", None::<&()>).await
    }

    /// `POST /v1/namespaces`.
    pub async fn create_namespace(
        &self,
        req: &CreateNamespaceRequest,
    ) -> Result<NamespaceResponse, ClientError> {
        self.call(Method::POST, "/v1/namespaces", Some(req)).await
    }

    /// `GET /v1/namespaces`.
    pub async fn namespaces(&self) -> Result<NamespaceList, ClientError> {
        self.call(Method::GET, "/v1/namespaces", None::<&()>).await
    }

    /// `DELETE /v1/namespaces/{name}`.
    pub async fn delete_namespace(&self, name: &str) -> Result<Deleted, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/v1/namespaces/{}", encode_path(name)),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/journal?from=&limit=`.
    pub async fn journal_page(&self, from: u64, limit: usize) -> Result<JournalPage, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/journal?from={from}&limit={limit}"),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/journal/stats`.
    pub async fn journal_stats(&self) -> Result<JournalStatsResponse, ClientError> {
        self.call(Method::GET, "/v1/journal/stats", None::<&()>)
            .await
    }

    /// `GET /v1/journal/verify`.
    pub async fn journal_verify(&self) -> Result<berth_journal::VerifyReport, ClientError> {
        self.call(Method::GET, "/v1/journal/verify", None::<&()>)
            .await
    }

    /// `POST /v1/journal/checkpoint`.
    pub async fn checkpoint(&self) -> Result<CheckpointTaken, ClientError> {
        self.call(Method::POST, "/v1/journal/checkpoint", None::<&()>)
            .await
    }

    /// `GET /v1/events` with a query (e.g. `topic=namespace.`) and an optional
    /// `Last-Event-ID`.
    pub async fn events(
        &self,
        query: &str,
        last_event_id: Option<u64>,
    ) -> Result<EventStream, ClientError> {
        let path = if query.is_empty() {
            "/v1/events".to_string()
        } else {
            format!("/v1/events?{query}")
        };
        let headers: Vec<(&str, String)> = last_event_id
            .map(|id| vec![("last-event-id", id.to_string())])
            .unwrap_or_default();
        let res = self.send(Method::GET, &path, None, &headers).await?;
        if !res.status().is_success() {
            let status = res.status().as_u16();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?
                .to_bytes();
            let b: ErrorBody =
                serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))?;
            return Err(ClientError::Api {
                status,
                kind: b.error.kind,
                message: b.error.message,
            });
        }
        Ok(EventStream {
            body: res.into_body(),
            buf: Vec::new(),
        })
    }
}

/// `namespace=<ns>`, encoded.
fn ns_query(ns: &str) -> String {
    format!("namespace={}", encode_path(ns))
}

/// `/v1/containers/<key>`, encoded.
fn container_path(key: &str) -> String {
    format!("/v1/containers/{}", encode_path(key))
}

impl Client {
    /// A request whose answer is streamed (logs, exports): error answers become
    /// [`ClientError::Api`]; a success is returned as a stream of lines.
    pub async fn stream_lines(
        &self,
        method: Method,
        path: &str,
    ) -> Result<LineStream, ClientError> {
        let res = self.send(method, path, None, &[]).await?;
        if !res.status().is_success() {
            return Err(Client::error_of(res).await);
        }
        Ok(LineStream {
            body: res.into_body(),
            buf: Vec::new(),
            done: false,
        })
    }

    /// `POST /v1/images/pull`: waits for the pull to end.
    pub async fn pull_image(
        &self,
        ns: &str,
        req: &PullImageRequest,
    ) -> Result<PullImageResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/images/pull?{}&wait=true", ns_query(ns)),
            Some(req),
        )
        .await
    }

    /// `POST /v1/images/pull` (202): starts the pull and answers at once; progress and
    /// outcome follow on the event stream.
    pub async fn start_pull(
        &self,
        ns: &str,
        req: &PullImageRequest,
    ) -> Result<crate::api::types::PullAccepted, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/images/pull?{}", ns_query(ns)),
            Some(req),
        )
        .await
    }

    /// `POST /v1/images/pull?stream=true`: newline-delimited JSON progress lines, the
    /// last `{"status":"completed",…}` or `{"error":{…}}`.
    pub async fn pull_image_stream(
        &self,
        ns: &str,
        req: &PullImageRequest,
    ) -> Result<LineStream, ClientError> {
        let body = serde_json::to_vec(req).map_err(|e| ClientError::Decode(e.to_string()))?;
        let res = self
            .send(
                Method::POST,
                &format!("/v1/images/pull?{}&stream=true", ns_query(ns)),
                Some(body),
                &[],
            )
            .await?;
        if !res.status().is_success() {
            return Err(Client::error_of(res).await);
        }
        Ok(LineStream {
            body: res.into_body(),
            buf: Vec::new(),
            done: false,
        })
    }

    /// `POST /v1/images/{name}/push`.
    pub async fn push_image(
        &self,
        ns: &str,
        name: &str,
        req: &PushImageRequest,
    ) -> Result<PushImageResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/images/{}/push?{}", encode_path(name), ns_query(ns)),
            Some(req),
        )
        .await
    }

    /// `POST /v1/containers`.
    pub async fn create_container(
        &self,
        ns: &str,
        req: &CreateContainerRequest,
    ) -> Result<ContainerResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/containers?{}", ns_query(ns)),
            Some(req),
        )
        .await
    }

    /// `GET /v1/containers?<filters>`; `filters` is a query string such as
    /// `status=running&label=a%3Db` (encoded), or empty.
    pub async fn containers(&self, ns: &str, filters: &str) -> Result<ContainerList, ClientError> {
        let mut path = format!("/v1/containers?{}", ns_query(ns));
        if !filters.is_empty() {
            path.push('&');
            path.push_str(filters);
        }
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/containers/{key}`.
    pub async fn container(&self, ns: &str, key: &str) -> Result<ContainerView, ClientError> {
        self.call(
            Method::GET,
            &format!("{}?{}", container_path(key), ns_query(ns)),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/containers/{key}/<verb>?<query>`: `start`, `stop`, `kill`, `pause`,
    /// `resume`; `query` is encoded (`timeout=5`, `signal=TERM`) or empty.
    pub async fn container_verb(
        &self,
        ns: &str,
        key: &str,
        verb: &str,
        query: &str,
    ) -> Result<ContainerResponse, ClientError> {
        let mut path = format!("{}/{verb}?{}", container_path(key), ns_query(ns));
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// `POST /v1/containers/{key}/wait`.
    pub async fn wait_container(&self, ns: &str, key: &str) -> Result<WaitResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("{}/wait?{}", container_path(key), ns_query(ns)),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/containers/{key}/exec`.
    pub async fn exec(
        &self,
        ns: &str,
        key: &str,
        req: &ExecRequestBody,
    ) -> Result<ExecResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("{}/exec?{}", container_path(key), ns_query(ns)),
            Some(req),
        )
        .await
    }

    /// `DELETE /v1/containers/{key}?force=`.
    pub async fn delete_container(
        &self,
        ns: &str,
        key: &str,
        force: bool,
    ) -> Result<Deleted, ClientError> {
        self.call(
            Method::DELETE,
            &format!("{}?{}&force={force}", container_path(key), ns_query(ns)),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/containers/{key}/logs?<query>` (`follow=true&format=json&tail=10`…),
    /// streamed.
    pub async fn container_logs(
        &self,
        ns: &str,
        key: &str,
        query: &str,
    ) -> Result<LineStream, ClientError> {
        let mut path = format!("{}/logs?{}", container_path(key), ns_query(ns));
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        self.stream_lines(Method::GET, &path).await
    }
}

/// `/v1/networks/<name>`, encoded.
fn network_path(name: &str) -> String {
    format!("/v1/networks/{}", encode_path(name))
}

impl Client {
    /// `POST /v1/networks`.
    pub async fn network_create(
        &self,
        req: &CreateNetworkRequest,
    ) -> Result<NetworkResponse, ClientError> {
        self.call(Method::POST, "/v1/networks", Some(req)).await
    }

    /// `GET /v1/networks?<filters>`; `filters` is a query string such as `label=a%3Db`
    /// (encoded), or empty.
    pub async fn network_list(&self, filters: &str) -> Result<NetworkList, ClientError> {
        let path = if filters.is_empty() {
            "/v1/networks".to_string()
        } else {
            format!("/v1/networks?{filters}")
        };
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/networks/{name}`.
    pub async fn network_get(&self, name: &str) -> Result<NetworkResponse, ClientError> {
        self.call(Method::GET, &network_path(name), None::<&()>)
            .await
    }

    /// `DELETE /v1/networks/{name}`.
    pub async fn network_delete(&self, name: &str) -> Result<Deleted, ClientError> {
        self.call(Method::DELETE, &network_path(name), None::<&()>)
            .await
    }
}

/// The lines of a streamed answer, as they arrive.
pub struct LineStream {
    body: Incoming,
    buf: Vec<u8>,
    done: bool,
}

impl LineStream {
    /// The next line without its newline (a last line without one included); `None` at
    /// the end. A body cut off by the daemon is an error.
    pub async fn next_line(&mut self) -> Option<Result<Vec<u8>, ClientError>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                return Some(Ok(line));
            }
            if self.done {
                return (!self.buf.is_empty()).then(|| Ok(std::mem::take(&mut self.buf)));
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(ClientError::Http(format!(
                        "the stream was cut off: {e}"
                    ))));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// The next line parsed as JSON (an NDJSON stream such as logs with `format=json`).
    pub async fn next_json<T: DeserializeOwned>(&mut self) -> Option<Result<T, ClientError>> {
        let line = match self.next_line().await? {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        Some(serde_json::from_slice(&line).map_err(|e| ClientError::Decode(e.to_string())))
    }
}

/// Percent-encodes a path segment (names are validated server-side; this only keeps the
/// request line well formed).
pub fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseMessage {
    /// `id:`.
    pub id: Option<u64>,
    /// `event:` (None means the default `message`; comments-only blocks are skipped).
    pub event: Option<String>,
    /// `data:` lines joined by newlines.
    pub data: String,
}

impl SseMessage {
    /// The data as an event envelope.
    pub fn envelope(&self) -> Result<EventView, ClientError> {
        serde_json::from_str(&self.data).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// A stream of server-sent events.
pub struct EventStream {
    body: Incoming,
    buf: Vec<u8>,
}

impl EventStream {
    /// The next message (comments, such as keep-alives, are skipped); `None` at the end.
    pub async fn next(&mut self) -> Option<Result<SseMessage, ClientError>> {
        loop {
            if let Some(pos) = find_block_end(&self.buf) {
                let block: Vec<u8> = self.buf.drain(..pos + 2).collect();
                if let Some(msg) = parse_block(&block[..pos]) {
                    return Some(Ok(msg));
                }
                continue;
            }
            match self.body.frame().await {
                None => return None,
                Some(Err(e)) => return Some(Err(ClientError::Http(e.to_string()))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

fn find_block_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n")
}

fn parse_block(block: &[u8]) -> Option<SseMessage> {
    let text = String::from_utf8_lossy(block);
    let mut msg = SseMessage::default();
    let mut any = false;
    let mut data: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => {
                msg.id = value.parse().ok();
                any = true;
            }
            "event" => {
                msg.event = Some(value.to_string());
                any = true;
            }
            "data" => {
                data.push(value);
                any = true;
            }
            _ => {}
        }
    }
    msg.data = data.join("\n");
    (any && (msg.event.is_some() || !data.is_empty())).then_some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks() {
        let m = parse_block(b"id: 7\nevent: namespace.created\ndata: {\"a\":1}").unwrap();
        assert_eq!(m.id, Some(7));
        assert_eq!(m.event.as_deref(), Some("namespace.created"));
        assert_eq!(m.data, "{\"a\":1}");
        assert!(parse_block(b": keep-alive").is_none());
        assert!(parse_block(b"retry: 2000").is_none());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            Client::new("unix:///run/berth/berth.sock", None)
                .unwrap()
                .target,
            Target::Unix("/run/berth/berth.sock".into())
        );
        assert_eq!(
            Client::new("tcp://127.0.0.1:9/", None).unwrap().target,
            Target::Tcp("127.0.0.1:9".into())
        );
        assert!(Client::new("http://x", None).is_err());
    }
}
