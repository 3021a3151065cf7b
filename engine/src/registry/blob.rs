//! Blob bodies: [`BlobResponse`], a download streamed chunk by chunk, and
//! [`UploadBody`], what [`super::RegistryClient::push_blob`] sends.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::OwnedSemaphorePermit;

use super::transport::{chain, len64};
use crate::ids::Digest;
use crate::{EngineError, Result};

/// A blob being downloaded. Chunks come as the network delivers them; nothing is
/// verified here: the caller hashes what it writes (berth's content store ingest
/// verifies size and digest at commit).
///
/// [`resumed`](Self::resumed) says whether the registry honoured the requested offset
/// (`206 Partial Content`: the body starts at [`start`](Self::start)) or sent the whole
/// blob (`200`: the body starts at 0 and the caller must restart its hash and its
/// write). When the connection breaks, [`next_chunk`](Self::next_chunk) returns
/// `Unavailable` and [`position`](Self::position) is where a new
/// [`fetch_blob`](super::RegistryClient::fetch_blob) should resume.
///
/// Holds one of the client's download slots (`max_concurrent_downloads`) until dropped.
#[derive(Debug)]
pub struct BlobResponse {
    pub(crate) response: reqwest::Response,
    pub(crate) host: String,
    pub(crate) digest: Digest,
    pub(crate) resumed: bool,
    pub(crate) start: u64,
    pub(crate) received: u64,
    pub(crate) size: Option<u64>,
    pub(crate) done: bool,
    pub(crate) _permit: OwnedSemaphorePermit,
}

impl BlobResponse {
    /// Whether the body starts at the requested offset (206) rather than at 0 (200).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The offset in the blob of the body's first byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The offset in the blob of the next byte to come.
    pub fn position(&self) -> u64 {
        self.start + self.received
    }

    /// The whole blob's size, when the registry said it (`Content-Length` of a 200,
    /// the total of a 206's `Content-Range`).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The host that is serving the body (a mirror or the registry).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The next chunk, or `None` at the end of the blob. A broken or timed-out
    /// connection, or a body shorter than announced, is `Unavailable` (resume from
    /// [`position`](Self::position)).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        match self.response.chunk().await {
            Ok(Some(c)) => {
                self.received += len64(c.len());
                Ok(Some(c))
            }
            Ok(None) => {
                self.done = true;
                match self.size {
                    Some(size) if self.position() < size => {
                        Err(self.dropped("the body ended early"))
                    }
                    _ => Ok(None),
                }
            }
            Err(e) => {
                self.done = true;
                let why = chain(&e);
                Err(self.dropped(&why))
            }
        }
    }

    fn dropped(&self, why: &str) -> EngineError {
        EngineError::Unavailable(format!(
            "connection to registry {} broke while fetching blob {} at byte {}: {why}",
            self.host,
            self.digest,
            self.position()
        ))
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// What [`push_blob`](super::RegistryClient::push_blob) uploads: bytes in memory, a
/// stream of chunks, or an async reader.
pub struct UploadBody {
    pub(crate) inner: UploadInner,
}

pub(crate) enum UploadInner {
    Bytes(Bytes),
    Stream(ChunkStream),
}

impl std::fmt::Debug for UploadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            UploadInner::Bytes(b) => write!(f, "UploadBody::Bytes({} bytes)", b.len()),
            UploadInner::Stream(_) => f.write_str("UploadBody::Stream"),
        }
    }
}

impl UploadBody {
    /// Bytes in memory (checked against the digest and size before anything is sent).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        UploadBody {
            inner: UploadInner::Bytes(bytes.into()),
        }
    }

    /// A stream of chunks; an error from it aborts the upload and is returned as it is.
    pub fn from_stream<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        UploadBody {
            inner: UploadInner::Stream(Box::pin(stream)),
        }
    }

    /// An async reader (a `tokio::fs::File` of a committed blob), read in 256 KiB chunks.
    pub fn from_reader<R>(reader: R) -> Self
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let chunks = stream::unfold(Some(reader), |state| async move {
            let mut r = state?;
            let mut buf = BytesMut::with_capacity(256 * 1024);
            match r.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(buf.freeze()), Some(r))),
                Err(e) => Some((
                    Err(EngineError::Internal(format!(
                        "cannot read the blob to upload: {e}"
                    ))),
                    None,
                )),
            }
        });
        UploadBody::from_stream(chunks)
    }

    /// The request body, checked to hold exactly `size` bytes (and, in memory, to hash
    /// to `digest`).
    pub(crate) fn into_body(self, digest: &Digest, size: u64) -> Result<reqwest::Body> {
        match self.inner {
            UploadInner::Bytes(b) => {
                if len64(b.len()) != size {
                    return Err(EngineError::InvalidArgument(format!(
                        "blob {digest} to upload is {} bytes, not the {size} announced",
                        b.len()
                    )));
                }
                let actual = Digest::of_bytes(&b);
                if &actual != digest {
                    return Err(EngineError::InvalidArgument(format!(
                        "blob to upload hashes to {actual}, not {digest}"
                    )));
                }
                Ok(reqwest::Body::from(b))
            }
            UploadInner::Stream(s) => Ok(reqwest::Body::wrap_stream(exact_size(
                s,
                digest.clone(),
                size,
            ))),
        }
    }
}

impl From<Bytes> for UploadBody {
    fn from(b: Bytes) -> Self {
        UploadBody::from_bytes(b)
    }
}

impl From<Vec<u8>> for UploadBody {
    fn from(b: Vec<u8>) -> Self {
        UploadBody::from_bytes(b)
    }
}

/// Passes the chunks on, failing the upload if they add up to more or less than `size`.
fn exact_size(
    inner: ChunkStream,
    digest: Digest,
    size: u64,
) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
    stream::unfold(
        (inner, 0u64, false, digest),
        move |(mut s, sent, finished, digest)| async move {
            if finished {
                return None;
            }
            match s.next().await {
                Some(Ok(chunk)) => {
                    let now = sent + len64(chunk.len());
                    if now > size {
                        let e = EngineError::InvalidArgument(format!(
                            "blob {digest} to upload is longer than the {size} bytes announced"
                        ));
                        return Some((Err(e), (s, now, true, digest)));
                    }
                    Some((Ok(chunk), (s, now, false, digest)))
                }
                Some(Err(e)) => Some((Err(e), (s, sent, true, digest))),
                None if sent < size => {
                    let e = EngineError::InvalidArgument(format!(
                        "blob {digest} to upload ended after {sent} of the {size} bytes announced"
                    ));
                    Some((Err(e), (s, sent, true, digest)))
                }
                None => None,
            }
        },
    )
}
