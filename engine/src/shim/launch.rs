//! Launching a shim. The daemon calls [`launch`], which runs `berth-shim start
//! <bundle>`; `start` ([`start`]) forks the server (`serve`, as `berth-shim serve
//! <bundle>` would run it) with a readiness pipe as its stdout, relays the one line the
//! server reports (ready, or failed with the runtime's message) and exits. The server
//! is thereby re-parented away from the daemon.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use serde::{Deserialize, Serialize};

use super::{ShimConfig, LOG_FILE};
use crate::runtime::{Runc, Runtime};
use crate::{EngineError, ErrorKind};

/// How long `start` waits for `serve` to be ready (socket bound, container created).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The line `serve` writes to its readiness pipe, and `start` to its stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum Readiness {
    /// Serving; the container is created.
    Ready {
        /// The shim (`serve`) process.
        shim_pid: u32,
        /// The container's init.
        init_pid: u32,
    },
    /// `serve` gave up (and cleaned up).
    Failed {
        /// The error's kind.
        kind: ErrorKind,
        /// The error's message.
        message: String,
    },
}

impl Readiness {
    pub(crate) fn failed(e: &EngineError) -> Readiness {
        Readiness::Failed {
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    pub(crate) fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"status":"failed","kind":"Internal","message":"cannot encode readiness"}"#.into()
        });
        line.push('\n');
        line
    }

    fn parse(line: &str) -> Option<Readiness> {
        serde_json::from_str(line.trim()).ok()
    }
}

/// An error of kind `kind` with `message`.
fn error_of(kind: ErrorKind, message: String) -> EngineError {
    match kind {
        ErrorKind::InvalidArgument => EngineError::InvalidArgument(message),
        ErrorKind::NotFound => EngineError::Missing(message),
        ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition => {
            EngineError::FailedPrecondition(message)
        }
        ErrorKind::Unavailable => EngineError::Unavailable(message),
        ErrorKind::Internal | ErrorKind::Unauthenticated => EngineError::Internal(message),
    }
}

/// A launched shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launched {
    /// The serving shim's pid.
    pub shim_pid: u32,
    /// The container's init (created, or already started with [`ShimConfig::start`]).
    pub init_pid: u32,
}

/// Launches the shim of `config` with `shim_binary`: writes `<bundle>/shim.json`, runs
/// `<shim_binary> start <bundle>` and returns the pids of the serving shim and of the
/// container's init once the shim's control socket is bound and the container is
/// created (not started), or started when [`ShimConfig::start`] says so. The shim is
/// not the caller's child: the caller never reaps it and it outlives the caller.
///
/// On failure nothing is left running and the runtime has no state for the container;
/// the error carries the runtime's message. Blocks (up to about [`START_TIMEOUT`]).
pub fn launch(shim_binary: &Path, config: &ShimConfig) -> Result<Launched, EngineError> {
    if !config.bundle.is_dir() {
        return Err(EngineError::Missing(format!(
            "bundle {} of container {} not found",
            config.bundle.display(),
            config.id
        )));
    }
    config.save()?;
    let out = Command::new(shim_binary)
        .arg("start")
        .arg(&config.bundle)
        .stdin(Stdio::null())
        // One malloc arena: the shim has a few mostly idle threads, and every arena
        // costs resident memory. Read at start-up: `start` passes it on to `serve`.
        .env("MALLOC_ARENA_MAX", "1")
        .output()
        .map_err(|e| {
            EngineError::Unavailable(format!("run shim {}: {e}", shim_binary.display()))
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().rev().find_map(Readiness::parse) {
        Some(Readiness::Ready { shim_pid, init_pid }) if out.status.success() => {
            Ok(Launched { shim_pid, init_pid })
        }
        Some(Readiness::Failed { kind, message }) => Err(error_of(kind, message)),
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(EngineError::Internal(format!(
                "shim {} start {} failed ({}): {}",
                shim_binary.display(),
                config.bundle.display(),
                out.status,
                stderr.trim()
            )))
        }
    }
}

/// `berth-shim start <bundle>`: starts the server (`serve`) in the background (forked;
/// stderr appended to `<bundle>/shim.log`), waits until it reports, writes
/// its report as one JSON line to `out` and returns the serving shim's pid. When
/// `serve` fails (it cleans up and exits) or does not report within
/// [`START_TIMEOUT`] (it is killed and the runtime's state deleted), the report says
/// why and the error is returned.
pub fn start(bundle: &Path, out: &mut dyn Write) -> Result<u32, EngineError> {
    let result = start_serve(bundle);
    let report = match &result {
        Ok(ready) => ready.clone(),
        Err(e) => Readiness::failed(e),
    };
    // Best effort: the caller may not read it (the error is returned too).
    let _ = out
        .write_all(report.to_line().as_bytes())
        .and_then(|()| out.flush());
    match result? {
        Readiness::Ready { shim_pid, .. } => Ok(shim_pid),
        Readiness::Failed { kind, message } => Err(error_of(kind, message)),
    }
}

fn start_serve(bundle: &Path) -> Result<Readiness, EngineError> {
    let config = ShimConfig::load(bundle)?;
    let log_path = bundle.join(LOG_FILE);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| EngineError::Internal(format!("open {}: {e}", log_path.display())))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::Internal(format!("create the shim's readiness pipe: {e}")))?;
    // Our copy of the pipe's write end is closed once serve has it: EOF then means
    // serve is gone.
    let child = spawn_serve(bundle, ready_r.as_raw_fd(), ready_w, log)?;

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(File::from(ready_r)).read_line(&mut line);
        let _ = tx.send(line);
    });
    let reap = || match waitpid(child, None) {
        Ok(WaitStatus::Exited(_, code)) => format!("exit status: {code}"),
        Ok(WaitStatus::Signaled(_, signal, _)) => format!("signal: {signal}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => e.to_string(),
    };
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => match Readiness::parse(&line) {
            Some(ready @ Readiness::Ready { .. }) => Ok(ready),
            Some(failed @ Readiness::Failed { .. }) => {
                // serve has cleaned up and exits: let it finish before reporting.
                reap();
                Ok(failed)
            }
            None => {
                let status = reap();
                Err(EngineError::Internal(format!(
                    "shim of container {} exited ({status}) before it was ready: {}",
                    config.id,
                    last_line(&log_path)
                )))
            }
        },
        Err(_) => {
            let _ = kill(child, Signal::SIGKILL);
            reap();
            let _ = Runc::new(&config.runtime, &config.runtime_root).delete(&config.id, true);
            let _ = std::fs::remove_file(&config.socket);
            Err(EngineError::Unavailable(format!(
                "shim of container {} was not ready within {START_TIMEOUT:?}",
                config.id
            )))
        }
    }
}

