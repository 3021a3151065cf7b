//! Test support: a real `docker-registry` in a temp dir ([`TestRegistry`]), tiny HTTP
//! servers on std threads ([`TestServer`]: fake registries, a token server, an
//! authenticating proxy), test images. The registry itself, CA and server certificates
//! and htpasswd files come from `berth-test-harness` (shared with the end-to-end tests);
//! here, missing tools make tests print why and pass.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub(crate) use berth_test_harness::{
    free_port, try_htpasswd_file as htpasswd_file, try_make_certs as make_certs, RegistryOpts,
};
use bytes::Bytes;

use super::{Credentials, Reference, RegistryClient};
use crate::ids::Digest;
use crate::image::media;

/// Runs a future on a fresh current-thread runtime.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// A docker-registry for these tests: [`berth_test_harness::TestRegistry`] started
/// with [`TestRegistry::start`] (`None`, the reason printed, when docker-registry is
/// missing) and able to name [`Reference`]s in it.
pub(crate) struct TestRegistry(berth_test_harness::TestRegistry);

impl TestRegistry {
    /// Starts one, or `None` (with the reason printed) when docker-registry is missing.
    pub(crate) fn start(opts: RegistryOpts) -> Option<TestRegistry> {
        berth_test_harness::TestRegistry::try_start(opts).map(TestRegistry)
    }

    /// A reference in this registry.
    pub(crate) fn reference(&self, rest: &str) -> Reference {
        Reference::parse(&format!("{}/{rest}", self.host())).expect("reference")
    }
}

impl Deref for TestRegistry {
    type Target = berth_test_harness::TestRegistry;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

// ---- tiny HTTP servers ----

/// A request as a test server sees it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query's values of `key` (not percent-decoded beyond `%3A`, `%2F`, `%2C`, `+`).
    pub(crate) fn query(&self, key: &str) -> Vec<String> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        form_values(q, key)
    }
}

/// The values of `key` in `a=b&c=d` form data, lightly decoded.
pub(crate) fn form_values(q: &str, key: &str) -> Vec<String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| {
            v.replace('+', " ")
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2C", ",")
                .replace("%20", " ")
        })
        .collect()
}

/// A response from a test server.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send only this many body bytes (after announcing them all), then close.
    pub cut_after: Option<usize>,
}

impl Reply {
    pub(crate) fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_after: None,
        }
    }

    pub(crate) fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub(crate) fn body(mut self, b: impl Into<Vec<u8>>) -> Reply {
        self.body = b.into();
        self
    }

    fn write_to(&self, s: &mut TcpStream) -> std::io::Result<()> {
        let mut head = format!("HTTP/1.1 {} X\r\n", self.status);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        s.write_all(head.as_bytes())?;
        let n = self
            .cut_after
            .unwrap_or(self.body.len())
            .min(self.body.len());
        s.write_all(&self.body[..n])?;
        s.flush()
    }
}

