//! `berth-shim serve <bundle>`: the shim itself.
//!
//! Threads: the main thread accepts connections (one short-lived thread with a small
//! stack per connection), the reaper reaps every child, two pumps copy the container's
//! stdout and stderr into its log, and the monitor waits for the container's init to
//! exit, then records the exit (after the pumps have drained its output) and answers
//! the waiters.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use oci_spec::runtime::{Process, Spec};

use super::cgroup::OomCounter;
use super::launch::Readiness;
use super::proto::{
    read_frame, write_frame, ExecOutput, ExecRequest, Request, Response, ShimState, ShimStatus,
    MAX_EXEC_OUTPUT,
};
use super::reaper::Reaper;
use super::{write_durable, ShimConfig, PID_FILE};
use crate::container::ExitStatus;
use crate::logs::{LogConfig, LogWriter, Stream};
use crate::runtime::{exit_code, ProcessIo, Runc, Runtime};
use crate::{EngineError, ErrorKind};

/// Stack of the threads the shim starts (connections, pumps, monitor, exec drains).
const STACK: usize = 64 * 1024;

/// Stack of the thread that parses the container's process for the first exec.
const BIG_STACK: usize = 2 << 20;

/// How long the exit waits for the log pumps to reach the end of the output.
const PUMP_GRACE: Duration = Duration::from_secs(2);

/// How long a connection may take to send its request, and to take the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an exec's output is drained after the process exited (a process it left
/// behind may hold the pipes open).
const EXEC_DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How long a forced shutdown waits for the killed container to exit.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Writes one line to the shim's stderr (`<bundle>/shim.log`).
fn diag(msg: std::fmt::Arguments<'_>) {
    let _ = writeln!(
        io::stderr(),
        "{} berth-shim[{}]: {msg}",
        Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        std::process::id()
    );
}

/// `berth-shim serve <bundle>`: becomes a session leader and child subreaper, binds the
/// control socket, creates the container (`runc create`; `runc run --detach` when
/// [`ShimConfig::start`] asks for it started) with its output piped into the log,
/// reports readiness on stdout (one JSON line; then stdout is `/dev/null`) and serves
/// until a [`Request::Shutdown`] ends the process. Returns only when it could
/// not start; it has then cleaned up (no runtime state, no socket).
pub fn serve(bundle: &Path) -> Result<(), EngineError> {
    // Fails only if we already lead a process group: then we are detached enough.
    let _ = nix::unistd::setsid();
    let started = setup(bundle);
    let report = match &started {
        Ok((shim, _)) => Readiness::Ready {
            shim_pid: shim.shim_pid,
            init_pid: shim.init_pid,
        },
        Err(e) => Readiness::failed(e),
    };
    report_readiness(&report);
    let (shim, listener) = started?;
    diag(format_args!(
        "serving container {} (init pid {}) on {}",
        shim.config.id,
        shim.init_pid,
        shim.config.socket.display()
    ));
    accept(&shim, &listener);
    Ok(())
}

/// Writes the readiness line to stdout (the pipe `start` reads), then points stdout at
/// `/dev/null`, so `start` sees the end of the pipe.
fn report_readiness(report: &Readiness) {
    let mut stdout = io::stdout();
    let _ = stdout
        .write_all(report.to_line().as_bytes())
        .and_then(|()| stdout.flush());
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null);
    }
}

