//! Ingest directories: naming, locking, metadata, removal, and the IO error mapping the
//! store shares.
//!
//! Every removal (abort, commit, failed verification, sweep) first renames the ingest
//! directory to a `.trash-*` name while holding its lock, then deletes the trash. A
//! writer that raced for the lock checks, once it holds it, that the lock file on disk is
//! still the one it locked ([`lock`]); if not, it starts over. So two writers never share
//! an ingest, even across an abort.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::{Expected, MAX_REF_LEN};
use crate::ids::Digest;
use crate::{EngineError, Result};

/// The lock file in an ingest directory.
pub(super) const LOCK: &str = "lock";
/// The metadata file in an ingest directory.
pub(super) const META: &str = "meta.json";
/// The data file in an ingest directory.
pub(super) const DATA: &str = "data";
/// Prefix of directories being deleted (never an ingest: ingest names are hex).
pub(super) const TRASH_PREFIX: &str = ".trash-";

/// How often a writer or abort starts over when the ingest is removed under it.
pub(super) const LOCK_ATTEMPTS: usize = 16;

/// What is stored about an ingest besides its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct IngestMeta {
    /// The caller's ref.
    #[serde(rename = "ref")]
    pub reference: String,
    /// What the data must become, when known.
    pub expected: Option<Expected>,
    /// When the ingest was started.
    pub started_at: DateTime<Utc>,
}

/// Checks a caller's ref.
pub(super) fn validate_ref(reference: &str) -> Result<()> {
    if reference.is_empty() {
        return Err(EngineError::InvalidArgument(
            "ingest ref must not be empty".into(),
        ));
    }
    if reference.len() > MAX_REF_LEN {
        return Err(EngineError::InvalidArgument(format!(
            "ingest ref is {} bytes long; the limit is {MAX_REF_LEN}",
            reference.len()
        )));
    }
    Ok(())
}

/// The directory name of a ref's ingest: the hex sha256 of the ref, so no ref can name
/// a path outside `ingest/` or collide with another.
pub(super) fn dir_name(reference: &str) -> String {
    Digest::of_bytes(reference.as_bytes()).hex().to_string()
}

/// The outcome of one attempt to lock an ingest directory.
pub(super) enum Locked {
    /// We hold it.
    Held(Flock<File>),
    /// A live writer holds it.
    Busy,
    /// It was removed (or replaced) while we tried: start over.
    Gone,
}

/// One attempt to take the exclusive, non-blocking lock of the ingest at `dir`,
/// creating the directory first when `make_dir`.
pub(super) fn lock(dir: &Path, make_dir: bool) -> Result<Locked> {
    match open_lock(dir, make_dir)? {
        Some(file) => lock_opened(dir, file),
        None => Ok(Locked::Gone),
    }
}

/// The first half of [`lock`]: opens (creating) the lock file; `None` if the directory
/// is gone.
pub(super) fn open_lock(dir: &Path, make_dir: bool) -> Result<Option<File>> {
    if make_dir {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error("create ingest directory", dir, &e)),
        }
    }
    let lock_path = dir.join(LOCK);
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("open ingest lock", &lock_path, &e)),
    }
}

/// The second half of [`lock`]: flocks `file`, opened from `dir`'s lock, and checks it
/// still is that lock.
pub(super) fn lock_opened(dir: &Path, file: File) -> Result<Locked> {
    let lock_path = dir.join(LOCK);
    let held = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => held,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(Locked::Busy),
        Err((_, errno)) => {
            return Err(io_error(
                "lock",
                &lock_path,
                &io::Error::from_raw_os_error(errno as i32),
            ))
        }
    };
    // The directory may have been removed (renamed to trash, perhaps then created
    // anew) between our open and our lock; then we hold the lock of a file nobody else
    // will ever look at.
    let ours = held
        .metadata()
        .map_err(|e| io_error("stat", &lock_path, &e))?;
    match fs::metadata(&lock_path) {
        Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => Ok(Locked::Held(held)),
        Ok(_) => Ok(Locked::Gone),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Locked::Gone),
        Err(e) => Err(io_error("stat", &lock_path, &e)),
    }
}

