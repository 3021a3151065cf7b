//! [`Runc`]: the [`Runtime`] trait over the `runc` command line.
//!
//! Every invocation is `runc --root <root> --log <file> --log-format json <verb> …`.
//! `create` and `exec` hand their standard output and error to the container, so the
//! runtime's own messages are read back from that per-invocation log file (the last
//! `error`-level `msg`); the other verbs also send their stderr there.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Deserialize;

use super::{ChildWaiter, ProcessIo, Runtime, RuntimeState, RuntimeStatus, Waiter};
use crate::EngineError;

/// The `runc` OCI runtime.
#[derive(Clone)]
pub struct Runc {
    binary: PathBuf,
    root: PathBuf,
    log_dir: PathBuf,
    waiter: Arc<dyn Waiter>,
}

impl std::fmt::Debug for Runc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runc")
            .field("binary", &self.binary)
            .field("root", &self.root)
            .field("log_dir", &self.log_dir)
            .finish_non_exhaustive()
    }
}

impl Runc {
    /// A driver for `binary` (a path, or a name looked up in `PATH` at each call) with
    /// state under `root` (`runc --root`). Children are waited for with
    /// [`ChildWaiter`]; the runtime's log files are written to the temp directory.
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Runc {
        Runc {
            binary: binary.into(),
            root: root.into(),
            log_dir: std::env::temp_dir(),
            waiter: Arc::new(ChildWaiter),
        }
    }

    /// Waits for the runtime's children with `waiter` instead.
    pub fn with_waiter(mut self, waiter: Arc<dyn Waiter>) -> Runc {
        self.waiter = waiter;
        self
    }

    /// Writes the per-invocation log files (removed after each call) in `dir`.
    pub fn with_log_dir(mut self, dir: impl Into<PathBuf>) -> Runc {
        self.log_dir = dir.into();
        self
    }

