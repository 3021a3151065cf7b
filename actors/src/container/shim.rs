//! The daemon's side of the shim's control socket, asynchronous so that a watcher per
//! container costs a task, not a thread.

use std::path::PathBuf;
use std::time::Duration;

use berth_engine::shim::proto::{Request, Response, MAX_FRAME};
use berth_engine::EngineError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Nobody listens on the socket: the shim is gone.
    Gone(String),
    /// The shim answered badly, or too late.
    Failed(String),
}

impl CallError {
    pub(crate) fn into_engine(self) -> EngineError {
        match self {
            CallError::Gone(m) => {
                EngineError::Unavailable(format!("the container's shim is gone: {m}"))
            }
            CallError::Failed(m) => {
                EngineError::Unavailable(format!("the container's shim failed: {m}"))
            }
        }
    }
}

async fn exchange(socket: PathBuf, req: Request) -> Result<Response, CallError> {
    let mut stream = UnixStream::connect(&socket)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                CallError::Gone(format!("{}: {e}", socket.display()))
            }
            _ => CallError::Failed(format!("connecting to {}: {e}", socket.display())),
        })?;
    let body = serde_json::to_vec(&req).map_err(|e| CallError::Failed(e.to_string()))?;
    let len = u32::try_from(body.len()).map_err(|e| CallError::Failed(e.to_string()))?;
    let io = |e: std::io::Error| CallError::Failed(format!("talking to {}: {e}", socket.display()));
    stream.write_all(&len.to_be_bytes()).await.map_err(io)?;
    stream.write_all(&body).await.map_err(io)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            // The shim closed the connection without answering: it died.
            CallError::Gone(format!("{} closed without an answer", socket.display()))
        } else {
            io(e)
        }
    })?;
    let len =
        usize::try_from(u32::from_be_bytes(len)).map_err(|e| CallError::Failed(e.to_string()))?;
    if len > MAX_FRAME {
        return Err(CallError::Failed(format!(
            "answer of {len} bytes is too large"
        )));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(io)?;
    serde_json::from_slice(&body).map_err(|e| CallError::Failed(format!("undecodable answer: {e}")))
}

/// One request, one response; `timeout` bounds the whole exchange.
pub(crate) async fn call(
    socket: PathBuf,
    req: Request,
    timeout: Option<Duration>,
) -> Result<Response, CallError> {
    match timeout {
        None => exchange(socket, req).await,
        Some(t) => tokio::time::timeout(t, exchange(socket, req))
            .await
            .map_err(|_| CallError::Failed(format!("no answer within {} ms", t.as_millis())))?,
    }
}

/// The shim's error answer as an engine error.
pub(crate) fn answer_error(code: &str, message: &str) -> EngineError {
    match code {
        "not_running" | "running" | "already_started" => {
            EngineError::FailedPrecondition(message.to_string())
        }
        "invalid" => EngineError::InvalidArgument(message.to_string()),
        _ => EngineError::Internal(message.to_string()),
    }
}

/// Expects `Ok`.
pub(crate) fn expect_ok(resp: Response) -> Result<(), EngineError> {
    match resp {
        Response::Ok => Ok(()),
        Response::Error { code, message } => Err(answer_error(&code, &message)),
        other => Err(EngineError::Internal(format!(
            "unexpected shim answer {other:?}"
        ))),
    }
}

/// A short timeout for control calls that do not wait for the container.
pub(crate) const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
