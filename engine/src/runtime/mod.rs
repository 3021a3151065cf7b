//! The OCI runtime behind a small trait: [`Runtime`] (create, start, kill, pause,
//! resume, delete, state, exec), implemented by [`Runc`] (`runc --root <root> …`).
//!
//! Waiting for the runtime's own child processes is pluggable ([`Waiter`]): the default
//! ([`ChildWaiter`]) is `Child::wait`; inside the shim, whose reaper thread reaps every
//! child with `waitpid(-1)`, the reaper's table answers instead.
//!
//! The daemon uses [`Runc`] directly (from a blocking thread) to reconcile after a
//! restart: [`Runtime::state`], [`Runtime::kill`], [`Runtime::delete`] with `force`.

mod runc;

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

pub(crate) use runc::exit_code;
pub use runc::Runc;

use crate::EngineError;

/// Where a process's standard output and error go (standard input is `/dev/null`).
/// Usually the write ends of pipes whose read ends the caller drains.
#[derive(Debug)]
pub struct ProcessIo {
    /// Standard output.
    pub stdout: OwnedFd,
    /// Standard error.
    pub stderr: OwnedFd,
}

/// A container's status as the OCI runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeStatus {
    /// Being created.
    Creating,
    /// Created, its process waiting to be started.
    Created,
    /// Running.
    Running,
    /// Frozen.
    Paused,
    /// Its process has exited.
    Stopped,
    /// A status this driver does not know, as the runtime spelled it.
    Unknown(String),
}

impl RuntimeStatus {
    /// Parses the runtime's spelling (`created`, `running`, …).
    pub fn parse(raw: &str) -> RuntimeStatus {
        match raw {
            "creating" => RuntimeStatus::Creating,
            "created" => RuntimeStatus::Created,
            "running" => RuntimeStatus::Running,
            "paused" => RuntimeStatus::Paused,
            "stopped" => RuntimeStatus::Stopped,
            other => RuntimeStatus::Unknown(other.to_string()),
        }
    }

    /// The runtime's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            RuntimeStatus::Creating => "creating",
            RuntimeStatus::Created => "created",
            RuntimeStatus::Running => "running",
            RuntimeStatus::Paused => "paused",
            RuntimeStatus::Stopped => "stopped",
            RuntimeStatus::Unknown(s) => s,
        }
    }
}

impl std::fmt::Display for RuntimeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the OCI runtime knows of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeState {
    /// Container id.
    pub id: String,
    /// Status.
    pub status: RuntimeStatus,
    /// Pid of the container's init in the host's pid namespace; `None` once stopped.
    pub pid: Option<u32>,
    /// The bundle it was created from.
    pub bundle: PathBuf,
}

/// An OCI runtime. Every method blocks until the runtime's command has finished; call
/// them from a thread that may block. Errors carry the runtime's own message.
pub trait Runtime: Send + Sync {
    /// Creates container `id` from `bundle` (its process waits to be started), writing
    /// the init's pid to `pid_file`. The container's stdout and stderr are `io`.
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        io: ProcessIo,
    ) -> Result<(), EngineError>;

    /// Starts the created container's process.
    fn start(&self, id: &str) -> Result<(), EngineError>;

    /// Creates container `id` from `bundle` and starts its process at once, as
    /// [`create`](Runtime::create) then [`start`](Runtime::start) do, but in one step
    /// where the runtime can (`runc run --detach`: one process instead of two). Returns
    /// once the process is started; the init's pid is in `pid_file`.
    fn run(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        io: ProcessIo,
    ) -> Result<(), EngineError> {
        self.create(id, bundle, pid_file, io)?;
        self.start(id)
    }

    /// Sends `signal` to the container's init, or to every process in it when `all`.
    fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), EngineError>;

    /// Freezes every process of the container.
    fn pause(&self, id: &str) -> Result<(), EngineError>;

    /// Thaws every process of the container.
    fn resume(&self, id: &str) -> Result<(), EngineError>;

    /// Deletes the container's runtime state (and cgroups); `force` kills it first if
    /// it still runs.
    fn delete(&self, id: &str, force: bool) -> Result<(), EngineError>;

    /// The container's state; `None` when the runtime does not know `id`.
    fn state(&self, id: &str) -> Result<Option<RuntimeState>, EngineError>;

    /// Every container the runtime knows.
    fn list(&self) -> Result<Vec<RuntimeState>, EngineError>;

    /// Runs the process described by `process` (an OCI `process` JSON file) in the
    /// running container, blocks until it exits and returns its exit code (`128 + n`
    /// when signal `n` killed it). Its stdout and stderr are `io`: the caller must
    /// drain them concurrently.
    fn exec(&self, id: &str, process: &Path, io: ProcessIo) -> Result<i32, EngineError>;
}

/// How the runtime's child processes are spawned and waited for.
pub trait Waiter: Send + Sync {
    /// Spawns `cmd`.
    fn spawn(&self, cmd: &mut Command) -> io::Result<Child> {
        cmd.spawn()
    }

    /// Waits for `child` (spawned by [`Waiter::spawn`]) to exit.
    fn wait(&self, child: Child) -> io::Result<std::process::ExitStatus>;
}

/// The default [`Waiter`]: `Child::wait`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildWaiter;

impl Waiter for ChildWaiter {
    fn wait(&self, mut child: Child) -> io::Result<std::process::ExitStatus> {
        child.wait()
    }
}

#[cfg(test)]
mod tests;
