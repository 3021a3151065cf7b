//! The docker-registry test harness shared by the engine's unit tests
//! (`engine/src/registry/testutil.rs`) and the end-to-end tests
//! (`tests/support/registry.rs`), so both start, wait for and stop registries the same
//! way. It depends on no berth crate.
//!
//! - [`TestRegistry`]: a real `docker-registry` (Debian's `/usr/bin/docker-registry`,
//!   else the first on `PATH`) serving `127.0.0.1:<random port>` from its own temporary
//!   directory, optionally with basic auth ([`RegistryOpts::htpasswd`]) or HTTPS only
//!   ([`RegistryOpts::tls`]); started and waited for until `/v2/` answers, killed by its
//!   pid and removed on drop.
//! - [`make_certs`]: a CA and a server certificate for 127.0.0.1 signed by it (`openssl`).
//! - [`htpasswd_file`]: an htpasswd file with a bcrypt entry (`htpasswd`, apache2-utils).
//! - [`free_port`], [`answers`], [`registry_binary`].
//!
//! Each needs an outside tool. The plain functions panic when it is missing (for tests
//! that require it); the `try_` ones print `skipping: <why>` to stderr and return `None`
//! (for tests that pass without it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`TestRegistry`] waits for a new registry to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The docker-registry binary: `/usr/bin/docker-registry`, else the first
/// `docker-registry` on `PATH`; `None` if not installed.
pub fn registry_binary() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/docker-registry");
    if p.is_file() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("docker-registry"))
            .find(|p| p.is_file())
    })
}

/// Prints why a test does nothing and returns `None`.
fn skip<T>(why: &str) -> Option<T> {
    eprintln!("skipping: {why}");
    None
}

const NO_REGISTRY: &str = "docker-registry is not installed (apt-get install docker-registry)";
const NO_HTPASSWD: &str = "htpasswd is not installed (apt-get install apache2-utils)";
const NO_OPENSSL: &str = "openssl is not installed";

