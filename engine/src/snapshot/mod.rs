//! Snapshotters: the storage of layered filesystems.
//!
//! A snapshotter stores snapshots by a short numeric id and, given the ids of a
//! snapshot's committed ancestors, says how to mount it — it returns [`Mount`]s and
//! never mounts (as containerd's). Names, keys, parents and kinds are metadata, which
//! berth keeps in the journal (the state's snapshot table), not in the snapshotter: the
//! numeric ids keep directory names short, so a 128-layer overlay mount fits the
//! kernel's option length.
//!
//! - [`overlay::Overlay`]: overlayfs (default): each snapshot is `<id>/fs` (+ `<id>/work`
//!   while active); an active snapshot over parents is an overlay with them as
//!   `lowerdir`s.
//! - [`native::Native`]: copying fallback: an active snapshot starts as a full copy of
//!   its parent and is bind-mounted.
//! - `testsuite` (tests only): one conformance suite, run against both.

pub mod native;
pub mod overlay;
#[cfg(test)]
pub mod testsuite;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::mount::Mount;
use crate::unpack::WhiteoutMode;
use crate::EngineError;

pub use native::Native;
pub use overlay::Overlay;

/// A snapshot's numeric id (its directory name).
pub type SnapshotId = u64;

/// The kind of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Writable, not yet committed.
    Active,
    /// Read-only view of its parents.
    View,
    /// Committed: immutable, can be a parent.
    Committed,
}

/// Disk usage of one snapshot's own storage (not its parents').
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes allocated (st_blocks × 512), hard links counted once.
    pub size: u64,
    /// Inodes.
    pub inodes: u64,
}

/// A snapshotter. `parents` are always the committed ancestors, nearest first.
pub trait Snapshotter: Send + Sync {
    /// Its name (`overlayfs`, `native`).
    fn name(&self) -> &'static str;

    /// Creates storage for a new active snapshot over `parents`; returns its mounts.
    fn prepare(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Vec<Mount>, EngineError>;

    /// Creates a read-only view of `parents`; returns its mounts.
    fn view(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Vec<Mount>, EngineError>;

    /// Makes an active snapshot committed (immutable; usable as a parent).
    fn commit(&self, id: SnapshotId) -> Result<(), EngineError>;

    /// The mounts of an existing snapshot of `kind`.
    fn mounts(
        &self,
        id: SnapshotId,
        kind: Kind,
        parents: &[SnapshotId],
    ) -> Result<Vec<Mount>, EngineError>;

    /// Removes a snapshot's storage. Removing what does not exist is not an error (so
    /// recovery can finish a removal that a crash interrupted).
    fn remove(&self, id: SnapshotId) -> Result<(), EngineError>;

    /// Disk usage of a snapshot's own storage.
    fn usage(&self, id: SnapshotId) -> Result<Usage, EngineError>;

    /// The ids that have storage on disk (to find orphans after a crash).
    fn walk(&self) -> Result<Vec<SnapshotId>, EngineError>;

    /// Where a layer can be unpacked straight into active snapshot `id` without
    /// mounting it, and how whiteouts must be written there.
    fn layer_dir(&self, id: SnapshotId) -> (PathBuf, WhiteoutMode);
}

pub(crate) fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> EngineError {
    let msg = format!("{what} {}", path.display());
    move |e| EngineError::Internal(format!("{msg}: {e}"))
}

/// Lists the numeric directory names in `dir`.
pub(crate) fn numeric_dirs(dir: &Path) -> Result<Vec<SnapshotId>, EngineError> {
    let mut ids = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(io_err("reading", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("reading", dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Disk usage of a tree, hard links counted once, not crossing mount points.
pub fn disk_usage(root: &Path) -> Result<Usage, EngineError> {
    use std::collections::HashSet;
    use std::os::unix::fs::MetadataExt;
    let top = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Usage::default()),
        Err(e) => return Err(io_err("reading", root)(e)),
    };
    let dev = top.dev();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut usage = Usage::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("reading", &path))?;
        if meta.dev() != dev {
            continue;
        }
        if seen.insert(meta.ino()) {
            usage.inodes += 1;
            usage.size += meta.blocks() * 512;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(io_err("reading", &path))? {
                stack.push(entry.map_err(io_err("reading", &path))?.path());
            }
        }
    }
    Ok(usage)
}

/// Creates the storage of snapshot `id` under `snapshots` (`<snapshots>/<id>`): `build`
/// fills a temporary directory, which is then renamed, so a crash never leaves a
/// half-made snapshot under its real id.
pub(crate) fn create_storage(
    snapshots: &Path,
    id: SnapshotId,
    build: impl FnOnce(&Path) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let dir = snapshots.join(id.to_string());
    if dir.exists() {
        return Err(EngineError::AlreadyExists {
            kind: "snapshot storage",
            id: id.to_string(),
        });
    }
    let tmp = snapshots.join(format!(".new-{id}"));
    remove_tree(&tmp)?;
    build(&tmp)?;
    std::fs::rename(&tmp, &dir).map_err(io_err("renaming", &tmp))
}

/// Removes a directory tree; a missing one is fine.
pub(crate) fn remove_tree(path: &Path) -> Result<(), EngineError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", path)(e)),
    }
}
