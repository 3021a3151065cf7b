//! [`TestDaemon`]: a real `berthd` process on its own temporary directories.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use berth_http::client::Client;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::bins::{bin, run_with_timeout};

/// How long a daemon may take to answer `/v1/healthz` after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to exit after SIGTERM (its HTTP shutdown timeout is 5 s).
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// The bearer token of daemons started with [`Options::tcp`].
pub const TOKEN: &str = "berth-test-token-0123456789abcdef";

/// How to start a [`TestDaemon`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    config: Option<String>,
    args: Vec<String>,
    tcp: bool,
}

impl Options {
    /// A configuration file with this TOML text (passed as `--config`).
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_string());
        self
    }

    /// An extra flag for berthd.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Also serve TCP on a free port of 127.0.0.1, with `--token-file` holding [`TOKEN`].
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// Starts the daemon and waits until it answers.
    pub fn start(self) -> TestDaemon {
        TestDaemon::with_options(self)
    }
}

/// A `berthd` on a fresh temporary directory (`root/`, `state/`, socket
/// `state/berth.sock`, its log in `berthd.log`). Dropping it removes its containers
/// (through the API while it runs, then by hand: shims, runtime state, mounts,
/// cgroups), kills its process (by pid) and removes the directory; if the test is
/// failing, the log is printed first (and the directory kept when `BERTH_TEST_KEEP` is
/// set). Leftovers that even that cannot remove fail the test.
pub struct TestDaemon {
    dir: Option<TempDir>,
    root: PathBuf,
    state: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    config_file: Option<PathBuf>,
    token_file: Option<PathBuf>,
    tcp_addr: Option<String>,
    extra_args: Vec<String>,
    child: Option<Child>,
    starts: u32,
    bridge: String,
    subnet: String,
}

impl TestDaemon {
    /// A daemon with default options.
    pub fn start() -> TestDaemon {
        Options::default().start()
    }

    /// Options to start a daemon with.
    pub fn builder() -> Options {
        Options::default()
    }

    fn with_options(opts: Options) -> TestDaemon {
        let dir = tempfile::Builder::new()
            .prefix("berth-it-")
            .tempdir()
            .expect("creating a temporary directory");
        let base = dir.path().to_path_buf();
        // Every daemon gets a default network of its own (bridge and subnet), so that
        // daemons of tests running side by side never share one.
        static NEXT_NET: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT_NET.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let bridge = format!("bi{:05}x{:03}", pid % 100_000, n % 1000);
        let subnet = format!("10.{}.{}.0/24", 232 + pid % 8, n % 256);
        let mut text = opts.config.unwrap_or_default();
        if !text.contains("[network]") {
            text.push_str(&format!(
                "\n[network]\ndefault_bridge = \"{bridge}\"\ndefault_subnet = \"{subnet}\"\n"
            ));
        }
        let config_file = {
            let p = base.join("berthd.toml");
            std::fs::write(&p, text).expect("writing the config file");
            Some(p)
        };
        let token_file = opts.tcp.then(|| {
            let p = base.join("token");
            std::fs::write(&p, format!("{TOKEN}\n")).expect("writing the token file");
            p
        });
        let mut d = TestDaemon {
            root: base.join("root"),
            state: base.join("state"),
            socket: base.join("state").join("berth.sock"),
            log: base.join("berthd.log"),
            dir: Some(dir),
            config_file,
            token_file,
            tcp_addr: None,
            extra_args: opts.args,
            child: None,
            starts: 0,
            bridge,
            subnet,
        };
        if opts.tcp {
            // berthd does not report the port it bound, so pick a free one; another
            // process may take it meanwhile, hence the retries.
            for attempt in 1.. {
                d.tcp_addr = Some(free_tcp_addr());
                match d.spawn_and_wait() {
                    Ok(()) => break,
                    Err(status) if attempt < 5 && d.log_text().contains("binding TCP") => {
                        eprintln!(
                            "berthd could not bind {:?} ({status}); retrying",
                            d.tcp_addr
                        );
                    }
                    Err(status) => d.died(status),
                }
            }
        } else if let Err(status) = d.spawn_and_wait() {
            d.died(status);
        }
        d
    }

