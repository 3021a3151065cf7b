//! The byte side of a layer: read, hash the compressed bytes, check the magic,
//! decompress, hash the tar bytes. It runs on its own thread and hands the tar stream
//! to the extracting thread in recycled chunks, so decompressing and writing files
//! overlap (as `tar -xzf` overlaps with its `gzip -d` child).

use std::io::{self, Read};
use std::mem;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};

use sha2::{Digest as _, Sha256};

use super::Compression;
use crate::ids::Digest;
use crate::EngineError;

/// Size of one chunk handed from the decompressing to the extracting thread.
pub(crate) const CHUNK: usize = 256 * 1024;
/// Chunks in flight (also the channel bound).
pub(crate) const CHUNKS: usize = 4;

/// What the byte side found.
pub(crate) struct Produced {
    pub(crate) diff_id: Digest,
    pub(crate) compressed: Option<Digest>,
    pub(crate) uncompressed_size: u64,
}

/// How the byte side ended, if not well.
pub(crate) enum ProduceError {
    /// The stream is bad (or the source failed): this is the layer's error.
    Failed(EngineError),
    /// The extracting side stopped first; its error is the one to report.
    Cancelled,
}

/// Counts and optionally hashes what passes through, and remembers whether the
/// source itself failed (to tell a broken download from a corrupt stream).
struct Source<R> {
    inner: R,
    hasher: Option<Sha256>,
    error: Option<String>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                if let Some(h) = self.hasher.as_mut() {
                    h.update(&buf[..n]);
                }
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.error = Some(e.to_string());
                }
                Err(e)
            }
        }
    }
}

/// Reads the layer from `reader`, decompresses it and sends the tar bytes down `full`
/// in buffers taken back from `empty`. Every byte is read, to the very end of the
/// source, so the digests cover all of it.
pub(crate) fn produce<R: Read>(
    reader: R,
    compression: Compression,
    hash_compressed: bool,
    full: SyncSender<Vec<u8>>,
    empty: Receiver<Vec<u8>>,
) -> Result<Produced, ProduceError> {
    let mut source = Source {
        inner: reader,
        // Uncompressed, the blob is the tar stream: one hash serves both digests.
        hasher: (hash_compressed && compression != Compression::None).then(Sha256::new),
        error: None,
    };
    let fail = |source: &Source<R>, e: io::Error| {
        ProduceError::Failed(match &source.error {
            Some(err) => EngineError::Unavailable(format!("reading the layer failed: {err}")),
            None => EngineError::InvalidArgument(format!(
                "the layer's {compression} stream is corrupt or truncated: {e}"
            )),
        })
    };

    // The magic number, checked against what the media type claims.
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match source.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(&source, e)),
        }
    }
    compression
        .check_magic(&head[..got])
        .map_err(ProduceError::Failed)?;

    let mut tar_hash = Sha256::new();
    let mut size: u64 = 0;
    {
        let chained = (&head[..got]).chain(&mut source);
        let mut decoder: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(chained),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(chained)),
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::new(chained).map_err(|e| {
                    ProduceError::Failed(EngineError::Internal(format!("zstd decoder: {e}")))
                })?)
            }
        };
        let mut allocated = 0;
        loop {
            let mut buf = match empty.try_recv() {
                Ok(buf) => buf,
                Err(TryRecvError::Empty) if allocated < CHUNKS => {
                    allocated += 1;
                    Vec::with_capacity(CHUNK)
                }
                Err(_) => empty.recv().map_err(|_| ProduceError::Cancelled)?,
            };
            buf.resize(CHUNK, 0);
            let mut n = 0;
            let mut eof = false;
            while n < CHUNK {
                match decoder.read(&mut buf[n..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        drop(decoder);
                        return Err(fail(&source, e));
                    }
                }
            }
            buf.truncate(n);
            tar_hash.update(&buf);
            size += n as u64;
            if n > 0 {
                full.send(buf).map_err(|_| ProduceError::Cancelled)?;
            }
            if eof {
                break;
            }
        }
    }
    // Whatever follows the compressed stream is part of the blob too.
    if let Err(e) = io::copy(&mut source, &mut io::sink()) {
        return Err(fail(&source, e));
    }
    let diff_id = Digest::from_sha256(&tar_hash.finalize());
    let compressed = match source.hasher {
        Some(h) => Some(Digest::from_sha256(&h.finalize())),
        None if hash_compressed => Some(diff_id.clone()),
        None => None,
    };
    Ok(Produced {
        diff_id,
        compressed,
        uncompressed_size: size,
    })
}

/// The tar stream as the extracting thread reads it: chunks from the byte side, each
/// given back once consumed.
pub(crate) struct ChunkReader {
    full: Receiver<Vec<u8>>,
    empty: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl ChunkReader {
    pub(crate) fn new(full: Receiver<Vec<u8>>, empty: SyncSender<Vec<u8>>) -> Self {
        ChunkReader {
            full,
            empty,
            cur: Vec::new(),
            pos: 0,
            eof: false,
        }
    }

    /// Whether a read has already met the end of the stream.
    pub(crate) fn hit_eof(&self) -> bool {
        self.eof
    }

    /// Reads (and discards) the rest of the stream, so the byte side hashes it all.
    pub(crate) fn drain(&mut self) {
        self.pos = self.cur.len();
        while let Ok(buf) = self.full.recv() {
            let _ = self.empty.try_send(buf);
        }
        self.eof = true;
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.eof {
                return Ok(0);
            }
            match self.full.recv() {
                Ok(next) => {
                    let done = mem::replace(&mut self.cur, next);
                    self.pos = 0;
                    if done.capacity() > 0 {
                        let _ = self.empty.try_send(done);
                    }
                }
                // The byte side is done (or failed: its own result says so).
                Err(_) => {
                    self.eof = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