fn accept(shim: &Arc<Shim>, listener: &UnixListener) {
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let shim = Arc::clone(shim);
                let spawned = std::thread::Builder::new()
                    .name("conn".into())
                    .stack_size(STACK)
                    .spawn(move || shim.connection(conn));
                if let Err(e) = spawned {
                    diag(format_args!("cannot start a connection thread: {e}"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                diag(format_args!("accept on the control socket: {e}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Removes the socket when dropped, unless disarmed.
struct SocketGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn setup(bundle: &Path) -> Result<(Arc<Shim>, UnixListener), EngineError> {
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| EngineError::Internal(format!("become a child subreaper: {e}")))?;
    let config = ShimConfig::load(bundle)?;
    let listener = bind(&config.socket)?;
    let mut socket_guard = SocketGuard {
        path: config.socket.clone(),
        armed: true,
    };
    // The socket is ours: an exit file left there is an earlier run's.
    remove_if_exists(&config.exit_file)?;
    if let Some(dir) = config.log_path.parent() {
        fs::create_dir_all(dir).map_err(|e| internal("create", dir, &e))?;
    }
    let log = LogWriter::open(LogConfig {
        path: config.log_path.clone(),
        max_size: config.log_max_size,
        max_files: config.log_max_files,
    })
    .map_err(|e| internal("open container log", &config.log_path, &e))?;
    let reaper = Reaper::start()
        .map_err(|e| EngineError::Internal(format!("start the reaper thread: {e}")))?;
    let runc = Runc::new(&config.runtime, &config.runtime_root)
        .with_waiter(Arc::clone(&reaper) as Arc<dyn crate::runtime::Waiter>)
        .with_log_dir(&config.bundle);

    let pid_file = config.bundle.join(PID_FILE);
    remove_if_exists(&pid_file)?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let io = ProcessIo {
        stdout: out_w,
        stderr: err_w,
    };
    let launched = if config.start {
        runc.run(&config.id, &config.bundle, &pid_file, io)
    } else {
        runc.create(&config.id, &config.bundle, &pid_file, io)
    };
    if let Err(e) = launched {
        // runc may leave a half-created container behind.
        let _ = runc.delete(&config.id, true);
        return Err(e);
    }
    let init_pid = match read_pid(&pid_file) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = runc.delete(&config.id, true);
            return Err(e);
        }
    };
    let oom = OomCounter::of_pid(init_pid).or_else(|| OomCounter::of_spec(&config.bundle));
    match &oom {
        Some(c) => diag(format_args!("OOM kills counted in {}", c.file().display())),
        None => diag(format_args!(
            "no memory cgroup found for pid {init_pid}: OOM kills will not be reported"
        )),
    }
    let started = config.start;
    let shim = Arc::new(Shim {
        config,
        runc,
        reaper,
        init_pid,
        shim_pid: std::process::id(),
        oom,
        exec_spec: OnceLock::new(),
        state: Mutex::new(Inner {
            status: if started {
                ShimStatus::Running
            } else {
                ShimStatus::Created
            },
            exit: None,
            pumps_done: 0,
            deleting: false,
            runtime_deleted: false,
        }),
        changed: Condvar::new(),
        ops: Mutex::new(()),
        exec_seq: AtomicU64::new(0),
    });
    let log = Arc::new(log);
    let threads = spawn_pump(&shim, &log, Stream::Stdout, out_r)
        .and_then(|()| spawn_pump(&shim, &log, Stream::Stderr, err_r))
        .and_then(|()| {
            let s = Arc::clone(&shim);
            std::thread::Builder::new()
                .name("monitor".into())
                .stack_size(STACK)
                .spawn(move || s.monitor())
                .map(drop)
        });
    if let Err(e) = threads {
        let _ = shim.runc.delete(&shim.config.id, true);
        return Err(EngineError::Internal(format!(
            "start the shim's threads: {e}"
        )));
    }
    socket_guard.armed = false;
    drop(socket_guard);
    Ok((shim, listener))
}

fn spawn_pump(
    shim: &Arc<Shim>,
    log: &Arc<LogWriter>,
    stream: Stream,
    pipe: OwnedFd,
) -> io::Result<()> {
    let shim = Arc::clone(shim);
    let log = Arc::clone(log);
    std::thread::Builder::new()
        .name(format!("pump-{stream}"))
        .stack_size(STACK)
        .spawn(move || {
            if let Err(e) = log.pump(stream, File::from(pipe)) {
                diag(format_args!("container {stream}: {e}"));
            }
            shim.lock().pumps_done += 1;
            shim.changed.notify_all();
        })
        .map(drop)
}

/// The bundle's spec reduced to its process, which is all an exec starts from: only
/// the `process` member of `config.json` is parsed (the whole spec, seccomp profile and
/// all, is big, and so is the code that parses it).
fn exec_spec(bundle: &Path) -> Result<Spec, EngineError> {
    #[derive(serde::Deserialize)]
    struct OnlyProcess {
        process: Option<Process>,
    }
    let path = bundle.join(crate::oci::CONFIG_FILE);
    let bytes = fs::read(&path).map_err(|e| internal("read runtime spec", &path, &e))?;
    let only: OnlyProcess = serde_json::from_slice(&bytes)
        .map_err(|e| EngineError::Internal(format!("read runtime spec {}: {e}", path.display())))?;
    let mut spec = Spec::default();
    spec.set_process(only.process);
    spec.set_mounts(None);
    spec.set_linux(None);
    spec.set_root(None);
    Ok(spec)
}

/// Runs `f` on a thread with a large stack (serde's derived deserialisers use deep,
/// wide frames in unoptimised builds), for the rare work the small stacks cannot hold.
fn on_big_stack<T: Send>(
    f: impl FnOnce() -> Result<T, EngineError> + Send,
) -> Result<T, EngineError> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("big-stack".into())
            .stack_size(BIG_STACK)
            .spawn_scoped(scope, f)
            .map_err(|e| EngineError::Internal(format!("start a thread: {e}")))?
            .join()
            .map_err(|_| EngineError::Internal("a shim thread panicked".into()))?
    })
}

