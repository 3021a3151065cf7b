//! [`Writer`]: one write in progress, holding its ingest's lock for its whole life.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::Utc;
use nix::errno::Errno;
use nix::fcntl::{renameat2, Flock, RenameFlags};
use sha2::{Digest as _, Sha256};

use super::ingest::{self, io_error, IngestMeta, Locked, DATA, LOCK_ATTEMPTS};
use super::{Committed, Expected, IngestStatus};
use crate::ids::Digest;
use crate::{EngineError, Result};

/// Mode of committed blobs.
const BLOB_MODE: u32 = 0o444;
/// Mode of ingest data.
const DATA_MODE: u32 = 0o644;

/// A write in progress, from [`Ingester::writer`](super::Ingester::writer).
///
/// Bytes written go straight to the ingest's data file (unbuffered: copy into it with a
/// buffer, as `std::io::copy` does) and into a running sha256. Dropping the writer keeps
/// the ingest: a later `writer` with the same ref resumes at [`Writer::offset`]. Bytes not
/// yet fsynced when the machine crashes may be lost or damaged; a resumed write then
/// fails its digest check at commit and is discarded, never committed.
#[derive(Debug)]
pub struct Writer {
    reference: String,
    expected: Option<Expected>,
    started_at: chrono::DateTime<Utc>,
    ingest_root: PathBuf,
    blobs_dir: PathBuf,
    dir: PathBuf,
    data: File,
    hasher: Sha256,
    offset: u64,
    // Last: dropped (unlocked) after the data file is closed.
    lock: Flock<File>,
}

impl Writer {
    /// Opens (creating or resuming) the ingest of `reference` under `ingest_root`.
    /// The store has validated the ref and checked `expected` is not committed yet.
    pub(super) fn open(
        ingest_root: &Path,
        blobs_dir: &Path,
        reference: &str,
        expected: Option<Expected>,
    ) -> Result<Writer> {
        let dir = ingest_root.join(ingest::dir_name(reference));
        let lock = acquire(&dir, reference)?;

        let (meta, fresh) = match ingest::read_meta(&dir)? {
            Some(mut meta) => {
                if meta.reference != reference {
                    return Err(EngineError::Internal(format!(
                        "ingest directory {} belongs to ref {:?}, not {reference:?}",
                        dir.display(),
                        meta.reference
                    )));
                }
                match (&meta.expected, expected) {
                    (Some(had), Some(want)) if *had != want => {
                        return Err(EngineError::FailedPrecondition(format!(
                            "ingest {reference:?} was started for {} ({} bytes), not {} ({} bytes); abort it first",
                            had.digest, had.size, want.digest, want.size
                        )));
                    }
                    (None, Some(want)) => {
                        meta.expected = Some(want);
                        ingest::write_meta(&dir, &meta)?;
                    }
                    _ => {}
                }
                (meta, false)
            }
            None => {
                let meta = IngestMeta {
                    reference: reference.to_string(),
                    expected,
                    started_at: Utc::now(),
                };
                ingest::write_meta(&dir, &meta)?;
                (meta, true)
            }
        };

        let data_path = dir.join(DATA);
        if !fresh {
            make_writable(&data_path)?;
        }
        // A fresh ingest starts empty even if a crash left data without metadata.
        let mut data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(fresh)
            .open(&data_path)
            .map_err(|e| io_error("open", &data_path, &e))?;

        // sha256 state cannot be saved: rebuild it from the bytes already written.
        let mut hasher = Sha256::new();
        let offset = hash_into(&mut data, &mut hasher, u64::MAX)
            .map_err(|e| io_error("read", &data_path, &e))?;
        if offset > 0 {
            tracing::debug!(reference, offset, "resuming ingest");
        }

        Ok(Writer {
            reference: meta.reference,
            expected: meta.expected,
            started_at: meta.started_at,
            ingest_root: ingest_root.to_path_buf(),
            blobs_dir: blobs_dir.to_path_buf(),
            dir,
            data,
            hasher,
            offset,
            lock,
        })
    }