/// Starts `serve` for `bundle` in the background, in its own process, with `ready` as
/// its stdout and `log` as its stderr; returns its pid. `start` is single-threaded up
/// to here, so the server is a forked copy of this process (no second exec of the
/// binary, no second start-up); if some thread runs already, `<this binary> serve
/// <bundle>` is executed instead. `ready_r`, the pipe's read end, is closed in the
/// server.
fn spawn_serve(
    bundle: &Path,
    ready_r: RawFd,
    ready: OwnedFd,
    log: File,
) -> Result<Pid, EngineError> {
    let single_threaded =
        std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1);
    if single_threaded {
        return fork_serve(bundle, ready_r, ready, log);
    }
    let exe = std::env::current_exe()
        .map_err(|e| EngineError::Internal(format!("find the shim's own binary: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .arg(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::from(ready))
        .stderr(Stdio::from(log))
        // One malloc arena: the shim has a few mostly idle threads, and every arena
        // costs resident memory (berthd sets it for `start` too).
        .env("MALLOC_ARENA_MAX", "1");
    let child = cmd
        .spawn()
        .map_err(|e| EngineError::Internal(format!("spawn the shim's server: {e}")))?;
    i32::try_from(child.id())
        .map(Pid::from_raw)
        .map_err(|e| EngineError::Internal(format!("the shim's server pid: {e}")))
}

/// [`spawn_serve`] by `fork`: the child serves and exits, never returns.
#[allow(unsafe_code)]
fn fork_serve(
    bundle: &Path,
    ready_r: RawFd,
    ready: OwnedFd,
    log: File,
) -> Result<Pid, EngineError> {
    // SAFETY: the process has one thread (checked by the caller; `berth-shim start`
    // starts none before this), so the child is a complete copy of it and may
    // allocate, take locks and run any code, as after an exec.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => {
            let _ = nix::unistd::close(ready_r);
            let redirected =
                nix::unistd::dup2_stdout(&ready).and_then(|()| nix::unistd::dup2_stderr(&log));
            drop(ready);
            drop(log);
            let code = match redirected {
                Err(e) => {
                    eprintln!("berth-shim serve: redirect stdout and stderr: {e}");
                    1
                }
                Ok(()) => match super::serve(bundle) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("berth-shim serve: {e}");
                        1
                    }
                },
            };
            std::process::exit(code)
        }
        Err(e) => Err(EngineError::Internal(format!(
            "fork the shim's server: {e}"
        ))),
    }
}

/// The last non-empty line of the shim's log, for errors.
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("nothing in {}", path.display()))
}
