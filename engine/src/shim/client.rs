//! The daemon's side of the control socket: [`ShimClient`] and [`read_exit_file`].

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::proto::{read_frame, write_frame, Request, Response};
use crate::container::ExitStatus;
use crate::EngineError;

/// Why a request to a shim failed.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// Nothing listens on the socket (it is missing, or nobody accepts on it): the
    /// shim is dead. Its recorded exit, if any, is in its exit file.
    #[error("shim socket {}: the shim is gone ({source})", socket.display())]
    Gone {
        /// The socket.
        socket: PathBuf,
        /// What connecting said.
        source: io::Error,
    },
    /// The shim did not answer in time.
    #[error("shim socket {}: no answer within {timeout:?}", socket.display())]
    Timeout {
        /// The socket.
        socket: PathBuf,
        /// The time allowed.
        timeout: Duration,
    },
    /// The shim closed the connection without answering (it may have died meanwhile).
    #[error("shim socket {}: the shim closed the connection without answering", socket.display())]
    Closed {
        /// The socket.
        socket: PathBuf,
    },
    /// Any other failure.
    #[error("shim socket {}: {source}", socket.display())]
    Io {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

impl ShimError {
    /// Whether the shim is gone (the daemon treats it as dead).
    pub fn is_gone(&self) -> bool {
        matches!(self, ShimError::Gone { .. })
    }
}

impl From<ShimError> for EngineError {
    fn from(e: ShimError) -> EngineError {
        match e {
            ShimError::Gone { .. } | ShimError::Timeout { .. } | ShimError::Closed { .. } => {
                EngineError::Unavailable(e.to_string())
            }
            ShimError::Io { .. } => EngineError::Internal(e.to_string()),
        }
    }
}

/// A client of one shim's control socket. Holds only the path: every request opens
/// its own connection (the shim answers one request per connection), so a client is
/// cheap, `Clone` and usable from several threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimClient {
    socket: PathBuf,
}

impl ShimClient {
    /// A client of the shim listening on `socket`. Does no IO.
    pub fn new(socket: impl Into<PathBuf>) -> ShimClient {
        ShimClient {
            socket: socket.into(),
        }
    }

    /// A client of the shim listening on `socket`, if that is a socket: fails with
    /// [`ShimError::Gone`] when it is missing. Does not connect (every request does).
    pub fn connect(socket: impl Into<PathBuf>) -> Result<ShimClient, ShimError> {
        use std::os::unix::fs::FileTypeExt;
        let socket = socket.into();
        match std::fs::metadata(&socket) {
            Ok(m) if m.file_type().is_socket() => Ok(ShimClient { socket }),
            Ok(_) => Err(ShimError::Gone {
                socket,
                source: io::Error::from_raw_os_error(libc::ENOTSOCK),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ShimError::Gone { socket, source: e })
            }
            Err(e) => Err(ShimError::Io { socket, source: e }),
        }
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `req` and returns the shim's response; waits at most `timeout` for each
    /// of sending and answering (`None`: as long as it takes, as [`Request::Wait`]
    /// needs). A [`Response::Error`] is an answer, returned as `Ok`.
    pub fn request(&self, req: &Request, timeout: Option<Duration>) -> Result<Response, ShimError> {
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| self.connect_error(e))?;
        // A zero timeout is refused by the socket; a millisecond is as good as none.
        let timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
        stream
            .set_read_timeout(timeout)
            .and_then(|()| stream.set_write_timeout(timeout))
            .map_err(|e| self.io_error(e, timeout))?;
        write_frame(&mut stream, req).map_err(|e| self.io_error(e, timeout))?;
        read_frame(&mut stream).map_err(|e| self.io_error(e, timeout))
    }

    fn connect_error(&self, e: io::Error) -> ShimError {
        let socket = self.socket.clone();
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ECONNREFUSED | libc::ENOTSOCK) => {
                ShimError::Gone { socket, source: e }
            }
            _ => ShimError::Io { socket, source: e },
        }
    }

    fn io_error(&self, e: io::Error, timeout: Option<Duration>) -> ShimError {
        let socket = self.socket.clone();
        match (e.kind(), timeout) {
            (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, Some(timeout)) => {
                ShimError::Timeout { socket, timeout }
            }
            (
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe,
                _,
            ) => ShimError::Closed { socket },
            _ => ShimError::Io { socket, source: e },
        }
    }
}

/// The exit a shim recorded at `path`, if it recorded one (and it is readable).
pub fn read_exit_file(path: &Path) -> Option<ExitStatus> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}