fn internal(op: &str, path: &Path, e: &io::Error) -> EngineError {
    EngineError::Internal(format!("{op} {}: {e}", path.display()))
}

fn remove_if_exists(path: &Path) -> Result<(), EngineError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(internal("remove", path, &e)),
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), EngineError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::Internal(format!("create a pipe: {e}")))
}

/// Binds the control socket, mode 0600. A stale socket (nobody accepting) is removed;
/// one a live shim serves is refused.
fn bind(path: &Path) -> Result<UnixListener, EngineError> {
    if UnixStream::connect(path).is_ok() {
        return Err(EngineError::AlreadyExists {
            kind: "shim socket",
            id: path.display().to_string(),
        });
    }
    remove_if_exists(path)?;
    use nix::sys::stat::{umask, Mode};
    // Single-threaded still: the umask change affects nobody else.
    let old = umask(Mode::from_bits_truncate(0o077));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(|e| internal("bind control socket", path, &e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| internal("chmod control socket", path, &e))?;
    Ok(listener)
}

fn read_pid(path: &Path) -> Result<u32, EngineError> {
    let text = fs::read_to_string(path).map_err(|e| internal("read pid file", path, &e))?;
    text.trim()
        .parse()
        .map_err(|_| EngineError::Internal(format!("pid file {} holds {text:?}", path.display())))
}

/// What the shim knows, shared by its threads.
struct Shim {
    config: ShimConfig,
    runc: Runc,
    reaper: Arc<Reaper>,
    init_pid: u32,
    shim_pid: u32,
    oom: Option<OomCounter>,
    /// The container's spec reduced to its process, read at the first exec.
    exec_spec: OnceLock<Result<Spec, EngineError>>,
    state: Mutex<Inner>,
    /// Notified when `state` changes (exit recorded, a pump finished).
    changed: Condvar,
    /// Serialises the runtime operations that change the container's status.
    ops: Mutex<()>,
    exec_seq: AtomicU64,
}

struct Inner {
    status: ShimStatus,
    exit: Option<ExitStatus>,
    pumps_done: u8,
    /// The init has exited and the runtime is deleting the container.
    deleting: bool,
    /// The runtime's container was deleted after the exit (nothing left to delete).
    runtime_deleted: bool,
}

fn error(code: &str, message: impl Into<String>) -> Response {
    Response::Error {
        code: code.into(),
        message: message.into(),
    }
}

/// The answer for a failed runtime operation.
fn runtime_error(e: &EngineError) -> Response {
    let message = e.to_string();
    let code = match e.kind() {
        ErrorKind::InvalidArgument => "invalid",
        ErrorKind::FailedPrecondition
            if message.contains("not running") || message.contains("stopped") =>
        {
            "not_running"
        }
        _ => "runtime",
    };
    error(code, message)
}

impl Shim {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ops(&self) -> MutexGuard<'_, ()> {
        self.ops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn id(&self) -> &str {
        &self.config.id
    }

    fn status(&self) -> ShimStatus {
        self.lock().status
    }

    /// Sets the status unless the container has exited meanwhile.
    fn set_status(&self, status: ShimStatus) {
        let mut inner = self.lock();
        if inner.exit.is_none() {
            inner.status = status;
        }
    }

    fn not_running(&self) -> Response {
        error(
            "not_running",
            format!("container {} is not running", self.id()),
        )
    }

    /// Waits for the init's exit, lets the pumps drain, records the exit durably and
    /// wakes the waiters. Nothing runs in the container any more once its init is
    /// gone, so the runtime deletes it (its state and cgroup; one more runtime
    /// process) meanwhile, on a thread of its own, instead of after the exit is
    /// recorded or on the shutdown that follows (which waits for it).
    fn monitor(&self) {
        let status = self.reaper.wait_pid(self.init_pid);
        // Read before the runtime's delete removes the cgroup.
        let oom_killed = self
            .oom
            .as_ref()
            .and_then(OomCounter::count)
            .is_some_and(|n| n > 0);
        self.lock().deleting = true;
        std::thread::scope(|scope| {
            let deleter = std::thread::Builder::new()
                .name("delete".into())
                .stack_size(STACK)
                .spawn_scoped(scope, || self.runc.delete(self.id(), false).is_ok());
            self.record_exit(status, oom_killed);
            let deleted = match deleter {
                Ok(thread) => thread.join().unwrap_or(false),
                Err(_) => self.runc.delete(self.id(), false).is_ok(),
            };
            let mut inner = self.lock();
            inner.deleting = false;
            inner.runtime_deleted = deleted;
            self.changed.notify_all();
        });
    }

    /// Lets the pumps drain, records the exit durably and wakes the waiters.
    fn record_exit(&self, status: std::process::ExitStatus, oom_killed: bool) {
        {
            let inner = self.lock();
            let (inner, timeout) = self
                .changed
                .wait_timeout_while(inner, PUMP_GRACE, |i| i.pumps_done < 2)
                .unwrap_or_else(PoisonError::into_inner);
            if timeout.timed_out() {
                diag(format_args!(
                    "container {}: output still open {PUMP_GRACE:?} after its exit ({} of 2 streams closed)",
                    self.id(),
                    inner.pumps_done
                ));
            }
        }
        let exit = ExitStatus {
            code: Some(exit_code(status)),
            signal: status.signal(),
            oom_killed,
            at: Utc::now(),
        };
        match serde_json::to_vec(&exit) {
            Ok(body) => {
                if let Err(e) = write_durable(&self.config.exit_file, &body) {
                    diag(format_args!(
                        "record exit in {}: {e}",
                        self.config.exit_file.display()
                    ));
                }
            }
            Err(e) => diag(format_args!("encode exit: {e}")),
        }
        diag(format_args!(
            "container {} exited: code {:?}, signal {:?}, oom killed {}",
            self.id(),
            exit.code,
            exit.signal,
            exit.oom_killed
        ));
        let mut inner = self.lock();
        inner.status = ShimStatus::Stopped;
        inner.exit = Some(exit);
        self.changed.notify_all();
    }

    /// Whether the container's init is gone (its exit recorded, or being recorded
    /// while the runtime deletes the container).
    fn ended(&self) -> bool {
        let inner = self.lock();
        inner.status == ShimStatus::Stopped || inner.deleting
    }

    fn connection(&self, mut conn: UnixStream) {
        let _ = conn.set_read_timeout(Some(REQUEST_TIMEOUT));
        let _ = conn.set_write_timeout(Some(REQUEST_TIMEOUT));
        let (response, exit) = match read_frame::<_, Request>(&mut conn) {
            Ok(req) => self.handle(req),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                (error("invalid", format!("bad request: {e}")), false)
            }
            Err(_) => return,
        };
        let _ = write_frame(&mut conn, &response);
        if exit {
            diag(format_args!("container {} deleted; shim exits", self.id()));
            std::process::exit(0);
        }
    }

    /// Answers a request; `true`: the shim exits after answering.
    fn handle(&self, req: Request) -> (Response, bool) {
        let response = match req {
            Request::State => self.state(),
            Request::Start => self.start(),
            Request::Kill { signal, all } => self.kill(signal, all),
            Request::Pause => self.pause(true),
            Request::Resume => self.pause(false),
            Request::Exec(req) => self.exec(&req),
            Request::Wait => Response::Exited(self.wait()),
            Request::Shutdown { force } => return self.shutdown(force),
        };
        (response, false)
    }

    fn state(&self) -> Response {
        let inner = self.lock();
        Response::State(ShimState {
            id: self.config.id.clone(),
            status: inner.status,
            pid: self.init_pid,
            shim_pid: self.shim_pid,
            exit: inner.exit.clone(),
        })
    }

    fn start(&self) -> Response {
        let _ops = self.ops();
        match self.status() {
            ShimStatus::Created => {}
            ShimStatus::Stopped => return self.not_running(),
            ShimStatus::Running | ShimStatus::Paused => {
                return error(
                    "already_started",
                    format!("container {} is already started", self.id()),
                )
            }
        }
        match self.runc.start(self.id()) {
            Ok(()) => {
                self.set_status(ShimStatus::Running);
                Response::Ok
            }
            Err(e) => runtime_error(&e),
        }
    }

    fn kill(&self, signal: i32, all: bool) -> Response {
        let _ops = self.ops();
        if self.ended() {
            return self.not_running();
        }
        match self.runc.kill(self.id(), signal, all) {
            Ok(()) => Response::Ok,
            Err(e) => runtime_error(&e),
        }
    }

    fn pause(&self, pause: bool) -> Response {
        let _ops = self.ops();
        if self.ended() {
            return self.not_running();
        }
        match self.status() {
            ShimStatus::Stopped => return self.not_running(),
            ShimStatus::Created => {
                return error(
                    "not_running",
                    format!("container {} is not started", self.id()),
                )
            }
            ShimStatus::Running | ShimStatus::Paused => {}
        }
        let (done, status) = if pause {
            (self.runc.pause(self.id()), ShimStatus::Paused)
        } else {
            (self.runc.resume(self.id()), ShimStatus::Running)
        };
        match done {
            Ok(()) => {
                self.set_status(status);
                Response::Ok
            }
            Err(e) => runtime_error(&e),
        }
    }

    fn wait(&self) -> ExitStatus {
        let mut inner = self.lock();
        loop {
            if let Some(exit) = &inner.exit {
                return exit.clone();
            }
            inner = self
                .changed
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn exec(&self, req: &ExecRequest) -> Response {
        match self.status() {
            ShimStatus::Running => {}
            status => {
                return error(
                    "not_running",
                    format!("container {} is {status:?}, not running", self.id()),
                )
            }
        }
        match self.run_exec(req) {
            Ok(out) => Response::Exec(out),
            Err(e) => runtime_error(&e),
        }
    }

    fn run_exec(&self, req: &ExecRequest) -> Result<ExecOutput, EngineError> {
        // Building and encoding the process take deep stacks in unoptimised builds.
        let body = on_big_stack(|| {
            let spec = self
                .exec_spec
                .get_or_init(|| exec_spec(&self.config.bundle))
                .as_ref()
                .map_err(Clone::clone)?;
            let process = crate::oci::exec_process(spec, req)?;
            serde_json::to_vec(&process)
                .map_err(|e| EngineError::Internal(format!("encode exec process: {e}")))
        })?;
        let n = self.exec_seq.fetch_add(1, Ordering::Relaxed);
        let path = self.config.bundle.join(format!(".exec-{n}.json"));
        let _remove = RemoveOnDrop(&path);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&body))
            .map_err(|e| internal("write exec process", &path, &e))?;

        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let stdout = Capture::spawn(out_r)?;
        let stderr = Capture::spawn(err_r)?;
        let exit_code = self.runc.exec(
            self.id(),
            &path,
            ProcessIo {
                stdout: out_w,
                stderr: err_w,
            },
        )?;
        let (stdout, out_cut) = stdout.take(EXEC_DRAIN_GRACE);
        let (stderr, err_cut) = stderr.take(EXEC_DRAIN_GRACE);
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
            truncated: out_cut || err_cut,
        })
    }

    fn shutdown(&self, force: bool) -> (Response, bool) {
        let _ops = self.ops();
        let status = self.status();
        if status != ShimStatus::Stopped {
            if matches!(status, ShimStatus::Running | ShimStatus::Paused) && !force {
                return (
                    error(
                        "running",
                        format!(
                            "container {} is running: stop it first, or shut down with force",
                            self.id()
                        ),
                    ),
                    false,
                );
            }
            let _ = self.runc.kill(self.id(), 9, true);
            if status == ShimStatus::Paused {
                // SIGKILL is delivered once the processes thaw.
                let _ = self.runc.resume(self.id());
            }
            let inner = self.lock();
            let (inner, _) = self
                .changed
                .wait_timeout_while(inner, KILL_WAIT, |i| i.exit.is_none())
                .unwrap_or_else(PoisonError::into_inner);
            if inner.exit.is_none() {
                diag(format_args!(
                    "container {} still runs {KILL_WAIT:?} after SIGKILL; deleting it anyway",
                    self.id()
                ));
            }
        }
        let deleted = {
            // The monitor may still be deleting the exited container.
            let inner = self.lock();
            self.changed
                .wait_while(inner, |i| i.deleting)
                .unwrap_or_else(PoisonError::into_inner)
                .runtime_deleted
        };
        if !deleted {
            if let Err(e) = self.runc.delete(self.id(), true) {
                if !matches!(self.runc.state(self.id()), Ok(None)) {
                    return (runtime_error(&e), false);
                }
            }
        }
        let _ = fs::remove_file(&self.config.socket);
        (Response::Ok, true)
    }
}