    /// The temporary directory holding everything.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the directory exists").path()
    }

    /// `--root`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `--state`.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `host:port` of the TCP listener, if started with [`Options::tcp`].
    pub fn tcp_addr(&self) -> Option<&str> {
        self.tcp_addr.as_deref()
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the daemon process is running (spawned and not yet waited for).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A client of the unix socket.
    pub fn client(&self) -> Client {
        Client::unix(&self.socket)
    }

    /// A client of the TCP listener with the given token.
    pub fn tcp_client(&self, token: Option<&str>) -> Client {
        let addr = self.tcp_addr().expect("the daemon was started with .tcp()");
        Client::new(&format!("tcp://{addr}"), token.map(String::from)).expect("a valid host")
    }

    /// Everything the daemon wrote to stderr so far (across restarts).
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The flags this daemon runs with.
    pub fn berthd_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--root".into(),
            self.root.clone().into(),
            "--state".into(),
            self.state.clone().into(),
        ];
        if let Some(c) = &self.config_file {
            args.push("--config".into());
            args.push(c.clone().into());
        }
        if let (Some(addr), Some(token)) = (&self.tcp_addr, &self.token_file) {
            args.push("--tcp".into());
            args.push(addr.into());
            args.push("--token-file".into());
            args.push(token.clone().into());
        }
        args.extend(self.extra_args.iter().map(OsString::from));
        args
    }

    fn spawn_and_wait(&mut self) -> Result<(), ExitStatus> {
        assert!(self.child.is_none(), "berthd is already running");
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening the daemon log");
        let _ = writeln!(log, "===== berthd start #{} =====", self.starts);
        let child = Command::new(bin("berthd"))
            .args(self.berthd_args())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawning berthd");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("spawned above");
            if let Some(status) = child.try_wait().expect("polling berthd") {
                self.child = None;
                return Err(status);
            }
            if healthz_ok(&self.socket) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill_child();
                panic!(
                    "berthd did not answer /v1/healthz on {} within {READY_TIMEOUT:?}; log:\n{}",
                    self.socket.display(),
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn died(&self, status: ExitStatus) -> ! {
        panic!(
            "berthd exited ({status}) before it was ready; log:\n{}",
            self.log_text()
        )
    }

    fn signal(&self, sig: Signal) {
        let child = self.child.as_ref().expect("berthd is running");
        let pid = i32::try_from(child.id()).expect("pids fit in i32");
        kill(Pid::from_raw(pid), sig).unwrap_or_else(|e| panic!("sending {sig} to {pid}: {e}"));
    }

    fn kill_child(&mut self) {
        if self.child.is_some() {
            self.signal(Signal::SIGKILL);
            let _ = self.child.take().map(|mut c| c.wait());
        }
    }

    /// SIGKILL, then waits for the process to be gone.
    pub fn kill_9(&mut self) {
        self.signal(Signal::SIGKILL);
        let status = self
            .child
            .take()
            .expect("berthd is running")
            .wait()
            .expect("waiting for berthd");
        assert!(!status.success(), "berthd survived SIGKILL: {status}");
    }

    /// SIGTERM, then waits for the exit and returns its status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("berthd is running");
            if let Some(status) = child.try_wait().expect("waiting for berthd") {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                self.kill_child();
                panic!(
                    "berthd did not exit within {EXIT_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the daemon again on the same directories and flags.
    pub fn restart(&mut self) {
        if let Err(status) = self.spawn_and_wait() {
            self.died(status);
        }
    }

    /// Runs another berthd with this daemon's flags plus `extra` to completion (it must
    /// exit within 20 s).
    pub fn run_another_berthd(&self, extra: &[&str]) -> Output {
        run_with_timeout(
            Command::new(bin("berthd"))
                .args(self.berthd_args())
                .args(extra)
                .env("NO_COLOR", "1"),
            Duration::from_secs(20),
        )
    }

    /// Runs the `berth` CLI against this daemon's socket.
    pub fn cli(&self, args: &[&str]) -> Output {
        run_with_timeout(
            Command::new(bin("berth"))
                .arg("--host")
                .arg(format!("unix://{}", self.socket.display()))
                .args(args)
                .env_remove("BERTH_HOST")
                .env_remove("BERTH_TOKEN_FILE"),
            Duration::from_secs(30),
        )
    }
}

impl TestDaemon {
    /// Removes what this daemon's containers left (their shims outlive the daemon by
    /// design): a live daemon is asked to force-delete each container first; then the
    /// daemon is killed and whatever remains — shims, runtime containers, processes in
    /// their cgroups, mounts under [`TestDaemon::dir`], cgroups — is removed by hand.
    /// Returns what even that could not remove.
    fn clean_up_containers(&mut self) -> crate::containers::Leftovers {
        let has_containers = !crate::containers::bundle_ids(&self.state).is_empty();
        if self.child.is_none() && has_containers {
            // A killed daemon's containers still hold addresses, veths and port rules
            // that only CNI DEL releases: started again, it settles them (and the API
            // deletes them below). If it cannot start, the manual clean-up follows.
            if let Err(status) = self.spawn_and_wait() {
                eprintln!("cleanup: berthd did not start again ({status})");
            }
        }
        if self.child.is_some() && has_containers {
            crate::containers::delete_through_api(&self.state, &self.socket);
        }
        self.kill_child();
        let dir = self.dir().to_path_buf();
        let mut left = crate::containers::force_cleanup(&dir, &self.state);
        // Bridges this daemon's networks made (the default one, and test networks
        // named after it).
        for b in crate::containers::bridges_with_prefix(&self.bridge) {
            if let Err(e) = crate::containers::remove_link(&b) {
                left.other.push(format!("bridge {b}: {e}"));
            }
        }
        left
    }

    /// The default network's bridge (unique to this daemon). Networks a test creates
    /// should take bridges named with this prefix, so the daemon's drop removes them.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The default network's subnet (a /24 unique to this daemon).
    pub fn subnet(&self) -> &str {
        &self.subnet
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        let left = self.clean_up_containers();
        if std::thread::panicking() {
            eprintln!(
                "----- berthd log ({}) -----\n{}----- end of berthd log -----",
                self.log.display(),
                self.log_text()
            );
            if std::env::var_os("BERTH_TEST_KEEP").is_some() {
                if let Some(dir) = self.dir.take() {
                    eprintln!("keeping {}", dir.keep().display());
                }
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        if !left.is_empty() {
            let msg = format!("containers' leftovers could not be removed: {left:#?}");
            if std::thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// True when `GET /v1/healthz` on `socket` answers 200.
fn healthz_ok(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v1/healthz HTTP/1.1\r\nHost: berthd\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200")
}

/// `127.0.0.1:PORT` with a port that was free a moment ago.
pub fn free_tcp_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let addr = l.local_addr().expect("local address");
    addr.to_string()
}
