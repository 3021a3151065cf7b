//! Registries for pull and push tests: a real `docker-registry` on 127.0.0.1 with a
//! random port and its own temporary storage ([`TestRegistry`], killed by its pid on
//! drop; with [`make_certs`] and [`htpasswd_file`] re-exported from
//! `berth-test-harness`, shared with the engine's unit tests), images copied into it
//! with `skopeo` ([`skopeo_push`]), and a [`Proxy`] in front of it that can corrupt,
//! cut or stall one blob's body and records the `Range` headers it saw.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use berth_test_harness::free_port;
pub use berth_test_harness::{
    htpasswd_file, make_certs, registry_binary, RegistryOpts, TestRegistry,
};

/// Whether the registry tests can run here (docker-registry and skopeo installed);
/// prints why not.
pub fn available() -> bool {
    if registry_binary().is_none() {
        eprintln!("skipping: docker-registry is not installed (apt-get install docker-registry)");
        return false;
    }
    if !Path::new("/usr/bin/skopeo").is_file() {
        eprintln!("skipping: skopeo is not installed");
        return false;
    }
    true
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    free_port()
}

/// Copies an OCI archive into a registry with skopeo (`--all` keeps an index whole).
pub fn skopeo_push(archive: &Path, target: &str) {
    skopeo_push_as(archive, target, None);
}

