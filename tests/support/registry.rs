//! Registries for pull and push tests: a real `docker-registry` on 127.0.0.1 with a
//! random port and its own temporary storage ([`TestRegistry`], killed by its pid on
//! drop), images copied into it with `skopeo` ([`skopeo_push`]), and a [`Proxy`] in
//! front of it that can corrupt, cut or stall one blob's body and records the `Range`
//! headers it saw.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The docker-registry binary, if installed.
pub fn registry_binary() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/docker-registry");
    p.is_file().then_some(p)
}

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    free_port()
}

/// A docker-registry serving 127.0.0.1:<port> from a temporary directory.
pub struct TestRegistry {
    child: Child,
    /// Its port.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts one and waits until it answers.
    pub fn start() -> TestRegistry {
        Self::start_with(None)
    }

    /// Starts one that wants basic auth from the users of an htpasswd file (bcrypt).
    pub fn with_htpasswd(htpasswd: &Path) -> TestRegistry {
        Self::start_with(Some(htpasswd))
    }

    /// Starts one serving HTTPS only, with this certificate and key.
    pub fn with_tls(cert: &Path, key: &Path) -> TestRegistry {
        Self::start_full(None, Some((cert, key)))
    }

    fn start_with(htpasswd: Option<&Path>) -> TestRegistry {
        Self::start_full(htpasswd, None)
    }

    fn start_full(htpasswd: Option<&Path>, tls: Option<(&Path, &Path)>) -> TestRegistry {
        let bin = registry_binary().expect("docker-registry is installed");
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             health:\n  storagedriver:\n    enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n",
            dir.path().join("data").display()
        );
        let mut config = config;
        if let Some((cert, key)) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(h) = htpasswd {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                h.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let mut reg = TestRegistry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = reg.child.try_wait() {
                panic!("docker-registry exited with {status}:\n{}", reg.log());
            }
            if answers(port) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on port {port}:\n{}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        reg
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        // Child::kill signals exactly this child's pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn answers(port: u16) -> bool {
    let addr = ([127, 0, 0, 1], port).into();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n > 0)
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with `openssl` in
/// `dir`: (ca.crt, server.crt, server.key).
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::write(
        dir.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n\
         [dn]\nCN = berth test CA\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )
    .expect("write ca.cnf");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
         keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .expect("write server.ext");
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let steps = [
        format!(
            "req -x509 -config {} {ec} -keyout {} -out {} -days 2",
            p("ca.cnf"),
            p("ca.key"),
            p("ca.crt")
        ),
        format!(
            "req -new -config {} -subj /CN=127.0.0.1 {ec} -keyout {} -out {}",
            p("ca.cnf"),
            p("server.key"),
            p("server.csr")
        ),
        format!(
            "x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -out {} -days 2 -extfile {}",
            p("server.csr"),
            p("ca.crt"),
            p("ca.key"),
            p("server.crt"),
            p("server.ext")
        ),
    ];
    for step in steps {
        let out = Command::new("openssl")
            .args(step.split(' '))
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl {step} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

/// An htpasswd file in `dir` with a bcrypt entry for `user`.
pub fn htpasswd_file(dir: &Path, user: &str, pass: &str) -> PathBuf {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, pass])
        .output()
        .expect("running htpasswd (apache2-utils)");
    assert!(out.status.success(), "htpasswd failed");
    let path = dir.join("htpasswd");
    std::fs::write(&path, out.stdout).expect("write htpasswd");
    path
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