/// A server on 127.0.0.1 handling each connection on its own thread; stopped and
/// joined on drop.
pub(crate) struct TestServer {
    pub port: u16,
    /// Requests answered so far.
    pub hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

type ConnHandler = dyn Fn(TcpStream) + Send + Sync + 'static;

impl TestServer {
    /// A server answering each request with `handler` (one request per connection).
    pub(crate) fn start<H>(handler: H) -> TestServer
    where
        H: Fn(&Request) -> Reply + Send + Sync + 'static,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        Self::start_raw(hits, move |mut s| {
            let Some((req, _)) = read_request(&mut s, true) else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = handler(&req).write_to(&mut s);
            let _ = s.shutdown(Shutdown::Both);
        })
    }

    fn start_raw<F>(hits: Arc<AtomicUsize>, conn: F) -> TestServer
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test server");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let conn: Arc<ConnHandler> = Arc::new(conn);
        let thread = std::thread::spawn(move || {
            for s in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(s) = s else { continue };
                let conn = conn.clone();
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    conn(s);
                });
            }
        });
        TestServer {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:<port>`.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// A proxy to `127.0.0.1:<upstream>`: each request goes to `gate` first, which may
    /// answer it (`Some`); otherwise the request (without `Authorization`, with
    /// `Connection: close`) is forwarded and the answer streamed back.
    pub(crate) fn proxy<G>(upstream: u16, gate: G) -> TestServer
    where
        G: Fn(&Request) -> Option<Reply> + Send + Sync + 'static,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        Self::start_raw(hits, move |mut client| {
            let Some((req, rest)) = read_request(&mut client, false) else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            if let Some(reply) = gate(&req) {
                let _ = reply.write_to(&mut client);
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                let _ = Reply::new(502).write_to(&mut client);
                return;
            };
            let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
            for (k, v) in &req.headers {
                if k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("connection") {
                    continue;
                }
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("Connection: close\r\n\r\n");
            if up.write_all(head.as_bytes()).is_err() || up.write_all(&rest).is_err() {
                return;
            }
            let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), up.try_clone()) else {
                return;
            };
            let upload = std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut u2);
            });
            let _ = std::io::copy(&mut up, &mut client);
            let _ = client.shutdown(Shutdown::Both);
            let _ = up.shutdown(Shutdown::Both);
            let _ = upload.join();
        })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request head (and, when `whole_body`, its `Content-Length` body). Returns
/// the request and the bytes read past the head. A TLS hello or garbage closes.
fn read_request(s: &mut TcpStream, whole_body: bool) -> Option<(Request, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf[0] == 0x16 {
            return None; // a TLS ClientHello: this server speaks plain HTTP
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut req = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if whole_body {
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while rest.len() < len {
            let n = s.read(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        req.body = std::mem::take(&mut rest);
    }
    Some((req, rest))
}

// ---- a bearer token server ----

/// A token server at `/token`: a GET with the right basic credentials, or a POST with
/// the right refresh token, gets `token`; anything else a 401. Records the scopes asked.
pub(crate) struct TokenServer {
    pub server: TestServer,
    pub scopes: Arc<Mutex<Vec<String>>>,
}

impl TokenServer {
    pub(crate) fn start(user: &str, pass: &str, refresh: &str, token: &str) -> TokenServer {
        let basic = super::auth::basic_header(&Credentials::basic(user, pass));
        let (refresh, token) = (refresh.to_string(), token.to_string());
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let seen = scopes.clone();
        let server = TestServer::start(move |req| {
            if req.path() != "/token" {
                return Reply::new(404);
            }
            let ok = match req.method.as_str() {
                "GET" => {
                    seen.lock().unwrap().extend(req.query("scope"));
                    req.header("authorization") == Some(basic.as_str())
                }
                "POST" => {
                    let form = String::from_utf8_lossy(&req.body).to_string();
                    seen.lock().unwrap().extend(form_values(&form, "scope"));
                    form_values(&form, "grant_type") == ["refresh_token"]
                        && form_values(&form, "refresh_token") == [refresh.clone()]
                }
                _ => false,
            };
            if !ok {
                return Reply::new(401).body(r#"{"details":"bad credentials"}"#);
            }
            let key = if req.method == "POST" {
                "access_token"
            } else {
                "token"
            };
            Reply::new(200)
                .header("Content-Type", "application/json")
                .body(format!(r#"{{"{key}":"{token}","expires_in":300}}"#))
        });
        TokenServer { server, scopes }
    }

    pub(crate) fn realm(&self) -> String {
        format!("http://{}/token", self.server.host())
    }
}

// ---- test images ----

/// An image's blobs and manifest, deterministic from a seed.
pub(crate) struct TestImage {
    pub config: Bytes,
    pub layers: Vec<Bytes>,
    pub manifest: Bytes,
}

impl TestImage {
    pub(crate) fn new(seed: u64, layer_sizes: &[usize]) -> TestImage {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let layers: Vec<Bytes> = layer_sizes
            .iter()
            .map(|&n| {
                let mut v = Vec::with_capacity(n);
                while v.len() < n {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.extend_from_slice(&x.to_le_bytes());
                }
                v.truncate(n);
                Bytes::from(v)
            })
            .collect();
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| format!("\"{}\"", Digest::of_bytes(l)))
            .collect();
        let config = Bytes::from(format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            diff_ids.join(",")
        ));
        let desc = |mt: &str, b: &Bytes| {
            format!(
                r#"{{"mediaType":"{mt}","digest":"{}","size":{}}}"#,
                Digest::of_bytes(b),
                b.len()
            )
        };
        let layer_descs: Vec<String> = layers
            .iter()
            .map(|l| desc(media::OCI_LAYER_GZIP, l))
            .collect();
        let manifest = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
            media::OCI_MANIFEST,
            desc(media::OCI_CONFIG, &config),
            layer_descs.join(",")
        ));
        TestImage {
            config,
            layers,
            manifest,
        }
    }

    pub(crate) fn blobs(&self) -> Vec<Bytes> {
        let mut all = vec![self.config.clone()];
        all.extend(self.layers.iter().cloned());
        all
    }

    pub(crate) fn manifest_digest(&self) -> Digest {
        Digest::of_bytes(&self.manifest)
    }

    /// Pushes blobs (those missing) and the manifest under `target`'s tag.
    pub(crate) async fn push(
        &self,
        client: &RegistryClient,
        target: &Reference,
        creds: Option<&Credentials>,
    ) -> crate::Result<Digest> {
        for b in self.blobs() {
            let d = Digest::of_bytes(&b);
            if !client.blob_exists(target, &d, creds).await? {
                let size = u64::try_from(b.len()).unwrap();
                client.push_blob(target, &d, size, b, creds).await?;
            }
        }
        client
            .push_manifest(target, media::OCI_MANIFEST, self.manifest.clone(), creds)
            .await
    }
}