/// [`skopeo_push`] with `user:password` credentials.
pub fn skopeo_push_as(archive: &Path, target: &str, creds: Option<&str>) {
    let mut cmd = Command::new("skopeo");
    if let Some(c) = creds {
        cmd.args(["copy", "--dest-creds", c]);
    } else {
        cmd.arg("copy");
    }
    let out = cmd
        .args([
            "--all",
            "--quiet",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker://{target}"))
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo copy to {target} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the proxy does to the body of one blob (`GET …/blobs/<digest>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// Flip one byte of the blob's body (every time it is served).
    Corrupt(String),
    /// Close the connection after this many body bytes, the first time only.
    DropOnce(String, u64),
    /// Stop sending after this many body bytes and hold the connection until the
    /// proxy is dropped (or [`Proxy::release`]).
    Stall(String, u64),
}

/// An HTTP proxy on 127.0.0.1 in front of a registry (berthd is pointed at it as if it
/// were the registry): one request per connection, `Connection: close` both ways.
pub struct Proxy {
    /// Its port.
    pub port: u16,
    stop: Arc<AtomicBool>,
    released: Arc<AtomicBool>,
    ranges: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<String>>>,
    faulted: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy to `127.0.0.1:<upstream>` applying `fault`.
    pub fn start(upstream: u16, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let released = Arc::new(AtomicBool::new(false));
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let faulted = Arc::new(AtomicU64::new(0));
        let (st, rel, rg, fa, rq) = (
            stop.clone(),
            released.clone(),
            ranges.clone(),
            faulted.clone(),
            requests.clone(),
        );
        let fault = Arc::new(fault);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, rel, rg, fa, rq, fault) = (
                    st.clone(),
                    rel.clone(),
                    rg.clone(),
                    fa.clone(),
                    rq.clone(),
                    fault.clone(),
                );
                std::thread::spawn(move || {
                    serve(conn, upstream, &fault, &st, &rel, &rg, &fa, &rq);
                });
            }
        });
        Proxy {
            port,
            stop,
            released,
            ranges,
            requests,
            faulted,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `Range` headers requests carried.
    pub fn ranges(&self) -> Vec<String> {
        self.ranges.lock().unwrap().clone()
    }

    /// The request lines (`GET /v2/… HTTP/1.1`) it served.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// How many times the fault was applied (stall: reached).
    pub fn faulted(&self) -> u64 {
        self.faulted.load(Ordering::SeqCst)
    }

    /// Lets stalled bodies continue.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.released.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads up to the end of a head (`\r\n\r\n`); returns the head and what followed it.
fn read_head(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf[0] == 0x16 {
            // A TLS ClientHello (a client trying HTTPS first): this proxy speaks plain
            // HTTP, so close at once and let the client fall back.
            return None;
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_string();
            return Some((head, buf[i + 4..].to_vec()));
        }
        if buf.len() > 256 * 1024 {
            return None;
        }
    }
}

/// The head with `Connection: close` instead of any `Connection` header.
fn close_head(head: &str) -> String {
    let mut out = String::new();
    for line in head.split("\r\n") {
        if line
            .split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

#[allow(clippy::too_many_arguments)]
fn serve(
    mut client: TcpStream,
    upstream: u16,
    fault: &Fault,
    stop: &AtomicBool,
    released: &AtomicBool,
    ranges: &Mutex<Vec<String>>,
    faulted: &AtomicU64,
    requests: &Mutex<Vec<String>>,
) {
    let Some((head, rest)) = read_head(&mut client) else {
        return;
    };
    let first = head.lines().next().unwrap_or("").to_string();
    requests.lock().unwrap().push(first.clone());
    for line in head.split("\r\n") {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                ranges.lock().unwrap().push(v.trim().to_string());
            }
        }
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        let _ = client.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    };
    if up.write_all(close_head(&head).as_bytes()).is_err() || up.write_all(&rest).is_err() {
        return;
    }
    // Request bodies (pushes) are copied on their own thread.
    if let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), up.try_clone()) {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut u2);
        });
    }
    let Some((resp_head, mut body)) = read_head(&mut up) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let target = match fault {
        Fault::None => None,
        Fault::Corrupt(d) | Fault::DropOnce(d, _) | Fault::Stall(d, _) => {
            let ok = resp_head.starts_with("HTTP/1.1 200") || resp_head.starts_with("HTTP/1.1 206");
            (first.starts_with("GET ") && first.contains(&format!("/blobs/{d}")) && ok)
                .then_some(())
        }
    };
    if client.write_all(close_head(&resp_head).as_bytes()).is_err() {
        return;
    }
    let mut sent = 0u64;
    let mut chunk = vec![0u8; 16384];
    loop {
        if body.is_empty() {
            match up.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        let mut piece = std::mem::take(&mut body);
        if target.is_some() {
            match fault {
                Fault::Corrupt(_) => {
                    let at = 100u64;
                    let end = sent + u64::try_from(piece.len()).unwrap();
                    if sent <= at && at < end {
                        let i = usize::try_from(at - sent).unwrap();
                        piece[i] ^= 0xff;
                        faulted.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Fault::DropOnce(_, after) | Fault::Stall(_, after) => {
                    let end = sent + u64::try_from(piece.len()).unwrap();
                    if end > *after {
                        let keep = usize::try_from(after.saturating_sub(sent)).unwrap();
                        let stall = matches!(fault, Fault::Stall(..));
                        if stall || faulted.load(Ordering::SeqCst) == 0 {
                            faulted.fetch_add(1, Ordering::SeqCst);
                            let _ = client.write_all(&piece[..keep]);
                            let _ = client.flush();
                            if stall {
                                while !released.load(Ordering::SeqCst)
                                    && !stop.load(Ordering::SeqCst)
                                {
                                    std::thread::sleep(Duration::from_millis(20));
                                }
                                if stop.load(Ordering::SeqCst) {
                                    let _ = client.shutdown(Shutdown::Both);
                                    return;
                                }
                                piece.drain(..keep);
                                sent += u64::try_from(keep).unwrap();
                            } else {
                                let _ = client.shutdown(Shutdown::Both);
                                let _ = up.shutdown(Shutdown::Both);
                                return;
                            }
                        }
                    }
                }
                Fault::None => {}
            }
        }
        if client.write_all(&piece).is_err() {
            break;
        }
        sent += u64::try_from(piece.len()).unwrap();
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
}