    /// The runtime binary as configured.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The runtime's state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The binary's path: as given when it has a `/`, else found in `PATH`.
    fn resolve(&self) -> Result<PathBuf, EngineError> {
        if self.binary.as_os_str().is_empty() {
            return Err(EngineError::InvalidArgument(
                "oci runtime binary is empty".into(),
            ));
        }
        if self.binary.components().count() > 1 || self.binary.is_absolute() {
            return Ok(self.binary.clone());
        }
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        std::env::split_paths(&path)
            .map(|dir| dir.join(&self.binary))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                EngineError::Unavailable(format!(
                    "oci runtime {} not found in PATH",
                    self.binary.display()
                ))
            })
    }

    /// `runc --root … --log <log> --log-format json`, stdin from `/dev/null`.
    fn command(&self, log: &RunLog) -> Result<Command, EngineError> {
        let mut cmd = Command::new(self.resolve()?);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&log.path)
            .arg("--log-format")
            .arg("json")
            .stdin(Stdio::null());
        Ok(cmd)
    }

    fn spawn(&self, verb: &str, cmd: &mut Command) -> Result<Child, EngineError> {
        self.waiter.spawn(cmd).map_err(|e| {
            let msg = format!("run oci runtime {} {verb}: {e}", self.binary.display());
            if e.kind() == io::ErrorKind::NotFound {
                EngineError::Unavailable(msg)
            } else {
                EngineError::Internal(msg)
            }
        })
    }

    fn wait(&self, verb: &str, child: Child) -> Result<ExitStatus, EngineError> {
        self.waiter.wait(child).map_err(|e| {
            EngineError::Internal(format!(
                "wait for oci runtime {} {verb}: {e}",
                self.binary.display()
            ))
        })
    }

    /// Runs a verb whose stdout is captured (and returned) and whose stderr goes to
    /// the log; fails with the runtime's message unless it exits 0.
    fn run_verb(&self, verb: &str, id: &str, args: &[&OsStr]) -> Result<Vec<u8>, EngineError> {
        let log = RunLog::create(&self.log_dir)?;
        let mut cmd = self.command(&log)?;
        cmd.arg(verb)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log.append_handle()?);
        let mut child = self.spawn(verb, &mut cmd)?;
        drop(cmd);
        let mut out = Vec::new();
        let read = child.stdout.take().map(|mut s| s.read_to_end(&mut out));
        let status = self.wait(verb, child)?;
        if !status.success() {
            return Err(self.failure(verb, id, &log, status));
        }
        if let Some(Err(e)) = read {
            return Err(EngineError::Internal(format!(
                "read the output of {} {verb} {id}: {e}",
                self.name()
            )));
        }
        Ok(out)
    }

    /// `create` or `run --detach`: the container's stdout and stderr are `io`, the
    /// init's pid goes to `pid_file`.
    fn launch(
        &self,
        verb: &str,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        io: ProcessIo,
    ) -> Result<(), EngineError> {
        let log = RunLog::create(&self.log_dir)?;
        let mut cmd = self.command(&log)?;
        cmd.arg(verb);
        if verb == "run" {
            cmd.arg("--detach");
        }
        cmd.arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id)
            .stdout(Stdio::from(io.stdout))
            .stderr(Stdio::from(io.stderr));
        let child = self.spawn(verb, &mut cmd)?;
        // The command holds our copies of the container's stdout/stderr: close them
        // now, so the readers see EOF when the container's side closes.
        drop(cmd);
        let status = self.wait(verb, child)?;
        if status.success() {
            Ok(())
        } else {
            Err(self.failure(verb, id, &log, status))
        }
    }

    fn name(&self) -> String {
        self.binary.file_name().map_or_else(
            || self.binary.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The error for a failed invocation, classified by the runtime's message.
    fn failure(&self, verb: &str, id: &str, log: &RunLog, status: ExitStatus) -> EngineError {
        let msg = log
            .message()
            .unwrap_or_else(|| format!("exited with {status}"));
        classify(&self.name(), verb, id, &msg)
    }
}

/// Maps the runtime's message to an error kind.
pub(super) fn classify(name: &str, verb: &str, id: &str, msg: &str) -> EngineError {
    let text = format!("{name} {verb} {id}: {msg}");
    let lower = msg.to_ascii_lowercase();
    if lower.contains("does not exist") && !lower.contains("exec") {
        EngineError::Missing(text)
    } else if lower.contains("not running")
        || lower.contains("not paused")
        || lower.contains("is paused")
        || lower.contains("is stopped")
        || lower.contains("already")
        || lower.contains("cannot ")
    {
        EngineError::FailedPrecondition(text)
    } else if matches!(verb, "create" | "run" | "exec")
        && (lower.contains("executable file not found")
            || lower.contains("no such file or directory")
            || lower.contains("permission denied"))
    {
        EngineError::InvalidArgument(text)
    } else {
        EngineError::Internal(text)
    }
}

/// The exit code of a process (`128 + n` when signal `n` killed it).
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

impl Runtime for Runc {
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        io: ProcessIo,
    ) -> Result<(), EngineError> {
        self.launch("create", id, bundle, pid_file, io)
    }

    fn start(&self, id: &str) -> Result<(), EngineError> {
        self.run_verb("start", id, &[id.as_ref()]).map(drop)
    }

    fn run(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        io: ProcessIo,
    ) -> Result<(), EngineError> {
        self.launch("run", id, bundle, pid_file, io)
    }

    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), EngineError> {
        let sig = signal.to_string();
        let mut args: Vec<&OsStr> = Vec::with_capacity(3);
        if all {
            args.push("--all".as_ref());
        }
        args.push(id.as_ref());
        args.push(sig.as_ref());
        self.run_verb("kill", id, &args).map(drop)
    }

    fn pause(&self, id: &str) -> Result<(), EngineError> {
        self.run_verb("pause", id, &[id.as_ref()]).map(drop)
    }

    fn resume(&self, id: &str) -> Result<(), EngineError> {
        self.run_verb("resume", id, &[id.as_ref()]).map(drop)
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), EngineError> {
        if force {
            self.run_verb("delete", id, &["--force".as_ref(), id.as_ref()])
        } else {
            self.run_verb("delete", id, &[id.as_ref()])
        }
        .map(drop)
    }

    fn state(&self, id: &str) -> Result<Option<RuntimeState>, EngineError> {
        match self.run_verb("state", id, &[id.as_ref()]) {
            Ok(out) => {
                let raw: RawState = serde_json::from_slice(&out).map_err(|e| {
                    EngineError::Internal(format!("{} state {id}: bad output: {e}", self.name()))
                })?;
                Ok(Some(raw.into_state()))
            }
            // runc ran and does not know the id (whatever its wording).
            Err(EngineError::Missing(_)) => Ok(None),
            Err(EngineError::Internal(_)) if !self.root.join(id).exists() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self) -> Result<Vec<RuntimeState>, EngineError> {
        if !self.root.exists() {
            return Ok(Vec::new());
        }
        let out = self.run_verb("list", "", &["--format".as_ref(), "json".as_ref()])?;
        let raw: Option<Vec<RawState>> = serde_json::from_slice(&out)
            .map_err(|e| EngineError::Internal(format!("{} list: bad output: {e}", self.name())))?;
        Ok(raw
            .unwrap_or_default()
            .into_iter()
            .map(RawState::into_state)
            .collect())
    }

    fn exec(&self, id: &str, process: &Path, io: ProcessIo) -> Result<i32, EngineError> {
        let log = RunLog::create(&self.log_dir)?;
        let mut cmd = self.command(&log)?;
        cmd.arg("exec")
            .arg("--process")
            .arg(process)
            .arg(id)
            .stdout(Stdio::from(io.stdout))
            .stderr(Stdio::from(io.stderr));
        let child = self.spawn("exec", &mut cmd)?;
        drop(cmd);
        let status = self.wait("exec", child)?;
        // runc exits with the process's code; only its own log tells a failure of
        // runc itself apart from a process that exited non-zero.
        match log.error() {
            Some(msg) => Err(classify(&self.name(), "exec", id, &msg)),
            None => Ok(exit_code(status)),
        }
    }
}