/// Removes a file when dropped.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

/// One output of an exec, read on its own thread: the first [`MAX_EXEC_OUTPUT`] bytes
/// are kept, the rest read and dropped.
struct Capture {
    shared: Arc<(Mutex<Captured>, Condvar)>,
}

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
    done: bool,
}

impl Capture {
    fn spawn(pipe: OwnedFd) -> Result<Capture, EngineError> {
        let shared = Arc::new((Mutex::new(Captured::default()), Condvar::new()));
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("exec-output".into())
            .stack_size(STACK)
            .spawn(move || {
                let mut file = File::from(pipe);
                let mut chunk = vec![0u8; 8192];
                loop {
                    match file.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            let mut c = s.0.lock().unwrap_or_else(PoisonError::into_inner);
                            let room = MAX_EXEC_OUTPUT.saturating_sub(c.bytes.len());
                            c.bytes.extend_from_slice(&chunk[..n.min(room)]);
                            if n > room {
                                c.truncated = true;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                s.0.lock().unwrap_or_else(PoisonError::into_inner).done = true;
                s.1.notify_all();
            })
            .map_err(|e| EngineError::Internal(format!("start an exec output thread: {e}")))?;
        Ok(Capture { shared })
    }

    /// What was read, waiting up to `grace` for the end; `true` when something was
    /// dropped (over the cap, or still unread after `grace`).
    fn take(self, grace: Duration) -> (Vec<u8>, bool) {
        let (lock, cond) = &*self.shared;
        let c = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut c, _) = cond
            .wait_timeout_while(c, grace, |c| !c.done)
            .unwrap_or_else(PoisonError::into_inner);
        let truncated = c.truncated || !c.done;
        (std::mem::take(&mut c.bytes), truncated)
    }
}