/// Reads an ingest's metadata; `None` if it has none yet (or it is unreadable, which
/// only a crash while creating the ingest can cause: the ingest then starts afresh).
pub(super) fn read_meta(dir: &Path) -> Result<Option<IngestMeta>> {
    let path = dir.join(META);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", &path, &e)),
    };
    match serde_json::from_slice(&bytes) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable ingest metadata");
            Ok(None)
        }
    }
}

/// Writes an ingest's metadata atomically and durably (temp file, fsync, rename, fsync
/// of the directory). The caller holds the ingest's lock.
pub(super) fn write_meta(dir: &Path, meta: &IngestMeta) -> Result<()> {
    let path = dir.join(META);
    let tmp = dir.join(format!("{META}.tmp"));
    let bytes = serde_json::to_vec(meta)
        .map_err(|e| EngineError::Internal(format!("encode {}: {e}", path.display())))?;
    let mut f = File::create(&tmp).map_err(|e| io_error("create", &tmp, &e))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_error("write", &tmp, &e))?;
    fs::rename(&tmp, &path).map_err(|e| io_error("rename", &tmp, &e))?;
    sync_dir(dir)
}

/// Removes the ingest directory `dir` (whose lock the caller holds): renames it to a
/// trash name under `ingest_root` (atomic: from then on the ref has no ingest), then
/// deletes the trash. A failure of that last step leaves only trash, which
/// [`sweep`] removes.
pub(super) fn discard(ingest_root: &Path, dir: &Path) -> Result<()> {
    let trash = ingest_root.join(trash_name());
    fs::rename(dir, &trash).map_err(|e| io_error("remove ingest", dir, &e))?;
    if let Err(e) = fs::remove_dir_all(&trash) {
        tracing::warn!(path = %trash.display(), error = %e, "could not delete discarded ingest");
    }
    Ok(())
}

/// Cleans what a crash can leave under `ingest_root`: trash directories, and ingest
/// directories without metadata (a crash while creating them) that nobody holds.
/// Best effort: failures are logged.
pub(super) fn sweep(ingest_root: &Path) -> Result<()> {
    let entries =
        fs::read_dir(ingest_root).map_err(|e| io_error("read directory", ingest_root, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("read directory", ingest_root, &e))?;
        let name = entry.file_name();
        let path = entry.path();
        if name.to_string_lossy().starts_with(TRASH_PREFIX) {
            if let Err(e) = fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not delete trash");
            }
            continue;
        }
        if path.join(META).exists() {
            continue;
        }
        match lock(&path, false) {
            Ok(Locked::Held(_held)) => {
                // Checked again under the lock: a writer creating it writes the metadata
                // while holding the lock.
                if !path.join(META).exists() {
                    tracing::info!(path = %path.display(), "removing ingest left by a crash before it was set up");
                    if let Err(e) = discard(ingest_root, &path) {
                        tracing::warn!(error = %e, "could not remove ingest");
                    }
                }
            }
            Ok(Locked::Busy | Locked::Gone) => {}
            Err(e) => tracing::warn!(error = %e, "could not lock ingest"),
        }
    }
    Ok(())
}

/// fsyncs a directory, so the renames and creations in it are durable.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync directory", dir, &e))
}

/// Maps an IO error on `path` to an [`EngineError`]: a full disk or quota is
/// `Unavailable` (freeing space and retrying helps), anything else `Internal`.
pub(super) fn io_error(op: &str, path: &Path, e: &io::Error) -> EngineError {
    let msg = format!("{op} {}: {e}", path.display());
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => EngineError::Unavailable(msg),
        _ => EngineError::Internal(msg),
    }
}

/// A modification time as a UTC timestamp.
pub(super) fn mtime(meta: &fs::Metadata) -> DateTime<Utc> {
    meta.modified()
        .map_or_else(|_| Utc::now(), DateTime::<Utc>::from)
}

/// A name no other trash directory has, in this process or another.
fn trash_name() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    PathBuf::from(format!("{TRASH_PREFIX}{}-{nanos}-{n}", std::process::id()))
}