    /// The ref this writer writes.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Bytes written so far, including those of an interrupted earlier writer: where
    /// the caller continues (e.g. with an HTTP `Range: bytes=<offset>-` request).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What the ingest is expected to become, if it was said when it was started or
    /// resumed.
    pub fn expected(&self) -> Option<&Expected> {
        self.expected.as_ref()
    }

    /// The digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        Digest::from_sha256(self.hasher.clone().finalize().as_slice())
    }

    /// The ingest's state, as [`IngestManager::status`](super::IngestManager::status)
    /// reports it.
    pub fn status(&self) -> IngestStatus {
        IngestStatus {
            reference: self.reference.clone(),
            offset: self.offset,
            total: self.expected.as_ref().map(|e| e.size),
            expected: self.expected.as_ref().map(|e| e.digest.clone()),
            started_at: self.started_at,
            updated_at: self
                .data
                .metadata()
                .map_or(self.started_at, |m| ingest::mtime(&m).max(self.started_at)),
        }
    }

    /// Cuts the data back to `offset` bytes (e.g. 0 when a server ignores a `Range`
    /// request and sends the whole blob again). `InvalidArgument` past the current
    /// offset.
    pub fn truncate(&mut self, offset: u64) -> Result<()> {
        if offset > self.offset {
            return Err(EngineError::InvalidArgument(format!(
                "cannot truncate ingest {:?} to {offset} bytes: it has {}",
                self.reference, self.offset
            )));
        }
        let path = self.dir.join(DATA);
        self.data
            .set_len(offset)
            .map_err(|e| io_error("truncate", &path, &e))?;
        let mut hasher = Sha256::new();
        hash_into(&mut self.data, &mut hasher, offset).map_err(|e| io_error("read", &path, &e))?;
        self.data
            .seek(SeekFrom::Start(offset))
            .map_err(|e| io_error("seek", &path, &e))?;
        self.hasher = hasher;
        self.offset = offset;
        Ok(())
    }

    /// Commits the data as a blob: fsyncs it, checks it against `size` and `expected`
    /// and against what the ingest was started with, makes it read-only (0444), renames
    /// it into `blobs/sha256/<hex>` and fsyncs that directory. When this returns `Ok`,
    /// the blob is durable and the ingest is gone.
    ///
    /// If the blob exists already, the ingest is discarded and the result is
    /// [`Committed::AlreadyExisted`] (commit is idempotent).
    ///
    /// Errors:
    /// - fewer bytes than expected: `FailedPrecondition`; the ingest is kept so the
    ///   write can be resumed;
    /// - more bytes than expected, or a different digest: `InvalidArgument` naming the
    ///   ref and both sizes or digests; the ingest is removed, so nothing is committed.
    pub fn commit(mut self, size: Option<u64>, expected: Option<&Digest>) -> Result<Committed> {
        let data_path = self.dir.join(DATA);
        self.data
            .flush()
            .and_then(|()| self.data.sync_all())
            .map_err(|e| io_error("sync", &data_path, &e))?;
        let on_disk = self
            .data
            .metadata()
            .map_err(|e| io_error("stat", &data_path, &e))?
            .len();
        if on_disk != self.offset {
            return Err(EngineError::Internal(format!(
                "ingest {:?}: {} holds {on_disk} bytes, the writer wrote {}",
                self.reference,
                data_path.display(),
                self.offset
            )));
        }

        let sizes = [size, self.expected.as_ref().map(|e| e.size)];
        for want in sizes.into_iter().flatten() {
            if self.offset < want {
                return Err(EngineError::FailedPrecondition(format!(
                    "ingest {:?} is incomplete: {} of {want} bytes written",
                    self.reference, self.offset
                )));
            }
            if self.offset > want {
                let msg = format!(
                    "ingest {:?} has {} bytes, expected {want}; discarded",
                    self.reference, self.offset
                );
                return Err(self.reject(msg));
            }
        }

        let actual = self.digest();
        let digests = [
            expected.cloned(),
            self.expected.as_ref().map(|e| e.digest.clone()),
        ];
        for want in digests.into_iter().flatten() {
            if want != actual {
                let msg = format!(
                    "ingest {:?}: digest mismatch: expected {want}, got {actual}; discarded",
                    self.reference
                );
                return Err(self.reject(msg));
            }
        }

        // Read-only and stamped with the commit time before it becomes visible.
        self.data
            .set_permissions(Permissions::from_mode(BLOB_MODE))
            .and_then(|()| self.data.set_modified(SystemTime::now()))
            .and_then(|()| self.data.sync_all())
            .map_err(|e| io_error("seal", &data_path, &e))?;

        let created = self.publish(&actual)?;
        ingest::sync_dir(&self.blobs_dir)?;
        ingest::discard(&self.ingest_root, &self.dir)?;
        drop(self.lock);
        if created {
            tracing::debug!(digest = %actual, size = self.offset, "blob committed");
            Ok(Committed::Created(actual))
        } else {
            tracing::debug!(digest = %actual, "blob already present; ingest discarded");
            Ok(Committed::AlreadyExisted(actual))
        }
    }

    /// Moves the data to `blobs/sha256/<hex>` unless a blob is there already; returns
    /// whether it did.
    fn publish(&self, digest: &Digest) -> Result<bool> {
        let data_path = self.dir.join(DATA);
        let target = self.blobs_dir.join(digest.hex());
        let from = File::open(&self.dir).map_err(|e| io_error("open", &self.dir, &e))?;
        let to = File::open(&self.blobs_dir).map_err(|e| io_error("open", &self.blobs_dir, &e))?;
        match renameat2(
            &from,
            DATA,
            &to,
            digest.hex(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            // A filesystem without RENAME_NOREPLACE: a hard link is just as atomic and
            // never replaces either.
            Err(Errno::EINVAL | Errno::ENOSYS) => match fs::hard_link(&data_path, &target) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(io_error("link", &target, &e)),
            },
            Err(errno) => Err(io_error(
                "rename to",
                &target,
                &io::Error::from_raw_os_error(errno as i32),
            )),
        }
    }

    /// Discards the ingest because its content is wrong; returns the error to report.
    fn reject(self, msg: String) -> EngineError {
        if let Err(e) = ingest::discard(&self.ingest_root, &self.dir) {
            tracing::warn!(reference = %self.reference, error = %e, "could not discard rejected ingest");
        }
        EngineError::InvalidArgument(msg)
    }
}

