//! The overlayfs snapshotter.
//!
//! Layout under its root: `snapshots/<id>/fs` (the upper directory while active, the
//! layer's content once committed) and `snapshots/<id>/work` (overlay's work dir, only
//! while active). Mounts:
//! - active, no parents: a bind mount of `<id>/fs`;
//! - active over parents: `overlay` with `lowerdir` = the parents' `fs` (nearest first),
//!   `upperdir` = `<id>/fs`, `workdir` = `<id>/work`;
//! - view of one parent: a read-only bind of the parent's `fs`; of several: a read-only
//!   `overlay` with only `lowerdir`s.

use std::path::{Path, PathBuf};

use super::{
    create_storage, io_err, numeric_dirs, remove_tree, Kind, SnapshotId, Snapshotter, Usage,
};
use crate::mount::Mount;
use crate::unpack::WhiteoutMode;
use crate::EngineError;

/// The overlayfs snapshotter.
#[derive(Debug, Clone)]
pub struct Overlay {
    root: PathBuf,
}

impl Overlay {
    /// A snapshotter storing under `root` (e.g. `<berth root>/snapshots/overlayfs`).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, EngineError> {
        let root = root.into();
        let snaps = root.join("snapshots");
        std::fs::create_dir_all(&snaps).map_err(io_err("creating", &snaps))?;
        Ok(Overlay { root })
    }

    fn dir(&self, id: SnapshotId) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    fn fs(&self, id: SnapshotId) -> PathBuf {
        self.dir(id).join("fs")
    }

    /// The directory holding snapshot `id`'s own content (its upper / diff directory).
    pub fn upper(&self, id: SnapshotId) -> PathBuf {
        self.fs(id)
    }

    fn lowerdir(&self, parents: &[SnapshotId]) -> String {
        let dirs: Vec<String> = parents
            .iter()
            .map(|p| self.fs(*p).display().to_string())
            .collect();
        format!("lowerdir={}", dirs.join(":"))
    }

    fn create(&self, id: SnapshotId, work: bool) -> Result<(), EngineError> {
        create_storage(&self.root.join("snapshots"), id, |tmp| {
            std::fs::create_dir_all(tmp.join("fs")).map_err(io_err("creating", tmp))?;
            if work {
                std::fs::create_dir_all(tmp.join("work")).map_err(io_err("creating", tmp))?;
            }
            Ok(())
        })
    }

    fn check_parents(&self, parents: &[SnapshotId]) -> Result<(), EngineError> {
        for p in parents {
            if !self.fs(*p).is_dir() {
                return Err(EngineError::NotFound {
                    kind: "parent snapshot storage",
                    id: p.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl Snapshotter for Overlay {
    fn name(&self) -> &'static str {
        "overlayfs"
    }

    fn prepare(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Vec<Mount>, EngineError> {
        self.check_parents(parents)?;
        self.create(id, true)?;
        self.mounts(id, Kind::Active, parents)
    }

    fn view(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Vec<Mount>, EngineError> {
        if parents.is_empty() {
            return Err(EngineError::InvalidArgument(
                "a view needs at least one parent".into(),
            ));
        }
        self.check_parents(parents)?;
        self.create(id, false)?;
        self.mounts(id, Kind::View, parents)
    }

    fn commit(&self, id: SnapshotId) -> Result<(), EngineError> {
        let dir = self.dir(id);
        if !dir.join("fs").is_dir() {
            return Err(EngineError::NotFound {
                kind: "snapshot storage",
                id: id.to_string(),
            });
        }
        // The work dir is only needed while mounted read-write.
        remove_tree(&dir.join("work"))
    }

    fn mounts(
        &self,
        id: SnapshotId,
        kind: Kind,
        parents: &[SnapshotId],
    ) -> Result<Vec<Mount>, EngineError> {
        match kind {
            Kind::Active if parents.is_empty() => Ok(vec![Mount::bind(&self.fs(id), false)]),
            Kind::Active => Ok(vec![Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    self.lowerdir(parents),
                    format!("upperdir={}", self.fs(id).display()),
                    format!("workdir={}", self.dir(id).join("work").display()),
                ],
            }]),
            Kind::View if parents.len() == 1 => Ok(vec![Mount::bind(&self.fs(parents[0]), true)]),
            Kind::View => Ok(vec![Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec!["ro".into(), self.lowerdir(parents)],
            }]),
            Kind::Committed => {
                // A committed snapshot is mounted read-only with its own content on top.
                let mut chain = vec![id];
                chain.extend_from_slice(parents);
                if chain.len() == 1 {
                    Ok(vec![Mount::bind(&self.fs(id), true)])
                } else {
                    Ok(vec![Mount {
                        kind: "overlay".into(),
                        source: "overlay".into(),
                        options: vec!["ro".into(), self.lowerdir(&chain)],
                    }])
                }
            }
        }
    }

    fn remove(&self, id: SnapshotId) -> Result<(), EngineError> {
        remove_tree(&self.dir(id))
    }

    fn usage(&self, id: SnapshotId) -> Result<Usage, EngineError> {
        super::disk_usage(&self.fs(id))
    }

    fn walk(&self) -> Result<Vec<SnapshotId>, EngineError> {
        numeric_dirs(&self.root.join("snapshots"))
    }

    fn layer_dir(&self, id: SnapshotId) -> (PathBuf, WhiteoutMode) {
        (self.fs(id), WhiteoutMode::Overlay)
    }
}

impl Overlay {
    /// The root this snapshotter stores under.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
