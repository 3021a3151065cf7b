//! The shim's control protocol: typed requests and responses over the shim's unix
//! socket. Each frame is a 4-byte big-endian length followed by that many bytes of JSON
//! (at most [`MAX_FRAME`]). One request per connection; the shim answers with one
//! response and closes — except [`Request::Wait`], which is answered when the
//! container's process has exited (at once if it already has).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::container::ExitStatus;

/// Largest frame either side accepts (exec output is capped below this).
pub const MAX_FRAME: usize = 64 << 20;

/// Most bytes of stdout (and of stderr) an exec returns; the rest is dropped and
/// `truncated` is set.
pub const MAX_EXEC_OUTPUT: usize = 4 << 20;

/// What the shim is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The container's state.
    State,
    /// `runc start` (the container was created when the shim started).
    Start,
    /// Send a signal to the container's init (`all`: to every process in it).
    Kill {
        /// Signal number.
        signal: i32,
        /// To every process.
        all: bool,
    },
    /// Freeze every process.
    Pause,
    /// Thaw every process.
    Resume,
    /// Run a process in the running container and collect its output.
    Exec(ExecRequest),
    /// Answer when the init process has exited.
    Wait,
    /// `runc delete` the container (refused while it runs unless `force`, which kills
    /// it first), remove the socket and exit.
    Shutdown {
        /// Kill a running container first.
        force: bool,
    },
}

/// A non-interactive exec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// Environment (`KEY=VALUE`); the container's when empty.
    pub env: Vec<String>,
    /// Working directory; the container's when `None`.
    pub cwd: Option<String>,
    /// `uid[:gid]` numbers; the container's user when `None`.
    pub user: Option<(u32, u32)>,
}

/// What an exec produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Exit code (`128 + n` when killed by signal `n`).
    pub exit_code: i32,
    /// Standard output (up to [`MAX_EXEC_OUTPUT`] bytes).
    #[serde(with = "serde_bytes_as_vec")]
    pub stdout: Vec<u8>,
    /// Standard error (up to [`MAX_EXEC_OUTPUT`] bytes).
    #[serde(with = "serde_bytes_as_vec")]
    pub stderr: Vec<u8>,
    /// Output beyond the cap was dropped.
    pub truncated: bool,
}

mod serde_bytes_as_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Vec::<u8>::deserialize(d)
    }
}

/// The container's status as the shim sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShimStatus {
    /// `runc create` done, not started.
    Created,
    /// Running.
    Running,
    /// Frozen.
    Paused,
    /// The init process has exited.
    Stopped,
}

/// The shim's answer to [`Request::State`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    /// Container id.
    pub id: String,
    /// Status.
    pub status: ShimStatus,
    /// Pid of the container's init (in the host's pid namespace).
    pub pid: u32,
    /// Pid of the shim.
    pub shim_pid: u32,
    /// How it exited, once it has.
    pub exit: Option<ExitStatus>,
}

/// The shim's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Done (start, kill, pause, resume, shutdown).
    Ok,
    /// The state.
    State(ShimState),
    /// The exit (to wait).
    Exited(ExitStatus),
    /// What an exec produced.
    Exec(ExecOutput),
    /// The request failed.
    Error {
        /// Machine-readable reason: `not_running`, `already_started`, `running`
        /// (shutdown without force), `runtime` (the OCI runtime failed), `invalid`.
        code: String,
        /// What happened, for humans (includes the runtime's stderr).
        message: String,
    },
}

/// Writes one frame.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, value: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&n| usize::try_from(n).is_ok_and(|n| n <= MAX_FRAME))
        .ok_or_else(|| std::io::Error::other("frame too large"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

/// Reads one frame.
pub fn read_frame<R: Read, T: for<'de> Deserialize<'de>>(r: &mut R) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = usize::try_from(u32::from_be_bytes(len)).map_err(std::io::Error::other)?;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the limit"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
