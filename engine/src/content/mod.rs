//! The content store: immutable blobs addressed by their sha256 digest (layers,
//! manifests, configs), written through resumable ingests.
//!
//! The interfaces are small and composed, as containerd's `core/content`, so a consumer
//! asks for the least it needs:
//! - [`Provider`]: read a committed blob ([`Provider::info`], [`Provider::open`]).
//! - [`Ingester`]: start or resume a write ([`Ingester::writer`]) and get a [`Writer`].
//! - [`Manager`]: list, delete and re-verify committed blobs.
//! - [`IngestManager`]: list and abort the writes in progress.
//! - [`Store`]: all four, for the owner of the store.
//!
//! [`LocalStore`] implements them on a directory (`<berth root>/content`):
//!
//! ```text
//! blobs/sha256/<hex>            committed blobs, mode 0444, never written again
//! ingest/<sha256(ref) hex>/     one directory per write in progress
//!     lock                      flock'ed by the live Writer
//!     meta.json                 the ref, its expected digest and size, start time
//!     data                      the bytes so far; its length is the resume offset
//! ```
//!
//! A commit flushes and fsyncs `data`, checks its size and digest, makes it read-only,
//! renames it into `blobs/sha256/` without replacing (`RENAME_NOREPLACE`) and fsyncs that
//! directory. Rename is atomic, so `blobs/` only ever holds complete, verified blobs and
//! after a crash a leftover ingest is either resumed by [`Ingester::writer`] with the same
//! ref or removed by [`IngestManager::abort`]. Labels are not stored here; they live in
//! the journal's state.

mod ingest;
mod local;
mod writer;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::Digest;
use crate::Result;

pub use local::LocalStore;
pub use writer::Writer;

/// Longest ingest ref accepted, in bytes.
pub const MAX_REF_LEN: usize = 1024;

/// A committed blob as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Its digest (`sha256:<hex>`).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When it was committed.
    pub committed_at: DateTime<Utc>,
}

/// What a write is expected to produce, as an OCI descriptor says it: checked while
/// writing (no byte past `size` is accepted) and at commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// The digest the content must hash to.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A write in progress (an ingest), as containerd's `content.Status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStatus {
    /// The ref the caller chose for it.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Bytes written so far: where a resumed write continues.
    pub offset: u64,
    /// The expected size, when known.
    pub total: Option<u64>,
    /// The expected digest, when known.
    pub expected: Option<Digest>,
    /// When the ingest was started.
    pub started_at: DateTime<Utc>,
    /// When its data was last written.
    pub updated_at: DateTime<Utc>,
}

/// The outcome of a successful [`Writer::commit`]. Commit is idempotent: when the blob
/// is already in the store (another writer won the race, or it was there before), the
/// ingest is discarded and the existing blob stands; that is success too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// This writer's data became the blob.
    Created(Digest),
    /// The blob already existed; this writer's data was discarded.
    AlreadyExisted(Digest),
}

impl Committed {
    /// The committed blob's digest, either way.
    pub fn digest(&self) -> &Digest {
        match self {
            Committed::Created(d) | Committed::AlreadyExisted(d) => d,
        }
    }

    /// Whether this writer created the blob.
    pub fn created(&self) -> bool {
        matches!(self, Committed::Created(_))
    }
}

/// An open committed blob: a read-only file and what it holds. Reads are not verified
/// again (the digest was checked at commit); see [`Manager::verify`].
#[derive(Debug)]
pub struct Blob {
    file: File,
    digest: Digest,
    size: u64,
}

impl Blob {
    /// Its digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The underlying file, for positioned reads (`std::os::unix::fs::FileExt`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The underlying file.
    pub fn into_file(self) -> File {
        self.file
    }
}

impl Read for Blob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for Blob {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

/// Reads committed blobs.
pub trait Provider {
    /// The blob's digest, size and commit time; `NotFound` if it is not in the store.
    fn info(&self, digest: &Digest) -> Result<Info>;

    /// Opens the blob for reading; `NotFound` if it is not in the store.
    fn open(&self, digest: &Digest) -> Result<Blob>;
}

/// Writes new content.
pub trait Ingester {
    /// Starts the write identified by `reference` (any string the caller chooses, e.g.
    /// `pull-<id>-<digest>`), or resumes it if an ingest with that ref exists: the
    /// writer's [`Writer::offset`] then says where to continue.
    ///
    /// Errors: `AlreadyExists` if `expected` names a blob already in the store (nothing
    /// to write); `Unavailable` if another live writer holds the ref; `FailedPrecondition`
    /// if the existing ingest was started for a different expected blob;
    /// `InvalidArgument` for an empty or over-long ref.
    fn writer(&self, reference: &str, expected: Option<Expected>) -> Result<Writer>;
}

/// Manages committed blobs.
pub trait Manager {
    /// Every committed blob, sorted by digest.
    fn list(&self) -> Result<Vec<Info>>;

    /// Removes a blob; `NotFound` if it is not in the store. Readers that have it open
    /// keep reading it.
    fn delete(&self, digest: &Digest) -> Result<()>;

    /// Re-hashes a blob: `Ok` if its content still matches its digest, `Internal` naming
    /// both digests if it does not (the blob is corrupt), `NotFound` if it is missing.
    fn verify(&self, digest: &Digest) -> Result<()>;
}

/// Manages writes in progress.
pub trait IngestManager {
    /// The state of one ingest; `NotFound` if there is none with that ref.
    fn status(&self, reference: &str) -> Result<IngestStatus>;

    /// Every ingest in progress (live or interrupted), sorted by ref.
    fn ingests(&self) -> Result<Vec<IngestStatus>>;

    /// Removes an ingest and its data; `NotFound` if there is none with that ref,
    /// `Unavailable` if a live writer holds it.
    fn abort(&self, reference: &str) -> Result<()>;
}

/// A complete content store: what the owner of the store holds; consumers should ask
/// for one of the smaller traits instead.
pub trait Store: Provider + Ingester + Manager + IngestManager {}

impl<T: Provider + Ingester + Manager + IngestManager + ?Sized> Store for T {}