/// A port on 127.0.0.1 that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Whether something on `127.0.0.1:<port>` answers a `GET /v2/` with any bytes (a TLS
/// registry answers plain HTTP with a 400, which counts).
pub fn answers(port: u16) -> bool {
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

/// How to start a [`TestRegistry`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOpts {
    /// An htpasswd file (bcrypt) for basic auth.
    pub htpasswd: Option<PathBuf>,
    /// Certificate and key for TLS (the registry then serves HTTPS only).
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A docker-registry serving 127.0.0.1:<port> from a temporary directory; killed (by
/// its pid) and the directory removed on drop.
pub struct TestRegistry {
    child: Child,
    /// Its port.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts a plain one (HTTP, no auth) and waits until it answers; panics if
    /// docker-registry is missing.
    pub fn start() -> TestRegistry {
        Self::start_with(RegistryOpts::default())
    }

    /// Starts one that wants basic auth from the users of an htpasswd file (bcrypt).
    pub fn with_htpasswd(htpasswd: &Path) -> TestRegistry {
        Self::start_with(RegistryOpts {
            htpasswd: Some(htpasswd.to_path_buf()),
            ..RegistryOpts::default()
        })
    }

    /// Starts one serving HTTPS only, with this certificate and key.
    pub fn with_tls(cert: &Path, key: &Path) -> TestRegistry {
        Self::start_with(RegistryOpts {
            tls: Some((cert.to_path_buf(), key.to_path_buf())),
            ..RegistryOpts::default()
        })
    }

    /// Starts one as `opts` say and waits until it answers; panics if docker-registry
    /// is missing.
    pub fn start_with(opts: RegistryOpts) -> TestRegistry {
        let bin = registry_binary().expect("docker-registry is installed");
        Self::spawn(&bin, &opts)
    }

    /// [`TestRegistry::start_with`], or `None` (with the reason printed) when
    /// docker-registry is missing.
    pub fn try_start(opts: RegistryOpts) -> Option<TestRegistry> {
        let Some(bin) = registry_binary() else {
            return skip(NO_REGISTRY);
        };
        Some(Self::spawn(&bin, &opts))
    }

    fn spawn(bin: &Path, opts: &RegistryOpts) -> TestRegistry {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             health:\n  storagedriver:\n    enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key)) = &opts.tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(h) = &opts.htpasswd {
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
        reg.wait_ready();
        reg
    }

    /// Waits until `/v2/` answers anything; panics (with the log) if the registry exits
    /// or does not answer within [`READY_TIMEOUT`].
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited with {status}:\n{}", self.log());
            }
            if answers(self.port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on port {}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
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

// ---- htpasswd files ----

/// Runs `htpasswd -Bbn`: the file's line, or why not.
fn htpasswd_line(user: &str, pass: &str) -> Result<Vec<u8>, String> {
    match Command::new("htpasswd").args(["-Bbn", user, pass]).output() {
        Ok(o) if o.status.success() => Ok(o.stdout),
        Ok(o) => Err(format!(
            "htpasswd failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("running htpasswd (apache2-utils): {e}")),
    }
}

fn write_htpasswd(dir: &Path, line: Vec<u8>) -> PathBuf {
    let path = dir.join("htpasswd");
    std::fs::write(&path, line).expect("write htpasswd");
    path
}

/// An htpasswd file `dir/htpasswd` with a bcrypt entry for `user`; panics if
/// `htpasswd` is missing or fails.
pub fn htpasswd_file(dir: &Path, user: &str, pass: &str) -> PathBuf {
    let line = htpasswd_line(user, pass).unwrap_or_else(|e| panic!("{e}"));
    write_htpasswd(dir, line)
}

/// [`htpasswd_file`], or `None` (with the reason printed) when `htpasswd` is missing or
/// fails.
pub fn try_htpasswd_file(dir: &Path, user: &str, pass: &str) -> Option<PathBuf> {
    match htpasswd_line(user, pass) {
        Ok(line) => Some(write_htpasswd(dir, line)),
        Err(_) => skip(NO_HTPASSWD),
    }
}

// ---- certificates ----

/// `(ca.crt, server.crt, server.key)`.
pub type Certs = (PathBuf, PathBuf, PathBuf);

/// A CA and a server certificate for 127.0.0.1 signed by it, made with `openssl` in
/// `dir`: (ca.crt, server.crt, server.key). Panics if openssl is missing or fails.
pub fn make_certs(dir: &Path) -> Certs {
    openssl_certs(dir).unwrap_or_else(|e| panic!("running openssl: {e}"))
}

/// [`make_certs`], or `None` (with the reason printed) when openssl is missing; still
/// panics if openssl fails.
pub fn try_make_certs(dir: &Path) -> Option<Certs> {
    openssl_certs(dir).ok().or_else(|| skip(NO_OPENSSL))
}

/// [`make_certs`]; `Err` only when openssl cannot be run at all.
fn openssl_certs(dir: &Path) -> std::io::Result<Certs> {
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
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ]
    .map(String::from);
    let s = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // One argument per element, never split on spaces (temp paths may contain them).
    let steps: [Vec<String>; 3] = [
        [
            s(&["req", "-x509", "-config", &p("ca.cnf")]),
            ec.to_vec(),
            s(&["-keyout", &p("ca.key"), "-out", &p("ca.crt"), "-days", "2"]),
        ]
        .concat(),
        [
            s(&[
                "req",
                "-new",
                "-config",
                &p("ca.cnf"),
                "-subj",
                "/CN=127.0.0.1",
            ]),
            ec.to_vec(),
            s(&["-keyout", &p("server.key"), "-out", &p("server.csr")]),
        ]
        .concat(),
        s(&[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("server.crt"),
            "-days",
            "2",
            "-extfile",
            &p("server.ext"),
        ]),
    ];
    for args in steps {
        let out = Command::new("openssl").args(&args).output()?;
        assert!(
            out.status.success(),
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    ))
}