/// `runc state` / `runc list --format json` output.
#[derive(Debug, Deserialize)]
struct RawState {
    id: String,
    #[serde(default)]
    pid: i64,
    status: String,
    #[serde(default)]
    bundle: PathBuf,
}

impl RawState {
    fn into_state(self) -> RuntimeState {
        let status = RuntimeStatus::parse(&self.status);
        let pid = u32::try_from(self.pid)
            .ok()
            .filter(|&p| p != 0 && status != RuntimeStatus::Stopped);
        RuntimeState {
            id: self.id,
            status,
            pid,
            bundle: self.bundle,
        }
    }
}

/// One line of runc's JSON log.
#[derive(Debug, Deserialize)]
struct LogLine {
    #[serde(default)]
    level: String,
    #[serde(default)]
    msg: String,
}

/// A log file for one invocation, removed when dropped.
struct RunLog {
    path: PathBuf,
}

static NEXT_LOG: AtomicU64 = AtomicU64::new(0);

impl RunLog {
    fn create(dir: &Path) -> Result<RunLog, EngineError> {
        let n = NEXT_LOG.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".runc-{}-{n}.log", std::process::id()));
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| {
                EngineError::Internal(format!("create runtime log {}: {e}", path.display()))
            })?;
        Ok(RunLog { path })
    }

    fn append_handle(&self) -> Result<File, EngineError> {
        OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| {
                EngineError::Internal(format!("open runtime log {}: {e}", self.path.display()))
            })
    }

    /// The last error-level message, if the runtime logged one.
    fn error(&self) -> Option<String> {
        self.scan().0
    }

    /// The most telling message: the last error-level one, else the last plain-text
    /// line (stderr), else the last message of any level.
    fn message(&self) -> Option<String> {
        let (error, plain, any) = self.scan();
        error.or(plain).or(any)
    }

    fn scan(&self) -> (Option<String>, Option<String>, Option<String>) {
        let (mut error, mut plain, mut any) = (None, None, None);
        let Ok(file) = File::open(&self.path) else {
            return (error, plain, any);
        };
        for line in BufReader::new(file).lines().map_while(Result::ok) {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match serde_json::from_str::<LogLine>(line) {
                Ok(entry) if !entry.msg.is_empty() => {
                    if matches!(entry.level.as_str(), "error" | "fatal" | "panic") {
                        error = Some(entry.msg.trim().to_string());
                    }
                    any = Some(entry.msg.trim().to_string());
                }
                Ok(_) => {}
                Err(_) => plain = Some(line.to_string()),
            }
        }
        (error, plain, any)
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