impl Write for Writer {
    /// Writes to the data file and the running digest. Refuses (`InvalidInput`, nothing
    /// written) any byte past the expected size, so a wrong or hostile source cannot
    /// fill the disk.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(expected) = &self.expected {
            if self.offset.saturating_add(buf.len() as u64) > expected.size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "ingest {:?}: writing past its expected size of {} bytes",
                        self.reference, expected.size
                    ),
                ));
            }
        }
        let n = self.data.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.data.flush()
    }
}

/// Takes the lock of the ingest at `dir`, creating it if needed, starting over when it
/// is removed under us.
fn acquire(dir: &Path, reference: &str) -> Result<Flock<File>> {
    for _ in 0..LOCK_ATTEMPTS {
        match ingest::lock(dir, true)? {
            Locked::Held(lock) => return Ok(lock),
            Locked::Busy => {
                return Err(EngineError::Unavailable(format!(
                    "ingest {reference:?} is locked by another writer"
                )))
            }
            Locked::Gone => {}
        }
    }
    Err(EngineError::Unavailable(format!(
        "ingest {reference:?} keeps being removed while it is opened"
    )))
}

/// A crash between sealing and renaming leaves the data read-only; a resumed writer
/// needs it writable again.
fn make_writable(path: &Path) -> Result<()> {
    match fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o200 == 0 => {
            fs::set_permissions(path, Permissions::from_mode(DATA_MODE))
                .map_err(|e| io_error("chmod", path, &e))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("stat", path, &e)),
    }
}

/// Hashes `file` from its start, at most `limit` bytes; leaves it positioned after them
/// and returns how many there were.
fn hash_into(file: &mut File, hasher: &mut Sha256, limit: u64) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = file.take(limit);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}
